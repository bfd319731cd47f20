from __future__ import annotations

import dataclasses
import io
import re

import pytest

from preflight.engine.model import Status
from preflight.reports import console
from tests.report_samples import (
    DOTTED_CLUSTER,
    MUTE_REASON,
    PLAIN_CLUSTER,
    empty_aborted_report,
    sample_report,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _lines(color: bool = False, aborted: str | None = None) -> list[str]:
    """The verbose view: every result listed."""
    return console.render(sample_report(aborted=aborted), color=color, verbose=True).splitlines()


def _result_line_index(lines: list[str], check_id: str) -> int:
    matches = [i for i, line in enumerate(lines) if re.search(rf"\s{re.escape(check_id)}\s", line)]
    assert len(matches) == 1, (check_id, matches)
    return matches[0]


def test_no_escape_sequences_without_color() -> None:
    text = console.render(sample_report(aborted="SIGINT"), color=False)
    assert "\x1b" not in text
    assert "\x07" not in text and "\x00" not in text


def test_colours_per_status_with_color() -> None:
    text = console.render(sample_report(), color=True, verbose=True)
    for status in Status:
        assert f"\x1b[{console.COLORS[status]}m{console.SYMBOLS[status]} {status.value}" in text
    stripped = ANSI.sub("", text)
    assert "\x1b" not in stripped, "only SGR colour codes may be emitted"
    assert stripped == console.render(sample_report(), color=False, verbose=True)
    default = console.render(sample_report(), color=True)
    assert ANSI.sub("", default) == console.render(sample_report(), color=False)


def test_remote_escape_sequences_are_neutralised() -> None:
    text = console.render(sample_report(), color=True)
    assert "pwned" not in text
    assert "connection refused by peer" in text


def test_cluster_headers() -> None:
    lines = _lines()
    headers = [line for line in lines if line.startswith("cluster ")]
    assert headers == [
        f"cluster {DOTTED_CLUSTER}  server=https://prod.example.com:6443 provider=eks mode=in-cluster",
        f"cluster {PLAIN_CLUSTER}  server=https://34.1.2.3 provider=gke mode=out-of-cluster",
    ]
    assert lines.index(headers[0]) < _result_line_index(lines, "c1.dns") < lines.index(headers[1])
    assert lines.index(headers[1]) < _result_line_index(lines, "c2.dns")


@pytest.mark.parametrize(
    ("check_id", "status", "wants_docs"),
    [
        ("c1.tls", Status.WARN, True),
        ("c1.egress", Status.FAIL, True),
        ("c1.api", Status.ERROR, True),
        ("c1.nats", Status.SKIP, False),
        ("c1.mtu", Status.MUTED, False),
        ("fleet.overlap", Status.FAIL, True),
    ],
)
def test_non_passing_results_carry_fix_underneath(check_id: str, status: Status, wants_docs: bool) -> None:
    lines = _lines()
    i = _result_line_index(lines, check_id)
    assert lines[i].lstrip().startswith(f"{console.SYMBOLS[status]} {status.value}")
    assert re.fullmatch(rf"\s+fix: Remediate {re.escape(check_id)}", lines[i + 1])
    docs_line = re.fullmatch(r"\s+docs: (https://\S+)", lines[i + 2])
    if wants_docs:
        assert docs_line and docs_line.group(1).endswith("#" + check_id.replace(".", "-"))
    else:
        assert docs_line is None


@pytest.mark.parametrize("check_id", ["c1.dns", "c2.dns", "fleet.versions"])
def test_passing_results_have_no_fix(check_id: str) -> None:
    lines = _lines()
    i = _result_line_index(lines, check_id)
    assert lines[i].lstrip().startswith("✔ pass")
    assert "fix:" not in lines[i + 1] and "docs:" not in lines[i + 1]


def test_muted_shows_its_reason() -> None:
    lines = _lines()
    assert lines[_result_line_index(lines, "c1.mtu")].endswith(MUTE_REASON)


def test_summaries_and_fleet_section() -> None:
    lines = _lines()
    assert "  1 pass, 1 warn, 1 fail, 1 skip, 1 error, 1 muted" in lines
    assert "  1 pass, 1 warn, 1 fail, 0 skip, 1 error, 1 muted" in lines
    fleet = lines.index("fleet")
    assert fleet < _result_line_index(lines, "fleet.overlap") < _result_line_index(lines, "fleet.versions")
    assert "  1 pass, 0 warn, 1 fail, 0 skip, 0 error, 0 muted" in lines[fleet:]
    assert lines[-2] == "total: 3 pass, 2 warn, 3 fail, 1 skip, 2 error, 2 muted | 2 clusters in 12.35s"
    assert lines[-1] == "exit 1: 3 failures, 2 errors at or above --fail-on fail"


def test_multiline_message_stays_indented() -> None:
    report = sample_report()
    first = report.clusters[0].results[0]
    report.clusters[0].results[0] = dataclasses.replace(first, message="line one\nline two")
    lines = console.render(report, color=False, verbose=True).splitlines()
    i = _result_line_index(lines, "c1.dns")
    assert lines[i].endswith("line one")
    assert lines[i + 1].strip() == "line two"
    assert lines[i + 1].index("line two") == lines[i].index("line one")


def test_aborted_is_prominent() -> None:
    lines = _lines(aborted="interrupted by user")
    banner = "RUN ABORTED: interrupted by user (results are incomplete)"
    assert lines[1] == banner
    assert lines[-1] == banner
    assert not any("ABORTED" in line for line in _lines())
    coloured = console.render(sample_report(aborted="x"), color=True)
    assert "\x1b[1;31mRUN ABORTED: x" in coloured


def test_aborted_before_any_check() -> None:
    text = console.render(empty_aborted_report(), color=False)
    assert "RUN ABORTED: interrupted by user (SIGINT)" in text
    assert "0 clusters" in text
    assert "\nfleet\n" not in text


class _FakeStream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_want_color_on_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert console.want_color(_FakeStream(True)) is True


@pytest.mark.parametrize("value", ["1", "0", "false", "yes"])
def test_want_color_respects_no_color(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NO_COLOR", value)
    assert console.want_color(_FakeStream(True)) is False


def test_empty_no_color_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    assert console.want_color(_FakeStream(True)) is True


def test_want_color_off_for_non_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert console.want_color(_FakeStream(False)) is False
    assert console.want_color(io.StringIO()) is False
    closed = io.StringIO()
    closed.close()
    assert console.want_color(closed) is False


def test_checks_that_do_not_apply_fold_into_one_line() -> None:
    import datetime as dt

    from preflight.engine.model import ClusterReport, Result, RunReport, Severity, Status

    def res(cid: str, status: Status, remediation: str) -> Result:
        return Result(cid, cid, "x", Severity.LOW, status, f"{cid} message", remediation, "https://d", {}, 0.0)

    now = dt.datetime.now(dt.timezone.utc)
    cluster = ClusterReport(
        "c",
        "https://c",
        "other",
        "embedded",
        [
            res("a.pass", Status.PASS, "fix a"),
            res("b.blocked", Status.SKIP, "Fix a.fail first; this check runs once it passes."),
            res("c.idle", Status.SKIP, ""),
            res("d.idle", Status.SKIP, ""),
        ],
    )
    text = console.render(RunReport("t", "0", now, now, [], [cluster], []), color=False, verbose=True)
    assert "2 not applicable here: c.idle, d.idle" in text
    assert "c.idle message" not in text
    assert "b.blocked message" in text and "Fix a.fail first" in text
