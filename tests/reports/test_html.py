"""The HTML report as a document: self-contained, escaped, pinned by its CSP, small enough for big fleets."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest

from preflight.engine.model import Status
from preflight.reports import html, writer
from tests.report_samples import MUTE_REASON, empty_aborted_report, sample_report, synthetic_fleet

XSS = "<img src=x onerror=alert(1)>"


class _Page(HTMLParser):
    """Tags, attributes and the text of inline scripts and styles, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: dict[str, list[str]] = {"script": [], "style": []}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in self.inline else None

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.inline[self._open].append(data)


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _data(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert match
    return json.loads(match.group(1))


def test_a_hostile_context_name_is_text() -> None:
    report = synthetic_fleet(4, names={1: XSS})
    hostile = "</script><script>alert(2)</script>"
    report.clusters[2].results[4] = dataclasses.replace(report.clusters[2].results[4], message=hostile)
    text = html.render(report)
    assert XSS not in text and "<script>alert(2)" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text  # the matrix row, escaped by Jinja2
    assert [t for t, _ in _page(text).tags].count("img") == 0
    assert [t for t, _ in _page(text).tags].count("script") == 2  # the data and the page's own script
    data = _data(text)
    assert hostile in data["strings"]  # intact as data, inert as markup


def test_self_contained_and_pinned_by_its_csp() -> None:
    text = html.render(sample_report())
    page = _page(text)
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "img", "object", "embed", "base"), tag
        assert not (tag == "script" and "src" in attrs), "no script is fetched"
    assert "@import" not in text and "url(" not in text
    (csp,) = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp is not None and "default-src 'none'" in csp
    script = next(s for s in page.inline["script"] if "use strict" in s)
    style = page.inline["style"][0]
    for source, directive in ((script, "script-src"), (style, "style-src")):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp


def test_metadata_and_the_exit_code_it_implies() -> None:
    text = html.render(sample_report())
    assert "meshery-preflight 0.1.0" in text
    assert "10.0.0.0/8, 192.168.7.0/24" in text
    assert '<time datetime="2026-11-24T01:02:03.456Z">' in text
    assert "12.35s" in text
    assert "exit 1: 3 failures, 2 errors at or above --fail-on fail" in text
    aborted = html.render(empty_aborted_report())
    assert "RUN ABORTED: interrupted by user (SIGINT)" in aborted and "exit 130" in aborted


def test_one_row_per_cluster_worst_first_with_a_cell_per_category() -> None:
    report = synthetic_fleet(12)
    text = html.render(report)
    rows = [a for t, a in _page(text).tags if t == "tr" and a.get("class") == "cluster"]
    assert len(rows) == 12
    ranks = [int(a["data-rank"] or 0) for a in rows]
    assert ranks == sorted(ranks, reverse=True)
    refused = next(a for a in rows if a["data-name"] == "cluster-0001-api-refused")
    assert refused["data-status"] == "fail" and refused["data-problem-categories"] == "kube-api"
    header = [t for t, a in _page(text).tags if t == "th" and a.get("class") == "cat"]
    assert len(header) == len({r.category for c in report.clusters for r in c.results})


def test_every_result_travels_with_message_fix_docs_and_evidence() -> None:
    report = sample_report()
    data = _data(html.render(report))
    strings = data["strings"]
    assert len(data["clusters"]) == 2 and len(data["fleet"]) == 2
    by_id = {row[0]: row for row in data["clusters"][0]}
    check_id, status, message, fix, command, evidence = by_id["c1.mtu"]
    assert status == "muted" and strings[message] == MUTE_REASON and strings[fix] == "Remediate c1.mtu"
    assert command == -1 and evidence is None
    egress = by_id["c1.egress"]
    assert egress[5]["ports"] == [80, 443, 8443] and egress[5]["ratio"] == "nan"
    title, category, severity, docs = data["checks"]["c1.egress"]
    assert (category, severity) == ("network", "high") and docs.endswith("#c1-egress")


def test_strings_are_stored_once() -> None:
    data = _data(html.render(synthetic_fleet(60)))
    assert len(data["strings"]) == len(set(data["strings"]))
    assert len(data["strings"]) < 60 * 10


@pytest.mark.parametrize(
    ("fix", "command"),
    [
        (
            "Allow the origin: aws ec2 authorize-security-group-ingress --group-id sg-1 --port 4222 --cidr 10.0.0.0/8.",
            "aws ec2 authorize-security-group-ingress --group-id sg-1 --port 4222 --cidr 10.0.0.0/8",
        ),
        (
            "gcloud compute firewall-rules create x --allow tcp:4222 --source-ranges 10.0.0.0/8,10.1.0.0/16",
            "gcloud compute firewall-rules create x --allow tcp:4222 --source-ranges 10.0.0.0/8,10.1.0.0/16",
        ),
        (
            "check the Broker pods (kubectl -n meshery get pods -l app=meshery-broker), the Service's port",
            "kubectl -n meshery get pods -l app=meshery-broker",
        ),
        ("Set rbac.nodes: true in Meshery's Helm values.", None),
        ("", None),
    ],
)
def test_fix_command(fix: str, command: str | None) -> None:
    assert html.fix_command(fix) == command


def test_two_hundred_clusters_fit_in_two_megabytes() -> None:
    size = len(html.render(synthetic_fleet(200)).encode("utf-8"))
    assert size <= 2 * 1024 * 1024, size


def test_writer_knows_html() -> None:
    assert writer.parse_output_spec("html=out/report.html") == ("html", "out/report.html")
    assert writer.parse_output_spec("html") == ("html", None)
    assert writer.render("html", sample_report()).startswith("<!DOCTYPE html>")
    text = writer.render("html", sample_report(), options=writer.RenderOptions(fail_on="warn"))
    assert "exit 1: 3 failures, 2 errors, 2 warnings at or above --fail-on warn" in text


def test_cells_say_not_applicable_when_no_check_applied() -> None:
    report = synthetic_fleet(1)
    cell = html._cell([r for r in report.clusters[0].results if r.check_id.startswith("azure.")])
    assert cell == {"status": "n/a", "symbol": "·", "label": "not applicable"}
    assert html.worst(report.clusters[0].results) is Status.PASS
