"""What changed since the last run (``--baseline PREVIOUS.json``).

Results are matched by cluster name and check id. Ranks come from :data:`STATUS_RANK`, so "worse"
means the same thing here as for ``--fail-on``. Messages are compared by their cause: measured
durations are masked, so a latency that moved from 12 ms to 14 ms is not a change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preflight.engine.errors import ConfigError
from preflight.engine.model import CHANGES, STATUS_RANK, BaselineInfo, Result, RunReport, Status

Key = tuple[str, str, str]  # ("cluster", name, check id) or ("fleet", "", check id)

_MEASURED_RE = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|µs|s)\b")
# Statuses that decide something; a skip only says the check could not tell this time.
_DECIDED = frozenset({Status.PASS, Status.WARN, Status.FAIL, Status.ERROR, Status.MUTED})


@dataclass(frozen=True)
class Snapshot:
    """The parts of a previous report the comparison needs."""

    started_at: dt.datetime
    tool_version: str
    results: Mapping[Key, tuple[Status, str]]


def cause(message: str) -> str:
    return _MEASURED_RE.sub("#", message)


def classify(previous: tuple[Status, str] | None, status: Status, message: str) -> str:
    """One of :data:`CHANGES` for a result, given the baseline's status and message for it."""
    rank = STATUS_RANK[status]
    if previous is None:
        return "new" if rank > 0 else "unchanged"
    before, before_message = previous
    if rank > STATUS_RANK[before]:
        return "new"
    if rank < STATUS_RANK[before]:
        return "fixed" if status in _DECIDED else "changed"
    if status is before and cause(message) == cause(before_message):
        return "unchanged"
    return "changed"


def _fail(path: str, why: str) -> ConfigError:
    return ConfigError(f"--baseline {path}: {why}")


def _results(path: str, doc: Any, where: str) -> list[tuple[str, Status, str]]:
    if not isinstance(doc, list):
        raise _fail(path, f"{where} is not a list of results")
    out = []
    for r in doc:
        try:
            out.append((str(r["check_id"]), Status(r["status"]), str(r.get("message", ""))))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _fail(path, f"a result in {where} lacks a check_id or a known status") from None
    return out


def load(path: str, *, tool_name: str, schema_version: int) -> Snapshot:
    """Read a JSON report written by this tool; anything else is a :class:`ConfigError` (one line)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, exc.strerror or str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(path, "not a JSON report (write one with -o json=PATH)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tool"), dict):
        raise _fail(path, f"not a {tool_name} JSON report")
    if doc["tool"].get("name") != tool_name:
        raise _fail(path, f"written by {doc['tool'].get('name')!r}, not {tool_name}")
    if doc.get("schema_version") != schema_version:
        raise _fail(path, f"schema_version {doc.get('schema_version')!r}; this version reads {schema_version}")
    try:
        started = dt.datetime.fromisoformat(str(doc["started_at"]).replace("Z", "+00:00"))
        clusters = [(str(c["name"]), c["results"]) for c in doc["clusters"]]
        fleet = doc["fleet"]["results"]
    except (KeyError, TypeError, ValueError):
        raise _fail(path, f"not a {tool_name} JSON report (clusters, fleet or started_at missing)") from None
    results: dict[Key, tuple[Status, str]] = {}
    for name, rs in clusters:
        for check_id, status, message in _results(path, rs, f"cluster {name!r}"):
            results[("cluster", name, check_id)] = (status, message)
    for check_id, status, message in _results(path, fleet, "fleet"):
        results[("fleet", "", check_id)] = (status, message)
    return Snapshot(started, str(doc["tool"].get("version", "")), results)


def compare(report: RunReport, before: Snapshot) -> RunReport:
    """A copy of ``report`` with every result's ``change`` set and the counts in ``report.baseline``."""
    counts = dict.fromkeys(CHANGES, 0)
    seen: set[Key] = set()

    def mark(key: Key, r: Result) -> Result:
        seen.add(key)
        change = classify(before.results.get(key), r.status, r.message)
        counts[change] += 1
        return dataclasses.replace(r, change=change)

    clusters = [
        dataclasses.replace(c, results=[mark(("cluster", c.name, r.check_id), r) for r in c.results])
        for c in report.clusters
    ]
    fleet = [mark(("fleet", "", r.check_id), r) for r in report.fleet_results]
    info = BaselineInfo(before.started_at, before.tool_version, counts, gone=len(set(before.results) - seen))
    return dataclasses.replace(report, clusters=clusters, fleet_results=fleet, baseline=info)
