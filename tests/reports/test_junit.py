from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from preflight.engine.model import RunReport, Status
from preflight.reports import junit
from tests.report_samples import DOTTED_CLUSTER, MUTE_REASON, empty_aborted_report, sample_report

XSD_PATH = Path(__file__).parent.parent / "data" / "junit.xsd"
DOTTED_SUITE = DOTTED_CLUSTER.replace(".", "_")


@pytest.fixture(scope="module")
def xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def _parse(report: RunReport) -> Any:
    return etree.fromstring(junit.render(report).encode("utf-8"))


def _case(root: Any, suite: str, check_id: str) -> Any:
    (case,) = root.xpath(f"testsuite[@name='{suite}']/testcase[starts-with(@name, '{check_id}: ')]")
    return case


@pytest.mark.parametrize(
    "report",
    [sample_report(), sample_report(aborted="interrupted"), empty_aborted_report()],
    ids=["plain", "aborted", "empty-aborted"],
)
def test_validates_against_xsd(xsd: etree.XMLSchema, report: RunReport) -> None:
    root = _parse(report)
    assert root.tag == "testsuites"
    xsd.assertValid(root)


def test_xsd_rejects_what_it_should(xsd: etree.XMLSchema) -> None:
    """The XSD is only a useful oracle if it fails documents that break the contract."""
    root = _parse(sample_report())
    suite = root.find("testsuite")
    suite.set("timestamp", "2026-11-24T01:02:03Z")
    assert not xsd.validate(root)
    suite.set("timestamp", "2026-11-24T01:02:03")
    suite.find("testcase").set("time", "fast")
    assert not xsd.validate(root)
    suite.find("testcase").set("time", "0.100")
    suite.find("testcase").append(etree.Element("failure"))
    suite.find("testcase").append(etree.Element("error"))
    assert not xsd.validate(root)


def test_root_totals() -> None:
    root = _parse(sample_report())
    assert dict(root.attrib) == {
        "name": "meshery-preflight",
        "tests": "13",
        "failures": "3",
        "errors": "2",
        "skipped": "3",
        "time": "12.346",
    }


def test_suites_per_cluster_and_fleet() -> None:
    root = _parse(sample_report())
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [DOTTED_SUITE, "staging-gke", "fleet"]
    assert [s.get("id") for s in suites] == ["0", "1", "2"]
    counts = [tuple(s.get(k) for k in ("tests", "failures", "errors", "skipped")) for s in suites]
    assert counts == [("6", "1", "1", "2"), ("5", "1", "1", "1"), ("2", "1", "0", "0")]
    for suite in suites:
        assert len(suite.findall("testcase")) == int(suite.get("tests"))
        assert len(suite.findall("testcase/failure")) == int(suite.get("failures"))
        assert len(suite.findall("testcase/error")) == int(suite.get("errors"))
        assert len(suite.findall("testcase/skipped")) == int(suite.get("skipped"))
        assert suite.get("timestamp") == "2026-11-24T01:02:03"
        assert suite.get("hostname") == socket.gethostname()
    assert suites[0].get("time") == "2.115"


def test_no_fleet_suite_without_fleet_results() -> None:
    report = sample_report()
    report.fleet_results = []
    assert [s.get("name") for s in _parse(report).findall("testsuite")] == [DOTTED_SUITE, "staging-gke"]


def test_testcase_naming_and_times() -> None:
    root = _parse(sample_report())
    case = _case(root, DOTTED_SUITE, "c1.egress")
    assert case.get("name") == "c1.egress: Title of c1.egress"
    assert case.get("classname") == f"{DOTTED_SUITE}.network"
    assert _case(root, "fleet", "fleet.overlap").get("classname") == "fleet.addressing"
    for case in root.iter("testcase"):
        cluster, category = case.get("classname").rsplit(".", 1)
        assert "." not in cluster and cluster == case.getparent().get("name")
    times = [e.get("time") for e in root.iter() if e.get("time") is not None]
    assert len(times) == 1 + 3 + 13
    assert all(re.fullmatch(r"\d+\.\d{3}", t) for t in times), times


def test_failure_and_error_bodies() -> None:
    root = _parse(sample_report())
    failure = _case(root, DOTTED_SUITE, "c1.egress").find("failure")
    assert failure.get("type") == "c1.egress"
    assert failure.get("message") == "connection refused by peer"
    body = failure.text.splitlines()
    assert body[:3] == [
        "connection refused by peer",
        "Remediation: Remediate c1.egress",
        "Docs: https://github.com/meshery/meshery-preflight/blob/main/docs/checks.md#c1-egress",
    ]
    assert "  ports: [80, 443, 8443]" in body
    assert "  raw: <4 bytes>" in body
    assert "  status: fail" in body
    assert "  opaque: opaque-object" in body
    error = _case(root, "staging-gke", "c2.api").find("error")
    assert error.get("type") == "c2.api"
    assert error.get("message") == "bad bytes from server\ufffd"
    assert "Remediation: Remediate c2.api" in error.text


def test_skip_muted_and_warn() -> None:
    root = _parse(sample_report())
    assert _case(root, DOTTED_SUITE, "c1.nats").find("skipped").get("message") == "c1.nats is skip"
    assert _case(root, DOTTED_SUITE, "c1.mtu").find("skipped").get("message") == f"muted: {MUTE_REASON}"
    warn = _case(root, DOTTED_SUITE, "c1.tls")
    assert [child.tag for child in warn] == ["system-out"]
    assert "c1.tls is warn" in warn.find("system-out").text
    assert "Remediation: Remediate c1.tls" in warn.find("system-out").text
    assert len(_case(root, DOTTED_SUITE, "c1.dns")) == 0


def test_no_ansi_or_illegal_characters() -> None:
    text = junit.render(sample_report())
    assert "\x1b" not in text and "pwned" not in text
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text)
    text.encode("utf-8")


def test_aborted_property_on_first_suite(xsd: etree.XMLSchema) -> None:
    root = _parse(sample_report(aborted="interrupted by user"))
    first = root.find("testsuite")
    assert first[0].tag == "properties"
    (prop,) = first.findall("properties/property")
    assert (prop.get("name"), prop.get("value")) == ("aborted", "interrupted by user")
    assert len(root.findall(".//properties")) == 1
    assert not _parse(sample_report()).findall(".//properties")


def test_aborted_with_nothing_run_still_says_so() -> None:
    root = _parse(empty_aborted_report())
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "0" and root.get("tests") == "0"
    assert suite.find("properties/property").get("value") == "interrupted by user (SIGINT)"


def test_statuses_all_covered() -> None:
    statuses = {r.status for r in sample_report().all_results}
    assert statuses == set(Status)


def test_warnings_fail_with_fail_on_warn(xsd: etree.XMLSchema) -> None:
    """With --fail-on warn the run exits 1 on a warning, so CI viewers must show it red too."""
    root = etree.fromstring(junit.render(sample_report(), fail_on="warn").encode("utf-8"))
    xsd.assertValid(root)
    warn = _case(root, DOTTED_SUITE, "c1.tls")
    (failure,) = warn.findall("failure")
    assert failure.get("type") == "c1.tls" and failure.get("message") == "c1.tls is warn"
    assert "Remediation: Remediate c1.tls" in failure.text
    assert root.get("failures") == "5"  # 3 failures + 2 warnings
    assert root.find(f"testsuite[@name='{DOTTED_SUITE}']").get("failures") == "2"
    for fail_on in ("fail", "error"):
        plain = etree.fromstring(junit.render(sample_report(), fail_on=fail_on).encode("utf-8"))
        assert plain.get("failures") == "3"
        assert [child.tag for child in _case(plain, DOTTED_SUITE, "c1.tls")] == ["system-out"]
