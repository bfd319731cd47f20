"""Meshery's vocabulary: a check's default code on a fail, a finding's own code, and what never carries one."""

from __future__ import annotations

import pytest

from preflight.engine.context import ClusterContext
from preflight.engine.model import (
    MESHERY_CODES,
    Check,
    Finding,
    Result,
    Scope,
    Severity,
    Status,
    fail,
    in_meshery_terms,
    passed,
    warn,
)
from preflight.engine.redact import Redactor
from preflight.engine.registry import REGISTRY, Registry, check
from preflight.engine.runner import MuteRule, run_cluster
from preflight.engine.settings import Settings
from preflight.engine.targets import ClusterTarget


def _registry(findings: dict[str, Finding], depends: dict[str, tuple[str, ...]] | None = None) -> Registry:
    reg = Registry()
    for cid, finding in findings.items():
        check(
            id=cid,
            title=cid,
            category="broker",
            severity=Severity.HIGH,
            remediation="fix",
            depends_on=(depends or {}).get(cid, ()),
            meshery_code="broker_unreachable",
            meshery_codes=("broker_networking",),
            registry=reg,
        )(lambda _ctx, f=finding: f)
    return reg


def _run(reg: Registry, mutes: tuple[MuteRule, ...] = ()) -> dict[str, Result]:
    ctx = ClusterContext(ClusterTarget(name="c1"), Settings(check_timeout=2.0))
    checks = reg.ordered(reg.all(), Scope.CLUSTER)
    return {r.check_id: r for r in run_cluster(ctx, checks, mutes, Redactor())}


def test_a_fail_carries_the_checks_code_and_nothing_else_does_unless_the_finding_names_one() -> None:
    reg = _registry(
        {
            "b.fail": fail("down"),
            "b.warn": warn("meh"),
            "b.pass": passed("up"),
            "b.named": in_meshery_terms("broker_networking", passed("through 10.0.0.1:4222")),
            "b.skipped": passed("never runs"),
        },
        depends={"b.skipped": ("b.fail",)},
    )
    results = _run(reg)
    assert results["b.fail"].meshery_code == "broker_unreachable"
    assert results["b.warn"].meshery_code is None and results["b.pass"].meshery_code is None
    assert results["b.named"].meshery_code == "broker_networking"
    # The dependant is skipped naming its root cause; the code is the root cause's, not the skip's.
    assert results["b.skipped"].status is Status.SKIP and results["b.skipped"].meshery_code is None


def test_a_muted_fail_keeps_its_code() -> None:
    results = _run(_registry({"b.fail": fail("down")}), (MuteRule("b.fail", "*", "known"),))
    assert results["b.fail"].status is Status.MUTED and results["b.fail"].meshery_code == "broker_unreachable"


def test_an_unknown_code_is_refused_where_it_is_written() -> None:
    with pytest.raises(ValueError, match="unknown Meshery diagnostic 'broker_down'"):
        Finding(Status.FAIL, "x", meshery_code="broker_down")
    with pytest.raises(ValueError, match="unknown Meshery diagnostic"):
        check(
            id="b.x",
            title="x",
            category="b",
            severity=Severity.LOW,
            remediation="",
            meshery_code="nope",
            registry=Registry(),
        )(lambda _ctx: passed("ok"))


def test_shipped_checks_name_only_meshery_codes_and_the_broker_and_operator_checks_have_theirs() -> None:
    import preflight.checks  # noqa: F401  (registers the shipped checks)

    by_id: dict[str, Check] = {c.id: c for c in REGISTRY.all()}
    for c in by_id.values():
        assert {c.meshery_code, *c.meshery_codes} - {None} <= set(MESHERY_CODES), c.id
    for cid in ("broker.service", "broker.endpoint", "broker.dns", "broker.tcp", "broker.nats", "broker.auth"):
        assert by_id[cid].meshery_code == "broker_unreachable"
    for cid in ("kube-api.dns", "kube-api.tcp", "kube-api.tls", "kube-api.auth"):
        assert by_id[cid].meshery_code == "connection_inactive"
    assert by_id["meshery.operator"].meshery_code == "operator_deploy_failed"
    assert "operator_not_deployed" in by_id["meshery.operator"].meshery_codes
