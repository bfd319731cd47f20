"""The one pipeline: plan -> select -> order -> run -> emit.

The CLI, the demo, the benchmarks and the tests all call :func:`run` (and :func:`emit`), so what the
tests exercise is exactly what users run. Nothing here exits the process: that is the CLI's job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.engine import baseline, runner
from preflight.engine import merge as merging
from preflight.engine import plan as planning
from preflight.engine import shard as sharding
from preflight.engine.cancel import Cancellation
from preflight.engine.context import ClusterContext
from preflight.engine.errors import ConfigError
from preflight.engine.fingerprint import FingerprintKey
from preflight.engine.model import Check, FleetMember, Result, RunReport, Scope
from preflight.engine.registry import Registry
from preflight.engine.runstate import RunState
from preflight.engine.settings import Settings

if TYPE_CHECKING:
    from preflight.reports.options import RenderOptions

Progress = Callable[[int, int, str], None]


def load_registry() -> Registry:
    """The registry with every shipped check registered and validated."""
    import preflight.checks  # noqa: F401  (registers every check)
    from preflight.engine.registry import REGISTRY

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


@dataclass(frozen=True)
class Prepared:
    """A run planned, its checks chosen and its baseline read: everything bad input can fail on, done.

    ``serve`` keeps the last one that planned cleanly and runs it again when a later edit of the
    kubeconfig or fleet file does not plan."""

    plan: planning.Plan
    chosen: Selection
    before: baseline.Snapshot | None = None

    def only(self, name: str, chosen: Selection | None = None) -> Prepared | None:
        """The same run for the one cluster called ``name`` (None when there is none), fleet checks left out:
        they judge a whole fleet, not one cluster."""
        picked = [c for c in self.plan.contexts if c.name == name]
        if not picked:
            return None
        plan = dataclasses.replace(self.plan, contexts=picked)
        sel = chosen or self.chosen
        return Prepared(plan, Selection(sel.cluster, []), None)


def prepare(
    request: planning.Request,
    settings: Settings,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> Prepared:
    """Plan a run; :class:`ConfigError` for bad input, before any probe runs."""
    registry = registry or load_registry()
    chosen = select(registry, include, exclude)
    before = load_baseline(request.baseline) if request.baseline else None
    plan = planning.build(request, settings, registry, os.environ if env is None else env)
    return Prepared(plan, chosen, before)


def run_prepared(
    prepared: Prepared,
    *,
    progress: Progress | None = None,
    cancel: Cancellation | None = None,
    state: RunState | None = None,
) -> RunReport:
    """Check the clusters of a prepared run, each with a fresh context (a prepared run can be run again).
    ``cancel``: the run's cancellation (the CLI's signals ask it to stop), polled while clusters run.
    ``state``: the run's changing state, for a caller that supplies parts of it (``RunState(cloud_cache=...)``);
    default a fresh one."""
    plan, chosen = prepared.plan, prepared.chosen
    contexts = [ClusterContext(c.target, c.settings) for c in plan.contexts]
    # A shard sees part of the fleet: fleet checks would judge that part as if it were the whole.
    fleet_checks = [] if plan.shard else chosen.fleet
    report = runner.run_fleet(
        contexts,
        chosen.cluster,
        fleet_checks,
        plan.settings,
        plan.mutes,
        state=state,
        progress=progress,
        cancel=cancel,
    )
    if plan.shard:
        report.shard = (plan.shard.index, plan.shard.count)
        if not report.aborted:
            report.fleet_results = [sharding.skipped(c, plan.shard) for c in chosen.fleet]
    return baseline.compare(report, prepared.before) if prepared.before else report


def run(
    request: planning.Request,
    settings: Settings,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
    cancel: Cancellation | None = None,
    state: RunState | None = None,
) -> RunReport:
    """Plan, select and run the chosen checks over every planned cluster, then the fleet checks;
    :class:`ConfigError` for bad input, before any probe runs. ``cancel`` and ``state``: see :func:`run_prepared`."""
    prepared = prepare(request, settings, include=include, exclude=exclude, env=env, registry=registry)
    return run_prepared(prepared, progress=progress, cancel=cancel, state=state)


def load_baseline(path: str) -> baseline.Snapshot:
    """A previous JSON report of this tool and schema version; :class:`ConfigError` otherwise."""
    from preflight import TOOL_NAME
    from preflight.reports.json_report import SCHEMA_VERSION

    return baseline.load(path, tool_name=TOOL_NAME, schema_version=SCHEMA_VERSION)


def check_outputs(outputs: Sequence[tuple[str, str | None]]) -> None:
    """Every ``-o FORMAT=PATH`` can be written: :class:`ConfigError` naming the first that cannot,
    before any probe runs (a run must not spend minutes to lose its report)."""
    from preflight.reports import writer

    try:
        writer.check_outputs(outputs)
    except writer.OutputError as exc:
        raise ConfigError(str(exc)) from None


def emit(
    report: RunReport, outputs: Sequence[tuple[str, str | None]], options: RenderOptions | None = None
) -> list[str]:
    """Render every requested output, written as it is rendered (a fleet's report is never one string);
    ``None`` or ``-`` is stdout (coloured and fitted when a terminal). One that fails does not stop the
    others: returns one line per output that could not be written."""
    import dataclasses

    from preflight.reports import console, writer
    from preflight.reports.options import RenderOptions as Options

    opts = options or Options()
    failed: list[str] = []
    for fmt, path in outputs:
        try:
            if path is None or path == "-":
                if sys.stdout is None:
                    raise OSError(errno.EBADF, "stdout is closed")
                tty = dataclasses.replace(opts, width=console.terminal_width(sys.stdout))
                color = fmt == "console" and console.want_color(sys.stdout)
                for chunk in writer.stream(fmt, report, color=color, options=tty):
                    sys.stdout.write(chunk)
                sys.stdout.flush()
            else:
                writer.write_report(path, writer.stream(fmt, report, options=opts, path=path))
        except OSError as exc:
            to_stdout = path is None or path == "-" or writer.goes_to_stdout(path)
            if to_stdout:
                _drop_stdout()
            # `check | head -1`: the reader took what it wanted and left; that is no failed report.
            if not (to_stdout and exc.errno == errno.EPIPE):
                failed.append(f"-o {fmt}={path or '-'}: cannot write: {exc.strerror or exc}")
    return failed


def _drop_stdout() -> None:
    """A closed pipe or a full disk on stdout: send what is still buffered nowhere, so the interpreter's
    last flush does not print a second, Python-shaped complaint."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def push_metrics(report: RunReport, url: str, *, cluster_set: str, timeout: float) -> None:
    """Push the run's metrics to a Prometheus Pushgateway; :class:`ConfigError` (one line) when it fails."""
    from preflight.reports import prometheus

    try:
        prometheus.push(report, url, cluster_set=cluster_set, timeout=timeout)
    except Exception as exc:  # urllib's errors (URLError, HTTPError, timeouts, bad status) are not one family
        raise ConfigError(f"--pushgateway {prometheus.public_url(url)}: push failed: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def merge_files(
    paths: Sequence[str],
    *,
    baseline_path: str | None = None,
    fingerprint_key: FingerprintKey | None = None,
    registry: Registry | None = None,
) -> RunReport:
    """One report from the JSON reports of several runs (see :mod:`preflight.engine.merge`), the fleet checks rerun
    over the merged clusters. With ``fingerprint_key`` (--fingerprint-key-file) every input must have
    fingerprinted its credentials with that key: :class:`ConfigError` naming the first that did not."""
    import json
    from pathlib import Path

    from preflight import TOOL_NAME
    from preflight.reports import json_report

    before = load_baseline(baseline_path) if baseline_path else None
    docs = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"merge: {path}: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ConfigError(f"merge: {path}: not a JSON report (write one with -o json=PATH)") from None
        tool = doc.get("tool") if isinstance(doc, dict) else None
        if not isinstance(tool, dict) or tool.get("name") != TOOL_NAME:
            raise ConfigError(f"merge: {path}: not a {TOOL_NAME} JSON report")
        docs.append((path, doc))
    first_path, first = docs[0]
    for path, doc in docs[1:]:
        if doc.get("schema_version") != first.get("schema_version"):
            raise ConfigError(
                f"merge: {first_path} has schema_version {first.get('schema_version')!r} and {path} has "
                f"{doc.get('schema_version')!r}: merge reports of one schema version"
            )
    if first.get("schema_version") != json_report.SCHEMA_VERSION:
        raise ConfigError(
            f"merge: {first_path}: schema_version {first.get('schema_version')!r}; "
            f"this version reads {json_report.SCHEMA_VERSION}"
        )
    reports = []
    for path, doc in docs:
        try:
            reports.append((path, json_report.from_document(doc)))
        except ValueError as exc:
            raise ConfigError(f"merge: {path}: {exc}") from None
    if fingerprint_key is not None:
        _same_key(reports, fingerprint_key)
    merged = merging.merge(reports, _fleet_rerun(registry or load_registry()))
    return baseline.compare(merged, before) if before else merged


def _same_key(reports: Sequence[tuple[str, RunReport]], key: FingerprintKey) -> None:
    for path, report in reports:
        for cluster in report.clusters:
            cred = cluster.member.credential if cluster.member else None
            if cred is not None and cred.key_id != key.id:
                raise ConfigError(
                    f"merge: {path}: cluster {cluster.name!r} was fingerprinted with another key than "
                    f"--fingerprint-key-file {key.source} (give that run the same key file)"
                )


def _fleet_rerun(registry: Registry) -> merging.Recompute:
    """The fleet checks the inputs ran (by id), rerun through the runner's fleet path."""

    def rerun(members: Sequence[FleetMember], ids: Sequence[str]) -> list[Result]:
        fleet = registry.ordered([c for c in registry.all() if c.id in ids], Scope.FLEET)
        return runner.run_fleet_checks(members, fleet, Settings())

    return rerun
