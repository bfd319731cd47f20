"""-o prometheus: the textfile node-exporter reads, checked by promtool and parsed back."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from preflight import app
from preflight.engine.model import STATUS_ORDER, ClusterReport, RunReport, Status
from preflight.reports import prometheus, writer
from tests.promtools import promtool_check
from tests.report_samples import DOTTED_CLUSTER, PLAIN_CLUSTER, every_status, result, sample_report

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed: Samples, name: str, **labels: str) -> float:
    return parsed[(name, tuple(sorted(labels.items())))]


def test_textfile_passes_promtool_and_says_every_status() -> None:
    text = prometheus.render(sample_report())
    proc = promtool_check(text)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = samples(text)
    for i, status in enumerate(STATUS_ORDER):
        r = next(r for r in sample_report().clusters[0].results if r.status is status)
        labels = {"cluster": DOTTED_CLUSTER, "check": r.check_id, "category": r.category, "severity": r.severity.value}
        assert value(parsed, "meshery_preflight_check_status", **labels) == i
    assert (
        value(
            parsed,
            "meshery_preflight_fleet_check_status",
            check="fleet.overlap",
            category="addressing",
            severity="high",
        )
        == 2
    )
    assert value(parsed, "meshery_preflight_cluster_results", cluster=PLAIN_CLUSTER, status="skip") == 0
    assert value(parsed, "meshery_preflight_results", status="fail") == 3
    assert value(parsed, "meshery_preflight_run_start_timestamp_seconds") == sample_report().started_at.timestamp()
    assert value(parsed, "meshery_preflight_run_duration_seconds") == sample_report().duration_s
    assert value(parsed, "meshery_preflight_run_aborted") == 0
    # Both sample clusters fail: neither has a last success yet.
    assert not [k for k in parsed if k[0] == "meshery_preflight_last_success_timestamp_seconds"]


def test_labels_never_carry_messages_or_addresses() -> None:
    report = sample_report()
    allowed = {c.name for c in report.clusters} | {s.value for s in Status}
    for r in report.all_results:
        allowed |= {r.check_id, r.category, r.severity.value}
    for (_, labels), _v in samples(prometheus.render(report)).items():
        assert {v for _, v in labels} <= allowed


def _fleet(n: int, *, failing: bool) -> RunReport:
    results = [result("kube-api.tcp", Status.FAIL if failing else Status.PASS), result("kube-api.tls", Status.WARN)]
    clusters = [
        ClusterReport(f"c{i}", f"https://10.0.{i // 250}.{i % 250}:6443", "eks", "embedded", results) for i in range(n)
    ]
    return dataclasses.replace(sample_report(), clusters=clusters, fleet_results=[])


def test_cardinality_is_clusters_times_checks() -> None:
    parsed = samples(prometheus.render(_fleet(500, failing=False)))
    names = [name for name, _ in parsed]
    assert names.count("meshery_preflight_check_status") == 1000
    assert names.count("meshery_preflight_cluster_results") == 500 * len(STATUS_ORDER)
    assert names.count("meshery_preflight_last_success_timestamp_seconds") == 500


def test_hostile_cluster_names_stay_valid_exposition() -> None:
    name = 'we"ird\\name\nwith newline'
    report = dataclasses.replace(
        sample_report(), clusters=[ClusterReport(name, "https://x", "gke", "embedded", every_status("c"))]
    )
    text = prometheus.render(report)
    assert promtool_check(text).returncode == 0
    assert value(samples(text), "meshery_preflight_cluster_healthy", cluster=name) == 0


def test_last_success_survives_a_failing_run_in_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "textfile").mkdir()  # outputs never create directories
    path = tmp_path / "textfile" / "meshery_preflight.prom"
    good = _fleet(2, failing=False)
    app.emit(good, [("prometheus", str(path))])
    first = value(samples(path.read_text()), "meshery_preflight_last_success_timestamp_seconds", cluster="c1")
    assert first == good.finished_at.timestamp()

    later = dt.timedelta(hours=1)
    bad = dataclasses.replace(
        _fleet(2, failing=True), started_at=good.started_at + later, finished_at=good.finished_at + later
    )
    app.emit(bad, [("prometheus", str(path))])
    text = path.read_text()
    assert promtool_check(text).returncode == 0
    parsed = samples(text)
    assert value(parsed, "meshery_preflight_last_success_timestamp_seconds", cluster="c1") == first
    assert value(parsed, "meshery_preflight_cluster_healthy", cluster="c1") == 0
    assert value(parsed, "meshery_preflight_run_start_timestamp_seconds") == bad.started_at.timestamp()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_a_foreign_previous_file_is_replaced_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text("this is { not metrics\n")
    text = writer.render("prometheus", _fleet(1, failing=True), path=str(path))
    assert promtool_check(text).returncode == 0


def test_changes_since_the_baseline_are_a_metric(tmp_path: Path) -> None:
    from preflight import TOOL_NAME
    from preflight.engine import baseline
    from preflight.reports import json_report

    before = tmp_path / "b.json"
    before.write_text(json_report.render(_fleet(3, failing=False)))
    snap = baseline.load(str(before), tool_name=TOOL_NAME, schema_version=json_report.SCHEMA_VERSION)
    text = prometheus.render(baseline.compare(_fleet(3, failing=True), snap))
    assert promtool_check(text).returncode == 0
    assert value(samples(text), "meshery_preflight_changes", change="new") == 3
