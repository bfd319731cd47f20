"""Markdown for a GitHub step summary ($GITHUB_STEP_SUMMARY) or a GitLab merge-request note.

A fleet table first (one row per cluster with a problem, worst first), then each problem once with
the clusters it hits and its fix. Large fleets group and truncate with counts, so the text stays far
below GitHub's 1 MiB step-summary limit (and GitLab's 1,000,000-character note limit) at 500 clusters
and more; a final guard cuts at a line if unusual input still overflows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

from preflight.engine.model import (
    CHANGES,
    STATUS_RANK,
    ClusterReport,
    Result,
    RunReport,
    Status,
    cluster_status,
    severity,
)

from . import changes
from ._common import one_line, terminal_safe

LIMIT_BYTES = 1024 * 1024
BUDGET_BYTES = 512 * 1024
MAX_TABLE_ROWS = 300
MAX_PROBLEMS = 100
MAX_NAMES = 15
MAX_FAILED_IDS = 4
MAX_TEXT = 300
FLEET = "(fleet)"

ICONS: dict[Status, str] = {
    Status.PASS: "✅",
    Status.WARN: "⚠️",
    Status.FAIL: "❌",
    Status.SKIP: "⏭️",
    Status.ERROR: "❗",
    Status.MUTED: "🔇",
}
_SPECIAL_RE = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def text(value: str, limit: int = MAX_TEXT) -> str:
    """Untrusted text on one line, inert in Markdown and HTML, cut to ``limit`` characters."""
    flat = " ".join(terminal_safe(value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _SPECIAL_RE.sub(r"\\\1", flat.replace("&", "&amp;"))


def name(value: str, limit: int = MAX_TEXT) -> str:
    """A cluster name or check id: its control characters shown escaped (``\\n``), never a line break."""
    return text(one_line(value), limit)


def problems_of(results: Sequence[Result]) -> list[Result]:
    return changes.ordered([r for r in results if STATUS_RANK[r.status] > 0])


@dataclass
class Problem:
    """One check failing the same way (status and fix) on one or more clusters."""

    check_id: str
    title: str
    status: Status
    remediation: str
    docs_url: str
    message: str
    change: str | None
    clusters: list[str] = field(default_factory=list)


def _problems(report: RunReport) -> list[Problem]:
    groups: dict[tuple[str, Status, str], Problem] = {}
    pairs = chain(((c.name, r) for c in report.clusters for r in c.results), ((FLEET, r) for r in report.fleet_results))
    for name, r in pairs:
        if STATUS_RANK[r.status] == 0:
            continue
        key = (r.check_id, r.status, r.remediation)
        p = groups.get(key)
        if p is None:
            p = groups[key] = Problem(r.check_id, r.title, r.status, r.remediation, r.docs_url, r.message, r.change)
        elif changes.rank(r) < changes.change_rank(p.change):
            p.change, p.message = r.change, r.message
        p.clusters.append(name)
    return sorted(
        groups.values(),
        key=lambda p: (changes.change_rank(p.change), -severity(p.status), -len(p.clusters), p.check_id),
    )


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(name(n, 80) for n in names[:MAX_NAMES])
    more = len(names) - MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _row(cluster: ClusterReport) -> str:
    problems = problems_of(cluster.results)
    ids = [name(r.check_id, 60) + (f" ({r.change})" if changes.tag(r) else "") for r in problems[:MAX_FAILED_IDS]]
    if len(problems) > MAX_FAILED_IDS:
        ids.append(f"+{len(problems) - MAX_FAILED_IDS} more")
    status = cluster_status(cluster.results)
    cells = [name(cluster.name, 80), name(cluster.provider, 20), name(cluster.mode, 20)]
    return f"| {' | '.join(cells)} | {ICONS[status]} {status.value} | {', '.join(ids)} |"


def _header(report: RunReport) -> list[str]:
    bad = [c for c in report.clusters if cluster_status(c.results) is not Status.PASS]
    n = len(report.clusters)
    title = f"{len(bad)} of {n} cluster{'' if n == 1 else 's'} need attention" if bad else f"all {n} clusters pass"
    lines = [f"## {text(report.tool_name)}: {title}", ""]
    counts = ", ".join(f"{count} {status}" for status, count in report.summary.items())
    lines.append(f"Results: {counts}. Run took {report.duration_s:.1f}s.")
    if report.shard:
        lines.append(f"Shard {report.shard[0]} of {report.shard[1]} (counting from 0); fleet checks run unsharded.")
    headline = changes.headline(report)
    if headline:
        lines.append(f"**Changes {text(headline)}**")
    if report.aborted:
        lines.append(f"> **Run aborted:** {text(report.aborted)} (results are incomplete)")
    return lines


def _urgency(cluster: ClusterReport) -> tuple[int, int]:
    problems = problems_of(cluster.results)
    return (min((changes.rank(r) for r in problems), default=len(CHANGES)), -severity(cluster_status(cluster.results)))


def _table(report: RunReport) -> list[str]:
    clusters = [c for c in report.clusters if cluster_status(c.results) is not Status.PASS]
    clusters.sort(key=_urgency)
    passing = [c.name for c in report.clusters if cluster_status(c.results) is Status.PASS]
    lines = ["", "### Fleet", ""]
    if clusters:
        lines += ["| Cluster | Provider | Mode | Worst | What failed |", "|---|---|---|---|---|"]
        lines += [_row(c) for c in clusters[:MAX_TABLE_ROWS]]
        if len(clusters) > MAX_TABLE_ROWS:
            lines.append(f"| … and {len(clusters) - MAX_TABLE_ROWS} more clusters with problems | | | | |")
    if passing:
        lines += ["", f"{ICONS[Status.PASS]} {len(passing)} passed every check: {_names(passing)}"]
    return lines


def _problem(p: Problem) -> list[str]:
    tag = f"[{p.change}] " if p.change and p.change != "unchanged" else ""
    head = f"#### {ICONS[p.status]} {tag}{name(p.check_id, 80)}: {text(p.title, 120)} ({p.status.value})"
    n = len(p.clusters)
    where = (
        "Fleet-wide check" if p.clusters == [FLEET] else f"On {n} cluster{'' if n == 1 else 's'}: {_names(p.clusters)}"
    )
    lines = [head, "", where, "", f"> {text(p.message)}"]
    if p.remediation:
        lines += ["", f"**Fix:** {text(p.remediation, 600)}"]
    if p.docs_url:
        lines.append(f"[Docs]({p.docs_url.replace(')', '%29').replace(' ', '%20')})")
    return [*lines, ""]


def render(report: RunReport) -> str:
    lines = _header(report) + _table(report)
    problems = _problems(report)
    if problems:
        lines += ["", "### Problems and fixes", ""]
        for p in problems[:MAX_PROBLEMS]:
            lines += _problem(p)
        if len(problems) > MAX_PROBLEMS:
            lines.append(f"… and {len(problems) - MAX_PROBLEMS} more problems: see the JSON or JUnit report.")
    return _fit("\n".join(lines).rstrip("\n") + "\n")


def _fit(doc: str) -> str:
    """Cut at a line boundary when the document would exceed the budget (hostile or huge input)."""
    data = doc.encode("utf-8")
    if len(data) <= BUDGET_BYTES:
        return doc
    cut = data[:BUDGET_BYTES].decode("utf-8", "ignore").rsplit("\n", 1)[0]
    return cut + "\n\n… truncated: the summary would exceed the step-summary limit; see the JSON report.\n"
