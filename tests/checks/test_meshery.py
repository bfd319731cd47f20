"""Meshery's footprint decisions as tables: the mode, the Operator, the Broker resource and MeshSync from the
objects the API returned (plain dicts), no server. tests/lab/test_meshery.py and the broker tests read the same
objects from the lab's API servers."""

from __future__ import annotations

from typing import Any

import pytest

from preflight.checks import meshery as checks
from preflight.checks import meshery_state as ms
from preflight.engine.model import Finding, Status

SOURCE = "fleet file"
NOTHING = {"operator": False, "meshsync": False, "broker": False}
EVERYTHING = {"operator": True, "meshsync": True, "broker": True}


def deployment(ready: int, want: int = 1, image: str = "meshery/meshery-operator:v0.8.3") -> dict[str, Any]:
    return {
        "spec": {"replicas": want, "template": {"spec": {"containers": [{"image": image}]}}},
        "status": {"readyReplicas": ready},
    }


def expect(finding: Finding, status: Status, fragment: str, code: str | None = None) -> None:
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message
    assert finding.meshery_code == code


MODE_CASES: list[tuple[str, str, dict[str, bool], bool, Status, str, str | None]] = [
    ("embedded-clean", "embedded", NOTHING, False, Status.PASS, "embedded mode (fleet file); deployed: nothing", None),
    (
        "embedded-with-leftovers",
        "embedded",
        {"operator": True, "meshsync": False, "broker": True},
        False,
        Status.FAIL,
        "embedded mode is expected, but operator-mode components are deployed: broker, operator",
        None,
    ),
    (
        "operator-disabled",
        "operator",
        EVERYTHING,
        True,
        Status.FAIL,
        "DISABLE_OPERATOR=true stops Meshery from deploying the Operator",
        "operator_not_deployed",
    ),
    (
        "operator-not-yet",
        "operator",
        NOTHING,
        False,
        Status.WARN,
        "the Operator is not deployed yet",
        "operator_not_deployed",
    ),
    (
        "operator-deployed",
        "operator",
        EVERYTHING,
        False,
        Status.PASS,
        "operator mode (fleet file); deployed: broker, meshsync, operator",
        None,
    ),
    (
        "embedded-disabled-is-fine",
        "embedded",
        NOTHING,
        True,
        Status.PASS,
        "embedded mode",
        None,
    ),
]


@pytest.mark.parametrize(
    ("want", "have", "disabled", "status", "fragment", "code"),
    [c[1:] for c in MODE_CASES],
    ids=[c[0] for c in MODE_CASES],
)
def test_mode(
    want: str, have: dict[str, bool], disabled: bool, status: Status, fragment: str, code: str | None
) -> None:
    finding = checks.decide_mode(want, SOURCE, have, disable_operator=disabled)
    expect(finding, status, fragment, code)
    assert finding.evidence == {
        "effective_mode": want,
        "mode_source": SOURCE,
        "deployed": sorted(k for k, v in have.items() if v),
    }


OPERATOR_CASES: list[tuple[str, str, dict[str, bool], dict[str, Any] | None, bool, Status, str, str | None]] = [
    ("embedded-clean", "embedded", NOTHING, None, False, Status.PASS, "embedded mode: no Operator expected", None),
    (
        "embedded-leftovers",
        "embedded",
        {"operator": True, "meshsync": True, "broker": False},
        deployment(1),
        False,
        Status.WARN,
        "embedded mode, but in-cluster components are still deployed: meshsync, operator",
        None,
    ),
    (
        "disabled-leftovers",
        "operator",
        EVERYTHING,
        deployment(1),
        True,
        Status.WARN,
        "DISABLE_OPERATOR=true, but in-cluster components are still deployed",
        None,
    ),
    (
        "operator-missing",
        "operator",
        NOTHING,
        None,
        False,
        Status.FAIL,
        "no Deployment meshery/meshery-operator in operator mode",
        "operator_not_deployed",
    ),
    ("operator-not-ready", "operator", EVERYTHING, deployment(0), False, Status.FAIL, "0/1 replicas ready", None),
    (
        "operator-ready",
        "operator",
        EVERYTHING,
        deployment(2, 2),
        False,
        Status.PASS,
        "Operator v0.8.3 ready (2/2",
        None,
    ),
    (
        "operator-ready-untagged",
        "operator",
        EVERYTHING,
        deployment(1, image="meshery/meshery-operator"),
        False,
        Status.PASS,
        "Operator ready (1/1 replicas ready)",
        None,
    ),
]


@pytest.mark.parametrize(
    ("want", "have", "dep", "disabled", "status", "fragment", "code"),
    [c[1:] for c in OPERATOR_CASES],
    ids=[c[0] for c in OPERATOR_CASES],
)
def test_operator(
    want: str,
    have: dict[str, bool],
    dep: dict[str, Any] | None,
    disabled: bool,
    status: Status,
    fragment: str,
    code: str | None,
) -> None:
    finding = checks.decide_operator(want, have, dep, "meshery", disable_operator=disabled)
    expect(finding, status, fragment, code)


def broker(
    ready: str | None = "True", external: str = "203.0.113.10:4222", problems: tuple[str, ...] = ()
) -> ms.BrokerState:
    if ready == "absent":
        return ms.BrokerState(problems=list(problems))
    conditions = [] if ready is None else [{"type": "Ready", "status": ready, "reason": "Deploying", "message": "x"}]
    resource = {"status": {"conditions": conditions, "endpoint": {"external": external, "internal": "10.0.0.5:4222"}}}
    return ms.BrokerState(resource=resource, version="v1beta2", generation="current")


NATS = ms.BrokerWorkload("meshery-nats", "current", True, "1/1 replicas ready")
NATS_DOWN = ms.BrokerWorkload("meshery-nats", "current", False, "0/1 replicas ready")

BROKER_CASES: list[tuple[str, ms.BrokerState, ms.BrokerWorkload | None, str | None, Status, str, str | None]] = [
    ("ready", broker(), NATS, None, Status.PASS, "publishes 203.0.113.10:4222", None),
    ("no-condition", broker(None), None, None, Status.PASS, "Broker (current generation, v1beta2)", None),
    ("not-ready", broker("False"), NATS, None, Status.FAIL, "Broker is not Ready: Deploying x (StatefulSet", None),
    ("pods-down", broker(), NATS_DOWN, None, Status.FAIL, "StatefulSet meshery-nats is not ready: 0/1", None),
    ("no-endpoint", broker(external=""), NATS, None, Status.FAIL, "publishes no external endpoint", None),
    (
        "unreadable",
        broker("absent", problems=("brokers.meshery.io: forbidden",)),
        None,
        None,
        Status.ERROR,
        "brokers.meshery.io: forbidden",
        None,
    ),
    (
        "missing-no-operator",
        broker("absent"),
        None,
        "operator_not_deployed",
        Status.FAIL,
        "no Broker resource meshery/meshery-broker (tried",
        "operator_not_deployed",
    ),
    (
        "missing-with-statefulset",
        broker("absent"),
        NATS,
        "operator_deploy_failed",
        Status.FAIL,
        "; StatefulSet meshery-nats (current generation) exists without it",
        "operator_deploy_failed",
    ),
]


@pytest.mark.parametrize(
    ("st", "workload", "without", "status", "fragment", "code"),
    [c[1:] for c in BROKER_CASES],
    ids=[c[0] for c in BROKER_CASES],
)
def test_broker_resource(
    st: ms.BrokerState,
    workload: ms.BrokerWorkload | None,
    without: str | None,
    status: Status,
    fragment: str,
    code: str | None,
) -> None:
    finding = checks.decide_broker_resource(st, workload, "meshery", without_code=without)
    expect(finding, status, fragment, code)
    if status is Status.FAIL and workload is not None and st.resource is not None and "Ready" in fragment:
        assert finding.remediation is not None and "describe pod meshery-nats-0" in finding.remediation


MESHSYNC_CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, Status | None, str]] = [
    ("no-resource", None, deployment(1), Status.FAIL, "no MeshSync resource meshery/meshery-meshsync"),
    ("no-deployment", {"spec": {}}, None, Status.FAIL, "no Deployment meshery/meshery-meshsync"),
    ("not-ready", {"spec": {}}, deployment(0), Status.FAIL, "MeshSync is not ready: 0/1 replicas ready"),
    ("ready", {"spec": {}}, deployment(1), None, ""),
]


@pytest.mark.parametrize(
    ("resource", "dep", "status", "fragment"), [c[1:] for c in MESHSYNC_CASES], ids=[c[0] for c in MESHSYNC_CASES]
)
def test_meshsync_deployment(
    resource: dict[str, Any] | None, dep: dict[str, Any] | None, status: Status | None, fragment: str
) -> None:
    finding = checks.decide_meshsync_deployment("meshery", resource, dep)
    if status is None:
        assert finding is None
    else:
        assert finding is not None
        expect(finding, status, fragment)


WATCH_CASES: list[tuple[str, list[str], list[str], int | None, Status, str]] = [
    ("both-lists", ["pods"], ["events"], None, Status.FAIL, "sets both a whitelist and a blacklist"),
    ("big-no-list", [], [], 50_001, Status.WARN, "about 50001 objects (threshold 50000) and no blacklist"),
    ("big-with-blacklist", [], ["events"], 90_000, Status.PASS, "MeshSync ready (1/1 replicas ready), blacklist"),
    ("big-with-whitelist", ["pods"], [], 90_000, Status.PASS, "whitelist"),
    ("at-threshold", [], [], 50_000, Status.PASS, "no watch list"),
    ("size-unknown", [], [], None, Status.PASS, "no watch list"),
]


@pytest.mark.parametrize(
    ("white", "black", "count", "status", "fragment"), [c[1:] for c in WATCH_CASES], ids=[c[0] for c in WATCH_CASES]
)
def test_meshsync_watch_list(
    white: list[str], black: list[str], count: int | None, status: Status, fragment: str
) -> None:
    finding = checks.decide_meshsync_watch("1/1 replicas ready", "spec.watch-list", white, black, count, 50_000)
    expect(finding, status, fragment)
    ev = finding.evidence
    assert (ev["whitelist"], ev["blacklist"], ev["watch_list"]) == (len(white), len(black), "spec.watch-list")
    assert ("objects_estimated" in ev) == (not (white and black))


PARSE_CASES = [
    ("json", '["pods", "services"]', ["pods", "services"]),
    ("commas-and-lines", "pods, services\nevents", ["pods", "services", "events"]),
    ("a-list", ["pods"], ["pods"]),
    ("json-scalar", '"pods"', ["pods"]),
    ("empty", "  ", []),
    ("none", None, []),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_watch_lists_are_read_in_every_written_form(value: Any, expected: list[str]) -> None:
    assert checks._parse_list(value) == expected


def test_only_the_missing_endpoint_goes_to_the_broker_paths_judgement() -> None:
    """A working port-forward may soften a missing endpoint; a Broker that is not ready stays a failure."""
    judged: list[str] = []

    def judge(finding: Finding) -> Finding:
        judged.append(finding.message)
        return Finding(Status.WARN, finding.message + " (forwarded)", finding.evidence)

    for st, workload in ((broker(), NATS), (broker("False"), NATS), (broker(), NATS_DOWN), (broker("absent"), None)):
        checks.decide_broker_resource(st, workload, "meshery", without_code="operator_not_deployed", no_endpoint=judge)
    assert judged == []
    soft = checks.decide_broker_resource(broker(external=""), NATS, "meshery", without_code=None, no_endpoint=judge)
    assert soft.status is Status.WARN and soft.message.endswith("(forwarded)") and len(judged) == 1
