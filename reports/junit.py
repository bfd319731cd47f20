"""JUnit XML in the Jenkins/Surefire dialect, so CI systems show each check as a test.

CI tools split ``classname`` on dots into package/class, so cluster names (often DNS-like) lose their
dots; categories stay the last component and group checks under each cluster. Warnings are passing tests
(with ``WARNING:`` in system-out) unless the run fails on them (``--fail-on warn``): then they are failures,
so a CI viewer agrees with the exit code.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence

from preflight.engine.model import Result, RunReport, Status

from . import changes
from ._common import as_utc, seconds, xml_safe
from .json_report import jsonable

ROOT_NAME = "meshery-preflight"
FLEET_SUITE = "fleet"
_INDENT = "\n  "


def suite_name(cluster_name: str) -> str:
    return xml_safe(cluster_name).replace(".", "_")


def _time(value: float) -> str:
    return f"{seconds(value):.3f}"


def _evidence_lines(result: Result) -> list[str]:
    lines = []
    for key, value in jsonable(dict(result.evidence)).items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
        lines.append(f"{key}: {text}")
    return lines


def _body(result: Result) -> str:
    lines = [result.message]
    if result.remediation:
        lines.append(f"Remediation: {result.remediation}")
    if result.docs_url:
        lines.append(f"Docs: {result.docs_url}")
    evidence = _evidence_lines(result)
    if evidence:
        lines.append("Evidence:")
        lines.extend(f"  {line}" for line in evidence)
    return xml_safe("\n".join(lines))


def _fails(result: Result, fail_on: str) -> bool:
    return result.status is Status.FAIL or (result.status is Status.WARN and fail_on == "warn")


def _testcase(parent: ET.Element, suite: str, result: Result, fail_on: str) -> None:
    case = ET.SubElement(
        parent,
        "testcase",
        {
            "name": xml_safe(f"{result.check_id}: {result.title}"),
            "classname": f"{suite}.{xml_safe(result.category)}",
            "time": _time(result.duration_s),
        },
    )
    message = xml_safe(changes.tag(result) + result.message)
    if result.status is Status.ERROR or _fails(result, fail_on):
        tag = "error" if result.status is Status.ERROR else "failure"
        outcome = ET.SubElement(case, tag, {"type": xml_safe(result.check_id), "message": message})
        outcome.text = _body(result)
    elif result.status is Status.SKIP:
        ET.SubElement(case, "skipped", {"message": message})
    elif result.status is Status.MUTED:
        ET.SubElement(case, "skipped", {"message": f"muted: {message}"})
    elif result.status is Status.WARN:
        ET.SubElement(case, "system-out").text = "WARNING: " + _body(result)


def _suite(
    name: str,
    results: Sequence[Result],
    *,
    index: int,
    timestamp: str,
    hostname: str,
    fail_on: str,
) -> ET.Element:
    suite = ET.Element(
        "testsuite",
        {
            "name": name,
            "tests": str(len(results)),
            "failures": str(sum(_fails(r, fail_on) for r in results)),
            "errors": str(sum(r.status is Status.ERROR for r in results)),
            "skipped": str(sum(r.status in (Status.SKIP, Status.MUTED) for r in results)),
            "time": _time(sum(seconds(r.duration_s) for r in results)),
            "timestamp": timestamp,
            "hostname": hostname,
            "id": str(index),
        },
    )
    for result in changes.ordered(results):
        _testcase(suite, name, result, fail_on)
    return suite


def _mark_aborted(suite: ET.Element, reason: str) -> None:
    """Properties must precede test cases in the Surefire schema, hence the insert at 0."""
    properties = ET.Element("properties")
    ET.SubElement(properties, "property", {"name": "aborted", "value": xml_safe(reason)})
    suite.insert(0, properties)


def chunks(report: RunReport, *, fail_on: str = "fail") -> Iterator[str]:
    """:func:`render`'s text one test suite (cluster) at a time, each indented as ``ET.indent`` would
    indent it inside the whole document: only one suite's elements exist at once."""
    timestamp = as_utc(report.started_at).replace(tzinfo=None).isoformat(timespec="seconds")
    hostname = xml_safe(socket.gethostname())
    results = report.all_results
    root = ET.Element(
        "testsuites",
        {
            "name": ROOT_NAME,
            "tests": str(len(results)),
            "failures": str(sum(_fails(r, fail_on) for r in results)),
            "errors": str(sum(r.status is Status.ERROR for r in results)),
            "skipped": str(sum(r.status in (Status.SKIP, Status.MUTED) for r in results)),
            "time": _time(report.duration_s),
        },
    )
    groups = changes.ordered_groups([(suite_name(c.name), c.results) for c in report.clusters])
    if report.fleet_results:
        groups.append((FLEET_SUITE, report.fleet_results))
    if report.aborted and not groups:
        # Nothing ran, but the abort still needs a suite to carry it: testsuites holds no properties.
        groups.append((ROOT_NAME, []))
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    if not groups:
        yield ET.tostring(root, encoding="unicode") + "\n"
        return
    end = f"</{root.tag}>"
    yield ET.tostring(root, encoding="unicode", short_empty_elements=False).removesuffix(end) + _INDENT
    for i, (name, group) in enumerate(groups):
        suite = _suite(name, group, index=i, timestamp=timestamp, hostname=hostname, fail_on=fail_on)
        if i == 0 and report.aborted:
            _mark_aborted(suite, report.aborted)
        ET.indent(suite, level=1)
        suite.tail = _INDENT if i < len(groups) - 1 else "\n"
        yield ET.tostring(suite, encoding="unicode")
    yield end + "\n"


def render(report: RunReport, *, fail_on: str = "fail") -> str:
    return "".join(chunks(report, fail_on=fail_on))
