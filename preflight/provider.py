"""Guess a cluster's provider from what the kubeconfig already says (host, exec plugin, context name)."""

from __future__ import annotations

import os

from preflight.targets import ClusterTarget

PROVIDERS = ("eks", "gke", "aks", "other", "unknown")


def detect(target: ClusterTarget) -> str:
    host = (target.host or "").lower()
    spec = target.credential.exec_spec or {}
    command = os.path.basename(str(spec.get("command") or ""))
    args = [str(a) for a in spec.get("args") or []]
    if (
        host.endswith(".eks.amazonaws.com")
        or command == "aws-iam-authenticator"
        or (command == "aws" and "eks" in args)
    ):
        return "eks"
    if host.endswith(".azmk8s.io") or command == "kubelogin":
        return "aks"
    if target.name.startswith("gke_") or command == "gke-gcloud-auth-plugin":
        return "gke"
    return "unknown"
