"""Cloud ids from the kubeconfig's conventions (EKS ARN, gke_ names, clusterUser_ users), the fleet file winning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from preflight.cloud.identity import identify
from preflight.engine.kubeconfig import merge
from preflight.engine.targets import ClusterTarget, from_context

EKS_ARN = "arn:aws:eks:us-east-1:111122223333:cluster/east"
TOKEN = {"token": "static-token-value-123"}


def _target(tmp_path: Path, context: str, server: str, user_name: str | None = None, **fleet: Any) -> ClusterTarget:
    uname = user_name or context
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": uname, "user": TOKEN}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": uname}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    t = from_context(merge([path]), context, {})
    t.provider_ids = fleet
    return t


def test_eks_arn_gives_region_account_and_name_and_says_so(tmp_path: Path) -> None:
    ids = identify(_target(tmp_path, EKS_ARN, "https://10.0.0.5"))
    assert ids.provider == "eks" and not ids.declared
    assert ids.values == {"region": "us-east-1", "account": "111122223333", "cluster_name": "east"}
    assert ids.sources == dict.fromkeys(ids.values, f"context name {EKS_ARN!r}")


def test_fleet_file_wins_id_by_id(tmp_path: Path) -> None:
    ids = identify(_target(tmp_path, EKS_ARN, "https://10.0.0.5", aws={"region": "eu-west-1", "profile": "ops"}))
    assert ids.declared
    assert ids.values == {"region": "eu-west-1", "account": "111122223333", "cluster_name": "east", "profile": "ops"}
    assert ids.sources["region"] == ids.sources["profile"] == "fleet file"
    assert ids.sources["cluster_name"].startswith("context name")


def test_eks_host_region_is_preferred_to_the_name(tmp_path: Path) -> None:
    host = "https://ABCDEF.yl4.eu-central-1.eks.amazonaws.com"
    ids = identify(_target(tmp_path, "arn:aws:eks:us-east-1:111122223333:cluster/east", host))
    assert ids.get("region") == "eu-central-1" and ids.sources["region"].startswith("API host")
    assert ids.get("account") == "111122223333"


def test_gke_context_name(tmp_path: Path) -> None:
    ids = identify(_target(tmp_path, "gke_my-project_us-central1_prod", "https://34.1.2.3"))
    assert ids.provider == "gke"
    assert ids.values == {"project": "my-project", "location": "us-central1", "cluster": "prod"}


def test_aks_user_name_gives_the_resource_group(tmp_path: Path) -> None:
    host = "https://aks-east-dns-1a2b3c4d.hcp.eastus.azmk8s.io:443"
    ids = identify(_target(tmp_path, "aks-east", host, user_name="clusterUser_rg_east_aks-east"))
    assert ids.provider == "aks"
    assert ids.values == {"region": "eastus", "resource_group": "rg_east", "cluster": "aks-east"}
    assert ids.sources["resource_group"] == "user name 'clusterUser_rg_east_aks-east'"


def test_no_cloud(tmp_path: Path) -> None:
    assert identify(_target(tmp_path, "kind-dev", "https://127.0.0.1:6443")).provider == ""


def test_renamed_context_keeps_the_arn_in_the_cluster_name(tmp_path: Path) -> None:
    """`kubectl config rename-context` changes the context only; the cluster entry still carries the ARN."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": EKS_ARN, "cluster": {"server": "https://10.0.0.5"}}],
        "users": [{"name": "me", "user": TOKEN}],
        "contexts": [{"name": "prod", "context": {"cluster": EKS_ARN, "user": "me"}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    ids = identify(from_context(merge([path]), "prod", {}))
    assert ids.provider == "eks" and ids.get("cluster_name") == "east"
    assert ids.sources["region"] == f"cluster name {EKS_ARN!r}"
