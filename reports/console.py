"""Human-readable report for a terminal or a CI log.

The default view scales to fleets: per cluster one header with its worst status, then only what needs a
person (warnings, failures, errors, muted results, skips that say what to do), each with its fix right
underneath; passes and not-applicable skips are counts, and checks held back by a failure fold into one
line under it. A worst-first fleet table and the exit code with its reason close the report. ``verbose``
lists every result. On a terminal no line is wider than the terminal.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from preflight.engine.model import (
    STATUS_ORDER,
    ClusterReport,
    Result,
    RunReport,
    Status,
    cluster_status,
    is_not_applicable,
    severity,
    summarize,
)

from . import changes
from ._common import is_command, one_line, plural, strip_ansi, terminal_safe
from .options import RenderOptions, verdict

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
# Without a terminal (CI logs, files) lists of check ids and cluster names still stop here, with a count.
LIST_WIDTH = 160
# Fewest columns a wrapped text gets beside its head; with less, it wraps below the head.
MIN_ROOM = 24
# Longest message or fix the default view prints in full; -v and the JSON report keep everything.
TEXT_LIMIT = 1000


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


def terminal_width(stream: _Stream) -> int | None:
    """Columns of the terminal ``stream`` writes to; None for pipes and files, which are never wrapped."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError, OSError):
        return None
    return max(shutil.get_terminal_size().columns, 40)


def blocked_by(result: Result) -> str | None:
    """The failing check a skipped check waits on, when that is why it was skipped."""
    if result.status is not Status.SKIP or not result.remediation:
        return None
    root = result.evidence.get("blocked_by")
    return root if isinstance(root, str) and root else None


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text


def _visible_len(text: str) -> int:
    return len(strip_ansi(text))


def _truncate(line: str, width: int) -> str:
    """Cut ``line`` to ``width`` visible characters (colour codes are free), ending in an ellipsis."""
    if _visible_len(line) <= width:
        return line
    out, seen, i = [], 0, 0
    while i < len(line) and seen < width - 1:
        if line[i] == "\x1b":
            end = line.find("m", i)
            out.append(line[i : end + 1])
            i = end + 1
            continue
        out.append(line[i])
        seen += 1
        i += 1
    tail = "\x1b[0m" if "\x1b[" in line else ""
    return "".join(out) + "…" + tail


def join_limited(items: Sequence[str], room: int) -> str:
    """``a, b, c, … +N more`` in at most ``room`` characters (always at least one item)."""
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        tail = f", … +{rest} more" if rest else ""
        candidate = ", ".join([*shown, item]) + tail
        if shown and len(candidate) > room:
            break
        shown.append(item)
    left = len(items) - len(shown)
    return ", ".join(shown) + (f", … +{left} more" if left else "")


def _summary_line(counts: Mapping[str, int], paint: _Painter) -> str:
    parts = []
    for status in STATUS_ORDER:
        n = counts.get(status.value, 0)
        part = f"{n} {status.value}"
        parts.append(paint(part, COLORS[status]) if n else part)
    return ", ".join(parts)


def _duration(total: float) -> str:
    if total < 60:
        return f"{max(total, 0.0):.2f}s"
    minutes, secs = divmod(round(total, 1), 60)
    return f"{int(minutes)}m{secs:04.1f}s"


class _Renderer:
    def __init__(self, options: RenderOptions) -> None:
        self.opts = options
        self.paint = _Painter(options.color)
        self.width = options.width
        self.list_room = (options.width or LIST_WIDTH) - len(_DETAIL_INDENT)
        self.docs_shown: set[str] = set()
        self.fixes_shown: dict[tuple[str, str], str] = {}
        self.lines: list[str] = []

    # -- text shaping --------------------------------------------------------------------------------

    def emit(self, line: str, *, whole: bool = False, cut: bool = False) -> None:
        """One line fitted to the terminal: wrapped at its words, continuing below at a deeper indent;
        ``cut`` (a table row) ends in an ellipsis instead; ``whole`` (a command, a link) stays as it is,
        since a command cut or folded by us would not paste."""
        if not self.width or whole or _visible_len(line) <= self.width:
            self.lines.append(line)
            return
        if cut:
            self.lines.append(_truncate(line, self.width))
            return
        lead = " " * (len(line) - len(line.lstrip(" ")) + 4)
        if max(_visible_len(word) for word in line.split()) > self.width - len(lead):
            # A word (a long context name) wider than a line is broken; its colour would break with it.
            line = strip_ansi(line)
        for part in textwrap.wrap(line, self.width, subsequent_indent=lead, break_on_hyphens=False):
            self.lines.append(_truncate(part, self.width))

    def take(self) -> str:
        """The lines emitted since the last call, each ending in a newline."""
        text = "".join(line + "\n" for line in self.lines)
        self.lines.clear()
        return text

    def _text(self, text: str) -> str:
        text = terminal_safe(text)
        if not self.opts.verbose and len(text) > TEXT_LIMIT:
            text = text[:TEXT_LIMIT] + f"… ({len(text) - TEXT_LIMIT} more characters: -v or -o json show all)"
        return text

    def hanging(self, head: str, text: str, indent: str) -> None:
        """``head`` then ``text``; continuation lines (the text's own, or wrapping on a terminal) under it.

        A line of the text that is a command stands alone on its own line, never wrapped or cut, so it
        pastes as it is. On a narrow terminal, where the head leaves too little room, the text wraps below
        the head at a short indent instead of being cut to fragments."""
        paragraphs = self._text(text).split("\n")
        if self.width and self.width - len(indent) < MIN_ROOM:
            indent = _DETAIL_INDENT
        if is_command(paragraphs[0]):
            self.emit(head.rstrip())
            head = indent
        if not self.width:
            self.emit(head + ("\n" + indent).join(paragraphs))
            return
        if self.width - _visible_len(head) < MIN_ROOM:
            self.emit(head.rstrip())
            head = indent
        room = self.width - len(indent)
        for n, para in enumerate(paragraphs):
            lead = head if n == 0 else indent
            if is_command(para):
                self.emit(lead + para, whole=True)
                continue
            first = textwrap.wrap(para, self.width - _visible_len(lead), break_on_hyphens=False) or [""]
            self.emit(lead + first[0])
            rest = " ".join(first[1:])
            for line in textwrap.wrap(rest, room, break_on_hyphens=False) if rest else []:
                self.emit(indent + line)

    # -- pieces --------------------------------------------------------------------------------------

    def status_tag(self, status: Status, *, pad: bool = True) -> str:
        word = f"{status.value:<5}" if pad else status.value
        return self.paint(f"{SYMBOLS[status]} {word}", COLORS[status])

    def result_line(self, r: Result, width: int) -> None:
        check_id = one_line(r.check_id).ljust(width)
        head = f"{_INDENT}{self.status_tag(r.status)}  {check_id}  "
        self.hanging(head, changes.tag(r) + r.message, _INDENT + " " * (7 + 2 + width + 2))

    def fix_lines(self, r: Result, where: str, *, dedupe: bool) -> None:
        if r.remediation:
            key = (r.check_id, r.remediation)
            first = self.fixes_shown.get(key)
            if dedupe and first is not None and first != where:
                self.emit(f"{_DETAIL_INDENT}fix: same as for {one_line(r.check_id)} on {first} above")
                return
            self.fixes_shown.setdefault(key, where)
            self.hanging(f"{_DETAIL_INDENT}fix: ", r.remediation, _DETAIL_INDENT + "     ")
        # The default view links a check's docs once, at its first failure or error; -v links every one.
        wanted = self.opts.verbose or (r.status is not Status.WARN and r.check_id not in self.docs_shown)
        if r.status in _DOCS_STATUSES and r.docs_url and wanted:
            self.docs_shown.add(r.check_id)
            self.emit(f"{_DETAIL_INDENT}docs: {one_line(r.docs_url)}", whole=True)

    def waiting_line(self, root: str, ids: list[str], indent: str) -> None:
        names = join_limited([one_line(i) for i in ids], self.list_room - 40)
        verb = "waits" if len(ids) == 1 else "wait"
        self.emit(f"{indent}{plural(len(ids), 'check')} {verb} on {one_line(root)}: {names}")

    def idle_line(self, idle: list[Result]) -> None:
        head = f"{_INDENT}{self.status_tag(Status.SKIP)}  {len(idle)} not applicable here: "
        names = join_limited([one_line(r.check_id) for r in idle], self.list_room - 30)
        if self.opts.verbose:
            self.hanging(head, ", ".join(one_line(r.check_id) for r in idle), _DETAIL_INDENT)
        else:
            self.emit(head + names)

    # -- views ---------------------------------------------------------------------------------------

    def every_result(self, results: list[Result], where: str) -> None:
        """The verbose view: every result, as the report has always listed them."""
        if not results:
            self.emit(f"{_INDENT}(no results)")
            return
        width = max(len(one_line(r.check_id)) for r in results)
        idle = [r for r in results if is_not_applicable(r)]
        for r in changes.ordered(results):
            if is_not_applicable(r):
                continue
            self.result_line(r, width)
            if r.status is not Status.PASS:
                self.fix_lines(r, where, dedupe=False)
        if idle:
            self.idle_line(idle)

    def problems(self, results: list[Result], where: str) -> None:
        """The default view: what needs a person, with skips that wait on a failure folded under it."""
        waiting: dict[str, list[str]] = {}
        for r in results:
            root = blocked_by(r)
            if root:
                waiting.setdefault(root, []).append(r.check_id)
        shown = changes.ordered(
            [r for r in results if r.status is not Status.PASS and not is_not_applicable(r) and not blocked_by(r)]
        )
        if not shown and not waiting:
            return
        width = max((len(one_line(r.check_id)) for r in shown), default=0)
        for r in shown:
            self.result_line(r, width)
            self.fix_lines(r, where, dedupe=True)
            if r.check_id in waiting:
                self.waiting_line(r.check_id, waiting.pop(r.check_id), _DETAIL_INDENT)
        for root, ids in waiting.items():
            self.waiting_line(root, ids, _INDENT + "- ")

    def counts(self, results: list[Result]) -> str:
        """``12 pass, 2 warn, 20 not applicable``: every non-zero count, skips split by why."""
        n: dict[str, int] = {}
        for r in results:
            key = "not applicable" if is_not_applicable(r) else ("waiting" if blocked_by(r) else r.status.value)
            n[key] = n.get(key, 0) + 1
        order = [s.value for s in STATUS_ORDER] + ["waiting", "not applicable"]
        return ", ".join(f"{n[k]} {k}" for k in order if n.get(k))

    def cluster_header(self, cluster: ClusterReport) -> None:
        status = cluster_status(cluster.results)
        name = self.paint(f"cluster {one_line(cluster.name)}", _BOLD)
        self.emit(
            f"{name}  {self.status_tag(status, pad=False)}  ({self.counts(cluster.results) or 'no results'})"
            f"  provider={one_line(cluster.provider)} mode={one_line(cluster.mode)}"
            f" server={one_line(cluster.server)}"
        )

    def fleet_table(self, report: RunReport) -> None:
        rows = sorted(report.clusters, key=lambda c: -severity(cluster_status(c.results)))
        cells = []
        for c in rows:
            status = cluster_status(c.results)
            # Failures and errors both fail a run: list both when the worst is either.
            floor = min(severity(status), severity(Status.ERROR))
            ids = [r.check_id for r in c.results if severity(r.status) >= max(floor, severity(Status.MUTED))]
            cells.append((status, one_line(c.name), one_line(c.provider), one_line(c.mode), ids))
        w_name = min(max([len("CLUSTER")] + [len(c[1]) for c in cells]), 40)
        w_prov = max([len("PROVIDER")] + [len(c[2]) for c in cells])
        w_mode = max([len("MODE")] + [len(c[3]) for c in cells])
        self.emit(self.paint(f"fleet: {plural(len(rows), 'cluster')}, worst first", _BOLD))
        columns = f"{'STATUS':<7}  {'CLUSTER':<{w_name}}  {'PROVIDER':<{w_prov}}  {'MODE':<{w_mode}}  CHECKS"
        self.emit(_INDENT + columns, cut=True)
        used = len(_INDENT) + 7 + 2 + w_name + 2 + w_prov + 2 + w_mode + 2
        room = max((self.width or LIST_WIDTH) - used, 20)
        for status, name, provider, mode, ids in cells:
            shown_name = name if len(name) <= w_name else name[: w_name - 1] + "…"
            self.emit(
                f"{_INDENT}{self.status_tag(status)}  {shown_name:<{w_name}}  {provider:<{w_prov}}  {mode:<{w_mode}}"
                f"  {join_limited([one_line(i) for i in ids], room) if ids else '-'}",
                cut=True,
            )


def render(
    report: RunReport,
    *,
    color: bool = False,
    verbose: bool = False,
    fail_on: str = "fail",
    width: int | None = None,
    options: RenderOptions | None = None,
) -> str:
    opts = options or RenderOptions(color=color, verbose=verbose, fail_on=fail_on, width=width)
    return "".join(chunks(report, options=opts))


def chunks(report: RunReport, *, options: RenderOptions | None = None) -> Iterator[str]:
    """:func:`render`'s text, a cluster at a time."""
    opts = options or RenderOptions()
    out = _Renderer(opts)
    paint = out.paint
    head = paint(f"{one_line(report.tool_name)} {one_line(report.tool_version)}", _BOLD)
    if report.origin_cidrs:
        head += " from " + ", ".join(one_line(c) for c in report.origin_cidrs)
    out.emit(head)
    abort_banner = None
    if report.aborted:
        abort_banner = paint(f"RUN ABORTED: {one_line(report.aborted)} (results are incomplete)", _ABORT)
        out.emit(abort_banner)
    if changes.headline(report):
        out.emit(paint(str(changes.headline(report)), _BOLD))

    for cluster, _ in changes.ordered_groups([(c, c.results) for c in report.clusters]):
        out.emit("")
        if opts.verbose:
            name = paint(f"cluster {one_line(cluster.name)}", _BOLD)
            out.emit(
                f"{name}  server={one_line(cluster.server)} provider={one_line(cluster.provider)}"
                f" mode={one_line(cluster.mode)}"
            )
            out.every_result(cluster.results, cluster.name)
            out.emit(f"{_INDENT}{_summary_line(cluster.summary, paint)}")
        else:
            out.cluster_header(cluster)
            out.problems(cluster.results, one_line(cluster.name))
        yield out.take()

    if report.fleet_results:
        out.emit("")
        if opts.verbose:
            out.emit(paint("fleet", _BOLD))
            out.every_result(report.fleet_results, "fleet")
            out.emit(f"{_INDENT}{_summary_line(summarize(report.fleet_results), paint)}")
        else:
            status = cluster_status(report.fleet_results)
            out.emit(
                f"{paint('fleet checks', _BOLD)}  {out.status_tag(status, pad=False)}"
                f"  ({out.counts(report.fleet_results)})"
            )
            out.problems(report.fleet_results, "fleet")

    if report.clusters:
        out.emit("")
        out.fleet_table(report)

    n = len(report.clusters)
    out.emit("")
    out.emit(
        f"{paint('total', _BOLD)}: {_summary_line(report.summary, paint)}"
        f" | {plural(n, 'cluster')} in {_duration(report.duration_s)}"
    )
    out.emit(paint(str(verdict(report, opts.fail_on, opts.interrupted_code)), _BOLD))
    if abort_banner:
        out.emit(abort_banner)
    yield out.take()
