"""Run the real check pipeline in-process against lab files, for tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import checks  # noqa: F401  (registers the checks)
from preflight import plan as planning
from preflight import runner
from preflight.model import Result, RunReport, Scope
from preflight.registry import REGISTRY
from preflight.settings import Settings


def run(
    *,
    kubeconfig: Sequence[str] = (),
    fleet: str | None = None,
    contexts: Sequence[str] = (),
    include: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    origins: Sequence[str] = (),
    **settings: object,
) -> RunReport:
    s = Settings(**{"connect_timeout": 2.0, "exec_timeout": 2.0, **settings})  # type: ignore[arg-type]
    req = planning.Request(list(kubeconfig), list(contexts), False, fleet, list(origins))
    plan = planning.build(req, s, REGISTRY, dict(env or {}))
    chosen = REGISTRY.select(include)
    return runner.run_fleet(
        plan.contexts,
        REGISTRY.ordered(chosen, Scope.CLUSTER),
        REGISTRY.ordered(chosen, Scope.FLEET),
        plan.settings,
        plan.mutes,
    )


def result(report: RunReport, cluster: str, check_id: str) -> Result:
    pool = report.fleet_results if cluster == "fleet" else next(c.results for c in report.clusters if c.name == cluster)
    return next(r for r in pool if r.check_id == check_id)


def statuses(report: RunReport, cluster: str) -> dict[str, str]:
    return {r.check_id: r.status.value for c in report.clusters if c.name == cluster for r in c.results}
