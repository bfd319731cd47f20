"""Provider detection from kubeconfigs written as the cloud CLIs write them, and which signal decided."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.engine import provider
from preflight.engine.kubeconfig import merge
from preflight.engine.targets import ClusterTarget, from_context

CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
EKS_ARN = "arn:aws:eks:us-east-1:111122223333:cluster/east"


def _target(
    tmp_path: Path, context: str, cluster: dict[str, Any], user: dict[str, Any], user_name: str | None = None
) -> ClusterTarget:
    cname, uname = context, user_name or context
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cname, "cluster": {"certificate-authority-data": CA, **cluster}}],
        "users": [{"name": uname, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": cname, "user": uname}}],
        "current-context": context,
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return from_context(merge([path]), context, {})


def _aws_exec(*args: str) -> dict[str, Any]:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": list(args)}}


def test_aws_eks_update_kubeconfig(tmp_path: Path) -> None:
    """ARN-named context, cluster and user; the regional EKS host; aws eks get-token (as aws-cli v2 writes it)."""
    t = _target(
        tmp_path,
        EKS_ARN,
        {"server": "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com"},
        _aws_exec("--region", "us-east-1", "eks", "get-token", "--cluster-name", "east", "--output", "json"),
    )
    found = provider.detect(t)
    assert found.provider == "eks"
    assert found.decided_by is not None and found.decided_by.source == "API host"
    assert {s.source for s in found.signals} == {"API host", "exec plugin", "context name", "user name"}
    assert not found.conflicts
    by_source = {s.source: dict(s.ids) for s in found.signals}
    assert by_source["context name"] == {"region": "us-east-1", "account": "111122223333", "cluster_name": "east"}
    assert by_source["exec plugin"] == {"cluster_name": "east", "region": "us-east-1"}


def test_eks_arn_context_with_a_static_token_and_an_address(tmp_path: Path) -> None:
    """The context name alone decides when host and credential say nothing."""
    t = _target(tmp_path, EKS_ARN, {"server": "https://10.0.0.5"}, {"token": "static-token-value-123"})
    found = provider.detect(t)
    assert (found.provider, found.decided_by and found.decided_by.source) == ("eks", "context name")
    assert found.as_evidence()["decided_by"]["value"] == EKS_ARN


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("aws-iam-authenticator", ["token", "-i", "prod"], {"cluster_name": "prod"}),
        ("/usr/local/bin/aws", ["eks", "get-token", "--cluster-id", "outpost-1"], {"cluster_name": "outpost-1"}),
        ("aws-vault", ["exec", "ops", "--", "aws", "eks", "get-token", "--cluster-name", "x"], {"cluster_name": "x"}),
    ],
)
def test_eks_exec_plugins(tmp_path: Path, command: str, args: list[str], expected: dict[str, str]) -> None:
    t = _target(tmp_path, "renamed", {"server": "https://10.0.0.5"}, {"exec": {"command": command, "args": args}})
    found = provider.detect(t)
    assert found.provider == "eks" and found.decided_by is not None
    assert found.decided_by.source == "exec plugin" and dict(found.decided_by.ids) == expected


def test_gcloud_get_credentials(tmp_path: Path) -> None:
    name = "gke_my-project_europe-west1-b_prod"
    t = _target(tmp_path, name, {"server": "https://34.1.2.3"}, {"exec": {"command": "gke-gcloud-auth-plugin"}})
    found = provider.detect(t)
    assert (found.provider, found.decided_by and found.decided_by.source) == ("gke", "exec plugin")
    names = next(s for s in found.signals if s.source == "context name")
    assert dict(names.ids) == {"project": "my-project", "location": "europe-west1-b", "cluster": "prod"}


def test_gke_dns_endpoint_host(tmp_path: Path) -> None:
    host = "gke-0123456789abcdef0123456789abcdef-123456789012.us-central1.gke.goog"
    t = _target(tmp_path, "prod", {"server": f"https://{host}"}, {"token": "static-token-value-123"})
    found = provider.detect(t)
    assert found.provider == "gke" and found.decided_by is not None
    assert found.decided_by.ids == {"location": "us-central1"}


@pytest.mark.parametrize(
    ("user", "rg"),
    [("clusterUser_rg-east_aks-east", "rg-east"), ("clusterAdmin_my_team_rg_aks-east", "my_team_rg")],
)
def test_az_aks_get_credentials(tmp_path: Path, user: str, rg: str) -> None:
    """The user is clusterUser_RG_NAME (clusterAdmin_ with --admin); RG may hold underscores, NAME marks its end."""
    host = "aks-east-dns-1a2b3c4d.hcp.eastus.azmk8s.io"
    t = _target(tmp_path, "aks-east", {"server": f"https://{host}:443"}, {"token": "static-token-value-123"}, user)
    found = provider.detect(t)
    assert (found.provider, found.decided_by and found.decided_by.source) == ("aks", "API host")
    signal = next(s for s in found.signals if s.source == "user name")
    assert dict(signal.ids) == {"resource_group": rg, "cluster": "aks-east"}


def test_aks_private_cluster_and_kubelogin(tmp_path: Path) -> None:
    host = "aks-priv-1a2b3c4d.0f0e0d0c-aaaa-bbbb-cccc-111122223333.privatelink.westeurope.azmk8s.io"
    kubelogin = {"exec": {"command": "kubelogin", "args": ["get-token", "--login", "azurecli", "--server-id", "x"]}}
    t = _target(tmp_path, "aks-priv", {"server": f"https://{host}:443"}, kubelogin)
    found = provider.detect(t)
    assert found.provider == "aks" and found.decided_by is not None and found.decided_by.ids == {"region": "westeurope"}
    assert [s.source for s in found.signals] == ["API host", "exec plugin"]


def test_fleet_file_wins_and_disagreeing_signals_are_reported(tmp_path: Path) -> None:
    t = _target(tmp_path, "gke_p_l_c", {"server": "https://10.0.0.5"}, {"token": "static-token-value-123"})
    t.declared_provider = "eks"
    found = provider.detect(t)
    assert found.provider == "eks" and found.decided_by is not None and found.decided_by.source == "fleet file"
    # gcloud names the user after the context too: both disagree with the fleet file.
    assert [(s.provider, s.source) for s in found.conflicts] == [("gke", "context name"), ("gke", "user name")]
    assert found.as_evidence()["conflicts"][0]["value"] == "gke_p_l_c"


def test_nothing_decides_unknown(tmp_path: Path) -> None:
    t = _target(tmp_path, "kind-dev", {"server": "https://127.0.0.1:6443"}, {"token": "static-token-value-123"})
    found = provider.detect(t)
    assert (found.provider, found.decided_by, found.signals) == ("unknown", None, ())


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"spec": {"providerID": "aws:///eu-west-1a/i-0abc"}}, "eks"),
        ({"spec": {"providerID": "gce://proj/europe-west1-b/gke-node-1"}}, "gke"),
        ({"spec": {"providerID": "azure:///subscriptions/s/resourceGroups/mc_rg/providers/x"}}, "aks"),
        ({"metadata": {"labels": {"eks.amazonaws.com/nodegroup": "ng-1"}}}, "eks"),
        ({"metadata": {"labels": {"cloud.google.com/gke-nodepool": "pool-1"}}}, "gke"),
        ({"metadata": {"labels": {"kubernetes.azure.com/agentpool": "nodepool1"}}}, "aks"),
    ],
)
def test_node_signals(node: dict[str, Any], expected: str) -> None:
    node.setdefault("metadata", {})["name"] = "node-1"
    sig = provider.node_signal([{"metadata": {"name": "bare"}}, node])
    assert sig is not None and sig.provider == expected and sig.source == "nodes" and "node-1" in sig.value


def test_plain_nodes_say_nothing() -> None:
    assert provider.node_signal([{"metadata": {"name": "n", "labels": {"kubernetes.io/os": "linux"}}}]) is None
