"""What changed since the baseline, as each renderer shows it: JSON fields, and changes first."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
from lxml import etree

from preflight import TOOL_NAME
from preflight.engine import baseline
from preflight.engine.model import RunReport, Status
from preflight.reports import console, json_report, junit
from tests.report_samples import DOTTED_CLUSTER, PLAIN_CLUSTER, sample_report


def _compared(tmp_path: Path) -> RunReport:
    """PLAIN_CLUSTER (listed second) gets worse in its last check; everything else is as before."""
    before = tmp_path / "before.json"
    before.write_text(json_report.render(sample_report()), encoding="utf-8")
    snap = baseline.load(str(before), tool_name=TOOL_NAME, schema_version=json_report.SCHEMA_VERSION)
    report = sample_report()
    first, second = report.clusters
    last = dataclasses.replace(second.results[-1], status=Status.FAIL, message="got worse")
    second = dataclasses.replace(second, results=[*second.results[:-1], last])
    return baseline.compare(dataclasses.replace(report, clusters=[first, second]), snap)


def test_json_carries_changes_and_validates(tmp_path: Path) -> None:
    doc = json.loads(json_report.render(_compared(tmp_path)))
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)
    assert doc["schema_version"] == 1
    assert doc["baseline"]["changes"] == {"new": 1, "changed": 0, "fixed": 0, "unchanged": 12}
    assert doc["baseline"]["started_at"] == "2026-11-24T01:02:03.456Z"
    plain = next(c for c in doc["clusters"] if c["name"] == PLAIN_CLUSTER)
    assert plain["results"][-1]["change"] == "new"
    assert all("change" in r for c in doc["clusters"] for r in c["results"])


def test_json_without_baseline_has_no_change_fields() -> None:
    doc = json.loads(json_report.render(sample_report()))
    assert "baseline" not in doc
    assert not any("change" in r for c in doc["clusters"] for r in c["results"])


def test_console_shows_the_change_first(tmp_path: Path) -> None:
    text = console.render(_compared(tmp_path), color=False)
    lines = text.splitlines()
    assert "since the baseline of 2026-11-24 01:02 UTC: 1 new, 0 changed, 0 fixed, 12 unchanged" in text
    # The cluster with the new problem comes first, and its new result leads the cluster.
    assert text.index(f"cluster {PLAIN_CLUSTER}") < text.index(f"cluster {DOTTED_CLUSTER}")
    header = next(i for i, line in enumerate(lines) if line.startswith(f"cluster {PLAIN_CLUSTER}"))
    assert "[new] got worse" in lines[header + 1]
    assert "[unchanged]" not in text


def test_console_without_baseline_keeps_its_order() -> None:
    text = console.render(sample_report(), color=False)
    assert "since the baseline" not in text and "[new]" not in text
    assert text.index(f"cluster {DOTTED_CLUSTER}") < text.index(f"cluster {PLAIN_CLUSTER}")


def test_junit_lists_the_changed_suite_and_case_first(tmp_path: Path) -> None:
    root = etree.fromstring(junit.render(_compared(tmp_path)).encode())
    suites = root.findall("testsuite")
    assert suites[0].get("name") == PLAIN_CLUSTER
    first = suites[0].find("testcase")
    assert first is not None and first.get("name", "").startswith("c2.mtu")
    failure = first.find("failure")
    assert failure is not None and failure.get("message") == "[new] got worse"


def test_a_sharded_report_says_which_shard_and_validates() -> None:
    doc = json.loads(json_report.render(dataclasses.replace(sample_report(), shard=(2, 5))))
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)
    assert doc["shard"] == {"index": 2, "count": 5}
