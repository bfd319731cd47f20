"""Check the fleet on a schedule, one run at a time, through the same pipeline as `check`.

Each run plans afresh, so kubeconfig and fleet-file edits are picked up; an edit that does not plan
keeps the last good plan running and says so (``config_valid 0`` and a log line). The latest report is
kept as one immutable snapshot that scrapes and page views read without waiting for a run.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from preflight import app
from preflight.engine.cancel import Cancellation
from preflight.engine.errors import ConfigError
from preflight.engine.model import RunReport
from preflight.engine.plan import Request
from preflight.engine.registry import Registry
from preflight.engine.runstate import RunState
from preflight.engine.settings import Settings
from preflight.reports import prometheus as textfile
from preflight.reports._common import as_utc
from preflight.serve.logs import Log
from preflight.serve.metrics import Health
from preflight.serve.ttlcache import TtlOnce

# The clouds whose API calls RunState counts (its keys are "cloud:operation").
CLOUDS = ("aws", "gcp", "azure")


@dataclass
class Snapshot:
    """The latest finished run and what is rendered from it, once, on first demand."""

    report: RunReport
    last_success: dict[str, float]
    fail_on: str = "fail"
    _rendered: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def metrics(self) -> bytes:
        """The run's metric families, rendered once: every scrape until the next run serves these bytes."""
        from preflight.serve.metrics import report_exposition

        with self._lock:
            if "metrics" not in self._rendered:
                self._rendered["metrics"] = report_exposition(self.report, self.last_success)
            return self._rendered["metrics"]

    def rendered(self, fmt: str) -> bytes:
        from preflight.reports import writer
        from preflight.reports.options import RenderOptions

        with self._lock:
            if fmt not in self._rendered:
                text = writer.render(fmt, self.report, options=RenderOptions(fail_on=self.fail_on))
                self._rendered[fmt] = text.encode("utf-8")
            return self._rendered[fmt]


class Scheduler:
    def __init__(
        self,
        request: Request,
        settings: Settings,
        *,
        include: Sequence[str],
        exclude: Sequence[str],
        interval: float,
        jitter: float,
        cache: TtlOnce,
        cancel: Cancellation,
        log: Log,
        registry: Registry,
        fail_on: str = "fail",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.request, self.base = request, settings
        self.include, self.exclude = list(include), list(exclude)
        self.interval, self.jitter = interval, jitter
        self.cache, self.cancel, self.log, self.registry = cache, cancel, log, registry
        self.stopping = threading.Event()  # set once the cancellation is seen: no further run starts
        self.fail_on, self.clock = fail_on, clock
        self.health = Health()
        self.prepared: app.Prepared | None = None
        self.snapshot: Snapshot | None = None
        self._last_success: dict[str, float] = {}
        self.config_error: str | None = None
        self._lock = threading.Lock()  # one run at a time

    def run_state(self) -> RunState:
        """A run's (or probe's) changing state, its cloud reads answered by the long-lived cache: the single
        place `serve` makes one."""
        return RunState(cloud_cache=self.cache, fingerprint_key=self.base.fingerprint_key)

    def count_cloud_calls(self, state: RunState) -> None:
        calls = sum(n for cloud in CLOUDS for n in state.cloud.calls(cloud).values())
        with self.health.lock:
            self.health.cloud_api_calls += calls

    def plan(self, *, first: bool = False) -> app.Prepared | None:
        """Plan from the files as they are now; on a bad edit, the last good plan (None before any).
        ``first``: the plan at start-up, whose :class:`ConfigError` is the caller's (exit 2)."""
        try:
            prepared = app.prepare(
                self.request, self.base, include=self.include, exclude=self.exclude, registry=self.registry
            )
        except ConfigError as exc:
            if first:
                raise
            message = str(exc).splitlines()[0] if str(exc) else "configuration error"
            with self.health.lock:
                self.health.config_valid = False
                self.health.config_errors += 1
            if message != self.config_error:
                self.log.event(
                    "config_invalid",
                    level="error",
                    error=message,
                    using="the last good configuration" if self.prepared else "nothing: no configuration planned yet",
                )
            self.config_error = message
            return self.prepared
        if self.config_error is not None:
            self.log.event("config_valid", clusters=len(prepared.plan.contexts))
        self.config_error = None
        with self.health.lock:
            self.health.config_valid = True
            self.health.config_loaded_at = self.clock()
        self.prepared = prepared
        return prepared

    def run_once(self) -> RunReport | None:
        with self._lock:
            prepared = self.plan()
            if prepared is None:
                self.health.count_run("no_config")
                return None
            t0 = time.monotonic()
            state = self.run_state()
            try:
                report = app.run_prepared(prepared, cancel=self.cancel, state=state)
            except Exception as exc:  # the prober's own failure: counted and logged, the service stays up
                self.health.count_run("crashed")
                self.log.event("run", level="error", outcome="crashed", error=f"{type(exc).__name__}: {exc}")
                return None
            took = time.monotonic() - t0
            self.count_cloud_calls(state)
            outcome = "aborted" if report.aborted else "completed"
            self.publish(report, took)
            self.health.count_run(outcome)
            self.log.event(
                "run",
                outcome=outcome,
                clusters=len(report.clusters),
                duration_s=round(took, 3),
                config_valid=self.health.config_valid,
                results=report.summary,
            )
            return report

    def publish(self, report: RunReport, took: float) -> None:
        if report.aborted and self.cancel.is_set():
            return  # stopped by shutdown: the last complete run stays the latest
        finished = as_utc(report.finished_at).timestamp()
        names = {c.name for c in report.clusters}
        for c in report.clusters:
            if textfile.succeeded(c):
                self._last_success[c.name] = finished
        # Clusters gone from the configuration leave with their series.
        self._last_success = {k: v for k, v in self._last_success.items() if k in names}
        snapshot = Snapshot(report, dict(self._last_success), self.fail_on)
        snapshot.metrics()  # here, in the scheduler's thread: scrapes never wait for a fleet's rendering
        self.snapshot = snapshot
        self.health.count_plugin_timeouts(report)
        with self.health.lock:
            self.health.last_run_duration = took
            if not report.aborted:
                self.health.last_success = self.clock()
                self.health.ready = True

    def latest(self) -> RunReport | None:
        snap = self.snapshot
        return snap.report if snap is not None else None

    def next_wait(self) -> float:
        spread = self.interval * self.jitter
        return max(0.0, self.interval + random.uniform(-spread, spread))

    def loop(self) -> None:
        """Run, wait an interval (with jitter, so many probers do not fire in step), until told to stop."""
        stop = self.stopping
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # planning's own bug: counted and logged, the next run tries again
                self.health.count_run("crashed")
                self.log.event("run", level="error", outcome="crashed", error=f"{type(exc).__name__}: {exc}")
            stop.wait(self.next_wait())
