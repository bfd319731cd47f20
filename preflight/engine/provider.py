"""Which cloud runs a cluster, from every convention a kubeconfig carries, and which signal decided.

The cloud CLIs leave their marks: `aws eks update-kubeconfig` names the context, cluster and user after
the cluster's ARN and writes `aws eks get-token --cluster-name`; `gcloud container clusters
get-credentials` names them gke_PROJECT_LOCATION_NAME; `az aks get-credentials` names the user
clusterUser_RG_NAME. The API host, the exec plugin and the nodes say it too. The fleet file wins over
all of them; signals that disagree are reported, never silently dropped. Each signal also carries the
cloud identifiers it reveals (region, account, project...), which cloud/identity.py turns into ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from preflight.engine.targets import ClusterTarget

PROVIDERS = ("eks", "gke", "aks", "other", "unknown")
CLOUDS = {"eks": "EKS", "gke": "GKE", "aks": "AKS"}

_EKS_HOST = re.compile(r"\.(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d)\.eks\.amazonaws\.com(?:\.cn)?$")
_EKS_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov|-iso[a-z-]*)?:eks:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):cluster/(?P<cluster_name>.+)$"
)
_GKE_NAME = re.compile(r"^gke_(?P<project>[^_]+)_(?P<location>[^_]+)_(?P<cluster>[^_]+)$")
_GKE_DNS_HOST = re.compile(r"\.(?P<location>[a-z0-9-]+)\.gke\.goog$")
_AKS_HOST = re.compile(r"\.(?:privatelink\.)?(?P<region>[a-z0-9]+)\.azmk8s\.io$")
_AKS_USER = re.compile(r"^cluster(?:User|Admin)_(?P<rest>.+)$")


@dataclass(frozen=True)
class Signal:
    """One piece of evidence: where it was seen (`source`), what it says (`provider`), what ids it carries."""

    provider: str
    source: str  # fleet file | API host | context name | cluster name | user name | exec plugin | nodes
    value: str
    ids: Mapping[str, str] = field(default_factory=dict)

    def as_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "signal": self.source, "value": self.value}
        if self.ids:
            out["ids"] = dict(self.ids)
        return out


@dataclass(frozen=True)
class Detection:
    """The decision and everything that went into it."""

    provider: str
    decided_by: Signal | None
    signals: tuple[Signal, ...] = ()

    @property
    def conflicts(self) -> list[Signal]:
        """Signals that name another cloud than the one decided."""
        return [s for s in self.signals if s.provider != self.provider and s.provider in CLOUDS]

    @property
    def reason(self) -> str:
        """ "context name is an EKS ARN"-style words for messages."""
        if self.decided_by is None:
            return "no signal in the kubeconfig"
        return f"{self.decided_by.source} {self.decided_by.value!r}"

    def as_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "decided_by": self.decided_by.as_evidence() if self.decided_by else None,
        }
        if self.conflicts:
            out["conflicts"] = [s.as_evidence() for s in self.conflicts]
        return out


def _arg(args: list[str], *names: str) -> str | None:
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def _env(spec: Mapping[str, Any], name: str) -> str | None:
    for item in spec.get("env") or []:
        if isinstance(item, Mapping) and item.get("name") == name and item.get("value"):
            return str(item["value"])
    return None


def _clean(ids: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in ids.items() if v}


def _from_name(source: str, name: str) -> Signal | None:
    m = _EKS_ARN.match(name)
    if m:
        return Signal("eks", source, name, _clean(m.groupdict()))
    m = _GKE_NAME.match(name)
    if m:
        return Signal("gke", source, name, _clean(m.groupdict()))
    return None


def _aks_user(user: str, names: Iterable[str]) -> Signal | None:
    """clusterUser_RG_NAME: resource groups may contain '_', so the cluster's own name marks where RG ends."""
    m = _AKS_USER.match(user)
    if not m:
        return None
    rest = m.group("rest")
    for name in names:
        if name and rest.endswith("_" + name) and len(rest) > len(name) + 1:
            return Signal("aks", "user name", user, {"resource_group": rest[: -len(name) - 1], "cluster": name})
    rg, sep, cluster = rest.rpartition("_")
    return Signal("aks", "user name", user, _clean({"resource_group": rg, "cluster": cluster}) if sep else {})


def _from_host(host: str) -> Signal | None:
    host = host.lower().rstrip(".")
    m = _EKS_HOST.search(host)
    if m:
        return Signal("eks", "API host", host, _clean(m.groupdict()))
    m = _AKS_HOST.search(host)
    if m:
        return Signal("aks", "API host", host, _clean(m.groupdict()))
    m = _GKE_DNS_HOST.search(host)
    if m:
        return Signal("gke", "API host", host, _clean(m.groupdict()))
    if host == "connectgateway.googleapis.com" or host.endswith("-connectgateway.googleapis.com"):
        return Signal("gke", "API host", host)
    return None


def _from_exec(spec: Mapping[str, Any]) -> Signal | None:
    command = os.path.basename(str(spec.get("command") or ""))
    args = [str(a) for a in spec.get("args") or []]
    shown = " ".join([command, *args[:2]]).strip()
    profile = _env(spec, "AWS_PROFILE") or _arg(args, "--profile")
    # Wrappers (aws-vault exec PROFILE -- aws eks get-token ...) carry the same arguments.
    if "eks" in args and "get-token" in args:
        ids = {
            "cluster_name": _arg(args, "--cluster-name", "--cluster-id"),
            "region": _arg(args, "--region"),
            "profile": profile,
        }
        return Signal("eks", "exec plugin", f"{command} ... eks get-token", _clean(ids))
    if command == "aws-iam-authenticator":
        ids = {"cluster_name": _arg(args, "-i", "--cluster-id"), "region": _arg(args, "--region"), "profile": profile}
        return Signal("eks", "exec plugin", "aws-iam-authenticator", _clean(ids))
    if command == "gke-gcloud-auth-plugin":
        return Signal("gke", "exec plugin", command)
    if command == "kubelogin":
        return Signal("aks", "exec plugin", shown)
    return None


def kubeconfig_signals(target: ClusterTarget) -> list[Signal]:
    """Every provider mark in the kubeconfig, strongest first (host, exec plugin, then names)."""
    found: list[Signal | None] = [_from_host(target.host or "")]
    if target.credential.exec_spec:
        found.append(_from_exec(target.credential.exec_spec))
    found.append(_from_name("context name", target.name))
    if target.cluster_name and target.cluster_name != target.name:
        found.append(_from_name("cluster name", target.cluster_name))
    if target.user_name:
        found.append(_from_name("user name", target.user_name))
        found.append(_aks_user(target.user_name, [target.cluster_name or "", target.name]))
    return [s for s in found if s is not None]


def node_signal(items: Iterable[Mapping[str, Any]]) -> Signal | None:
    """The cloud the nodes say they run on (spec.providerID, then the clouds' node labels)."""
    for node in items:
        name = str((node.get("metadata") or {}).get("name") or "")
        pid = str((node.get("spec") or {}).get("providerID") or "")
        labels = (node.get("metadata") or {}).get("labels") or {}
        for prefix, cloud in (("aws://", "eks"), ("gce://", "gke"), ("azure://", "aks")):
            if pid.startswith(prefix):
                return Signal(cloud, "nodes", f"{name}: providerID {pid.split('/', 3)[0]}//...")
        for prefix, cloud in (
            ("eks.amazonaws.com/", "eks"),
            ("cloud.google.com/gke", "gke"),
            ("kubernetes.azure.com/", "aks"),
        ):
            label = next((k for k in labels if str(k).startswith(prefix)), None)
            if label:
                return Signal(cloud, "nodes", f"{name}: label {label}")
    return None


def decide(signals: Iterable[Signal], declared: str | None = None) -> Detection:
    """The fleet file wins; otherwise the first (strongest) signal."""
    found = tuple(signals)
    if declared:
        sig = Signal(declared, "fleet file", f"provider: {declared}")
        return Detection(declared, sig, (sig, *found))
    if not found:
        return Detection("unknown", None, ())
    return Detection(found[0].provider, found[0], found)


def detect(target: ClusterTarget) -> Detection:
    """What the kubeconfig and the fleet file say (nodes are read later, by a check that may read them)."""
    return decide(kubeconfig_signals(target), target.declared_provider)
