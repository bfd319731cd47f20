"""One fleet report from the reports of several runs (`merge`): regional planes, or the shards of one.

Each cluster keeps its origin (input file, start time, shard). A cluster name checked by two runs is
one cluster when both saw the same API server (the later run wins) and a conflict otherwise. The fleet
checks are rerun over the merged clusters' fleet records (``ClusterReport.member``) by ``recompute``,
which the application layer supplies (the engine knows no check); they are skipped when an input lacks
the records (a report of an older version). Shards of a sharded run must all be there: with one missing,
every fleet check is an error naming it (a verdict over part of the fleet would read as the fleet's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from preflight.engine.errors import ConfigError
from preflight.engine.model import ClusterReport, FleetMember, Result, RunOrigin, RunReport, Status
from preflight.engine.targets import normalized_server

Recompute = Callable[[Sequence[FleetMember], Sequence[str]], list[Result]]


def _not_recomputed(template: Result, why: str) -> Result:
    return dataclasses.replace(
        template,
        status=Status.SKIP,
        message=f"not recomputed: {why}",
        remediation="",
        evidence={},
        duration_s=0.0,
        change=None,
        meshery_code=None,
        reason=None,
    )


def missing_shards(inputs: Sequence[tuple[str, RunReport]]) -> list[str]:
    """``K/N`` of every shard absent from the inputs, for each shard count N some input was a shard of."""
    seen: dict[int, set[int]] = {}
    for _, report in inputs:
        if report.shard is not None:
            seen.setdefault(report.shard[1], set()).add(report.shard[0])
    return [f"{k}/{n}" for n, got in sorted(seen.items()) for k in range(n) if k not in got]


def missing_in(report: RunReport) -> list[str]:
    """The shards a merged report lacks, as its fleet results name them."""
    found: list[str] = []
    for r in report.fleet_results:
        found += [s for s in r.evidence.get("missing_shards", ()) if s not in found]
    return found


def _undecided(template: Result, missing: Sequence[str]) -> Result:
    """A fleet check over part of the fleet: a pass there could hide the duplicate in the missing shard."""
    listed = ", ".join(missing)
    return dataclasses.replace(
        template,
        status=Status.ERROR,
        message=f"not decided: the merge lacks shard{'s' if len(missing) > 1 else ''} {listed}; "
        "fleet checks need every shard's report",
        remediation=f"Find out why shard {listed} left no report (its pod's log), run it again "
        f"(meshery-preflight check --shard {missing[0]} ...), and merge every shard's report.",
        evidence={"missing_shards": list(missing)},
        duration_s=0.0,
        change=None,
    )


def _fleet_results(
    inputs: Sequence[tuple[str, RunReport]],
    clusters: Sequence[ClusterReport],
    chosen: dict[str, tuple[str, RunReport, ClusterReport]],
    recompute: Recompute | None,
) -> list[Result]:
    templates: dict[str, Result] = {}
    for _, report in inputs:
        for r in report.fleet_results:
            templates.setdefault(r.check_id, r)
    missing = missing_shards(inputs)
    if missing:
        return [_undecided(r, missing) for r in templates.values()]
    lacking = sorted({source for source, _, c in chosen.values() if c.member is None})
    if lacking:
        why = f"{', '.join(lacking)} carries no fleet records (written by an older version; run it again)"
    elif recompute is None:
        why = f"merging {len(inputs)} runs without the fleet checks"
    else:
        members = [c.member for c in clusters if c.member is not None]
        return recompute(members, list(templates))
    return [_not_recomputed(r, why) for r in templates.values()]


def merge(inputs: Sequence[tuple[str, RunReport]], recompute: Recompute | None = None) -> RunReport:
    """``inputs`` are (file name, report) pairs; :class:`ConfigError` names both files of a conflict.

    ``recompute(members, check_ids)`` runs the fleet checks of those ids over the merged clusters' records.
    """
    if not inputs:
        raise ConfigError("merge needs at least one report")
    if len(inputs) == 1 and inputs[0][1].shard is None:
        return inputs[0][1]
    chosen: dict[str, tuple[str, RunReport, ClusterReport]] = {}
    for source, report in inputs:
        for cluster in report.clusters:
            seen = chosen.get(cluster.name)
            if seen is not None:
                other, other_report, other_cluster = seen
                if normalized_server(other_cluster.server) != normalized_server(cluster.server):
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
        fleet_results=_fleet_results(inputs, clusters, chosen, recompute),
        aborted="; ".join(aborted) or None,
    )
