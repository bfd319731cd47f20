"""The hook every renderer uses to show what changed since ``--baseline`` first.

Without a baseline every function here is the identity, so renderers need no branch of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from preflight.engine.model import CHANGES, Result, RunReport

from ._common import as_utc

_ORDER = {c: i for i, c in enumerate(CHANGES)}
T = TypeVar("T")


def rank(result: Result) -> int:
    return change_rank(result.change)


def change_rank(change: str | None) -> int:
    """0 for new, up to len(CHANGES) - 1 for unchanged (and results without a baseline)."""
    return _ORDER.get(change or "unchanged", len(CHANGES))


def ordered(results: Sequence[Result]) -> list[Result]:
    """What got worse first, then what moved, then the rest; stable within each group."""
    return sorted(results, key=rank)


def ordered_groups(groups: Sequence[tuple[T, Sequence[Result]]]) -> list[tuple[T, Sequence[Result]]]:
    """Groups (clusters) holding the most urgent change first; stable otherwise."""
    return sorted(groups, key=lambda g: min((rank(r) for r in g[1]), default=len(CHANGES)))


def tag(result: Result) -> str:
    """``[new] `` and the like in front of a message; nothing for unchanged results or without a baseline."""
    return f"[{result.change}] " if result.change and result.change != "unchanged" else ""


def headline(report: RunReport) -> str | None:
    """One line on the comparison, or None without a baseline."""
    info = report.baseline
    if info is None:
        return None
    counts = ", ".join(f"{info.counts.get(c, 0)} {c}" for c in CHANGES)
    gone = f", {info.gone} no longer checked" if info.gone else ""
    when = as_utc(info.started_at).strftime("%Y-%m-%d %H:%M UTC")
    return f"since the baseline of {when}: {counts}{gone}"
