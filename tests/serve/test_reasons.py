"""Reason codes: every code a check or the runner can emit is declared in preflight.engine.reasons, an undeclared
one is refused where it is made, and the lab's failures carry the cause their probes classified."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import preflight
from preflight.engine import reasons
from preflight.engine.model import Finding, Status, fail
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.runlab import result, run

SOURCE = Path(preflight.__file__).parent


def emitted_literals() -> Iterator[tuple[str, int, str]]:
    """Every ``reason="..."`` keyword (and the string branches of a conditional) in the tool's source."""
    # checks/, cloud/ and reports/ are symbolic links into the package: walk them too.
    paths = [Path(d) / f for d, _, files in os.walk(SOURCE, followlinks=True) for f in files if f.endswith(".py")]
    for path in sorted(paths):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "reason":
                        for sub in ast.walk(kw.value):
                            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                                yield str(path.relative_to(SOURCE)), node.lineno, sub.value


def test_every_reason_a_check_or_the_runner_emits_is_declared() -> None:
    found = list(emitted_literals())
    # The checks, the runner and the model all set some; `not_applicable(reason=...)` is a message, not a code.
    files = {f for f, _, _ in found}
    assert {"engine/runner.py", "checks/kube_api.py", "checks/rbac.py", "checks/broker.py"} <= files
    for where, line, code in found:
        if where == "engine/model.py" or where.startswith("engine/fleetfile"):
            continue
        assert code in reasons.REASONS, f"{where}:{line}: reason {code!r} is not declared in preflight.engine.reasons"
    for table in (reasons.TCP, reasons.DNS, reasons.TLS, reasons.PROXY):
        assert set(table.values()) <= set(reasons.REASONS)


def test_codes_are_snake_case_and_distinct_from_the_derived_labels() -> None:
    for code in reasons.REASONS:
        assert code.replace("_", "").isalnum() and code == code.lower(), code
    assert reasons.NONE not in reasons.REASONS and reasons.UNSPECIFIED not in reasons.REASONS
    assert reasons.label(None, "pass") == "none" and reasons.label(None, "fail") == "unspecified"


def test_an_undeclared_reason_is_refused_where_it_is_made() -> None:
    with pytest.raises(reasons.UnknownReason):
        fail("x", reason="connection to 10.0.0.1 refused")
    with pytest.raises(reasons.UnknownReason):
        Finding(Status.WARN, "x", reason="Refused")
    assert fail("x", reason="refused").reason == "refused"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [
        ClusterSpec(name="ok"),
        ClusterSpec(name="down", scenario="refused"),
        ClusterSpec(name="wrong-ca", scenario="wrong-ca"),
        ClusterSpec(name="expired", scenario="expired-token"),
        ClusterSpec(name="forbidden", scenario="forbidden"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("reasons-lab")) as fleet:
        yield fleet


def test_lab_failures_carry_the_cause_their_probes_classified(lab: LabFleet) -> None:
    report = run(kubeconfig=[str(lab.kubeconfig_path)], connect_timeout=1.0)
    assert result(report, "down", "kube-api.tcp").reason == "refused"
    assert result(report, "wrong-ca", "kube-api.tls").reason == "tls_untrusted"
    assert result(report, "expired", "kube-api.auth").reason == "credential_rejected"
    assert result(report, "ok", "kube-api.tcp").reason is None
    assert result(report, "down", "kube-api.tls").reason == "dependency_failed"
    denied = [r for c in report.clusters if c.name == "forbidden" for r in c.results if r.category == "rbac"]
    assert any(r.reason == "rbac_denied" for r in denied), [(r.check_id, r.status, r.reason) for r in denied]
    for r in report.all_results:
        assert r.reason is None or r.reason in reasons.REASONS
