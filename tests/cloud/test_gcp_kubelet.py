"""gcp.kubelet-path end to end: lab clusters whose API server cannot dial the node's kubelet, private GKE clusters
and their VPC firewall rules in the lab's GCP APIs, read by the real google-cloud clients with real ADC, through
the real pipeline. A blocking rule set names the rule (or the implied deny) and the gcloud command; GKE's own
rule passes; the check does not apply to clusters without a control plane range or when the forward worked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import preflight.checks.gcp_kubelet  # noqa: F401  (registers the check whether or not checks/__init__ lists it)
from preflight.engine.model import Result, RunReport
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.gcp import LabGCP, firewall, gke_cluster, instance
from preflight_lab.meshery import MesherySetup
from tests.cloud.test_gcp import adc, metadata_trap  # noqa: F401  (the module's real-ADC fixtures)
from tests.runlab import result, run

CHECK = "gcp.kubelet-path"
P = "proj-kl"
ZONE = "us-central1-a"
CLUSTER_ID = "5e0c1d2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5"
MASTER = "172.16.0.16/28"
NODE_IP = "10.128.0.7"
SA = "gke-nodes@proj-kl.iam.gserviceaccount.com"
NODEPOOL = "cloud.google.com/gke-nodepool"


def node_tag(cluster: str) -> str:
    return f"gke-{cluster}-{CLUSTER_ID[:8]}-node"


def inst_name(cluster: str) -> str:
    return f"gke-{cluster}-default-pool-5f6e7d8c-a1b2"


def master_rule(cluster: str, network: str) -> dict[str, Any]:
    """The rule GKE creates for a private cluster: its control plane to the nodes on 443 and 10250."""
    return firewall(
        P,
        f"gke-{cluster}-{CLUSTER_ID[:8]}-master",
        network=network,
        allowed=[("tcp", ("443", "10250"))],
        source_ranges=[MASTER],
        target_tags=[node_tag(cluster)],
    )


# context -> (network, private?, API server reaches the kubelet?)
CLUSTERS = {
    "gk-blocked": ("net-kl-none", True, "timeout"),
    "gk-deny": ("net-kl-deny", True, "timeout"),
    "gk-ok": ("net-kl-ok", True, "timeout"),
    "gk-public": ("net-kl-public", False, "timeout"),
    "gk-forward-ok": ("net-kl-fwd", True, "reachable"),
}


def _rules() -> list[dict[str, Any]]:
    return [
        # gk-blocked: GKE's rule deleted; only SSH from IAP is left
        firewall(
            P, "allow-iap-ssh", network="net-kl-none", allowed=[("tcp", ("22",))], source_ranges=["35.235.240.0/20"]
        ),
        # gk-deny: GKE's rule shadowed by a broader deny of higher priority
        master_rule("gk-deny", "net-kl-deny"),
        firewall(
            P,
            "deny-kubelet-everywhere",
            network="net-kl-deny",
            denied=[("tcp", ("10250",))],
            source_ranges=["0.0.0.0/0"],
            priority=900,
        ),
        master_rule("gk-ok", "net-kl-ok"),
        master_rule("gk-forward-ok", "net-kl-fwd"),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, adc: Path) -> Iterator[dict[str, Any]]:  # noqa: F811
    d = tmp_path_factory.mktemp("gcp-kubelet")
    specs = [
        ClusterSpec(
            name=name,
            meshery=MesherySetup(
                service_type="ClusterIP",
                broker_address=allocate(NATS_PORT),
                kubelet=kubelet,
                node_internal_ips=(NODE_IP,),
                node_labels={NODEPOOL: "default-pool"},
                node_provider_id=f"gce://{P}/{ZONE}/{inst_name(name)}",
            ),
        )
        for name, (_net, _private, kubelet) in CLUSTERS.items()
    ]
    with LabFleet(specs, d) as fleet, LabGCP() as lab:
        lab.trust_service_account(adc)
        lab.add_firewalls(P, _rules())
        for name, (net, private, _kubelet) in CLUSTERS.items():
            pool = {"name": "default-pool", "config": {"serviceAccount": SA}}
            pcc = {"enablePrivateNodes": True, "masterIpv4CidrBlock": MASTER} if private else None
            doc = gke_cluster(
                P,
                "us-central1",
                name,
                network=net,
                cluster_id=CLUSTER_ID,
                node_pools=[pool],
                private_cluster_config=pcc,
            )
            lab.add_cluster(doc)
            lab.add_instance(instance(P, ZONE, inst_name(name), tags=[node_tag(name)], service_accounts=[SA]))
        doc = yaml.safe_load(fleet.fleet_path.read_text())
        for entry in doc["clusters"]:
            entry.update(provider="gke", gcp={"project": P, "location": "us-central1", "cluster": entry["context"]})
        path = d / "fleet-gcp.yaml"
        path.write_text(yaml.safe_dump(doc))
        yield {"lab": lab, "fleet": path}


@pytest.fixture(scope="module")
def report(world: dict[str, Any]) -> RunReport:
    world["lab"].clear_log()
    return run(
        fleet=str(world["fleet"]),
        include=["broker.port-forward", CHECK],
        gcp_api_endpoint=world["lab"].url,
        broker_port_forward=True,
        connect_timeout=1.5,
        parallel=8,
    )


def res(report: RunReport, cluster: str) -> Result:
    return result(report, cluster, CHECK)


def test_no_rule_from_the_control_plane_range_is_the_implied_deny_with_the_create_command(report: RunReport) -> None:
    r = res(report, "gk-blocked")
    assert r.status.value == "fail", r.message
    assert f"tcp:10250 from the control plane ({MASTER}) to node {NODE_IP}" in r.message
    assert "blocked by the implied deny: no rule allows it" in r.message
    assert (
        f"gcloud compute firewall-rules create allow-gke-control-plane-kubelet --project {P} --network net-kl-none "
        f"--direction INGRESS --priority 1000 --source-ranges {MASTER} --allow tcp:10250 --target-tags "
        f"{node_tag('gk-blocked')}"
    ) in r.remediation
    assert r.evidence["node_ip"] == NODE_IP and r.evidence["kubelet_dial"] == "timeout"
    assert (
        "gcp.kubelet-path names the rule that decides"
        in result(report, "gk-blocked", "broker.port-forward").remediation
    )
    assert r.evidence["nodes"][0]["from"] == f"instance {inst_name('gk-blocked')}"


def test_a_deny_of_higher_priority_shadows_gkes_rule_and_is_named(report: RunReport) -> None:
    r = res(report, "gk-deny")
    assert r.status.value == "fail", r.message
    assert "blocked by firewall rule deny-kubelet-everywhere (deny, priority 900)" in r.message
    assert "--priority 899" in r.remediation and f"--source-ranges {MASTER}" in r.remediation


def test_gkes_own_master_rule_allows_and_is_named(report: RunReport) -> None:
    r = res(report, "gk-ok")
    assert r.status.value == "pass", r.message
    assert f"gke-gk-ok-{CLUSTER_ID[:8]}-master (allow, priority 1000)" in r.message
    assert "look at the node itself" in r.message


def test_not_applicable_without_a_control_plane_range_or_when_the_forward_works(report: RunReport) -> None:
    public = res(report, "gk-public")
    assert public.status.value == "skip" and "masterIpv4CidrBlock" in public.message
    assert "konnectivity-agent" in public.message
    assert result(report, "gk-forward-ok", "broker.port-forward").status.value == "pass"
    ok = res(report, "gk-forward-ok")
    assert ok.status.value == "skip" and "the port-forward works" in ok.message


def test_each_read_is_sent_once_per_run_and_only_reads(report: RunReport, world: dict[str, Any]) -> None:
    lab: LabGCP = world["lab"]
    assert lab.mutating_requests() == []
    paths = [r.path for r in lab.api_requests()]
    assert paths.count(f"/compute/v1/projects/{P}/global/firewalls") == 1  # one list for the four clusters
    judged = [c for c in CLUSTERS if res(report, c).status.value in ("pass", "fail")]
    assert len(judged) == 3
    for name in judged:
        assert paths.count(f"/v1/projects/{P}/locations/us-central1/clusters/{name}") == 1
        assert paths.count(f"/compute/v1/projects/{P}/zones/{ZONE}/instances/{inst_name(name)}") == 1
    assert res(report, "gk-ok").evidence["gcp_api_calls"] >= 3
