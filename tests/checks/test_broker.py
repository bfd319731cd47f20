"""Meshery, Broker and RBAC checks against lab clusters running real nats-servers, a real DNS server
and the real kubernetes client."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer
from preflight_lab.rbac import Rule
from tests.runlab import result, run

ORIGIN = "127.0.0.0/8"
# Every Broker on its own loopback address, free on 4222 (preflight_lab.addresses).
A = {n: allocate(NATS_PORT) for n in range(1, 20)}


def lb(address: str, **kw: object) -> MesherySetup:
    kw.setdefault("source_ranges", (ORIGIN,))
    return behind_load_balancer(address, **kw)


READ_ONLY_MESHERY = (
    Rule(
        verbs=("get", "list", "watch"),
        api_groups=("", "apps", "meshery.io"),
        resources=(
            "services",
            "deployments",
            "brokers",
            "meshsyncs",
            "configmaps",
            "pods",
            "replicasets",
            "namespaces",
        ),
    ),
)

SPECS = [
    ClusterSpec(name="op-healthy", meshery=lb(A[1])),
    ClusterSpec(name="op-clusterip", meshery=MesherySetup(broker_address=A[2])),
    ClusterSpec(name="op-hostname", meshery=lb(A[3], lb_ip=None, lb_hostname="a1b2-broker.elb.lab.test")),
    ClusterSpec(name="op-nxdomain", meshery=lb(A[4], lb_ip=None, lb_hostname="gone.elb.lab.test")),
    ClusterSpec(name="op-wrong-token", meshery=lb(A[5], secret_token="stale-token-0123456789abcdef")),
    ClusterSpec(name="op-world", meshery=lb(A[6], source_ranges=("0.0.0.0/0",))),
    ClusterSpec(name="op-narrow", meshery=lb(A[7], source_ranges=("198.51.100.0/24",))),
    ClusterSpec(name="op-not-nats", meshery=lb(A[8], broker="not-nats")),
    ClusterSpec(name="op-silent", meshery=lb(A[9], broker="silent")),
    ClusterSpec(name="op-refused", meshery=lb(A[10], broker="absent")),
    ClusterSpec(
        name="classic",
        meshery=MesherySetup(generation="classic", lb_ip=A[11], broker_address=A[11], source_ranges=(ORIGIN,)),
    ),
    ClusterSpec(name="op-no-secret-rights", rules=READ_ONLY_MESHERY, meshery=lb(A[12])),
    ClusterSpec(name="op-pending", meshery=lb(A[13], published_external="")),
    ClusterSpec(name="op-not-ready", meshery=lb(A[14], broker_ready=False, operator_ready=False)),
    ClusterSpec(
        name="op-both-lists",
        meshery=lb(A[15], meshsync_whitelist=["pods.v1."], meshsync_blacklist=["events.v1."]),
    ),
    ClusterSpec(name="op-large", meshery=lb(A[16], extra_objects=120)),
    ClusterSpec(name="op-collide-a", meshery=lb(A[17], published_external=f"{A[17]}:4222")),
    ClusterSpec(name="op-collide-b", meshery=lb(A[18], published_external=f"{A[17]}:4222")),
    ClusterSpec(name="op-stale", meshery=lb(A[19], published_external="10.96.0.10:4222")),
    ClusterSpec(
        name="eks-no-nodes",
        rules=READ_ONLY_MESHERY[:0]
        + (Rule(verbs=("get", "list", "watch"), api_groups=("*",), resources=("pods", "services")),),
    ),
    ClusterSpec(name="watch-only-nodes", rules=(Rule(verbs=("watch",), api_groups=("",), resources=("nodes",)),)),
    ClusterSpec(name="embedded-plain"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("broker-lab")) as lab, LabDNS(zones=("lab.test",)) as dns:
        dns.add_cname("a1b2-broker.elb.lab.test", "a1b2-broker-0123.elb.eu-west-1.lab.test")
        dns.add_a("a1b2-broker-0123.elb.eu-west-1.lab.test", A[3])
        yield lab, dns


@pytest.fixture(scope="module")
def report(world):
    lab, dns = world
    return run(
        fleet=str(lab.fleet_path),
        dns_server=dns.address,
        origins=[ORIGIN],
        connect_timeout=1.0,
        large_cluster_objects=100,
        parallel=24,
    )


def status(report, cluster: str, check_id: str) -> str:
    return result(report, cluster, check_id).status.value


def test_healthy_operator_cluster_passes_the_whole_broker_path(report) -> None:
    for cid in (
        "meshery.mode",
        "meshery.operator",
        "meshery.broker-resource",
        "meshery.meshsync",
        "broker.service",
        "broker.endpoint",
        "broker.dns",
        "broker.tcp",
        "broker.nats",
        "broker.auth",
        "broker.exposure",
        "rbac.discovery",
        "rbac.operator-deploy",
        "rbac.node-watch",
    ):
        assert status(report, "op-healthy", cid) == "pass", (cid, result(report, "op-healthy", cid).message)
    nats = result(report, "op-healthy", "broker.nats")
    assert nats.evidence["auth_required"] is True and nats.evidence["version"].startswith("2.")
    assert result(report, "op-healthy", "broker.service").evidence["generation"] == "current"
    assert status(report, "op-healthy", "rbac.least-privilege") == "warn"  # lab default is cluster-admin


def test_clusterip_broker_fails_for_a_remote_server_with_the_spec_fix(report) -> None:
    svc = result(report, "op-clusterip", "broker.service")
    assert svc.status.value == "fail" and "ClusterIP" in svc.message
    assert "spec.service.type" in svc.remediation and "externalEndpointOverride" in svc.remediation


def test_lb_hostname_is_resolved_through_its_cnames(report) -> None:
    d = result(report, "op-hostname", "broker.dns")
    assert d.status.value == "pass"
    assert d.evidence["cnames"] == ["a1b2-broker-0123.elb.eu-west-1.lab.test"]
    assert status(report, "op-hostname", "broker.auth") == "pass"
    assert result(report, "op-hostname", "broker.endpoint").evidence["published"].startswith("a1b2-broker.elb")


def test_nxdomain_hostname_names_the_missing_load_balancer(report) -> None:
    d = result(report, "op-nxdomain", "broker.dns")
    assert d.status.value == "fail" and d.evidence["failure"] == "nxdomain"
    assert "deleted or never provisioned" in d.remediation
    assert status(report, "op-nxdomain", "broker.tcp") == "skip"


def test_wrong_token_is_rejected_by_the_real_broker(report) -> None:
    auth = result(report, "op-wrong-token", "broker.auth")
    assert auth.status.value == "fail" and "Authorization Violation" in auth.message


def test_world_open_and_narrow_source_ranges(report) -> None:
    world = result(report, "op-world", "broker.exposure")
    assert world.status.value == "fail" and "open to the world" in world.message
    narrow = result(report, "op-narrow", "broker.exposure")
    assert narrow.status.value == "fail" and ORIGIN in narrow.message
    assert f"Add {ORIGIN}" in narrow.remediation


def test_imposters_on_the_broker_port(report) -> None:
    not_nats = result(report, "op-not-nats", "broker.nats")
    assert not_nats.status.value == "fail" and not_nats.evidence["kind"] == "not-nats"
    silent = result(report, "op-silent", "broker.nats")
    assert silent.status.value == "fail" and silent.evidence["kind"] == "silent"
    refused = result(report, "op-refused", "broker.tcp")
    assert refused.status.value == "fail" and refused.evidence["state"] == "refused"


def test_classic_generation_is_detected_and_unauthenticated_warns(report) -> None:
    svc = result(report, "classic", "broker.service")
    assert svc.status.value == "pass" and svc.evidence["generation"] == "classic"
    assert svc.evidence["service"] == "meshery-broker"
    auth = result(report, "classic", "broker.auth")
    assert auth.status.value == "warn" and "without authentication" in auth.message


def test_unreadable_token_secret_skips_with_the_permission(report) -> None:
    auth = result(report, "op-no-secret-rights", "broker.auth")
    assert auth.status.value == "skip"
    assert "get on secrets" in auth.message and "meshery-nats-auth" in auth.message
    assert status(report, "op-no-secret-rights", "rbac.least-privilege") == "pass"
    disc = result(report, "op-no-secret-rights", "rbac.discovery")
    assert disc.status.value == "fail" and "statefulsets.apps" in disc.evidence["missing"]
    deploy = result(report, "op-no-secret-rights", "rbac.operator-deploy")
    assert deploy.status.value == "fail"
    assert "create customresourcedefinitions.apiextensions.k8s.io" in deploy.evidence["missing"]
    assert "create deployments.apps in meshery" in deploy.evidence["missing"]


def test_pending_and_not_ready_broker_resource(report) -> None:
    pending = result(report, "op-pending", "meshery.broker-resource")
    assert pending.status.value == "fail" and "no external endpoint" in pending.message
    not_ready = result(report, "op-not-ready", "meshery.broker-resource")
    assert not_ready.status.value == "fail" and "not Ready" in not_ready.message
    assert status(report, "op-not-ready", "meshery.operator") == "fail"


def test_meshsync_watch_lists(report) -> None:
    both = result(report, "op-both-lists", "meshery.meshsync")
    assert both.status.value == "fail" and "both a whitelist and a blacklist" in both.message
    large = result(report, "op-large", "meshery.meshsync")
    assert large.status.value == "warn" and large.evidence["objects_estimated"] > 100


def test_stale_endpoint_warns_and_names_the_candidate_that_answers(report) -> None:
    ep = result(report, "op-stale", "broker.endpoint")
    assert ep.status.value == "warn" and "matches none of the Service's current addresses" in ep.message
    assert f"externalEndpointOverride to {A[19]}:4222" in ep.remediation
    # Its private answer, seen from a loopback origin, is named as an internal endpoint; no SYN is sent to it.
    assert status(report, "op-stale", "broker.dns") == "fail"
    assert status(report, "op-stale", "broker.tcp") == "skip"


def test_fleet_sees_two_clusters_publishing_one_endpoint(report) -> None:
    col = result(report, "fleet", "fleet.broker-endpoint-collision")
    assert col.status.value == "fail"
    assert col.evidence["collisions"] == [{"endpoint": f"{A[17]}:4222", "clusters": ["op-collide-a", "op-collide-b"]}]


def test_node_watch_on_a_cloud_cluster_and_watch_without_list(world) -> None:
    lab, dns = world
    fleet = yaml.safe_load(Path(lab.fleet_path).read_text())
    fleet["clusters"] = [
        {"context": "eks-no-nodes", "provider": "eks"},
        {"context": "watch-only-nodes"},
        {"context": "embedded-plain"},
    ]
    path = Path(lab.fleet_path).with_name("fleet-nodes.yaml")
    path.write_text(yaml.safe_dump(fleet))
    rep = run(fleet=str(path), include=["kube*", "rbac.node-watch"])
    eks = result(rep, "eks-no-nodes", "rbac.node-watch")
    assert eks.status.value == "fail" and "EKS" in eks.message and "rbac.nodes: true" in eks.remediation
    watch_only = result(rep, "watch-only-nodes", "rbac.node-watch")
    assert watch_only.status.value == "fail" and "without list" in watch_only.message
    assert status(rep, "embedded-plain", "rbac.node-watch") == "pass"


def test_embedded_policy_with_operator_components_is_a_mismatch(world) -> None:
    lab, dns = world
    rep = run(
        kubeconfig=[str(lab.kubeconfig_path)],
        contexts=["op-healthy", "embedded-plain"],
        include=["kube*", "meshery.*", "broker.*", "fleet.mode-consistency"],
        dns_server=dns.address,
    )
    mode = result(rep, "op-healthy", "meshery.mode")
    assert mode.status.value == "fail" and "embedded mode is expected" in mode.message
    # No fleet file here: the mode came from --meshsync-default-mode (its default), and the report says so.
    assert mode.evidence["mode_source"] == "MESHSYNC_DEFAULT_DEPLOYMENT_MODE / --meshsync-default-mode"
    assert "(fleet file)" not in result(rep, "embedded-plain", "meshery.mode").message
    assert status(rep, "op-healthy", "meshery.operator") == "warn"
    assert status(rep, "op-healthy", "broker.tcp") == "skip"  # embedded: no Broker in use
    assert status(rep, "embedded-plain", "meshery.mode") == "pass"
    drift = result(rep, "fleet", "fleet.mode-consistency")
    assert drift.status.value == "warn" and "op-healthy" in drift.message


def test_disable_operator_conflicts_with_operator_mode(world) -> None:
    lab, dns = world
    rep = run(
        fleet=str(lab.fleet_path), contexts=["op-healthy"], include=["kube*", "meshery.mode"], disable_operator=True
    )
    mode = result(rep, "op-healthy", "meshery.mode")
    assert mode.status.value == "fail" and "DISABLE_OPERATOR" in mode.message
    assert mode.evidence["mode_source"] == "fleet file"


def test_broker_token_never_reaches_a_result(world, report) -> None:
    lab, _ = world
    text = repr(report)
    for secret in lab.secrets():
        for line in secret.strip().splitlines():
            if len(line) >= 16 and "-----" not in line:
                assert line not in text


def test_only_access_reviews_were_posted(world, report) -> None:
    lab, _ = world
    assert all(not reqs for reqs in lab.mutating_requests().values())
