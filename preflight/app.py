"""The one pipeline: plan -> select -> order -> run -> emit.

The CLI, the demo, the benchmarks and the tests all call :func:`run` (and :func:`emit`), so what the
tests exercise is exactly what users run. Nothing here exits the process: that is the CLI's job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from preflight import plan as planning
from preflight import runner
from preflight.errors import ConfigError
from preflight.model import Check, RunReport, Scope
from preflight.registry import Registry
from preflight.settings import Settings

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


def check_outputs(outputs: Sequence[tuple[str, str | None]]) -> None:
    """Every ``-o FORMAT=PATH`` can be written: :class:`ConfigError` naming the first that cannot,
    before any probe runs (a run must not spend minutes to lose its report)."""
    from preflight.reports import writer

    try:
        writer.check_outputs(outputs)
    except writer.OutputError as exc:
        raise ConfigError(str(exc)) from None


def emit(report: RunReport, outputs: Sequence[tuple[str, str | None]]) -> list[str]:
    """Render every requested output; ``None`` or ``-`` is stdout. One that fails does not stop the
    others: returns one line per output that could not be written."""
    from preflight.reports import console, writer

    failed: list[str] = []
    for fmt, path in outputs:
        try:
            if path is None or path == "-":
                if sys.stdout is None:
                    raise OSError(errno.EBADF, "stdout is closed")
                color = fmt == "console" and console.want_color(sys.stdout)
                sys.stdout.write(writer.render(fmt, report, color=color))
                sys.stdout.flush()
            else:
                writer.write_report(path, writer.render(fmt, report))
        except OSError as exc:
            failed.append(f"-o {fmt}={path or '-'}: cannot write: {exc.strerror or exc}")
            if path is None or path == "-":
                _drop_stdout()
    return failed


def _drop_stdout() -> None:
    """A closed pipe or a full disk on stdout: send what is still buffered nowhere, so the interpreter's
    last flush does not print a second, Python-shaped complaint."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
