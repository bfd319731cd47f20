"""--baseline: classification, comparison and the one-line errors for files that are not a baseline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from preflight import TOOL_NAME
from preflight.engine import baseline
from preflight.engine.errors import ConfigError
from preflight.engine.model import RunReport, Status
from preflight.reports import json_report
from tests.report_samples import DOTTED_CLUSTER, PLAIN_CLUSTER, sample_report

P, W, F, S, E, M = Status.PASS, Status.WARN, Status.FAIL, Status.SKIP, Status.ERROR, Status.MUTED


@pytest.mark.parametrize(
    ("before", "now", "message", "expected"),
    [
        (None, F, "x", "new"),
        (None, W, "x", "new"),
        (None, P, "x", "unchanged"),
        (None, S, "x", "unchanged"),
        ((P, "ok"), W, "slow", "new"),
        ((W, "slow"), F, "down", "new"),
        ((M, "muted"), E, "boom", "new"),
        ((F, "down"), P, "ok", "fixed"),
        ((F, "down"), W, "slow", "fixed"),
        ((F, "down"), M, "muted (ticket): down", "fixed"),
        ((F, "down"), S, "skipped: dns did not pass", "changed"),
        ((F, "refused by 10.0.0.1"), F, "refused by 10.0.0.2", "changed"),
        ((F, "down"), E, "down", "changed"),
        ((F, "answered in 812.4 ms"), F, "answered in 790.1 ms", "unchanged"),
        ((P, "took 1.2s"), P, "took 0.9s", "unchanged"),
    ],
)
def test_classify(before: tuple[Status, str] | None, now: Status, message: str, expected: str) -> None:
    assert baseline.classify(before, now, message) == expected


def _write(tmp_path: Path, report: RunReport, name: str = "before.json") -> str:
    path = tmp_path / name
    path.write_text(json_report.render(report), encoding="utf-8")
    return str(path)


def _load(path: str) -> baseline.Snapshot:
    return baseline.load(path, tool_name=TOOL_NAME, schema_version=json_report.SCHEMA_VERSION)


def _worsen(report: RunReport) -> RunReport:
    """The second cluster's passing check fails; the fleet's failing check passes; one cluster is new."""
    first, second = report.clusters
    results = [dataclasses.replace(r, status=F, message="now down") if r.status is P else r for r in second.results]
    fleet = [dataclasses.replace(r, status=P, message="ok") if r.status is F else r for r in report.fleet_results]
    extra = dataclasses.replace(first, name="added", results=first.results[:3])
    return dataclasses.replace(
        report, clusters=[first, dataclasses.replace(second, results=results), extra], fleet_results=fleet
    )


def test_compare_marks_every_result_and_counts(tmp_path: Path) -> None:
    before = _load(_write(tmp_path, sample_report()))
    now = baseline.compare(_worsen(sample_report()), before)
    changes = {(c.name, r.check_id): r.change for c in now.clusters for r in c.results}
    assert changes[(PLAIN_CLUSTER, "c2.dns")] == "new"
    assert all(v == "unchanged" for (name, _), v in changes.items() if name == DOTTED_CLUSTER)
    # A new cluster: its pass is nothing to act on, its warn and fail are new.
    assert [changes[("added", f"c1.{c}")] for c in ("dns", "tls", "egress")] == ["unchanged", "new", "new"]
    fleet = {r.check_id: r.change for r in now.fleet_results}
    assert fleet == {"fleet.overlap": "fixed", "fleet.versions": "unchanged"}
    assert now.baseline is not None
    assert dict(now.baseline.counts) == {"new": 3, "changed": 0, "fixed": 1, "unchanged": 12}
    assert now.baseline.gone == 0
    assert now.baseline.started_at == sample_report().started_at.replace(microsecond=456000)


def test_results_the_run_no_longer_has_are_counted_as_gone(tmp_path: Path) -> None:
    before = _load(_write(tmp_path, sample_report()))
    now = baseline.compare(dataclasses.replace(sample_report(), clusters=sample_report().clusters[:1]), before)
    assert now.baseline is not None and now.baseline.gone == 5


def test_a_report_compared_with_itself_is_unchanged(tmp_path: Path) -> None:
    report = sample_report()
    now = baseline.compare(report, _load(_write(tmp_path, report)))
    assert {r.change for r in now.all_results} == {"unchanged"}


def _doc(tmp_path: Path, **changes: object) -> str:
    doc = json.loads(json_report.render(sample_report()))
    doc.update(changes)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("<testsuites/>", "not a JSON report"),
        ("[1, 2]", "not a meshery-preflight JSON report"),
        ('{"tool": {"name": "prowler"}, "schema_version": 1}', "written by 'prowler'"),
        (None, "schema_version 2; this version reads 1"),
        ("\xff\xfe", "not a JSON report"),
    ],
)
def test_not_a_baseline_is_one_config_error(tmp_path: Path, content: str | None, needle: str) -> None:
    if content is None:
        path = _doc(tmp_path, schema_version=2)
    else:
        path = str(tmp_path / "b.json")
        Path(path).write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        _load(path)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"--baseline {path}:")


def test_missing_baseline_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        _load(str(tmp_path / "absent.json"))


def test_a_result_without_status_is_rejected(tmp_path: Path) -> None:
    doc = json.loads(json_report.render(sample_report()))
    del doc["clusters"][0]["results"][0]["status"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match="lacks a check_id or a known status"):
        _load(str(path))
