"""Run checks over a fleet: clusters concurrently, each cluster's checks in dependency order.

How a run executes, top down: one :class:`Executor`, chosen by :func:`executor_for`, checks the clusters:
:class:`InProcess` (a thread pool of ``--parallel``) or :class:`Forked` (the clusters dealt to forked workers,
each checking its share with :class:`InProcess`); a cluster's probes run on its own daemon thread (Prober), each
waited for at most its budget, so a probe stuck in a socket or a plugin costs its cluster at most that budget
and never holds up another cluster or the exit.

The runner creates the run's :class:`RunState` and is the only writer of its :class:`Cancellation` (see
preflight/engine/cancel.py). Every path that ends a cluster early (its budget, an internal error, a signal, a worker
that died) still gives every selected check of that cluster a result, saying why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from fnmatch import fnmatchcase
from typing import Any, Protocol

import preflight
from preflight.engine.cancel import Cancellation
from preflight.engine.context import ClusterContext, FleetContext
from preflight.engine.interrupt import exit_now
from preflight.engine.model import (
    Check,
    ClusterReport,
    Finding,
    FleetMember,
    Result,
    RunReport,
    Status,
    Stop,
    error,
)
from preflight.engine.redact import Redactor
from preflight.engine.runstate import RunState
from preflight.engine.settings import Settings

# How often the runner looks for a signal while it waits on clusters.
_POLL_S = 0.1

# Dependencies that passed with a warning still let dependants run: a static token is worth a
# warning, and the API it reaches is still worth checking.
_DEPENDENCY_OK = (Status.PASS, Status.WARN)

Progress = Callable[[int, int, str], None]


class MuteRule:
    def __init__(self, check: str, cluster: str, reason: str) -> None:
        self.check, self.cluster, self.reason = check, cluster, reason

    def matches(self, check_id: str, cluster: str) -> bool:
        return fnmatchcase(check_id, self.check) and fnmatchcase(cluster, self.cluster)


def _invoke(chk: Check, arg: Any) -> Finding:
    try:
        finding = chk.probe(arg)
    except Stop as stopped:  # not applicable, or a helper's final answer
        return stopped.finding
    except Exception as exc:  # a probe's bug must become that check's `error`, not a crash
        return error(f"probe raised {type(exc).__name__}: {exc}", reason="probe_crashed")
    if not isinstance(finding, Finding):
        return error(f"probe returned {type(finding).__name__}, not a Finding", reason="probe_crashed")
    return finding


_Job = tuple[Check, Any, "queue.SimpleQueue[Finding]"]


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        chk, arg, answer = job
        answer.put(_invoke(chk, arg))


class Prober:
    """Runs one cluster's probes in turn on one daemon thread, waiting for each at most its budget.

    A thread per probe cost a fleet thousands of thread starts. A probe that overruns cannot be stopped: its
    thread is left to finish (told to exit afterwards) and the next probe gets a fresh thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def call(self, chk: Check, arg: Any, budget: float) -> Finding:
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(self._jobs,), name=f"probe:{self.name}", daemon=True).start()
        answer: queue.SimpleQueue[Finding] = queue.SimpleQueue()
        self._jobs.put((chk, arg, answer))
        try:
            return answer.get(timeout=max(budget, 0.0))
        except queue.Empty:
            self.close()
            return error(f"did not finish within its budget of {budget:.1f}s", reason="check_timeout")

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None


def _budget(chk: Check, settings: Settings) -> float:
    if settings.check_timeout is not None:
        return settings.check_timeout
    # Any check may be the first to need the client, and so to run the exec plugin.
    return settings.connect_timeout * chk.timeout_factor + settings.exec_timeout + 1.0


def _to_result(
    chk: Check, finding: Finding, duration: float, cluster: str, mutes: Sequence[MuteRule], redactor: Redactor
) -> Result:
    status, message = finding.status, finding.message
    evidence = dict(finding.evidence)
    if status in (Status.WARN, Status.FAIL, Status.ERROR):
        mute = next((m for m in mutes if m.matches(chk.id, cluster)), None)
        if mute is not None:
            evidence["muted_status"] = status.value
            evidence["mute_reason"] = mute.reason
            status, message = Status.MUTED, f"muted ({mute.reason}): {message}"
    return Result(
        check_id=chk.id,
        title=chk.title,
        category=chk.category,
        severity=chk.severity,
        status=status,
        message=redactor.text(message),
        # A skip is not a problem: it carries a fix only when it says what to fix (a failed dependency).
        remediation=redactor.text(
            finding.remediation
            if finding.remediation is not None
            else ("" if finding.status is Status.SKIP else chk.remediation)
        ),
        docs_url=chk.docs_url,
        evidence=redactor.value(evidence),
        duration_s=round(duration, 3),
        meshery_code=finding.meshery_code or (chk.meshery_code if finding.status is Status.FAIL else None),
        reason=finding.reason,
    )


def _run_one(
    prober: Prober,
    chk: Check,
    arg: Any,
    budget: float,
    raw: dict[str, Status],
    roots: dict[str, str],
    why: dict[str, str],
) -> Finding:
    """Skip when a data dependency (``depends_on``) did not pass, naming the root cause rather than the
    chain of skips; ``after`` dependencies never block.

    A dependency that was itself not applicable makes this check not applicable, for the same reason
    and with nothing to fix; one that failed or errored is what to fix first.
    """
    blocked = [d for d in chk.depends_on if d in raw and raw[d] not in _DEPENDENCY_OK]
    # A check reported after another shares its subject: when that one could not judge (skipped), neither can this.
    blocked += [d for d in chk.after if raw.get(d) is Status.SKIP]
    if blocked:
        dep = blocked[0]
        root = roots.get(dep, dep)
        roots[chk.id] = root
        if raw[root] is Status.SKIP:
            why[chk.id] = why.get(root, "")
            return Finding(
                Status.SKIP,
                f"not applicable: {why[chk.id]}",
                {"blocked_by": root},
                remediation="",
                reason="not_applicable",
            )
        via = "" if root == dep else f" (via {dep})"
        return Finding(
            Status.SKIP,
            f"skipped: {root} did not pass ({raw[root].value}){via}",
            {"blocked_by": root},
            remediation=f"Fix {root} first; this check runs once it passes.",
            reason="dependency_failed",
        )
    return _relate(chk, prober.call(chk, arg, budget), raw)


_PROBLEMS = (Status.WARN, Status.FAIL, Status.ERROR)


def _relate(chk: Check, finding: Finding, raw: dict[str, Status]) -> Finding:
    """A problem found while a check it is reported after also failed: say the two are separate problems."""
    also = [d for d in chk.after if raw.get(d) in (Status.FAIL, Status.ERROR)]
    if finding.status not in _PROBLEMS or not also:
        return finding
    names = ", ".join(f"{d} ({raw[d].value})" for d in also)
    return Finding(
        finding.status,
        f"{finding.message} [a separate problem from {names}, reported above]",
        {**finding.evidence, "independent_of": also},
        finding.remediation,
        reason=finding.reason,
    )


def run_cluster(
    ctx: ClusterContext, checks: Sequence[Check], mutes: Sequence[MuteRule], redactor: Redactor | None = None
) -> list[Result]:
    """One cluster's checks in order within its budget; results are redacted with the run state's redactor
    (``redactor``, when given, becomes it: a cluster checked on its own, as tests do)."""
    if redactor is not None:
        ctx.state.redactor = redactor
    start = time.monotonic()
    ctx.deadline = start + ctx.settings.cluster_timeout
    redactor = ctx.state.redactor
    raw: dict[str, Status] = {}
    roots: dict[str, str] = {}
    why: dict[str, str] = {}  # a not-applicable check's reason, inherited by its dependants
    out: list[Result] = []
    prober = Prober(ctx.name)
    try:
        for chk in checks:
            t0 = time.monotonic()
            remaining = ctx.remaining()
            if remaining <= 0:
                finding = error(
                    f"not run: the cluster's budget of {ctx.settings.cluster_timeout:g}s was used up",
                    remediation="raise --cluster-timeout, or fix what made earlier checks slow",
                    reason="cluster_budget_exhausted",
                )
            else:
                finding = _run_one(prober, chk, ctx, min(_budget(chk, ctx.settings), remaining), raw, roots, why)
                if finding.status is Status.SKIP and chk.id not in why:
                    why[chk.id] = finding.message
            raw[chk.id] = finding.status
            result = _to_result(chk, finding, time.monotonic() - t0, ctx.name, mutes, redactor)
            ctx.results[chk.id] = result
            out.append(result)
    finally:
        prober.close()
        ctx.close()
    return out


def _prepare(checks: Sequence[Check], targets: Sequence[Any]) -> None:
    """Each distinct set-up hook once, before any budget runs; a failing one is left for its checks to report."""
    seen: set[int] = set()
    for chk in checks:
        hook = chk.prepare
        if hook is not None and id(hook) not in seen:
            seen.add(id(hook))
            # A failing hook is left for its checks to meet and report with its cause.
            with contextlib.suppress(Exception):
                hook(targets)


def _unfinished(t_start: float) -> Finding:
    """After an interrupt every selected cluster and check still appears: what finished as it finished, the
    rest as `error`, so JUnit and the JSON summary count them and CI cannot read green."""
    return error(
        f"not finished: interrupted after {time.monotonic() - t_start:.0f}s",
        remediation="Run the check again to completion; this result was never decided.",
        reason="interrupted",
    )


def _redacted(member: FleetMember, redactor: Redactor) -> FleetMember:
    return dataclasses.replace(member, facts=redactor.value(dict(member.facts)))


def run_fleet_checks(
    members: Sequence[FleetMember],
    fleet_checks: Sequence[Check],
    settings: Settings,
    mutes: Sequence[MuteRule] = (),
    redactor: Redactor | None = None,
    out: list[Result] | None = None,
) -> list[Result]:
    """The fleet checks over one record per cluster: a live run's, or those `merge` read from reports.

    Results are appended to ``out`` as they come, so an interrupt keeps the ones already decided.
    """
    redactor = redactor or Redactor()
    out = [] if out is None else out
    # By name: a fleet's verdicts must not depend on which run (or shard) checked a cluster first.
    fleet_ctx = FleetContext(sorted(members, key=lambda m: m.name), settings)
    raw: dict[str, Status] = {}
    prober = Prober("fleet")
    try:
        for chk in fleet_checks:
            t0 = time.monotonic()
            finding = _run_one(prober, chk, fleet_ctx, _budget(chk, settings), raw, {}, {})
            raw[chk.id] = finding.status
            out.append(_to_result(chk, finding, time.monotonic() - t0, "fleet", mutes, redactor))
    finally:
        prober.close()
    return out


@dataclasses.dataclass(frozen=True)
class _Batch:
    """What every cluster of one run is checked with, in this process or in a worker."""

    checks: Sequence[Check]
    settings: Settings
    mutes: Sequence[MuteRule]
    state: RunState
    started: float  # time.monotonic() when the clusters started
    cancel: Cancellation | None

    @property
    def redactor(self) -> Redactor:
        return self.state.redactor

    def report(self, ctx: ClusterContext, results: list[Result]) -> ClusterReport:
        return ClusterReport(
            name=ctx.name,
            server=self.redactor.text(ctx.target.server),
            provider=ctx.target.provider,
            mode=ctx.target.mode or "embedded",
            results=results,
            member=_redacted(ctx.member(self.state.fingerprint_key), self.redactor),
        )

    def all_as(self, ctx: ClusterContext, finding: Finding) -> ClusterReport:
        """The cluster with every check given one finding (it was never checked, or never finished)."""
        return self.report(ctx, [_to_result(c, finding, 0.0, ctx.name, (), self.redactor) for c in self.checks])


@dataclasses.dataclass
class Clusters:
    """What checking a set of clusters produced, by cluster name, and the ones an interrupt left unfinished."""

    reports: dict[str, ClusterReport]
    unfinished: list[str] = dataclasses.field(default_factory=list)

    def aborted(self) -> str | None:
        if not self.unfinished:
            return None
        return f"interrupted: {len(self.unfinished)} of {len(self.reports)} clusters did not finish"


class Executor(Protocol):
    """How the clusters of one run are checked: every selected check of every cluster gets a result, whatever
    ends a cluster early. The one choice of implementation is :func:`executor_for`."""

    def run(self, contexts: Sequence[ClusterContext], batch: _Batch, progress: Callable[[str], None]) -> Clusters:
        """Check ``contexts`` with ``batch``; ``progress(name)`` once per cluster as it finishes."""
        ...


@dataclasses.dataclass(frozen=True)
class InProcess:
    """Every cluster in this process, ``settings.parallel`` at a time (a thread pool)."""

    def run(self, contexts: Sequence[ClusterContext], batch: _Batch, progress: Callable[[str], None]) -> Clusters:
        by_name: dict[str, list[Result]] = {}
        interrupted = False
        cancel = batch.cancel
        # Not a `with` block: on Ctrl-C we must return without waiting for clusters still in flight.
        pool = ThreadPoolExecutor(max_workers=max(1, batch.settings.parallel), thread_name_prefix="cluster")
        # Each cluster's future reports itself finished here: concurrent.futures.wait() over the pending set
        # re-registers on every pending future per call, quadratic in a worker's share of a large fleet.
        finished: queue.SimpleQueue[Future[list[Result]]] = queue.SimpleQueue()
        try:
            futures: dict[Future[list[Result]], ClusterContext] = {}
            for c in contexts:
                fut = pool.submit(run_cluster, c, batch.checks, batch.mutes)
                futures[fut] = c
                fut.add_done_callback(finished.put)
            left = len(futures)
            while left:
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                try:
                    fut = finished.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                left -= 1
                ctx = futures[fut]
                try:
                    by_name[ctx.name] = fut.result()
                except Exception as exc:  # the runner's own bug must cost one cluster, not the run
                    broken = error(
                        f"internal error: {type(exc).__name__}: {exc}",
                        remediation="Run the check again; if it recurs, report the problem with this message.",
                    )
                    by_name[ctx.name] = _finished_or(ctx, batch, broken)
                progress(ctx.name)
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        unfinished = [c.name for c in contexts if c.name not in by_name]
        if unfinished:
            lost = _unfinished(batch.started)
            for ctx in contexts:
                if ctx.name not in by_name:
                    by_name[ctx.name] = _finished_or(ctx, batch, lost)
        return Clusters({c.name: batch.report(c, by_name[c.name]) for c in contexts}, unfinished)


def _finished_or(ctx: ClusterContext, batch: _Batch, cause: Finding) -> list[Result]:
    """Every selected check of a cluster that ended early: what it decided, the rest ``cause``."""
    done_now = dict(ctx.results)  # the cluster's thread may still be adding to it
    return [
        done_now[c.id] if c.id in done_now else _to_result(c, cause, 0.0, ctx.name, (), batch.redactor)
        for c in batch.checks
    ]


@dataclasses.dataclass(frozen=True)
class Forked:
    """The clusters dealt (:func:`deal`) to ``count`` forked worker processes, each checking its share with
    :class:`InProcess`, gathered here."""

    count: int

    def run(self, contexts: Sequence[ClusterContext], batch: _Batch, progress: Callable[[str], None]) -> Clusters:
        from preflight.engine import kube, workers
        from preflight.engine.execcred import kill_running
        from preflight.engine.sharedreads import Channel, ReadServer, WorkerCloudReads

        kube.preload()  # once, before the fork, rather than once per worker
        shares = [[contexts[i] for i in share] for share in deal([c.name for c in contexts], self.count)]
        cancel = batch.cancel
        parallel = workers.share_size(batch.settings.parallel, self.count)
        in_worker = dataclasses.replace(batch, settings=dataclasses.replace(batch.settings, parallel=parallel))

        def work(share: list[ClusterContext], channel: Channel) -> Clusters:
            # This process's copy of the run state: its cloud reads are answered by the parent from here on.
            batch.state.cloud = WorkerCloudReads(channel, batch.state.cloud)
            done = InProcess().run(share, in_worker, channel)
            if done.unfinished:
                kill_running()
            return done

        def stop() -> None:  # in a worker, when its parent says stop: the worker's own first request
            if cancel is not None and not cancel.is_set():
                cancel.ask_to_stop(signal.SIGTERM)

        def quietly(code: int) -> None:
            kill_running()
            exit_now(code)

        # In a worker, a second signal ends that worker at once, without the parent's last words on stderr.
        with cancel.second_request_does(quietly) if cancel is not None else contextlib.nullcontext():
            outs = workers.fan_out(
                shares,
                work,
                progress=progress,
                stop=cancel,
                on_stop=stop,
                on_orphaned=kill_running,
                grace=max(5.0, batch.settings.connect_timeout * 2),
                limit=_share_limit(shares, in_worker.settings.parallel),
                server=ReadServer(batch.state.cloud),
            )
        return _gathered(shares, outs, batch)


def deal(names: Sequence[str], count: int) -> list[list[int]]:
    """The indices of ``names`` per worker: round-robin over an order fixed by a salted hash of each name.

    Round-robin in kubeconfig order spreads runs of similar clusters (a region, a broken VPN) but not a pattern
    with the workers' period: every other cluster slow put all the slow ones in one worker, which then set the
    run's wall time. A hash order spreads both. Not ``--shard``'s hash: a shard's contexts all have the same
    hash modulo its shard count, so with --shard K/2 and two workers every cluster would land in one worker."""
    order = sorted(
        range(len(names)), key=lambda i: hashlib.blake2b(names[i].encode(), key=b"deal", digest_size=8).digest()
    )
    return [order[k::count] for k in range(count)]


def _gathered(shares: Sequence[Sequence[ClusterContext]], outs: Sequence[Clusters | str], batch: _Batch) -> Clusters:
    """The workers' reports as one; a share without one (a worker that died, or did not answer after a
    signal) gives every check of its clusters a result saying why."""
    gathered = Clusters({})
    interrupted = batch.cancel is not None and batch.cancel.is_set()
    for share, out in zip(shares, outs, strict=True):
        if isinstance(out, Clusters):
            gathered.reports.update(out.reports)
            gathered.unfinished += out.unfinished
        elif interrupted:  # no answer after the signal: its clusters were not finished
            lost = _unfinished(batch.started)
            gathered.reports.update({c.name: batch.all_as(c, lost) for c in share})
            gathered.unfinished += [c.name for c in share]
        else:
            # A crash or the OOM killer: its clusters were not checked (an `error` each); the others' results stand.
            lost = error(
                f"not checked: the worker process checking this cluster {out}",
                remediation="Run the check again; if it recurs, run with --workers 1 and report the problem.",
            )
            gathered.reports.update({c.name: batch.all_as(c, lost) for c in share})
    return gathered


def _share_limit(shares: Sequence[Sequence[ClusterContext]], parallel: int) -> float:
    """The longest a worker's share can take: a cluster budget per wave of ``parallel`` clusters, plus slack."""
    longest = max(c.settings.cluster_timeout for share in shares for c in share)
    waves = max(math.ceil(len(share) / parallel) for share in shares)
    return waves * longest + 30.0


def run_fleet(
    contexts: Sequence[ClusterContext],
    cluster_checks: Sequence[Check],
    fleet_checks: Sequence[Check],
    settings: Settings,
    mutes: Sequence[MuteRule] = (),
    state: RunState | None = None,
    progress: Progress | None = None,
    cancel: Cancellation | None = None,
) -> RunReport:
    """Every cluster's checks, then the fleet checks. ``cancel``: the run's cancellation; while clusters run, a
    stop request is polled for rather than raised. ``state``: the run's changing state (a caller's long-lived
    cloud cache, say); default a fresh one. The fingerprint key of ``settings``, if any, is the one used."""
    state = state or RunState()
    if settings.fingerprint_key is not None:
        state.fingerprint_key = settings.fingerprint_key
    redactor = state.redactor
    for ctx in contexts:
        ctx.state = state
        redactor.add(ctx.target.credential.secrets())
    started = dt.datetime.now(dt.timezone.utc)
    _prepare(cluster_checks, [c.target for c in contexts])
    batch = _Batch(cluster_checks, settings, mutes, state, time.monotonic(), cancel)
    executor = executor_for(settings, len(contexts))
    if cancel is not None:
        cancel.poll_from_now()
    finished: set[str] = set()

    def cluster_progress(name: str) -> None:
        if progress is not None:
            finished.add(name)
            progress(len(finished), len(contexts), name)

    # What planning and the imports made lives until the end: out of every collection while clusters run (and,
    # in forked workers, in pages that stay shared because no collection writes to them).
    gc.freeze()
    try:
        done = executor.run(contexts, batch, cluster_progress)
    finally:
        gc.unfreeze()
    aborted = done.aborted()
    fleet_results: list[Result] = []
    try:
        if aborted is None:
            members = [m for c in contexts if (m := done.reports[c.name].member) is not None]
            run_fleet_checks(members, fleet_checks, settings, mutes, redactor, fleet_results)
    except KeyboardInterrupt:
        aborted = "interrupted: every cluster finished, the fleet checks did not"
    if aborted is not None:
        ran = {r.check_id for r in fleet_results}
        lost = _unfinished(batch.started)
        fleet_results.extend(
            _to_result(chk, lost, 0.0, "fleet", (), redactor) for chk in fleet_checks if chk.id not in ran
        )
    return RunReport(
        tool_name=preflight.TOOL_NAME,
        tool_version=preflight.__version__,
        started_at=started,
        finished_at=dt.datetime.now(dt.timezone.utc),
        origin_cidrs=list(settings.origin_cidrs),
        clusters=[done.reports[c.name] for c in contexts],
        fleet_results=fleet_results,
        aborted=aborted,
    )


def executor_for(settings: Settings, clusters: int) -> Executor:
    """The one place the executor is chosen: forked workers when ``--workers`` (or the machine's cores, for
    a large fleet) asks for more than one and this process may fork, else this process."""
    from preflight.engine import workers

    count = workers.count_for(settings.workers, clusters)
    # A process with other threads (a test runner, an embedding application) must not fork: it runs in-process.
    return Forked(count) if count > 1 and workers.can_fork() else InProcess()
