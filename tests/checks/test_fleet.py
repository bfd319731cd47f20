"""The fleet checks as tables: a fleet is plain data (one FleetMember per cluster, as a live run and `merge`
both build it), so each decision is exercised without a cluster. tests/lab/test_fleet.py and the merge tests
build the same members from a real run and from reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from preflight.checks import fleet as checks
from preflight.checks.broker import PUBLISHED
from preflight.checks.meshery import DEPLOYED
from preflight.engine.context import FleetContext
from preflight.engine.model import CredentialRef, Finding, FleetMember, Status, Stop
from preflight.engine.settings import Settings


def member(
    name: str,
    server: str = "",
    cred: CredentialRef | None = None,
    mode: str = "embedded",
    default: str = "embedded",
    **facts: Any,
) -> FleetMember:
    return FleetMember(name, server or f"https://{name}.example:6443", mode, default, cred, facts)


def token(fp: str, key: str = "k1", kind: str = "token") -> CredentialRef:
    return CredentialRef(kind, fp, key)


def run(check: Callable[[FleetContext], Finding], *members: FleetMember) -> Finding:
    try:
        return check(FleetContext(list(members), Settings()))
    except Stop as stopped:
        return stopped.finding


def expect(finding: Finding, status: Status, fragment: str) -> None:
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message


SHARED_CASES: list[tuple[str, list[FleetMember], Status, str]] = [
    ("no-credentials", [member("a"), member("b")], Status.SKIP, "no cluster carries a credential"),
    (
        "different-keys",
        [member("a", cred=token("x", "k1")), member("b", cred=token("x", "k2"))],
        Status.SKIP,
        "different fingerprint keys",
    ),
    (
        "distinct",
        [member("a", cred=token("x")), member("b", cred=token("y")), member("c")],
        Status.PASS,
        "2 distinct credentials across 3 clusters",
    ),
    ("one", [member("a", cred=token("x"))], Status.PASS, "1 distinct credential across 1 cluster"),
    (
        "same-server-twice",
        [member("a", "https://one:6443", token("x")), member("b", "https://one:6443", token("x"))],
        Status.PASS,
        "1 distinct credential across 2 clusters",
    ),
    (
        "shared-token",
        [member("a", cred=token("x")), member("b", cred=token("x")), member("c", cred=token("y"))],
        Status.FAIL,
        "the same credential reaches several clusters: token used by a, b",
    ),
    (
        "shared-exec",
        [member("a", cred=token("e", kind="exec")), member("b", cred=token("e", kind="exec"))],
        Status.WARN,
        "the same exec identity reaches several clusters: exec used by a, b",
    ),
    (
        "shared-exec-and-token",
        [
            member("a", cred=token("e", kind="exec")),
            member("b", cred=token("e", kind="exec")),
            member("c", cred=token("x")),
            member("d", cred=token("x")),
        ],
        Status.FAIL,
        "exec used by a, b; token used by c, d",
    ),
]


@pytest.mark.parametrize(
    ("members", "status", "fragment"), [c[1:] for c in SHARED_CASES], ids=[c[0] for c in SHARED_CASES]
)
def test_shared_credential(members: list[FleetMember], status: Status, fragment: str) -> None:
    finding = run(checks.shared_credential, *members)
    expect(finding, status, fragment)
    if status is not Status.PASS and "shared" in finding.evidence:
        assert all(len(s["clusters"]) > 1 for s in finding.evidence["shared"])


DUPLICATE_CASES: list[tuple[str, list[FleetMember], Status, str]] = [
    ("distinct", [member("a"), member("b")], Status.PASS, "2 distinct API servers"),
    ("no-server", [member("a"), FleetMember("b", "", "embedded", "embedded")], Status.PASS, "1 distinct API server"),
    (
        "duplicate",
        [member("a", "https://x:6443"), member("b", "https://x:6443"), member("c")],
        Status.FAIL,
        "several contexts point at one API server: https://x:6443: a, b",
    ),
]


@pytest.mark.parametrize(
    ("members", "status", "fragment"), [c[1:] for c in DUPLICATE_CASES], ids=[c[0] for c in DUPLICATE_CASES]
)
def test_duplicate_cluster(members: list[FleetMember], status: Status, fragment: str) -> None:
    expect(run(checks.duplicate_cluster, *members), status, fragment)


def published(name: str, endpoint: str | None) -> FleetMember:
    return member(name, **({PUBLISHED.name: endpoint} if endpoint is not None else {}))


COLLISION_CASES: list[tuple[str, list[FleetMember], Status, str]] = [
    ("none-published", [published("a", None), published("b", "")], Status.SKIP, "no cluster published"),
    (
        "distinct",
        [published("a", "lb-a:4222"), published("b", "lb-b:4222")],
        Status.PASS,
        "2 distinct Broker endpoints",
    ),
    (
        "localhost-clash",
        [published("a", "localhost:4222"), published("b", "localhost:4222"), published("c", "lb-c:4222")],
        Status.FAIL,
        "several clusters publish one Broker endpoint: localhost:4222: a, b",
    ),
]


@pytest.mark.parametrize(
    ("members", "status", "fragment"), [c[1:] for c in COLLISION_CASES], ids=[c[0] for c in COLLISION_CASES]
)
def test_broker_endpoint_collision(members: list[FleetMember], status: Status, fragment: str) -> None:
    expect(run(checks.broker_endpoint_collision, *members), status, fragment)


OPERATOR = {"operator": True, "meshsync": True, "broker": True}
EMBEDDED = {"operator": False, "meshsync": False, "broker": False}


def deployed(name: str, have: dict[str, bool] | None, mode: str = "embedded", default: str = "embedded") -> FleetMember:
    return member(name, mode=mode, default=default, **({DEPLOYED.name: have} if have is not None else {}))


MODE_CASES: list[tuple[str, list[FleetMember], Status, str]] = [
    ("nothing-read", [deployed("a", None)], Status.SKIP, "no cluster's deployment could be read"),
    ("all-embedded", [deployed("a", EMBEDDED), deployed("b", EMBEDDED)], Status.PASS, "(policy embedded)"),
    (
        "override-kept",
        [deployed("a", EMBEDDED), deployed("b", OPERATOR, mode="operator")],
        Status.PASS,
        "per-cluster overrides: b (operator)",
    ),
    (
        "one-drifts",
        [deployed("a", OPERATOR), deployed("b", EMBEDDED)],
        Status.WARN,
        "1 cluster drifts from the declared mode: a: runs operator, declared embedded",
    ),
    (
        "two-drift",
        [deployed("a", EMBEDDED, "operator", "operator"), deployed("b", {"operator": False, "meshsync": True})],
        Status.WARN,
        "2 clusters drift",
    ),
    (
        "mixed-policies",
        [deployed("a", EMBEDDED), deployed("b", OPERATOR, "operator", "operator")],
        Status.PASS,
        "(policy embedded / operator)",
    ),
]


@pytest.mark.parametrize(("members", "status", "fragment"), [c[1:] for c in MODE_CASES], ids=[c[0] for c in MODE_CASES])
def test_mode_consistency(members: list[FleetMember], status: Status, fragment: str) -> None:
    finding = run(checks.mode_consistency, *members)
    expect(finding, status, fragment)
    assert len(finding.evidence["drift"]) == (2 if "2 clusters" in fragment else 1 if "1 cluster" in fragment else 0)
