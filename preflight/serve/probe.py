"""`/probe?context=NAME[&checks=GLOB]`: one cluster checked now, within the scraper's deadline.

Concurrent probes of the same cluster and checks share one run and its result (single flight): a fleet
of Prometheus replicas scraping one target never multiplies the probing. Probes use the scheduler's
last good plan, so a context is known exactly when the scheduled runs check it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

from preflight import app
from preflight.engine.context import ClusterContext
from preflight.engine.errors import ConfigError
from preflight.engine.model import RunReport
from preflight.serve.scheduler import Scheduler

# Deadline without a scrape header, and the least a probe is given.
DEFAULT_TIMEOUT_S = 10.0
MIN_TIMEOUT_S = 0.5
# The share of a probe's budget an exec credential plugin may take.
EXEC_SHARE = 0.6


class UnknownContext(LookupError):
    pass


class BadRequest(ValueError):
    pass


class Busy(RuntimeError):
    pass


class ProbeFailed(RuntimeError):
    """The prober's own failure while probing (never a cluster's verdict)."""


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    report: RunReport | None = None
    duration: float = 0.0
    error: str | None = None


def deadline_from(header: str | None, margin: float, cap: float) -> float:
    """The scrape's timeout minus ``margin`` (blackbox_exporter's offset), capped by the cluster budget."""
    try:
        scrape = float(header) if header else DEFAULT_TIMEOUT_S
    except ValueError:
        scrape = DEFAULT_TIMEOUT_S
    if not scrape > 0:
        scrape = DEFAULT_TIMEOUT_S
    return max(MIN_TIMEOUT_S, min(scrape - margin, cap))


class Prober:
    def __init__(self, scheduler: Scheduler, max_running: int = 8) -> None:
        self.scheduler = scheduler
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_running)

    def probe(self, name: str, checks: str | None, budget: float) -> tuple[RunReport, float, bool]:
        """(report, seconds, shared): the probe's report, how long it took, whether it joined another's run.
        Raises :class:`UnknownContext`, :class:`BadRequest`, :class:`Busy`, :class:`ProbeFailed` or TimeoutError."""
        prepared = self.scheduler.prepared
        if prepared is None or not any(c.name == name for c in prepared.plan.contexts):
            raise UnknownContext(name)
        key = (name, checks or "")
        with self._lock:
            flight = self._flights.get(key)
            shared = flight is not None
            if flight is None:
                if not self._slots.acquire(blocking=False):
                    raise Busy("too many probes running")
                flight = self._flights[key] = _Flight()
                try:
                    self._start(flight, key, prepared, name, checks, budget)
                except BaseException:
                    self._flights.pop(key, None)
                    self._slots.release()
                    raise
        if not flight.done.wait(budget + 2.0):
            raise TimeoutError(f"probe of {name} did not finish within {budget:.1f}s")
        if flight.error is not None:
            raise ProbeFailed(flight.error)
        assert flight.report is not None
        return flight.report, flight.duration, shared

    def _start(
        self,
        flight: _Flight,
        key: tuple[str, str],
        prepared: app.Prepared,
        name: str,
        checks: str | None,
        budget: float,
    ) -> None:
        chosen = None
        if checks:
            try:
                chosen = app.select(self.scheduler.registry, [checks])
            except ConfigError as exc:
                raise BadRequest(str(exc)) from None
        one = prepared.only(name, chosen)
        assert one is not None
        ctx = one.plan.contexts[0]
        # The context's settings bounded by the scrape (its cloud reads go through the long-lived cache, see
        # Scheduler.run_state), the exec plugin's deadline inside that budget: the cluster's context waits for a
        # plugin already started, and a hung one is then reported as such (exec_plugin_timeout).
        cluster = min(ctx.settings.cluster_timeout, budget)
        bound = {"cluster": cluster, "exec": min(ctx.settings.exec_timeout, cluster * EXEC_SHARE)}
        settings = ctx.settings.with_overrides(bound)
        bounded = app.Prepared(
            dataclasses.replace(one.plan, contexts=[ClusterContext(ctx.target, settings)]), one.chosen, None
        )

        def work() -> None:
            t0 = time.monotonic()
            state = self.scheduler.run_state()
            try:
                flight.report = app.run_prepared(bounded, cancel=self.scheduler.cancel, state=state)
                self.scheduler.health.count_plugin_timeouts(flight.report)
                self.scheduler.count_cloud_calls(state)
            except Exception as exc:  # the prober's failure, reported to the scraper, never a crash
                flight.error = f"probe failed: {type(exc).__name__}"
            finally:
                flight.duration = time.monotonic() - t0
                with self._lock:
                    self._flights.pop(key, None)
                self._slots.release()
                flight.done.set()

        threading.Thread(target=work, name=f"probe-run:{name}", daemon=True).start()
