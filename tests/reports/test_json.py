from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import jsonschema
import pytest

from preflight.engine.model import ClusterReport, Status
from preflight.reports import json_report
from tests.report_samples import DOTTED_CLUSTER, ODD_EVIDENCE, empty_aborted_report, sample_report


def _strict_loads(text: str) -> Any:
    def reject(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(json_report.schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_path_points_at_shipped_schema() -> None:
    path = json_report.schema_path()
    assert path.name == "report-v1.schema.json"
    assert path.parent.name == "schema" and path.parent.parent.name == "reports"
    assert json.loads(path.read_text(encoding="utf-8")) == json_report.load_schema()


@pytest.mark.parametrize("report", [sample_report(), sample_report(aborted="SIGINT"), empty_aborted_report()])
def test_rendered_document_validates(validator: jsonschema.Draft202012Validator, report: Any) -> None:
    text = json_report.render(report)
    assert text.endswith("}\n")
    assert text.startswith('{\n  "schema_version": 1,')
    validator.validate(_strict_loads(text))


def test_top_level_fields() -> None:
    doc = _strict_loads(json_report.render(sample_report()))
    assert doc["schema_version"] == 1
    assert doc["tool"] == {"name": "meshery-preflight", "version": "0.1.0"}
    assert doc["started_at"] == "2026-11-24T01:02:03.456Z"
    assert doc["finished_at"] == "2026-11-24T01:02:15.802Z"
    assert doc["duration_s"] == 12.346
    assert doc["aborted"] is None
    assert doc["origin"] == {"cidrs": ["10.0.0.0/8", "192.168.7.0/24"]}
    assert doc["summary"] == {"pass": 3, "warn": 2, "fail": 3, "skip": 1, "error": 2, "muted": 2}
    assert [c["name"] for c in doc["clusters"]] == [DOTTED_CLUSTER, "staging-gke"]
    assert [r["check_id"] for r in doc["fleet"]["results"]] == ["fleet.overlap", "fleet.versions"]


def test_aborted_is_reported() -> None:
    doc = json_report.to_document(sample_report(aborted="interrupted by user"))
    assert doc["aborted"] == "interrupted by user"


def test_cluster_and_result_shape() -> None:
    doc = json_report.to_document(sample_report())
    cluster = doc["clusters"][0]
    assert cluster["server"] == "https://prod.example.com:6443"
    assert cluster["provider"] == "eks"
    assert cluster["mode"] == "in-cluster"
    assert cluster["summary"] == {s.value: 1 for s in Status}
    failing = next(r for r in cluster["results"] if r["status"] == "fail")
    assert set(failing) == {
        "check_id", "title", "category", "severity", "status", "message",
        "remediation", "docs_url", "evidence", "duration_s",
    }  # fmt: skip
    assert failing["check_id"] == "c1.egress"
    assert failing["severity"] == "high"
    assert failing["duration_s"] == 1.5
    assert failing["docs_url"].endswith("#c1-egress")


def test_durations_are_rounded_to_milliseconds() -> None:
    doc = json_report.to_document(sample_report())
    durations = [r["duration_s"] for c in doc["clusters"] for r in c["results"]]
    assert set(durations) == {0.123, 1.5}


def test_odd_evidence_becomes_plain_json() -> None:
    assert json_report.jsonable(ODD_EVIDENCE) == {
        "ports": [80, 443, 8443],
        "pair": ["10.0.0.1", 6443],
        "status": "fail",
        "seen_at": "2026-11-24T01:02:03+00:00",
        "raw": "<4 bytes>",
        "nested": {"inner": ["a", "b"], "7": None},
        "opaque": "opaque-object",
        "ratio": "nan",
    }


def test_cyclic_evidence_does_not_recurse_forever() -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    assert json_report.jsonable(loop) == {"a": 1, "self": "<cycle>"}
    assert json_report.jsonable({3, "a", 1}) == ["a", 1, 3]
    shared = [1]
    assert json_report.jsonable({"x": shared, "y": shared}) == {"x": [1], "y": [1]}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("eks", "eks"), ("GKE", "gke"), (" aks ", "aks"), ("openshift", "other"), ("", "unknown")],
)
def test_provider_is_mapped_onto_enum(validator: jsonschema.Draft202012Validator, given: str, expected: str) -> None:
    report = sample_report()
    report.clusters[0] = dataclasses.replace(report.clusters[0], provider=given)
    doc = json_report.to_document(report)
    assert doc["clusters"][0]["provider"] == expected
    validator.validate(doc)


def test_naive_timestamps_are_taken_as_utc() -> None:
    report = sample_report()
    report.started_at = report.started_at.replace(tzinfo=None)
    report.finished_at = report.finished_at.replace(tzinfo=None)
    doc = json_report.to_document(report)
    assert (doc["started_at"], doc["finished_at"]) == ("2026-11-24T01:02:03.456Z", "2026-11-24T01:02:15.802Z")


def test_cluster_without_results(validator: jsonschema.Draft202012Validator) -> None:
    report = sample_report()
    report.clusters.append(ClusterReport(name="empty", server="", provider="unknown", mode="kubeconfig"))
    validator.validate(json_report.to_document(report))


def _mutations() -> list[tuple[str, Any]]:
    def drop(key: str) -> Any:
        return lambda d: d.pop(key)

    return [
        ("missing top-level field", drop("fleet")),
        ("unknown top-level field", lambda d: d.update(extra=1)),
        ("wrong schema version", lambda d: d.update(schema_version=2)),
        ("timestamp without Z", lambda d: d.update(started_at="2026-11-24T01:02:03")),
        ("bad status", lambda d: d["clusters"][0]["results"][0].update(status="passed")),
        ("bad severity", lambda d: d["fleet"]["results"][0].update(severity="urgent")),
        ("bad provider", lambda d: d["clusters"][1].update(provider="digitalocean")),
        ("extra result field", lambda d: d["clusters"][0]["results"][0].update(extra=True)),
        ("missing result field", lambda d: d["clusters"][0]["results"][0].pop("docs_url")),
        ("evidence not an object", lambda d: d["clusters"][0]["results"][0].update(evidence=[])),
        ("summary missing status", lambda d: d["summary"].pop("muted")),
        ("negative count", lambda d: d["clusters"][0]["summary"].update(fail=-1)),
        ("aborted wrong type", lambda d: d.update(aborted=True)),
    ]


@pytest.mark.parametrize(("label", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_invalid_documents_are_rejected(validator: jsonschema.Draft202012Validator, label: str, mutate: Any) -> None:
    doc = copy.deepcopy(json_report.to_document(sample_report()))
    validator.validate(doc)
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(doc)


def test_output_is_valid_standard_json_even_with_nan_evidence() -> None:
    text = json_report.render(sample_report())
    assert not re.search(r"\bNaN\b|\bInfinity\b", text)
    _strict_loads(text)


def test_summary_by_category() -> None:
    """Additive in schema version 1: counts per status for each category, adding up to the summary."""
    doc = json_report.to_document(sample_report())
    jsonschema.validate(doc, json_report.load_schema())
    by_cat = doc["summary_by_category"]
    assert list(by_cat) == ["dns", "tls", "network", "broker", "api", "addressing", "versions"]
    assert by_cat["network"] == {"pass": 0, "warn": 0, "fail": 2, "skip": 0, "error": 0, "muted": 2}
    assert by_cat["addressing"] == {"pass": 0, "warn": 0, "fail": 1, "skip": 0, "error": 0, "muted": 0}
    for status, total in doc["summary"].items():
        assert sum(counts[status] for counts in by_cat.values()) == total
    assert doc["schema_version"] == 1
    older = {k: v for k, v in doc.items() if k != "summary_by_category"}
    jsonschema.validate(older, json_report.load_schema())
    broken = {**doc, "summary_by_category": {"dns": {"pass": -1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json_report.load_schema())
