"""`meshery-preflight rbac`: the RBAC it prints is exactly what the checks need.

Against the lab's API server, which enforces RBAC: a credential holding exactly the printed rules gets a verdict
from every check with no result caused by a missing permission, and taking away any one rule makes some check
report it. rbac.operator-deploy is left out on purpose: it verifies Meshery's *install* rights, which an audit
credential must not hold (the deploy kit's CronJob skips it).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from preflight.cli import main
from preflight.engine.model import RunReport, Status
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import behind_load_balancer
from preflight_lab.rbac import Rule
from tests.runlab import run

ORIGIN = "127.0.0.0/8"
NOT_GRANTED = ("rbac.operator-deploy",)
# Not about permissions: the lab's static token is long-lived, which kubeconfig.credential warns about.
EXPECTED_WARNINGS = {"kubeconfig.credential"}


def generated(mode: str = "operator") -> list[dict[str, Any]]:
    out = CliRunner().invoke(main, ["rbac", "--mode", mode])
    assert out.exit_code == 0, out.output
    return [d for d in yaml.safe_load_all(out.output) if d]


def lab_rules(docs: list[dict[str, Any]], drop: int | None = None) -> tuple[Rule, ...]:
    """The printed ClusterRole and Role as the lab's RBAC rules (a Role only in its namespace)."""
    rules = []
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        namespaces = ("*",) if doc["kind"] == "ClusterRole" else (doc["metadata"]["namespace"],)
        for r in doc["rules"]:
            rules.append(
                Rule(
                    verbs=tuple(r["verbs"]),
                    api_groups=tuple(r["apiGroups"]),
                    resources=tuple(r["resources"]),
                    namespaces=namespaces,
                    resource_names=tuple(r.get("resourceNames", ())),
                )
            )
    return tuple(r for i, r in enumerate(rules) if i != drop)


def _is_problem(r: Any) -> bool:
    """Failed, errored, warned (beyond the expected warning), or skipped with a fix of its own (an unreadable
    object: 'needs get on ...'), which is not a dependency's skip."""
    if r.status in (Status.FAIL, Status.ERROR):
        return True
    if r.status is Status.WARN:
        return r.check_id not in EXPECTED_WARNINGS
    return r.status is Status.SKIP and bool(r.remediation) and "blocked_by" not in r.evidence


def _problems(report: RunReport) -> dict[str, str]:
    return {
        f"{c.name}/{r.check_id}": f"{r.status.value}: {r.message}"
        for c in report.clusters
        for r in c.results
        if _is_problem(r)
    }


def _audit(tmp_path: Any, rules: tuple[Rule, ...]) -> RunReport:
    meshery = behind_load_balancer(allocate(NATS_PORT), source_ranges=(ORIGIN,), meshsync_watch_list_by_name=True)
    spec = ClusterSpec(name="audited", rules=rules, meshery=meshery)
    with LabFleet([spec], tmp_path) as lab:
        return run(
            fleet=str(lab.fleet_path),
            origins=[ORIGIN],
            connect_timeout=2.0,
            include=["kubeconfig.*", "kube-api.*", "meshery.*", "broker.*", "rbac.*"],
        )


def test_every_check_decides_with_exactly_the_printed_rbac(tmp_path: Any) -> None:
    report = _audit(tmp_path, lab_rules(generated()))
    ran = {r.check_id: r for r in report.clusters[0].results if r.check_id not in NOT_GRANTED}
    assert ran["broker.auth"].status is Status.PASS, ran["broker.auth"].message  # the Broker path ran to the end
    assert ran["meshery.meshsync"].status is Status.PASS, ran["meshery.meshsync"].message
    assert ran["rbac.discovery"].status is Status.PASS
    problems = {k: v for k, v in _problems(report).items() if k.split("/")[1] not in NOT_GRANTED}
    assert problems == {}


def test_taking_away_any_one_rule_makes_some_check_report_it(tmp_path: Any) -> None:
    docs = generated()
    full = lab_rules(docs)
    assert len(full) >= 5
    for i, rule in enumerate(full):
        report = _audit(tmp_path / str(i), lab_rules(docs, drop=i))
        problems = {k: v for k, v in _problems(report).items() if k.split("/")[1] not in NOT_GRANTED}
        assert problems, f"nothing noticed that {rule} was missing"


def test_embedded_mode_needs_no_broker_secret() -> None:
    text = yaml.safe_dump_all(generated("embedded"))
    assert "secrets" not in text and "meshsyncs" not in text
    assert "secrets" in yaml.safe_dump_all(generated("operator"))


def test_the_rbac_grants_reads_only() -> None:
    for mode in ("embedded", "operator"):
        for doc in generated(mode):
            for rule in doc.get("rules", []):
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


@pytest.mark.parametrize("bad", ["nobody", "/x", "ns/", "a/b/c"])
def test_bad_service_account_is_one_line(bad: str) -> None:
    out = CliRunner().invoke(main, ["rbac", "--service-account", bad])
    assert out.exit_code == 2 and "NAMESPACE/NAME" in out.output
