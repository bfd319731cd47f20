"""What `/metrics` and `/probe` expose: the latest report's families and the prober's own health.

The report's families are built at scrape time from the one report object the scheduler last finished
(custom collectors, no long-lived per-series gauges): a cluster that leaves the kubeconfig leaves the
next scrape, never a stale series. Every label value comes from a bounded set: cluster and check names,
statuses, and :mod:`preflight.engine.reasons` codes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

import preflight
from preflight.engine import reasons
from preflight.engine.model import RunReport, Status
from preflight.reports import prometheus as textfile
from preflight.reports._common import as_utc

PREFIX = textfile.PREFIX
RUN_OUTCOMES = ("completed", "aborted", "no_config", "crashed")
PROBE_OUTCOMES = ("completed", "unknown_context", "bad_request", "shared", "timeout", "crashed")


def check_result_family(report: RunReport) -> GaugeMetricFamily:
    """One series per cluster and check, value 1, labelled with its status and cause."""
    family = GaugeMetricFamily(
        f"{PREFIX}_check_result",
        "The last result of each check per cluster (value 1): its status and its cause code (reason).",
        labels=["cluster", "check", "category", "severity", "status", "reason"],
    )
    for c in report.clusters:
        for r in c.results:
            cause = reasons.label(r.reason, r.status.value)
            family.add_metric([c.name, r.check_id, r.category, r.severity.value, r.status.value, cause], 1)
    return family


def plugin_timeouts(report: RunReport) -> int:
    return sum(1 for r in report.all_results if r.reason == "exec_plugin_timeout")


def age_family(report: RunReport) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_result_age_seconds",
        "Seconds since the run behind these results finished.",
        value=max(time.time() - as_utc(report.finished_at).timestamp(), 0.0),
    )


class ReportCollector(Collector):
    """The families of one report: the textfile's, plus the status/reason series (and its age, if ``age``)."""

    def __init__(self, report: RunReport, previous: Mapping[str, float], *, age: bool = True) -> None:
        self.report, self.previous, self.age = report, previous, age

    def collect(self) -> Iterator[Any]:
        yield from textfile.collector(self.report, self.previous).collect()
        yield check_result_family(self.report)
        if self.age:
            yield age_family(self.report)


def report_exposition(report: RunReport, previous: Mapping[str, float]) -> bytes:
    """The text of a finished run's families, made once per run (a fleet's take most of a second to render)
    and served by every scrape until the next run."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ReportCollector(report, previous, age=False))
    return generate_latest(reg)


def exposition(registry: CollectorRegistry, report_text: bytes | None) -> bytes:
    """`/metrics`: the live families (health, process, result age) and the latest run's, rendered beforehand."""
    return generate_latest(registry) + (report_text or b"")


@dataclass
class Health:
    """The prober's own counters: apart from any cluster's, so "the prober broke" never reads as a fleet failure."""

    runs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_OUTCOMES, 0))
    probes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROBE_OUTCOMES, 0))
    last_success: float | None = None
    last_run_duration: float | None = None
    plugin_timeouts: int = 0
    cloud_api_calls: int = 0
    config_valid: bool = True
    config_errors: int = 0
    config_loaded_at: float | None = None
    ready: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_run(self, outcome: str) -> None:
        with self.lock:
            self.runs[outcome] += 1

    def count_probe(self, outcome: str) -> None:
        with self.lock:
            self.probes[outcome] += 1

    def count_plugin_timeouts(self, report: RunReport) -> None:
        n = plugin_timeouts(report)
        with self.lock:
            self.plugin_timeouts += n


class HealthCollector(Collector):
    def __init__(self, health: Health, interval: float) -> None:
        self.health, self.interval = health, interval

    def collect(self) -> Iterator[Any]:
        h = self.health
        with h.lock:
            runs, probes = dict(h.runs), dict(h.probes)
            last_success, duration = h.last_success, h.last_run_duration
            timeouts, valid, loaded = h.plugin_timeouts, h.config_valid, h.config_loaded_at
            config_errors, api_calls = h.config_errors, h.cloud_api_calls
        info = InfoMetricFamily(f"{PREFIX}_build", "The prober's version.")
        info.add_metric([], {"version": preflight.__version__})
        yield info
        family = CounterMetricFamily(f"{PREFIX}_runs", "Scheduled runs by outcome.", labels=["outcome"])
        for outcome, n in runs.items():
            family.add_metric([outcome], n)
        yield family
        yield CounterMetricFamily(
            f"{PREFIX}_prober_failures",
            "Failures of the prober itself (a crash, an edit that does not plan): never a cluster's failure.",
            value=runs["no_config"] + runs["crashed"] + config_errors,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_config_errors",
            "Runs that found a kubeconfig or fleet file that does not plan (the last good one was used).",
            value=config_errors,
        )
        family = CounterMetricFamily(f"{PREFIX}_probes", "/probe requests by outcome.", labels=["outcome"])
        for outcome, n in probes.items():
            family.add_metric([outcome], n)
        yield family
        if last_success is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_last_successful_run_timestamp_seconds",
                "When a scheduled run last completed (Unix time), whatever the clusters' results.",
                value=last_success,
            )
        if duration is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_last_run_seconds", "How long the last scheduled run took.", value=duration
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_interval_seconds", "The configured time between scheduled runs.", value=self.interval
        )
        yield CounterMetricFamily(
            f"{PREFIX}_cloud_api_calls",
            "Cloud API requests sent (describes the cache did not answer), across runs and probes.",
            value=api_calls,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_plugin_timeouts", "Exec credential plugins that did not answer in time.", value=timeouts
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_config_valid",
            "1 when the kubeconfig and fleet file planned cleanly at the last run; 0: the last good one is in use.",
            value=int(valid),
        )
        if loaded is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_config_last_good_timestamp_seconds",
                "When the configuration last planned cleanly (Unix time).",
                value=loaded,
            )


class AgeCollector(Collector):
    """The latest report's age, read at scrape time; nothing before the first run finishes."""

    def __init__(self, latest: Callable[[], RunReport | None]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Any]:
        report = self.latest()
        if report is not None:
            yield age_family(report)


def server_registry(latest: Callable[[], RunReport | None], health: Health, interval: float) -> CollectorRegistry:
    """`/metrics`'s live part: the prober's health, the latest report's age (``latest()``: the report or None),
    and the standard process/Python collectors. The report's own families come from :func:`report_exposition`."""
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    reg = CollectorRegistry(auto_describe=False)
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        reg.register(standard)
    reg.register(HealthCollector(health, interval))
    reg.register(AgeCollector(latest))
    return reg


class ProbeCollector(Collector):
    """blackbox_exporter's two probe series: did the cluster pass, and how long it took."""

    def __init__(self, report: RunReport, duration: float) -> None:
        self.report, self.duration = report, duration

    def collect(self) -> Iterator[Any]:
        bad = (Status.FAIL, Status.ERROR)
        report = self.report
        ok = bool(report.clusters) and not report.aborted and all(r.status not in bad for r in report.all_results)
        yield GaugeMetricFamily(f"{PREFIX}_probe_success", "1 when no check failed or errored.", value=int(ok))
        yield GaugeMetricFamily(f"{PREFIX}_probe_duration_seconds", "How long the probe took.", value=self.duration)


def probe_registry(report: RunReport, duration: float) -> CollectorRegistry:
    """`/probe`: a fresh registry per request holding only that probe's cluster (the blackbox pattern)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ReportCollector(report, {}))
    reg.register(ProbeCollector(report, duration))
    return reg
