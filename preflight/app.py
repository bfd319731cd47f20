"""The one pipeline: plan -> select -> order -> run -> emit.

The CLI, the demo, the benchmarks and the tests all call :func:`run` (and :func:`emit`), so what the
tests exercise is exactly what users run. Nothing here exits the process: that is the CLI's job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight import plan as planning
from preflight import runner
from preflight.errors import ConfigError
from preflight.model import Check, RunReport, Scope
from preflight.registry import Registry
from preflight.settings import Settings

if TYPE_CHECKING:
    from preflight.reports.options import RenderOptions

Progress = Callable[[int, int, str], None]


def load_registry() -> Registry:
    """The registry with every shipped check registered and validated."""
    import preflight.checks  # noqa: F401  (registers every check)
    from preflight.registry import REGISTRY

    REGISTRY.validate()
    return REGISTRY


@dataclass(frozen=True)
class Selection:
    cluster: list[Check]
    fleet: list[Check]


def select(registry: Registry, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Selection:
    """The chosen checks plus everything they depend on, in dependency order.

    A check never runs without the checks whose facts it reads: ``--checks broker.nats`` also runs the
    Broker checks before it, and they are reported like any other result.
    """
    chosen = registry.with_dependencies(registry.select(include, exclude))
    if not chosen:
        known = ", ".join(c.id for c in registry.all())
        raise ConfigError(f"--checks/--skip-checks leave no check to run (known: {known})")
    return Selection(registry.ordered(chosen, Scope.CLUSTER), registry.ordered(chosen, Scope.FLEET))


def run(
    request: planning.Request,
    settings: Settings,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> RunReport:
    """Plan and run one check; :class:`ConfigError` for bad input, before any probe runs."""
    registry = registry or load_registry()
    chosen = select(registry, include, exclude)
    plan = planning.build(request, settings, registry, os.environ if env is None else env)
    return runner.run_fleet(plan.contexts, chosen.cluster, chosen.fleet, plan.settings, plan.mutes, progress=progress)


def emit(report: RunReport, outputs: Sequence[tuple[str, str | None]], options: RenderOptions | None = None) -> None:
    """Render every requested output; ``None`` or ``-`` is stdout (coloured and fitted when a terminal)."""
    import dataclasses

    from preflight.reports import console, writer
    from preflight.reports.options import RenderOptions as Options

    opts = options or Options()
    for fmt, path in outputs:
        if path is None or path == "-":
            tty = dataclasses.replace(opts, width=console.terminal_width(sys.stdout))
            color = fmt == "console" and console.want_color(sys.stdout)
            sys.stdout.write(writer.render(fmt, report, color=color, options=tty))
            sys.stdout.flush()
        else:
            writer.write_atomic(path, writer.render(fmt, report, options=opts))
