"""-o markdown: a step summary that renders as a table plus fixes, and stays small at 500 clusters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lxml import html
from markdown_it import MarkdownIt

from preflight import TOOL_NAME
from preflight.engine import baseline
from preflight.engine.model import ClusterReport, Result, RunReport, Severity, Status
from preflight.reports import json_report, markdown, writer
from tests.report_samples import DOTTED_CLUSTER, PLAIN_CLUSTER, result, sample_report

GITHUB_STEP_SUMMARY_LIMIT = 1024 * 1024


def to_html(text: str) -> html.HtmlElement:
    return html.fromstring(f"<div>{MarkdownIt('commonmark').enable('table').render(text)}</div>")


def rows(doc: html.HtmlElement) -> list[list[str]]:
    return [[td.text_content() for td in tr.findall("td")] for tr in doc.iter("tr") if tr.findall("td")]


def test_fleet_table_then_each_problem_with_its_fix() -> None:
    text = writer.render("markdown", sample_report())
    doc = to_html(text)
    assert [th.text_content() for th in doc.iter("th")] == ["Cluster", "Provider", "Mode", "Worst", "What failed"]
    table = {r[0]: r for r in rows(doc)}
    assert table[DOTTED_CLUSTER][1:4] == ["eks", "in-cluster", "❌ fail"]
    assert "c1.egress" in table[DOTTED_CLUSTER][4] and "c1.dns" not in table[DOTTED_CLUSTER][4]
    headings = [h.text_content() for h in doc.iter("h4")]
    assert headings[0].startswith("❌ c1.egress") and headings[-1].startswith("⚠️")  # failures before warnings
    assert "Remediate c1.egress" in text and "Fleet-wide check" in text
    # The message's escape sequences and control bytes are gone; its text is kept.
    assert "connection refused by peer" in text and "\x1b" not in text


def test_hostile_names_cannot_break_the_table_or_inject_html() -> None:
    name = "evil|<script>alert(1)</script>\n| injected | row |"
    cluster = ClusterReport(name, "https://x", "eks", "embedded", [result("kube-api.tcp", Status.FAIL, message=name)])
    report = dataclasses.replace(sample_report(), clusters=[cluster], fleet_results=[])
    doc = to_html(markdown.render(report))
    assert not list(doc.iter("script"))
    # The line break is shown escaped, as `\n`: it neither ends the row nor vanishes from the name.
    assert len(rows(doc)) == 1 and rows(doc)[0][0] == name.replace("\n", "\\n")


def _synthetic(n: int, *, unique_fixes: bool = False) -> RunReport:
    checks = [f"check-{k}" for k in range(12)]
    clusters = []
    for i in range(n):
        results: list[Result] = []
        for k, check_id in enumerate(checks):
            status = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS)[(i + k) % 4] if i % 5 else Status.PASS
            r = result(
                check_id, status, severity=Severity.HIGH, message=f"{check_id} on 10.{i // 250}.{i % 250}.7 " * 8
            )
            fix = (
                f"Open port {i} for {check_id}; " * 20 if unique_fixes and status is not Status.PASS else r.remediation
            )
            results.append(dataclasses.replace(r, remediation=fix))
        name = f"cluster-{i:03d}.eu-west-{i % 3}.internal.example.com"
        clusters.append(ClusterReport(name, f"https://10.0.{i // 250}.{i % 250}:6443", "eks", "operator", results))
    return dataclasses.replace(sample_report(), clusters=clusters, fleet_results=[])


def test_500_clusters_group_and_truncate_under_the_step_summary_limit() -> None:
    report = _synthetic(500)
    text = markdown.render(report)
    assert len(text.encode()) < GITHUB_STEP_SUMMARY_LIMIT // 4
    doc = to_html(text)
    bad = [c for c in report.clusters if any(r.status is not Status.PASS for r in c.results)]
    assert len(bad) == 400
    assert len(rows(doc)) == markdown.MAX_TABLE_ROWS + 1
    assert "… and 100 more clusters with problems" in text
    assert "100 passed every check" in text
    # Problems are grouped per check: 12 checks x 3 statuses at most, each naming 15 clusters and a count.
    headings = list(doc.iter("h4"))
    assert 12 <= len(headings) <= 36
    for line in (line for line in text.splitlines() if line.startswith("On ")):
        total, names = line.removeprefix("On ").split(" clusters: ")
        shown, _, more = names.partition(" and ")
        assert len(shown.split(", ")) == markdown.MAX_NAMES and int(total) == 15 + int(more.split()[0])


def test_500_clusters_with_a_fix_each_still_fit() -> None:
    text = markdown.render(_synthetic(500, unique_fixes=True))
    assert len(text.encode()) <= markdown.BUDGET_BYTES + 200 < GITHUB_STEP_SUMMARY_LIMIT
    assert f"… and {400 * 9 - markdown.MAX_PROBLEMS} more problems" in text and "truncated" not in text


def test_changes_since_the_baseline_lead(tmp_path: Path) -> None:
    before = tmp_path / "b.json"
    before.write_text(json_report.render(sample_report()))
    snap = baseline.load(str(before), tool_name=TOOL_NAME, schema_version=json_report.SCHEMA_VERSION)
    report = sample_report()
    second = report.clusters[1]
    worse = [
        dataclasses.replace(r, status=Status.WARN, message="slower") if r.check_id == "c2.dns" else r
        for r in second.results
    ]
    report = dataclasses.replace(report, clusters=[report.clusters[0], dataclasses.replace(second, results=worse)])
    text = markdown.render(baseline.compare(report, snap))
    doc = to_html(text)
    assert rows(doc)[0][0] == PLAIN_CLUSTER and "c2.dns (new)" in rows(doc)[0][4]
    assert next(doc.iter("h4")).text_content().startswith("⚠️ [new] c2.dns")
    assert "Changes since the baseline" in text


def test_sharded_and_aborted_runs_say_so() -> None:
    report = dataclasses.replace(sample_report(aborted="interrupted by user (SIGINT)"), shard=(1, 4))
    text = markdown.render(report)
    assert "Shard 1 of 4" in text and "Run aborted:" in text


def test_the_guard_cuts_oversized_input_at_a_line() -> None:
    huge = "line\n" * (markdown.BUDGET_BYTES // 4)
    cut = markdown._fit(huge)
    assert len(cut.encode()) < markdown.BUDGET_BYTES + 200 and cut.endswith("see the JSON report.\n")
