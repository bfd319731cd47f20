"""Run the one pipeline (preflight.app) in-process against lab files, for tests."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from preflight import app
from preflight.engine.model import Result, RunReport
from preflight.engine.plan import Request
from preflight.engine.settings import PORT_FORWARD_ENV, Settings


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
    req = Request(list(kubeconfig), list(contexts), False, fleet, list(origins))
    # The Server's port-forward policy comes from the test's environment (tests/conftest.py), like the CLI's.
    policy = {k: v for k, v in os.environ.items() if k == PORT_FORWARD_ENV}
    return app.run(req, s, include=include, env={**policy, **(env or {})})


def result(report: RunReport, cluster: str, check_id: str) -> Result:
    pool = report.fleet_results if cluster == "fleet" else next(c.results for c in report.clusters if c.name == cluster)
    return next(r for r in pool if r.check_id == check_id)


def statuses(report: RunReport, cluster: str) -> dict[str, str]:
    return {r.check_id: r.status.value for c in report.clusters if c.name == cluster for r in c.results}
