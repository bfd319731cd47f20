"""The optional ``reason`` of a result in the JSON report: the schema knows every code, a report reads back with its
causes, and a merged report's metrics carry the same ``reason`` labels as the run's own."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jsonschema
import pytest

from preflight.engine.merge import merge
from preflight.engine.model import RunReport, Status
from preflight.engine.reasons import REASONS
from preflight.reports import json_report
from preflight.serve.metrics import check_result_family
from tests.report_samples import synthetic_fleet


def _caused(n: int = 3) -> RunReport:
    """The synthetic fleet with its broker.tcp fails classified as filtered."""
    report = synthetic_fleet(n)
    for c in report.clusters:
        c.results = [
            dataclasses.replace(r, reason="filtered") if r.check_id == "broker.tcp" and r.status is Status.FAIL else r
            for r in c.results
        ]
    return report


def _validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)


def test_the_schema_lists_exactly_the_declared_codes() -> None:
    result = json_report.load_schema()["$defs"]
    enum = next(d["properties"]["reason"]["enum"] for d in result.values() if "reason" in d.get("properties", {}))
    assert sorted(enum) == sorted(REASONS)


def test_json_writes_the_reason_only_where_there_is_one_and_reads_it_back() -> None:
    report = _caused()
    doc = json.loads(json_report.render(report))
    _validate(doc)
    reasons = [r.get("reason") for c in doc["clusters"] for r in c["results"]]
    assert "filtered" in reasons and None in reasons
    back = json_report.from_document(doc)
    assert [r.reason for c in back.clusters for r in c.results] == [
        r.reason for c in report.clusters for r in c.results
    ]


def test_the_schema_refuses_an_undeclared_reason() -> None:
    doc = json.loads(json_report.render(_caused()))
    next(r for c in doc["clusters"] for r in c["results"] if "reason" in r)["reason"] = "10.0.0.1 timed out"
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def _reasons(report: RunReport) -> list[tuple[str, str, str]]:
    family = check_result_family(report)
    return sorted((s.labels["cluster"], s.labels["check"], s.labels["reason"]) for s in family.samples)


def test_merged_metrics_carry_the_runs_reasons() -> None:
    report = _caused()
    merged = merge([("a.json", json_report.from_document(json.loads(json_report.render(report))))])
    assert any(reason == "filtered" for _, _, reason in _reasons(merged))
    assert _reasons(merged) == _reasons(report)
