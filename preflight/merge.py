"""One fleet report from the reports of several runs (`merge`): regional planes, or the shards of one.

Each cluster keeps its origin (input file, start time, shard). A cluster name checked by two runs is
one cluster when both saw the same API server (the later run wins) and a conflict otherwise. Fleet
checks are not recomputed from reports yet: a merge of several runs reports them as skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from urllib.parse import urlsplit

from preflight.errors import ConfigError
from preflight.model import ClusterReport, Result, RunOrigin, RunReport, Status


def _server(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return url
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _not_recomputed(template: Result, runs: int) -> Result:
    return dataclasses.replace(
        template,
        status=Status.SKIP,
        message=f"not recomputed when merging {runs} runs: fleet checks need the whole fleet in one run",
        remediation="",
        evidence={},
        duration_s=0.0,
        change=None,
    )


def merge(inputs: Sequence[tuple[str, RunReport]]) -> RunReport:
    """``inputs`` are (file name, report) pairs; :class:`ConfigError` names both files of a conflict."""
    if not inputs:
        raise ConfigError("merge needs at least one report")
    if len(inputs) == 1:
        return inputs[0][1]
    chosen: dict[str, tuple[str, RunReport, ClusterReport]] = {}
    for source, report in inputs:
        for cluster in report.clusters:
            seen = chosen.get(cluster.name)
            if seen is not None:
                other, other_report, other_cluster = seen
                if _server(other_cluster.server) != _server(cluster.server):
                    raise ConfigError(
                        f"cluster {cluster.name!r} has two API servers: {other_cluster.server} in {other} "
                        f"and {cluster.server} in {source}"
                    )
                if other_report.started_at >= report.started_at:
                    continue
            chosen[cluster.name] = (source, report, cluster)
    # An input's own comparison with its baseline says nothing about the merged fleet: --baseline compares anew.
    clusters = [
        dataclasses.replace(
            c,
            results=[dataclasses.replace(r, change=None) for r in c.results],
            origin=c.origin or RunOrigin(source, report.started_at, report.shard),
        )
        for source, report, c in chosen.values()
    ]
    templates: dict[str, Result] = {}
    for _, report in inputs:
        for r in report.fleet_results:
            templates.setdefault(r.check_id, r)
    cidrs = list(dict.fromkeys(c for _, report in inputs for c in report.origin_cidrs))
    aborted = [f"{source}: {report.aborted}" for source, report in inputs if report.aborted]
    first = inputs[0][1]
    return RunReport(
        tool_name=first.tool_name,
        tool_version=first.tool_version,
        started_at=min(report.started_at for _, report in inputs),
        finished_at=max(report.finished_at for _, report in inputs),
        origin_cidrs=cidrs,
        clusters=clusters,
        fleet_results=[_not_recomputed(r, len(inputs)) for r in templates.values()],
        aborted="; ".join(aborted) or None,
    )
