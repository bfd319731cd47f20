"""The optional ``meshery_code`` of a result in the reports: JSON (schema, read back, merge) and the HTML detail,
in a real browser."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from preflight.engine.merge import merge
from preflight.engine.model import RunReport, Status
from preflight.reports import html, json_report
from tests.report_samples import synthetic_fleet
from tests.reports.browser import chromium, console_errors, file_url


def _coded(n: int = 3) -> RunReport:
    """The synthetic fleet with its broker.tcp fails as Meshery's broker_unreachable."""
    report = synthetic_fleet(n)
    for c in report.clusters:
        c.results = [
            dataclasses.replace(r, meshery_code="broker_unreachable")
            if r.check_id == "broker.tcp" and r.status is Status.FAIL
            else r
            for r in c.results
        ]
    return report


def _tcp(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for c in doc["clusters"] for r in c["results"] if r["check_id"] == "broker.tcp"]


def test_json_writes_the_code_only_where_there_is_one_validates_and_reads_back() -> None:
    report = _coded()
    doc = json.loads(json_report.render(report))
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)
    tcp = _tcp(doc)
    assert [r.get("meshery_code") for r in tcp if r["status"] == "fail"] == ["broker_unreachable"]
    assert all("meshery_code" not in r for c in doc["clusters"] for r in c["results"] if r["check_id"] != "broker.tcp")
    back = json_report.from_document(doc)
    assert [r.meshery_code for c in back.clusters for r in c.results] == [
        r.meshery_code for c in report.clusters for r in c.results
    ]


def test_the_schema_refuses_a_code_meshery_does_not_have() -> None:
    doc = json.loads(json_report.render(_coded()))
    next(r for r in _tcp(doc) if "meshery_code" in r)["meshery_code"] = "broker_down"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)


def test_merge_keeps_each_clusters_codes() -> None:
    first = json_report.from_document(json.loads(json_report.render(_coded())))
    merged = json.loads(json_report.render(merge([("a.json", first)])))
    assert [r.get("meshery_code") for r in _tcp(merged) if r["status"] == "fail"] == ["broker_unreachable"]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html.render(_coded()), encoding="utf-8")
    with chromium() as driver:
        driver.get(file_url(path))
        yield driver
        assert console_errors(driver) == []


def test_the_html_detail_says_it_in_mesherys_words(page: Any) -> None:
    page.find_element("css selector", "tr[data-name='cluster-0002-broker-filtered']").find_element(
        "css selector", "button.open[data-category=broker]"
    ).click()
    (tcp,) = page.find_elements("css selector", "#detail-results li[data-check-id='broker.tcp']")
    said = tcp.find_element("css selector", ".meshery-code")
    assert said.is_displayed() and said.text == "In Meshery's words: broker_unreachable"
    page.find_element("id", "detail-all").click()
    others = page.find_elements("css selector", "#detail-results li:not([data-check-id='broker.tcp'])")
    assert others and not any(li.find_element("css selector", ".meshery-code").is_displayed() for li in others)


def test_the_html_text_filter_finds_clusters_by_code(page: Any) -> None:
    box = page.find_element("id", "f-text")
    box.clear()
    box.send_keys("broker_unreachable")
    rows = page.find_elements("css selector", "#matrix tbody tr")
    assert [tr.get_attribute("data-name") for tr in rows if tr.is_displayed()] == ["cluster-0002-broker-filtered"]
