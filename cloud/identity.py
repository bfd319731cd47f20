"""Which cloud account and cluster a context belongs to, from what the user already has.

The kubeconfig usually says enough (API host, exec plugin arguments, context naming); the fleet file
states or overrides it per cluster. `declared` tells the checks the user asked for this cloud, so a
missing credential is an error there rather than a skip.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from preflight.targets import ClusterTarget

_EKS_HOST = re.compile(r"\.(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d)\.eks\.amazonaws\.com(?:\.cn)?$")
_GKE_CONTEXT = re.compile(r"^gke_(?P<project>[^_]+)_(?P<location>[^_]+)_(?P<cluster>.+)$")
_AKS_HOST = re.compile(r"\.(?:privatelink\.)?(?P<region>[a-z0-9]+)\.azmk8s\.io$")


@dataclass
class CloudIds:
    provider: str  # eks | gke | aks | "" when none
    values: dict[str, str] = field(default_factory=dict)
    declared: bool = False

    def get(self, key: str) -> str | None:
        return self.values.get(key) or None


def _arg(args: list[str], *names: str) -> str | None:
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def _env(spec: dict[str, Any], name: str) -> str | None:
    for item in spec.get("env") or []:
        if isinstance(item, dict) and item.get("name") == name:
            return str(item.get("value"))
    return None


def identify(target: ClusterTarget) -> CloudIds:
    host = (target.host or "").lower()
    spec = target.credential.exec_spec or {}
    command = os.path.basename(str(spec.get("command") or ""))
    args = [str(a) for a in spec.get("args") or []]
    declared = target.provider_ids
    if target.provider == "eks" or "aws" in declared:
        ids = CloudIds("eks", declared=bool(declared.get("aws")))
        m = _EKS_HOST.search(host)
        ids.values = {
            "region": (m.group("region") if m else None) or _arg(args, "--region") or "",
            "cluster_name": _arg(args, "--cluster-name", "-i", "--cluster-id") or "",
            "profile": _env(spec, "AWS_PROFILE") or _arg(args, "--profile") or "",
        }
        ids.values.update({k: v for k, v in declared.get("aws", {}).items() if v})
        return ids
    if target.provider == "gke" or "gcp" in declared:
        ids = CloudIds("gke", declared=bool(declared.get("gcp")))
        m = _GKE_CONTEXT.match(target.name)
        ids.values = (
            {"project": m.group("project"), "location": m.group("location"), "cluster": m.group("cluster")} if m else {}
        )
        ids.values.update({k: v for k, v in declared.get("gcp", {}).items() if v})
        return ids
    if target.provider == "aks" or "azure" in declared:
        ids = CloudIds("aks", declared=bool(declared.get("azure")))
        m = _AKS_HOST.search(host)
        ids.values = {"region": m.group("region")} if m else {}
        ids.values.update({k: v for k, v in declared.get("azure", {}).items() if v})
        _ = command
        return ids
    return CloudIds("")
