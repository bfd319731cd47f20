"""What a console line may hold: a context name cannot forge a line, a narrow terminal wraps text below its
row instead of cutting it, and a command in a fix stands alone on its line, whole, so it pastes."""

from __future__ import annotations

import dataclasses
import re

import pytest

from preflight.engine.model import ClusterReport, RunReport, Status
from preflight.reports import console, markdown
from preflight.reports._common import is_pasteable
from tests.report_samples import result, sample_report

FORGED = "prod-eu\n\ncluster prod-eu ✔ pass  (12 pass)\r\x1b[2Kok"
COMMAND = "aws ec2 authorize-security-group-ingress --group-id sg-0abc --protocol tcp --port 4222 --cidr 127.0.0.0/8"


def _report(
    name: str = "prod-eu", check_id: str = "broker.tcp", message: str | None = None, remediation: str = "Open it."
) -> RunReport:
    r = dataclasses.replace(result(check_id, Status.FAIL, message=message), remediation=remediation)
    cluster = ClusterReport(name, "https://127.0.0.1:6443", "eks", "operator", [r])
    return dataclasses.replace(sample_report(), clusters=[cluster], fleet_results=[])


@pytest.mark.parametrize("verbose", [False, True])
def test_a_line_break_in_a_context_name_cannot_forge_a_line(verbose: bool) -> None:
    text = console.render(_report(FORGED), verbose=verbose)
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith("cluster prod-eu ✔")], text
    assert "\r" not in text and "\x1b" not in text
    escaped = "prod-eu\\n\\ncluster prod-eu ✔ pass  (12 pass)\\r\\e[2Kok"
    assert f"cluster {escaped}" in text  # the header shows the whole name, escaped
    if not verbose:
        assert any(escaped[:30] in line for line in lines if line.startswith("  ✖ fail"))  # the fleet table's row


def test_markdown_shows_the_name_escaped_on_one_row() -> None:
    text = markdown.render(_report(FORGED))
    rows = [line for line in text.splitlines() if "prod-eu" in line]
    assert rows and all(line.startswith("|") or "prod-eu\\\\n" in line for line in rows), text
    assert "prod-eu\\\\n\\\\ncluster prod-eu" in text  # `\n` shown, its backslash escaped for Markdown


def test_at_40_columns_text_wraps_below_the_row_instead_of_being_cut() -> None:
    message = "the Broker's port is refused by every node of this cluster, from every origin address given"
    # The longest shipped check id: the row leaves the message no room beside it.
    report = _report(check_id="fleet.broker-endpoint-collision", message=message, remediation="Open it.")
    text = console.render(report, width=40)
    assert "…" not in text.split("fleet:")[0], text  # no fragment like `is re…`: only the table cuts
    assert " ".join(message.split()) in " ".join(text.split())
    assert "fleet.broker-endpoint-collision" in text.split()
    assert max(len(line) for line in text.splitlines() if not is_pasteable(line)) <= 40
    assert "exit 1: 1 failure at or above --fail-on fail" in " ".join(text.split())


@pytest.mark.parametrize("width", [None, 40, 120])
def test_a_command_stands_alone_on_its_line_whole(width: int | None) -> None:
    fix = f"Allow the origin:\n{COMMAND}\n{COMMAND.replace('127.0.0.0/8', '::1/128')}"
    text = console.render(_report(remediation=fix), width=width)
    lines = [line.strip() for line in text.splitlines()]
    assert COMMAND in lines and COMMAND.replace("127.0.0.0/8", "::1/128") in lines, text
    assert not [line for line in lines if line.endswith("/8.")]


def test_a_fix_that_is_only_a_command_starts_on_the_next_line() -> None:
    text = console.render(_report(remediation=COMMAND), width=80)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == COMMAND)
    assert lines[at - 1].strip() == "fix:"


def test_prose_that_merely_mentions_a_command_still_wraps() -> None:
    fix = "Issue a fresh token (kubectl create token SA --duration 1h) " + "and wait " * 20
    text = console.render(_report(remediation=fix), width=60)
    prose = [line for line in text.splitlines() if not is_pasteable(line)]
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in prose) <= 60
    assert "(kubectl create token SA --duration 1h)" in " ".join(text.split())
