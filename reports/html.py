"""The HTML fleet report: one self-contained file a person opens from ``file://``, also on an air-gapped host.

A matrix (clusters by check category, each cell the worst status with its symbol) that sorts and filters,
and per cluster every result with its message, fix, docs link and evidence. Every string in it comes from
kubeconfigs, clusters or clouds and is untrusted: Jinja2 autoescapes the markup, result data travels as JSON
in a non-executed script element (escaped as ``tojson`` escapes it: ``<``, ``>``, ``&`` and ``'``), the page's script
only ever sets text, and a Content-Security-Policy pinned to the hashes of the inline script and style
forbids everything else, loads from anywhere included.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from preflight.engine.model import (
    SEVERITY_ORDER,
    STATUS_ORDER,
    Result,
    RunReport,
    Status,
    applicable,
    cluster_status,
    severity,
)

from ._common import plural
from .json_report import iso_utc, jsonable
from .options import EXIT_INTERRUPTED, verdict

SYMBOLS: dict[Status, str] = {
    Status.PASS: "✔",
    Status.WARN: "!",
    Status.FAIL: "✖",
    Status.SKIP: "–",
    Status.ERROR: "?",
    Status.MUTED: "~",
}
NOT_APPLICABLE = "n/a"
# A fix that names a command gets its own copy button: from the command's name to the end of its clause.
_COMMAND_START = re.compile(r"(?<![\w-])(?:aws|gcloud|az|kubectl|helm) [a-z-]")
_COMMAND_STOPS = (";", ")", "\n", ". ", ", ", " or ")


def fix_command(remediation: str) -> str | None:
    """The first CLI command in a fix (``aws ...``, ``gcloud ...``, ``az ...``, ``kubectl ...``), if any."""
    match = _COMMAND_START.search(remediation)
    if not match:
        return None
    rest = remediation[match.start() :]
    end = min([i for i in (rest.find(stop) for stop in _COMMAND_STOPS) if i != -1], default=len(rest))
    return rest[:end].rstrip(" .,") or None


def worst(results: Iterable[Result]) -> Status | None:
    """The model's :func:`cluster_status`, or None when no check applied (a matrix cell shows that apart)."""
    results = list(results)
    return cluster_status(results) if applicable(results) else None


@dataclass
class _Strings:
    """Messages and fixes repeat across a fleet: each distinct one is stored once and referred to by index."""

    items: list[str]
    index: dict[str, int]

    def __call__(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.items)
            self.items.append(text)
        return self.index[text]


def _safe_json(value: Any) -> str:
    """What Jinja's ``tojson`` writes for ``value`` (sorted keys, ``<>&'`` escaped), as plain text."""
    text = json.dumps(value, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027")


def _data(report: RunReport) -> Iterator[str]:
    """The page's result data as ``tojson`` writes ``{"checks", "clusters", "fleet", "strings"}`` (keys
    sorted), one cluster at a time: its rows exist only while that cluster's piece is written."""
    from markupsafe import Markup  # comes with Jinja2; marks the pieces as safe for the autoescaping template

    strings = _Strings([], {})
    checks: dict[str, list[str]] = {}
    for r in report.all_results:
        checks.setdefault(r.check_id, [r.title, r.category, r.severity.value, r.docs_url])

    def row(r: Result) -> list[Any]:
        evidence = jsonable(dict(r.evidence)) or None
        command = fix_command(r.remediation) if r.status is not Status.PASS else None
        fix = [strings(r.remediation), strings(command) if command else -1]
        # The Meshery diagnostic, only where there is one: rows stay as short as before.
        coded = [r.meshery_code] if r.meshery_code else []
        return [r.check_id, r.status.value, strings(r.message), *fix, evidence, *coded]

    yield Markup(f'{{"checks": {_safe_json(checks)}, "clusters": [')
    for i, c in enumerate(report.clusters):
        yield Markup((", " if i else "") + _safe_json([row(r) for r in c.results]))
    fleet = _safe_json([row(r) for r in report.fleet_results])
    yield Markup(f'], "fleet": {fleet}, "strings": {_safe_json(strings.items)}}}')


def _categories(report: RunReport) -> list[str]:
    seen: dict[str, None] = {}
    for c in report.clusters:
        for r in c.results:
            seen.setdefault(r.category, None)
    return list(seen)


def _cell(results: list[Result]) -> dict[str, str]:
    status = worst(results)
    if status is None:
        return {"status": NOT_APPLICABLE, "symbol": "·", "label": "not applicable" if results else "not run"}
    problems = [r.check_id for r in results if severity(r.status) >= severity(Status.MUTED)]
    return {"status": status.value, "symbol": SYMBOLS[status], "label": ", ".join(problems) or status.value}


def _rows(report: RunReport, categories: list[str]) -> list[dict[str, Any]]:
    rows = []
    for i, c in enumerate(report.clusters):
        by_cat: dict[str, list[Result]] = {cat: [] for cat in categories}
        for r in c.results:
            by_cat[r.category].append(r)
        status = worst(c.results) or Status.PASS
        problems = [r.check_id for r in c.results if severity(r.status) >= severity(Status.WARN)]
        rows.append(
            {
                "index": i,
                "name": c.name,
                "server": c.server,
                "provider": c.provider,
                "mode": c.mode,
                "status": status.value,
                "symbol": SYMBOLS[status],
                "rank": severity(status),
                "cells": [(cat, _cell(by_cat[cat])) for cat in categories],
                "problems": problems,
                "problem_categories": " ".join(sorted({r.category for r in c.results if r.check_id in problems})),
            }
        )
    return sorted(rows, key=lambda row: (-row["rank"], row["index"]))


def _counts(results: list[Result]) -> list[tuple[str, str, int]]:
    out = []
    for status in STATUS_ORDER:
        n = sum(r.status is status for r in results)
        if n:
            out.append((status.value, SYMBOLS[status], n))
    return out


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("preflight.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _asset(name: str) -> str:
    loader = _environment().loader
    source, _, _ = loader.get_source(_environment(), name)
    return str(source)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render(report: RunReport, *, fail_on: str = "fail", interrupted_code: int = EXIT_INTERRUPTED) -> str:
    return "".join(chunks(report, fail_on=fail_on, interrupted_code=interrupted_code))


def chunks(report: RunReport, *, fail_on: str = "fail", interrupted_code: int = EXIT_INTERRUPTED) -> Iterator[str]:
    """:func:`render`'s text as the template produces it; the result data, the page's bulk, a cluster at
    a time. The matrix rows are built whole first: they are sorted worst first."""
    categories = _categories(report)
    rows = _rows(report, categories)
    script, style = _asset("report.js"), _asset("report.css")
    csp = (
        f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    results = report.all_results
    return (
        _environment()
        .get_template("report.html.j2")
        .generate(
            report=report,
            title=f"{report.tool_name} fleet report",
            started=iso_utc(report.started_at),
            finished=iso_utc(report.finished_at),
            duration=f"{max(report.duration_s, 0.0):.2f}s",
            verdict=verdict(report, fail_on, interrupted_code),
            fail_on=fail_on,
            clusters_label=plural(len(report.clusters), "cluster"),
            counts=_counts(results),
            categories=categories,
            rows=rows,
            providers=sorted({r["provider"] for r in rows}),
            modes=sorted({r["mode"] for r in rows}),
            statuses=[(s.value, SYMBOLS[s]) for s in reversed(SEVERITY_ORDER) if s is not Status.SKIP],
            fleet_status=worst(report.fleet_results),
            fleet_counts=_counts(report.fleet_results),
            symbols={s.value: sym for s, sym in SYMBOLS.items()},
            data=_data(report),
            script=script,
            style=style,
            csp=csp,
        )
    )
