"""Every format tells the same story: each cluster's status and the run's verdict, read back from the rendered
console, JSON, JUnit, HTML, markdown and Prometheus text of random reports, agree with the model's
:func:`cluster_status` and :func:`run_fails` (one ranking, one ``worst``, one not-applicable test)."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html
from prometheus_client.parser import text_string_to_metric_families

from preflight.engine.model import (
    SEVERITY_ORDER,
    STATUS_RANK,
    Result,
    RunReport,
    Status,
    cluster_status,
    run_fails,
    severity,
    worst,
)
from preflight.reports import json_report, markdown, writer
from preflight.reports.options import RenderOptions
from tests.report_samples import result, sample_report

FAILING = {Status.FAIL, Status.ERROR}


@st.composite
def results(draw: st.DrawFn, prefix: str, least: int = 1) -> list[Result]:
    out = []  # a run gives every cluster a result per selected check: never none
    for i in range(draw(st.integers(least, 6))):
        status = draw(st.sampled_from(list(Status)))
        r = result(f"{prefix}.check-{i}", status, category=draw(st.sampled_from(["dns", "api", "broker"])))
        if status is Status.SKIP and draw(st.booleans()):
            r = dataclasses.replace(r, remediation="")  # not applicable here
        out.append(r)
    return out


@st.composite
def reports(draw: st.DrawFn) -> RunReport:
    base = sample_report()
    n = draw(st.integers(1, 4))
    clusters = [
        dataclasses.replace(base.clusters[i % len(base.clusters)], name=f"c{i}", results=draw(results(f"c{i}")))
        for i in range(n)
    ]
    return dataclasses.replace(base, clusters=clusters, fleet_results=draw(results("fleet", least=0)))


def _console(report: RunReport, fail_on: str) -> tuple[dict[str, Status], int]:
    text = writer.render("console", report, options=RenderOptions(fail_on=fail_on))
    heads = dict(re.findall(r"^cluster (c\d+)  \S+ (\w+)  \(", text, re.M))
    table = dict((name, status) for status, name in re.findall(r"^  \S+ (\w+)\s+(c\d+)\s", text, re.M))
    assert heads == table, "the console's cluster headers and its fleet table disagree"
    code = int(re.findall(r"^exit (\d+):", text, re.M)[-1])
    return {k: Status(v) for k, v in heads.items()}, code


def _html(report: RunReport, fail_on: str) -> tuple[dict[str, Status], int]:
    doc = lxml_html.fromstring(writer.render("html", report, options=RenderOptions(fail_on=fail_on)))
    rows = {tr.get("data-name"): Status(tr.get("data-status")) for tr in doc.iter("tr") if tr.get("data-name")}
    code = int(re.match(r"exit (\d+):", doc.get_element_by_id("verdict").text_content()).group(1))  # type: ignore[union-attr]
    return rows, code


def _markdown(report: RunReport) -> dict[str, Status]:
    text = markdown.render(report)
    rows = {name: Status(status) for name, status in re.findall(r"^\| (c\d+) \|.*?\| \S+ (\w+) \|", text, re.M)}
    passing = re.search(r"passed every check: (.*)$", text, re.M)
    for name in passing.group(1).split(", ") if passing else []:
        rows[name] = Status.PASS
    return rows


def _junit(report: RunReport, fail_on: str) -> tuple[dict[str, Status | None], bool]:
    root = ET.fromstring(writer.render("junit", report, options=RenderOptions(fail_on=fail_on)))
    gate: dict[str, Status | None] = {}
    for suite in root.iter("testsuite"):
        failed, errored = int(suite.get("failures", "0")), int(suite.get("errors", "0"))
        name = suite.get("name", "").removeprefix("meshery-preflight.")
        gate[name] = Status.FAIL if failed else Status.ERROR if errored else None
    return gate, int(root.get("failures", "0")) + int(root.get("errors", "0")) > 0


def _prometheus(report: RunReport) -> tuple[dict[str, bool], list[Status]]:
    healthy: dict[str, bool] = {}
    fleet: list[Status] = []
    order = ["pass", "warn", "fail", "skip", "error", "muted"]  # the gauge's documented values
    for family in text_string_to_metric_families(writer.render("prometheus", report)):
        for sample in family.samples:
            if sample.name == "meshery_preflight_cluster_healthy":
                healthy[sample.labels["cluster"]] = sample.value == 1
            elif sample.name == "meshery_preflight_fleet_check_status":
                fleet.append(Status(order[int(sample.value)]))
    return healthy, fleet


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=reports(), fail_on=st.sampled_from(["warn", "fail", "error"]))
def test_every_format_agrees_on_each_cluster_and_the_verdict(report: RunReport, fail_on: str) -> None:
    want = {c.name: cluster_status(c.results) for c in report.clusters}
    verdict = 1 if run_fails(report, fail_on) else 0

    console, console_code = _console(report, fail_on)
    assert console == want
    html_rows, html_code = _html(report, fail_on)
    assert html_rows == want
    assert _markdown(report) == want
    parsed = json_report.from_document(json.loads(writer.render("json", report)))
    assert {c.name: cluster_status(c.results) for c in parsed.clusters} == want
    assert console_code == html_code == verdict == (1 if run_fails(parsed, fail_on) else 0)

    junit_gate, junit_fails = _junit(report, fail_on)
    for name, status in want.items():
        if fail_on == "warn":  # warnings are JUnit failures then: only "fails the run or not" can be read back
            assert (junit_gate[name] is not None) == (STATUS_RANK[status] >= 1)
        else:
            assert junit_gate[name] == (status if status in FAILING else None)
    assert junit_fails == bool(verdict)

    healthy, fleet = _prometheus(report)
    assert healthy == {name: status not in FAILING for name, status in want.items()}
    failing_anywhere = any(not ok for ok in healthy.values()) or any(s in FAILING for s in fleet)
    assert failing_anywhere == run_fails(report, "fail")


def test_one_ranking_a_decided_failure_above_an_undecided_error_and_muted_below_warn() -> None:
    assert SEVERITY_ORDER == (Status.PASS, Status.SKIP, Status.MUTED, Status.WARN, Status.ERROR, Status.FAIL)
    assert worst([Status.ERROR, Status.FAIL, Status.MUTED]) is Status.FAIL
    assert worst([Status.MUTED, Status.PASS]) is Status.MUTED
    assert worst([]) is Status.PASS
    # The --fail-on gate levels coarsen the ranking, never contradict it.
    assert all(STATUS_RANK[a] <= STATUS_RANK[b] for a in Status for b in Status if severity(a) <= severity(b))


def test_a_cluster_with_only_muted_results_is_muted_in_markdown_as_everywhere() -> None:
    muted = dataclasses.replace(
        sample_report(),
        clusters=[dataclasses.replace(sample_report().clusters[0], name="c0", results=[result("a.b", Status.MUTED)])],
    )
    assert _markdown(muted) == {"c0": Status.MUTED}
    assert _console(muted, "fail")[0] == {"c0": Status.MUTED}


def test_a_skip_with_a_fix_counts_and_a_not_applicable_one_does_not() -> None:
    fix = result("a.cloud", Status.SKIP)  # no credential: says what to set
    idle = dataclasses.replace(result("a.idle", Status.SKIP), remediation="")
    assert cluster_status([result("a.ok", Status.PASS), fix]) is Status.SKIP
    assert cluster_status([result("a.ok", Status.PASS), idle]) is Status.PASS
