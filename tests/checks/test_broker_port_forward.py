"""Meshery's managed Broker port-forward against lab clusters: one SPDY/3.1 upgrade with client-go's streams
through the lab API servers, relaying to real nats-servers, the NATS handshake carried through it.

Each case gets its verdict, its message and its fix; the endpoint checks are judged with the forward's
outcome; the API servers saw only reads, access reviews and one port-forward connect per cluster; no tunnel
outlives the run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from preflight.engine.errors import ConfigError
from preflight.engine.fleetfile import load
from preflight.engine.settings import port_forward_policy
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer
from preflight_lab.rbac import Rule
from tests.runlab import result, run

ORIGIN = "127.0.0.0/8"
A = {n: allocate(NATS_PORT) for n in range(1, 16)}

# Everything but pods/portforward: reads everywhere, and the reviews.
NO_FORWARD = (
    Rule(verbs=("get", "list", "watch")),
    Rule(
        verbs=("create",),
        api_groups=("authorization.k8s.io", "authentication.k8s.io"),
        resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"),
    ),
    Rule(verbs=("get",), non_resource_urls=("*",)),
)


def lb(address: str, **kw: object) -> MesherySetup:
    kw.setdefault("source_ranges", (ORIGIN,))
    return behind_load_balancer(address, **kw)


SPECS = [
    ClusterSpec(name="clusterip", meshery=MesherySetup(broker_address=A[1])),
    ClusterSpec(name="unpublished", meshery=MesherySetup(broker_address=A[2], published_external="")),
    ClusterSpec(name="denied", rules=NO_FORWARD, meshery=lb(A[3])),
    ClusterSpec(name="kubelet-timeout", meshery=MesherySetup(broker_address=A[4], kubelet="timeout")),
    ClusterSpec(name="kubelet-refused", meshery=lb(A[5], kubelet="refused")),
    ClusterSpec(name="crashloop", meshery=lb(A[6], nats_pod="crashloop", broker="absent")),
    ClusterSpec(name="imagepull", meshery=lb(A[7], nats_pod="imagepull")),
    ClusterSpec(name="no-pod", meshery=lb(A[8], nats_pod="missing")),
    ClusterSpec(name="stripped", meshery=lb(A[9], upgrade_stripped_by=426)),
    ClusterSpec(name="bad-gateway", meshery=MesherySetup(broker_address=A[10], upgrade_stripped_by=502)),
    ClusterSpec(name="nothing-listens", meshery=lb(A[11], broker="absent")),
    ClusterSpec(name="endpoint-refused", meshery=lb(A[12], published_external=f"{A[12]}:1")),
    ClusterSpec(name="lb-exposed", meshery=lb(A[13])),
    ClusterSpec(name="forward-off", meshery=MesherySetup(broker_address=A[14])),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("forward-lab")) as fleet:
        doc = yaml.safe_load(fleet.fleet_path.read_text())
        for entry in doc["clusters"]:
            if entry["context"] == "forward-off":
                entry["broker_port_forward"] = False
        fleet.fleet_path.write_text(yaml.safe_dump(doc))
        yield fleet


@pytest.fixture(scope="module")
def report(lab):
    before = {t.ident for t in threading.enumerate()}
    out = run(fleet=str(lab.fleet_path), origins=[ORIGIN], connect_timeout=1.5, broker_port_forward=True, parallel=8)
    out.__dict__["threads_before"] = before
    return out


def res(report, cluster: str, check_id: str):
    return result(report, cluster, check_id)


def test_a_healthy_clusterip_only_broker_is_reached_through_the_forward(report) -> None:
    forward = res(report, "clusterip", "broker.port-forward")
    assert forward.status.value == "pass", forward.message
    assert "meshery-nats-0:4222" in forward.message and "PONG" in forward.message
    assert "SPDY/3.1" in forward.message
    for cid in ("broker.service", "broker.endpoint"):
        r = res(report, "clusterip", cid)
        assert r.status.value == "warn", (cid, r.message)
        assert "Meshery reaches this Broker through its managed port-forward" in r.message
        assert "MESHERY_MANAGED_BROKER_PORTFORWARD=false" in r.message
        assert r.evidence["reached_through"] == "port-forward"
        assert r.remediation == ""  # nothing to fix for Meshery
    transport = res(report, "clusterip", "broker.transport")
    assert transport.status.value == "pass"
    assert transport.evidence["broker_networking"]["works"] == ["port-forward"]
    assert "host.docker.internal:4222" in transport.message
    assert not any(
        r.status.value in ("fail", "error")
        for r in next(c for c in report.clusters if c.name == "clusterip").results
        if r.check_id.startswith(("broker.", "meshery."))
    )


def test_a_broker_publishing_no_endpoint_is_a_warning_while_the_forward_works(report) -> None:
    r = res(report, "unpublished", "meshery.broker-resource")
    assert r.status.value == "warn"
    assert "publishes no external endpoint" in r.message and "port-forward" in r.message


def test_forward_denied_by_rbac_warns_with_the_role_rule_while_the_endpoint_works(report) -> None:
    r = res(report, "denied", "broker.port-forward")
    assert r.status.value == "warn", r.message
    assert "may not create pods/portforward in namespace meshery" in r.message
    assert "falls back to the published endpoint" in r.message
    assert "pods/portforward" in r.remediation and "verbs: [create]" in r.remediation
    assert res(report, "denied", "broker.tcp").status.value == "pass"
    assert res(report, "denied", "broker.transport").status.value == "pass"


def test_kubelet_unreachable_with_no_endpoint_fails_both_paths_with_both_causes(report) -> None:
    r = res(report, "kubelet-timeout", "broker.port-forward")
    assert r.status.value == "fail"
    assert "cannot reach the node's kubelet on 10250" in r.message
    assert "error dialing backend: dial tcp" in r.message and ":10250: i/o timeout" in r.message
    assert "tcp/10250" in r.remediation or "tcp:10250" in r.remediation
    service = res(report, "kubelet-timeout", "broker.service")
    assert service.status.value == "fail" and "the port-forward fails too (kubelet-unreachable" in service.message
    transport = res(report, "kubelet-timeout", "broker.transport")
    assert transport.status.value == "fail"
    assert transport.message.index("port-forward:") < transport.message.index("endpoint broker.")


def test_kubelet_refusing_is_a_warning_while_the_load_balancer_works(report) -> None:
    r = res(report, "kubelet-refused", "broker.port-forward")
    assert r.status.value == "warn"
    assert ":10250: connect: connection refused" in r.message


def test_a_crash_looping_nats_pod_is_named_with_its_reason_restarts_and_logs_command(report) -> None:
    r = res(report, "crashloop", "broker.port-forward")
    assert r.status.value == "fail", r.message
    assert "NATS pod meshery-nats-0 is Running, container nats CrashLoopBackOff, 7 restarts" in r.message
    assert "kubectl -n meshery logs meshery-nats-0 -c nats --previous" in r.remediation
    assert r.evidence["waiting"] == "CrashLoopBackOff" and r.evidence["restarts"] == 7
    transport = res(report, "crashloop", "broker.transport")
    assert transport.status.value == "fail" and "root cause: NATS pod meshery-nats-0" in transport.message


def test_an_unpullable_nats_image_and_a_missing_pod_are_named(report) -> None:
    pull = res(report, "imagepull", "broker.port-forward")
    assert pull.status.value == "warn"
    assert "is Pending, container nats ImagePullBackOff, 0 restarts" in pull.message
    gone = res(report, "no-pod", "broker.port-forward")
    assert gone.status.value == "warn" and "no pod labelled app.kubernetes.io/name=nats in meshery" in gone.message


def test_an_upgrade_stripped_on_the_way_is_named(report) -> None:
    r = res(report, "stripped", "broker.port-forward")
    assert r.status.value == "warn"
    assert "upgrade was refused or stripped on the way (HTTP 426)" in r.message
    assert "Upgrade" in r.remediation
    bad = res(report, "bad-gateway", "broker.port-forward")
    assert bad.status.value == "fail" and "(HTTP 502)" in bad.message


def test_nothing_listening_in_the_pod_comes_from_the_ports_error_channel(report) -> None:
    r = res(report, "nothing-listens", "broker.port-forward")
    assert r.status.value == "fail"
    assert "nothing listens on 4222 in the pod" in r.message
    assert "connect: connection refused" in r.message


def test_an_endpoint_that_does_not_answer_is_a_warning_while_the_forward_works(report) -> None:
    assert res(report, "endpoint-refused", "broker.port-forward").status.value == "pass"
    tcp = res(report, "endpoint-refused", "broker.tcp")
    assert tcp.status.value == "warn" and "through its managed port-forward" in tcp.message
    assert res(report, "endpoint-refused", "broker.transport").status.value == "pass"
    stale = res(report, "endpoint-refused", "broker.endpoint")  # published, but none of the Service's addresses
    assert (
        stale.status.value == "warn"
        and "stale" in stale.message
        and "through its managed port-forward" in stale.message
    )
    assert stale.meshery_code is None and stale.remediation  # its fix (the address that answers) still stands


def test_load_balancer_exposure_is_exposure_nobody_needs_with_the_forward_working(report) -> None:
    r = res(report, "lb-exposed", "broker.exposure")
    assert r.status.value == "warn"
    assert "exposure nobody needs" in r.message
    assert "spec.service.type to ClusterIP" in r.remediation


def test_the_fleet_files_broker_port_forward_false_keeps_todays_verdicts(report) -> None:
    off = res(report, "forward-off", "broker.port-forward")
    assert off.status.value == "skip" and "broker_port_forward: false in the fleet file" in off.message
    service = res(report, "forward-off", "broker.service")
    assert service.status.value == "fail" and "port-forward" not in service.message
    transport = res(report, "forward-off", "broker.transport")
    # One path: its verdict is the endpoint checks'; this result only names it (no second failure).
    assert transport.status.value == "skip"
    assert "the managed port-forward is off (broker_port_forward: false in the fleet file)" in transport.message
    assert transport.evidence["broker_networking"]["paths"] == [f"endpoint {transport.evidence['published']}"]


def test_the_api_servers_saw_only_reads_reviews_and_port_forward_connects(lab, report) -> None:
    assert lab.mutating_requests() == {}
    connects = [r for s in lab.servers() for r in s.requests() if r.path.endswith("/portforward")]
    assert connects and {r.method for r in connects} == {"POST"}
    for server in lab.servers():
        for r in server.requests():
            assert r.method == "GET" or r.path.endswith(("/portforward", "reviews")), r


def test_a_healthy_cluster_costs_one_upgrade_request(lab, report) -> None:
    for name in ("clusterip", "unpublished", "endpoint-refused", "lb-exposed"):
        assert res(report, name, "broker.port-forward").status.value == "pass", name
        server = lab.clusters[name].server
        connects = [(r.method, r.status) for r in server.requests() if r.path.endswith("/portforward")]
        assert connects == [("POST", 101)], name


def test_every_failure_says_it_came_through_spdy(report) -> None:
    for name in ("kubelet-timeout", "stripped", "nothing-listens"):
        r = res(report, name, "broker.port-forward")
        assert r.evidence["transport"] == "SPDY/3.1" and r.evidence["step"] == "tunnel", name
        assert "the SPDY/3.1 port-forward to meshery-nats-0:4222" in r.message, name


def test_no_tunnel_outlives_the_check(report) -> None:
    # The probe reads the tunnel on the check's own thread: no thread of the tool's is left (the lab's are its own).
    leftover = [
        t.name
        for t in threading.enumerate()
        if t.ident not in report.__dict__["threads_before"] and not t.name.startswith("lab-")
    ]
    assert leftover == []
    # The API servers' side too: every relay to a nats-server ended, so every tunnel was closed, not abandoned.
    deadline = time.monotonic() + 5
    while any(t.name == "lab-portforward-pump" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "lab-portforward-pump" for t in threading.enumerate())


def test_policy_flag_wins_then_the_environment_case_insensitively() -> None:
    assert port_forward_policy(None, {}) == (True, "default")
    assert port_forward_policy(None, {"MESHERY_MANAGED_BROKER_PORTFORWARD": "FALSE"}) == (False, "environment")
    assert port_forward_policy(None, {"MESHERY_MANAGED_BROKER_PORTFORWARD": "0"}) == (True, "environment")
    assert port_forward_policy(True, {"MESHERY_MANAGED_BROKER_PORTFORWARD": "false"}) == (True, "flag")


@pytest.mark.parametrize("value", ['"false"', "0", "off-ish", "[]"])
def test_a_bad_broker_port_forward_in_the_fleet_file_is_one_line(tmp_path: Path, value: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"clusters:\n  - context: a\n    broker_port_forward: {value}\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "clusters[0].broker_port_forward: must be true or false" in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_and_clusters_set_broker_port_forward(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "defaults:\n  broker_port_forward: false\n"
        "clusters:\n  - context: a\n  - context: b\n    broker_port_forward: true\n"
    )
    fleet = load(path)
    assert [c.broker_port_forward for c in fleet.clusters] == [False, True]


def test_in_cluster_the_server_uses_the_clusterip_and_no_forward(tmp_path: Path) -> None:
    from preflight import app
    from preflight.engine.plan import Request
    from preflight.engine.settings import Settings

    with LabFleet([ClusterSpec(name="self", meshery=MesherySetup(broker_address=A[15]))], tmp_path / "lab") as fleet:
        c = fleet.clusters["self"]
        assert c.token is not None and fleet.ca is not None
        sa = tmp_path / "sa"
        sa.mkdir()
        (sa / "token").write_text(c.token)
        (sa / "ca.crt").write_bytes(fleet.ca.cert_pem)
        env = {"KUBERNETES_SERVICE_HOST": c.address, "KUBERNETES_SERVICE_PORT": str(c.port)}
        report = app.run(
            Request(in_cluster=True, service_account_dir=str(sa)),
            Settings(connect_timeout=2.0, default_mode="operator", broker_port_forward=True),
            include=["broker.port-forward", "broker.transport"],
            env=env,
        )
    forward = result(report, "in-cluster", "broker.port-forward")
    assert forward.status.value == "skip" and "ClusterIP, no port-forward" in forward.message
    transport = result(report, "in-cluster", "broker.transport")
    assert "Broker Service's ClusterIP (meshery-nats.meshery:4222)" in transport.message
    assert transport.evidence["broker_networking"]["paths"] == ["clusterip meshery-nats.meshery:4222"]


def test_results_carry_mesherys_own_diagnostic_codes(report) -> None:
    assert res(report, "kubelet-timeout", "broker.port-forward").meshery_code == "broker_unreachable"
    assert res(report, "kubelet-timeout", "broker.transport").meshery_code == "broker_unreachable"
    # What Meshery lives with is no diagnostic: the paths are evidence (broker_networking), not a code.
    assert res(report, "clusterip", "broker.transport").meshery_code is None
    assert res(report, "clusterip", "broker.transport").evidence["broker_networking"]["works"] == ["port-forward"]
    assert res(report, "clusterip", "broker.service").meshery_code is None
    assert res(report, "forward-off", "broker.service").meshery_code == "broker_unreachable"


def test_the_tunnel_goes_through_the_contexts_proxy(tmp_path: Path) -> None:
    from preflight_lab.proxy import LabProxy

    spec = ClusterSpec(name="proxied", meshery=MesherySetup(broker_address=allocate(NATS_PORT)))
    with LabFleet([spec], tmp_path / "lab") as fleet, LabProxy() as proxy:
        kc = yaml.safe_load(fleet.kubeconfig_path.read_text())
        kc["clusters"][0]["cluster"]["proxy-url"] = proxy.url
        path = tmp_path / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(kc))
        c = fleet.clusters["proxied"]
        target = f"{c.address}:{c.port}"
        counts = []
        for forward in (False, True):
            before = proxy.connects.count(target)
            rep = run(
                kubeconfig=[str(path)],
                include=["broker.port-forward"],
                broker_port_forward=forward,
                default_mode="operator",
            )
            counts.append(proxy.connects.count(target) - before)
        assert c.server is not None
        connects = [r.status for r in c.server.requests() if r.path.endswith("/portforward")]
    assert result(rep, "proxied", "broker.port-forward").status.value == "pass"
    # The API's requests are sequential on one kept-alive connection; the SPDY upgrade is one more, and the only.
    assert connects == [101] and counts[1] >= counts[0] + 1, counts
