"""rbac.node-watch knows the cloud from the kubeconfig's conventions, the fleet file or the nodes, and says
which decided; when nothing does and nodes cannot be read it warns instead of passing as self-managed.

Against the lab's HTTPS API servers, which enforce RBAC on the access reviews the check sends.
"""

from __future__ import annotations

import pytest
import yaml

from preflight_lab.apiserver import Rule
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.runlab import result, run

EKS_ARN = "arn:aws:eks:us-east-1:111122223333:cluster/east"
DECLARED_OTHER = "arn:aws:eks:eu-west-1:111122223333:cluster/lab-copy"
NO_NODES = (Rule(verbs=("get", "list", "watch"), api_groups=("*",), resources=("pods", "services")),)
GKE_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "gke-prod-pool-1-abcd", "labels": {"kubernetes.io/os": "linux"}},
    "spec": {"providerID": "gce://my-project/europe-west1-b/gke-prod-pool-1-abcd"},
}
SPECS = [
    ClusterSpec(name=EKS_ARN, rules=NO_NODES),
    ClusterSpec(name=DECLARED_OTHER, rules=NO_NODES),
    ClusterSpec(name="plain-no-nodes", rules=NO_NODES),
    ClusterSpec(name="nodes-say-gke", objects=[GKE_NODE]),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("node-watch")
    with LabFleet(SPECS, directory) as lab:
        kc = yaml.safe_load(lab.kubeconfig_path.read_text())
        # As `aws eks update-kubeconfig` writes it: context, cluster and user are all the cluster's ARN.
        for arn in (EKS_ARN, DECLARED_OTHER):
            user = lab.clusters[arn].user_name
            next(u for u in kc["users"] if u["name"] == user)["name"] = arn
            next(c for c in kc["contexts"] if c["name"] == arn)["context"]["user"] = arn
        kubeconfig = directory / "kubeconfig-aws.yaml"
        kubeconfig.write_text(yaml.safe_dump(kc))
        kubeconfig.chmod(0o600)
        fleet = {
            "kubeconfig": [str(kubeconfig)],
            "clusters": [{"context": c.name} for c in SPECS],
        }
        fleet["clusters"][1]["provider"] = "other"
        path = directory / "fleet-node-watch.yaml"
        path.write_text(yaml.safe_dump(fleet))
        yield run(fleet=str(path), include=["rbac.node-watch"])


def test_eks_arn_context_with_a_static_token_and_no_node_rights_fails_with_the_helm_fix(report) -> None:
    r = result(report, EKS_ARN, "rbac.node-watch")
    assert r.status.value == "fail", r.message
    assert r.message.startswith(f"EKS cluster (context name {EKS_ARN!r}) without node list/watch")
    assert "rbac.nodes: true" in r.remediation
    assert r.evidence["decided_by"] == {
        "provider": "eks",
        "signal": "context name",
        "value": EKS_ARN,
        "ids": {"region": "us-east-1", "account": "111122223333", "cluster_name": "east"},
    }
    assert (r.evidence["list"], r.evidence["watch"]) == (False, False)
    assert next(c for c in report.clusters if c.name == EKS_ARN).provider == "eks"


def test_nothing_decides_and_nodes_unreadable_warns_how_to_declare_the_provider(report) -> None:
    r = result(report, "plain-no-nodes", "rbac.node-watch")
    assert r.status.value == "warn" and "cannot tell whether this is an EKS, GKE or AKS cluster" in r.message
    assert 'context: "plain-no-nodes" provider: eks | gke | aks' in r.remediation
    assert "rbac.nodes: true" in r.remediation
    assert r.evidence["provider"] == "unknown" and r.evidence["decided_by"] is None


def test_fleet_file_wins_and_the_disagreeing_name_is_reported(report) -> None:
    r = result(report, DECLARED_OTHER, "rbac.node-watch")
    assert r.status.value == "pass" and "self-managed" in r.message
    assert "(conflicting signals: context name" in r.message
    assert r.evidence["decided_by"]["signal"] == "fleet file"
    assert {c["signal"] for c in r.evidence["conflicts"]} == {"context name", "user name"}


def test_readable_nodes_decide_when_the_kubeconfig_does_not(report) -> None:
    r = result(report, "nodes-say-gke", "rbac.node-watch")
    assert r.status.value == "pass" and r.message.startswith("GKE cluster (nodes 'gke-prod-pool-1-abcd: providerID")
    assert r.evidence["decided_by"]["signal"] == "nodes"
    assert next(c for c in report.clusters if c.name == "nodes-say-gke").provider == "gke"
