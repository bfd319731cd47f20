"""/metrics over a synthetic fleet of 1000 clusters x every check: exactly the series count README's
Monitoring section states, every label value from a bounded set, and no series left by a cluster that went."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

from prometheus_client.parser import text_string_to_metric_families

from preflight.app import load_registry
from preflight.engine import reasons
from preflight.engine.model import STATUS_ORDER, ClusterReport, Result, RunReport, Scope, Status
from preflight.serve.metrics import Health, exposition, server_registry
from preflight.serve.scheduler import Snapshot

STARTED = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
HEALTH_SERIES = 20  # the prober's own: README "Monitoring"


def fleet(clusters: int, seed: int = 7) -> RunReport:
    rng = random.Random(seed)
    checks = load_registry().all()
    codes = sorted(reasons.REASONS)

    def result(chk_id: str, category: str, severity: object, scope_status: Status | None = None) -> Result:
        status = scope_status or rng.choice(STATUS_ORDER)
        return Result(
            check_id=chk_id,
            title=chk_id,
            category=category,
            severity=severity,  # type: ignore[arg-type]
            status=status,
            message=f"10.0.{rng.randrange(256)}.{rng.randrange(256)}:443 said something unbounded {rng.random()}",
            remediation="",
            docs_url="",
            evidence={},
            duration_s=0.1,
            reason=rng.choice([None, *codes]),
        )

    cluster_checks = [c for c in checks if c.scope is Scope.CLUSTER]
    fleet_checks = [c for c in checks if c.scope is Scope.FLEET]
    return RunReport(
        tool_name="meshery-preflight",
        tool_version="test",
        started_at=STARTED,
        finished_at=STARTED + dt.timedelta(seconds=42),
        origin_cidrs=[],
        clusters=[
            ClusterReport(
                name=f"cluster-{i:04d}",
                server=f"https://10.1.{i // 256}.{i % 256}:6443",
                provider="other",
                mode="embedded",
                results=[result(c.id, c.category, c.severity) for c in cluster_checks],
            )
            for i in range(clusters)
        ],
        fleet_results=[result(c.id, c.category, c.severity) for c in fleet_checks],
    )


def scrape(report: RunReport, last_success: dict[str, float]) -> list[tuple[str, dict[str, str]]]:
    # The prober's health after its first run: every one of its series present.
    health = Health(last_success=1.0, last_run_duration=1.0, config_loaded_at=1.0)
    reg = server_registry(lambda: report, health, 300.0)
    text = exposition(reg, Snapshot(report, last_success).metrics()).decode()
    return [
        (s.name, s.labels)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("meshery_preflight_")
    ]


def documented_series(clusters: int, cluster_checks: int, fleet_checks: int, succeeded: int) -> int:
    """README "Monitoring": 2·N·C + 8·N + F + 11 + (clusters that ever succeeded) + 20, with N clusters,
    C cluster checks and F fleet checks (six statuses)."""
    statuses = len(STATUS_ORDER)
    per_cluster = 2 * cluster_checks + statuses + 1
    return clusters * per_cluster + succeeded + fleet_checks + statuses + 5 + HEALTH_SERIES


def test_a_thousand_clusters_make_exactly_the_documented_series_with_bounded_labels() -> None:
    report = fleet(1000)
    checks = load_registry().all()
    c = sum(1 for x in checks if x.scope is Scope.CLUSTER)
    f = sum(1 for x in checks if x.scope is Scope.FLEET)
    last_success = {cl.name: 1.0 for cl in report.clusters[:600]}
    from preflight.reports.prometheus import succeeded

    ever = len(last_success.keys() | {cl.name for cl in report.clusters if succeeded(cl)})
    series = scrape(report, last_success)
    assert len(series) == documented_series(1000, c, f, ever)
    names = {cl.name for cl in report.clusters}
    ids = {x.id for x in checks}
    allowed = {
        "cluster": names,
        "check": ids,
        "status": {s.value for s in Status},
        "reason": set(reasons.LABELS),
        "category": {x.category for x in checks},
        "severity": {x.severity.value for x in checks},
        "outcome": None,
        "version": None,
    }
    for name, labels in series:
        for key, val in labels.items():
            assert key in allowed, (name, key)
            bounded = allowed[key]
            if bounded is not None:
                assert val in bounded, (name, key, val)
    result_series = [lab for name, lab in series if name == "meshery_preflight_check_result"]
    assert len(result_series) == 1000 * c  # one per cluster and check, whatever its status and cause
    assert {lab["reason"] for lab in result_series} >= {"none", "unspecified", "refused"}


def test_clusters_that_leave_take_their_series_with_them() -> None:
    big, small = fleet(50), fleet(3)
    small = dataclasses.replace(small, clusters=small.clusters[:3])
    before = {lab.get("cluster") for _, lab in scrape(big, {})}
    after = {lab.get("cluster") for _, lab in scrape(small, {})}
    assert len(before - {None}) == 50
    assert after - {None} == {"cluster-0000", "cluster-0001", "cluster-0002"}
