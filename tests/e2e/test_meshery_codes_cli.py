"""Meshery's vocabulary through the CLI against the lab: each result that is one of Meshery Server's diagnostics
says which in the JSON report (and `merge` keeps it); passes and dependants' skips say nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import behind_load_balancer
from tests.e2e.test_cli import cli

ORIGIN = "127.0.0.0/8"
# An Operator that runs but never created its Broker (no brokers.meshery.io resource at all).
OPERATOR_ONLY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "meshery-operator", "namespace": "meshery"},
    "spec": {"replicas": 1},
    "status": {"replicas": 1, "readyReplicas": 1},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    specs = [
        ClusterSpec(name="healthy", meshery=behind_load_balancer(allocate(NATS_PORT), (ORIGIN,))),
        ClusterSpec(name="api-refused", scenario="refused"),
        ClusterSpec(name="api-expired", scenario="expired-token"),
        ClusterSpec(name="op-absent", meshsync_mode="operator"),
        ClusterSpec(
            name="op-not-ready", meshery=behind_load_balancer(allocate(NATS_PORT), (ORIGIN,), operator_ready=False)
        ),
        ClusterSpec(name="op-no-broker", meshsync_mode="operator", objects=[OPERATOR_ONLY]),
        ClusterSpec(
            name="broker-refused", meshery=behind_load_balancer(allocate(NATS_PORT), (ORIGIN,), broker="absent")
        ),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("codes-lab")) as lab:
        out = tmp_path_factory.mktemp("codes-out")
        proc = cli(
            "check",
            "--fleet",
            str(lab.fleet_path),
            "--origin",
            ORIGIN,
            "--connect-timeout",
            "1",
            "--checks",
            "kubeconfig.*",
            "--checks",
            "kube-api.*",
            "--checks",
            "meshery.*",
            "--checks",
            "broker.*",
            "-o",
            f"json={out / 'r.json'}",
        )
        assert proc.returncode == 1, proc.stderr
        yield json.loads((out / "r.json").read_text()), out


def _results(doc: dict[str, Any], cluster: str) -> dict[str, dict[str, Any]]:
    c = next(c for c in doc["clusters"] if c["name"] == cluster)
    return {r["check_id"]: r for r in c["results"]}


def _codes(doc: dict[str, Any], cluster: str) -> dict[str, str]:
    return {cid: r["meshery_code"] for cid, r in _results(doc, cluster).items() if "meshery_code" in r}


def test_a_healthy_cluster_carries_no_diagnostic(report: tuple[dict[str, Any], Path]) -> None:
    doc, _ = report
    assert _codes(doc, "healthy") == {}
    assert all(r["status"] in ("pass", "skip", "warn") for r in _results(doc, "healthy").values())


def test_an_unreachable_or_refused_api_is_an_inactive_connection(report: tuple[dict[str, Any], Path]) -> None:
    doc, _ = report
    refused = _results(doc, "api-refused")
    assert refused["kube-api.tcp"]["status"] == "fail"
    assert _codes(doc, "api-refused") == {"kube-api.tcp": "connection_inactive"}
    assert refused["kube-api.tls"]["status"] == "skip" and refused["kube-api.tls"]["evidence"]["blocked_by"] == (
        "kube-api.tcp"
    )
    assert _codes(doc, "api-expired") == {"kube-api.auth": "connection_inactive"}


def test_the_operators_absence_and_its_failure_are_told_apart(report: tuple[dict[str, Any], Path]) -> None:
    doc, _ = report
    absent = _results(doc, "op-absent")
    assert absent["meshery.mode"]["status"] == "warn" and absent["meshery.operator"]["status"] == "fail"
    assert {k: v for k, v in _codes(doc, "op-absent").items() if k.startswith("meshery.")} == {
        "meshery.mode": "operator_not_deployed",
        "meshery.operator": "operator_not_deployed",
        "meshery.broker-resource": "operator_not_deployed",
    }
    assert _codes(doc, "op-not-ready")["meshery.operator"] == "operator_deploy_failed"
    no_broker = _results(doc, "op-no-broker")
    assert no_broker["meshery.operator"]["status"] == "pass"
    assert no_broker["meshery.broker-resource"]["status"] == "fail"
    assert no_broker["meshery.broker-resource"]["meshery_code"] == "operator_deploy_failed"


def test_a_broker_that_refuses_is_unreachable_and_its_dependants_say_nothing(
    report: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = report
    results = _results(doc, "broker-refused")
    assert results["broker.tcp"]["status"] == "fail" and results["broker.nats"]["status"] == "skip"
    codes = _codes(doc, "broker-refused")
    assert codes["broker.tcp"] == "broker_unreachable" and "broker.nats" not in codes


def test_merge_reads_the_codes_back(report: tuple[dict[str, Any], Path]) -> None:
    doc, out = report
    proc = cli("merge", str(out / "r.json"), "-o", f"json={out / 'merged.json'}")
    assert proc.returncode in (0, 1), proc.stderr
    merged = json.loads((out / "merged.json").read_text())
    for cluster in ("api-refused", "op-absent", "broker-refused"):
        assert _codes(merged, cluster) == _codes(doc, cluster)


def test_every_code_in_the_report_is_one_its_check_declares(report: tuple[dict[str, Any], Path]) -> None:
    import preflight.checks  # noqa: F401  (registers the shipped checks)
    from preflight.engine.registry import REGISTRY

    doc, _ = report
    seen = [(r["check_id"], r["meshery_code"]) for c in doc["clusters"] for r in c["results"] if "meshery_code" in r]
    assert len(seen) >= 8
    for cid, code in seen:
        chk = REGISTRY.get(cid)
        assert code in (chk.meshery_code, *chk.meshery_codes), (cid, code)
