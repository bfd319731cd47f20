"""Human-readable report for a terminal or a CI log.

Every non-passing line carries its fix right underneath, so a reader never has to cross-reference
another document to act on a finding.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from preflight.model import STATUS_ORDER, Result, RunReport, Status, summarize

from . import changes
from ._common import terminal_safe

SYMBOLS: dict[Status, str] = {
    Status.PASS: "✔",
    Status.WARN: "!",
    Status.FAIL: "✖",
    Status.SKIP: "-",
    Status.ERROR: "?",
    Status.MUTED: "~",
}
COLORS: dict[Status, str] = {
    Status.PASS: "32",
    Status.WARN: "33",
    Status.FAIL: "31",
    Status.SKIP: "36",
    Status.ERROR: "35",
    Status.MUTED: "90",
}
_BOLD = "1"
_ABORT = "1;31"
_DOCS_STATUSES = frozenset({Status.WARN, Status.FAIL, Status.ERROR})
_INDENT = "  "
_DETAIL_INDENT = "      "


class _Stream(Protocol):
    def isatty(self) -> bool: ...


def want_color(stream: _Stream) -> bool:
    """Default colour choice for ``stream``: off for pipes and files, and off when NO_COLOR is set.

    Per https://no-color.org, an empty NO_COLOR counts as unset; any other value disables colour.
    """
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text


def _hang(text: str, indent: str) -> str:
    """Keep continuation lines of multi-line text under the first one."""
    return terminal_safe(text).replace("\n", "\n" + indent)


def _summary_line(counts: Mapping[str, int], paint: _Painter) -> str:
    parts = []
    for status in STATUS_ORDER:
        n = counts.get(status.value, 0)
        part = f"{n} {status.value}"
        parts.append(paint(part, COLORS[status]) if n else part)
    return ", ".join(parts)


def _result_lines(results: list[Result], paint: _Painter) -> list[str]:
    if not results:
        return [f"{_INDENT}(no results)"]
    width = max(len(terminal_safe(r.check_id)) for r in results)
    lines = []
    # Checks that do not apply here (embedded mode, another cloud) fold into one line: nothing to act on.
    idle = [r for r in results if r.status is Status.SKIP and not r.remediation]
    for r in changes.ordered(results):
        if r in idle:
            continue
        head = paint(f"{SYMBOLS[r.status]} {r.status.value:<5}", COLORS[r.status])
        check_id = terminal_safe(r.check_id).ljust(width)
        message_indent = _INDENT + " " * (7 + 2 + width + 2)
        lines.append(f"{_INDENT}{head}  {check_id}  {_hang(changes.tag(r) + r.message, message_indent)}")
        if r.status is Status.PASS:
            continue
        if r.remediation:
            lines.append(f"{_DETAIL_INDENT}fix: {_hang(r.remediation, _DETAIL_INDENT + '     ')}")
        if r.status in _DOCS_STATUSES and r.docs_url:
            lines.append(f"{_DETAIL_INDENT}docs: {terminal_safe(r.docs_url)}")
    if idle:
        head = paint(f"{SYMBOLS[Status.SKIP]} {Status.SKIP.value:<5}", COLORS[Status.SKIP])
        names = ", ".join(terminal_safe(r.check_id) for r in idle)
        lines.append(f"{_INDENT}{head}  {len(idle)} not applicable here: {_hang(names, _DETAIL_INDENT)}")
    return lines


def _duration(total: float) -> str:
    if total < 60:
        return f"{max(total, 0.0):.2f}s"
    minutes, secs = divmod(round(total, 1), 60)
    return f"{int(minutes)}m{secs:04.1f}s"


def render(report: RunReport, *, color: bool) -> str:
    paint = _Painter(color)
    lines = [paint(f"{terminal_safe(report.tool_name)} {terminal_safe(report.tool_version)}", _BOLD)]
    if report.origin_cidrs:
        lines[0] += " from " + ", ".join(terminal_safe(c) for c in report.origin_cidrs)
    abort_banner = None
    if report.aborted:
        abort_banner = paint(f"RUN ABORTED: {terminal_safe(report.aborted)} (results are incomplete)", _ABORT)
        lines.append(abort_banner)
    if changes.headline(report):
        lines.append(paint(str(changes.headline(report)), _BOLD))

    for cluster, _ in changes.ordered_groups([(c, c.results) for c in report.clusters]):
        lines.append("")
        name = paint(f"cluster {terminal_safe(cluster.name)}", _BOLD)
        lines.append(
            f"{name}  server={terminal_safe(cluster.server)} provider={terminal_safe(cluster.provider)}"
            f" mode={terminal_safe(cluster.mode)}"
        )
        lines.extend(_result_lines(cluster.results, paint))
        lines.append(f"{_INDENT}{_summary_line(cluster.summary, paint)}")

    if report.fleet_results:
        lines.append("")
        lines.append(paint("fleet", _BOLD))
        lines.extend(_result_lines(report.fleet_results, paint))
        lines.append(f"{_INDENT}{_summary_line(summarize(report.fleet_results), paint)}")

    n = len(report.clusters)
    lines.append("")
    lines.append(
        f"{paint('total', _BOLD)}: {_summary_line(report.summary, paint)}"
        f" | {n} cluster{'' if n == 1 else 's'} in {_duration(report.duration_s)}"
    )
    if abort_banner:
        lines.append(abort_banner)
    return "\n".join(lines) + "\n"
