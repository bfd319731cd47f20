"""Both Operator generations against lab clusters: the current one (the official NATS chart's StatefulSet, Service
and pod ``meshery-nats``, a ClusterIP-only Service by default, token auth) and the classic one (``meshery-broker``,
port ``client``), read through the real kubernetes client, with real nats-servers behind them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client, config

from preflight.cli import main
from preflight.engine.model import RunReport
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer
from preflight_lab.rbac import Rule
from tests.runlab import result, run

ORIGIN = "127.0.0.0/8"
A = {n: allocate(NATS_PORT) for n in range(1, 6)}
# Every Meshery read except the Broker's StatefulSet.
NO_STATEFULSETS = (
    Rule(
        verbs=("get", "list"),
        api_groups=("", "apps", "meshery.io"),
        resources=("services", "deployments", "brokers", "meshsyncs", "secrets", "nodes"),
    ),
)
CLASSIC = {"generation": "classic", "source_ranges": (ORIGIN,)}

SPECS = [
    ClusterSpec(name="current-clusterip", meshery=MesherySetup(broker_address=A[1])),
    ClusterSpec(name="current-lb", meshery=behind_load_balancer(A[2], (ORIGIN,))),
    ClusterSpec(name="classic-lb", meshery=MesherySetup(lb_ip=A[3], broker_address=A[3], **CLASSIC)),  # type: ignore[arg-type]
    ClusterSpec(name="current-crashing", meshery=behind_load_balancer(A[4], (ORIGIN,), broker_ready=False)),
    ClusterSpec(
        name="classic-crashing",
        meshery=MesherySetup(lb_ip=A[5], broker_address=A[5], broker_ready=False, **CLASSIC),  # type: ignore[arg-type]
    ),
    ClusterSpec(name="no-statefulset-rights", rules=NO_STATEFULSETS, meshery=MesherySetup()),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    with LabFleet(SPECS, tmp_path_factory.mktemp("generations")) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def report(lab: LabFleet) -> RunReport:
    return run(
        fleet=str(lab.fleet_path),
        origins=[ORIGIN],
        include=["kube-api.*", "meshery.*", "broker.*"],
    )


def test_the_lab_serves_the_official_nats_chart_objects(lab: LabFleet) -> None:
    api = config.new_client_from_config(config_file=str(lab.kubeconfig_path), context="current-clusterip")
    pods = client.CoreV1Api(api).list_namespaced_pod("meshery", label_selector="app.kubernetes.io/name=nats").items
    assert [p.metadata.name for p in pods] == ["meshery-nats-0"]
    sts = client.AppsV1Api(api).read_namespaced_stateful_set("meshery-nats", "meshery")
    svc = client.CoreV1Api(api).read_namespaced_service("meshery-nats", "meshery")
    assert sts.spec.selector.match_labels == svc.spec.selector
    assert set(svc.spec.selector.items()) <= set(pods[0].metadata.labels.items())
    assert svc.spec.type == "ClusterIP" and [p.name for p in svc.spec.ports] == ["nats", "monitor"]
    classic = config.new_client_from_config(config_file=str(lab.kubeconfig_path), context="classic-lb")
    assert client.CoreV1Api(classic).read_namespaced_pod("meshery-broker-0", "meshery").status.phase == "Running"
    port = client.CoreV1Api(classic).read_namespaced_service("meshery-broker", "meshery").spec.ports[0]
    assert port.name == "client"


def test_a_crash_looping_nats_pod_is_what_the_lab_shows() -> None:
    from preflight_lab.meshery import meshery_objects

    objs = meshery_objects(MesherySetup(broker_ready=False), "127.0.0.1")
    pod = next(o for o in objs if o["kind"] == "Pod" and o["metadata"]["name"] == "meshery-nats-0")
    nats = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "nats")
    assert nats["ready"] is False and nats["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_the_current_generation_is_recognised_everywhere(report: RunReport) -> None:
    for cluster, kind in (("current-clusterip", "ClusterIP"), ("current-lb", "LoadBalancer")):
        svc = result(report, cluster, "broker.service")
        assert svc.evidence["service"] == "meshery-nats" and svc.evidence["generation"] == "current"
        assert svc.evidence["type"] == kind
        res = result(report, cluster, "meshery.broker-resource")
        assert res.evidence["generation"] == "current" and res.evidence["api_version"] == "meshery.io/v1alpha2"
        assert res.evidence["statefulset"] == {"name": "meshery-nats", "replicas": "1/1 replicas ready"}
        assert "broker" in result(report, cluster, "meshery.mode").evidence["deployed"]
        messages = [r.message for c in report.clusters if c.name == cluster for r in c.results]
        assert not [m for m in messages if "no Broker" in m or "not found" in m], messages
    healthy = result(report, "current-lb", "meshery.broker-resource")
    assert healthy.status.value == "pass" and "current generation" in healthy.message
    assert result(report, "current-lb", "broker.service").status.value == "pass"
    assert result(report, "current-lb", "broker.auth").status.value == "pass"
    # ClusterIP-only: recognised as the current generation's Broker (its endpoint verdict is the transport's).
    assert result(report, "current-clusterip", "broker.service").message.startswith("Service meshery-nats is ClusterIP")


def test_the_classic_generation_keeps_its_verdicts(report: RunReport) -> None:
    svc = result(report, "classic-lb", "broker.service")
    assert svc.status.value == "pass" and svc.evidence["service"] == "meshery-broker"
    assert svc.evidence["generation"] == "classic" and svc.evidence["port"] == NATS_PORT
    res = result(report, "classic-lb", "meshery.broker-resource")
    assert res.status.value == "pass" and res.evidence["statefulset"]["name"] == "meshery-broker"
    assert result(report, "classic-lb", "broker.auth").status.value == "warn"


def test_a_broker_whose_pods_are_not_ready_names_its_pod(report: RunReport) -> None:
    current = result(report, "current-crashing", "meshery.broker-resource")
    assert current.status.value == "fail" and "not Ready" in current.message
    assert "StatefulSet meshery-nats: 0/1 replicas ready" in current.message
    assert "describe pod meshery-nats-0" in current.remediation and "logs meshery-nats-0" in current.remediation
    # The classic Broker resource has no conditions: its StatefulSet is the only sign.
    classic = result(report, "classic-crashing", "meshery.broker-resource")
    assert classic.status.value == "fail"
    assert classic.message == "the Broker's StatefulSet meshery-broker is not ready: 0/1 replicas ready"
    assert "describe pod meshery-broker-0" in classic.remediation


def test_an_unreadable_statefulset_is_an_error_naming_the_grant(report: RunReport) -> None:
    res = result(report, "no-statefulset-rights", "meshery.broker-resource")
    assert res.status.value == "error" and "statefulset meshery/meshery-nats" in res.message
    assert "statefulsets.apps in meshery" in res.remediation


def test_the_printed_rbac_grants_the_statefulset_read_in_the_meshery_namespace(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["rbac", "--mode", "operator"])
    assert out.exit_code == 0, out.output
    role = next(d for d in yaml.safe_load_all(out.output) if d and d["kind"] == "Role")
    apps = [r for r in role["rules"] if r["apiGroups"] == ["apps"]]
    assert any("statefulsets" in r["resources"] and r["verbs"] == ["get"] for r in apps), apps
    embedded = CliRunner().invoke(main, ["rbac", "--mode", "embedded"]).output
    assert "statefulsets" not in [
        res
        for d in yaml.safe_load_all(embedded)
        if d and d["kind"] == "Role"
        for r in d["rules"]
        for res in r["resources"]
    ]
