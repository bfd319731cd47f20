"""Prometheus metrics of a run: a textfile for node-exporter's textfile collector, or a Pushgateway push.

Labels carry only names from bounded sets (cluster, check id, category, severity, status), never a
message or an address, so the series count is clusters x checks however the run went. prometheus-client
is imported inside the functions: only runs that ask for metrics load it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from preflight.model import CHANGES, STATUS_ORDER, STATUS_RANK, ClusterReport, RunReport, Status, summarize

from ._common import as_utc

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

PREFIX = "meshery_preflight"
JOB = "meshery-preflight"
# The gauge value of each status: its place in STATUS_ORDER (0 pass, 1 warn, 2 fail, 3 skip, 4 error, 5 muted).
STATUS_VALUE: dict[Status, int] = {s: i for i, s in enumerate(STATUS_ORDER)}
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
_MAPPING = ", ".join(f"{v} {s.value}" for s, v in STATUS_VALUE.items())


def succeeded(cluster: ClusterReport) -> bool:
    """A cluster succeeds when it was checked and nothing failed or errored (warnings still count)."""
    return bool(cluster.results) and all(STATUS_RANK[r.status] < STATUS_RANK[Status.FAIL] for r in cluster.results)


def previous_successes(text: str | None) -> dict[str, float]:
    """Per-cluster last-success timestamps from a textfile this renderer wrote before."""
    if not text:
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and "cluster" in sample.labels:
                    out[sample.labels["cluster"]] = float(sample.value)
    except ValueError:  # not ours or truncated: start afresh rather than fail the run's reports
        return {}
    return out


class _RunCollector:
    def __init__(self, report: RunReport, previous: Mapping[str, float]) -> None:
        self.report, self.previous = report, previous

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        report = self.report
        check = GaugeMetricFamily(
            f"{PREFIX}_check_status",
            f"Status of each check per cluster: {_MAPPING}.",
            labels=["cluster", "check", "category", "severity"],
        )
        fleet = GaugeMetricFamily(
            f"{PREFIX}_fleet_check_status",
            f"Status of each fleet-wide check: {_MAPPING}.",
            labels=["check", "category", "severity"],
        )
        counts = GaugeMetricFamily(
            f"{PREFIX}_cluster_results", "Results per cluster and status in the last run.", labels=["cluster", "status"]
        )
        healthy = GaugeMetricFamily(
            f"{PREFIX}_cluster_healthy", "1 when no check of the cluster failed or errored.", labels=["cluster"]
        )
        last = GaugeMetricFamily(
            LAST_SUCCESS, "When a run last found no failure or error on the cluster (Unix time).", labels=["cluster"]
        )
        finished = as_utc(report.finished_at).timestamp()
        for c in report.clusters:
            for r in c.results:
                check.add_metric([c.name, r.check_id, r.category, r.severity.value], STATUS_VALUE[r.status])
            for status, n in summarize(c.results).items():
                counts.add_metric([c.name, status], n)
            ok = succeeded(c)
            healthy.add_metric([c.name], 1 if ok else 0)
            when = finished if ok else self.previous.get(c.name)
            if when is not None:
                last.add_metric([c.name], when)
        for r in report.fleet_results:
            fleet.add_metric([r.check_id, r.category, r.severity.value], STATUS_VALUE[r.status])
        totals = GaugeMetricFamily(f"{PREFIX}_results", "Results per status in the last run.", labels=["status"])
        for status, n in report.summary.items():
            totals.add_metric([status], n)
        yield from (check, fleet, counts, healthy, last, totals)
        yield GaugeMetricFamily(
            f"{PREFIX}_run_start_timestamp_seconds",
            "When the last run started (Unix time).",
            value=as_utc(report.started_at).timestamp(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_run_duration_seconds", "How long the last run took.", value=max(report.duration_s, 0.0)
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_run_aborted", "1 when the last run stopped early.", value=int(bool(report.aborted))
        )
        yield GaugeMetricFamily(f"{PREFIX}_clusters", "Clusters the last run checked.", value=len(report.clusters))
        if report.baseline is not None:
            changes = GaugeMetricFamily(
                f"{PREFIX}_changes", "Results per change since the baseline run (--baseline).", labels=["change"]
            )
            for change in CHANGES:
                changes.add_metric([change], report.baseline.counts.get(change, 0))
            yield changes


def registry(report: RunReport, previous: Mapping[str, float] | None = None) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_RunCollector(report, previous or {}))
    return reg


def render(report: RunReport, previous: str | None = None) -> str:
    """The text exposition format; ``previous`` (the file being replaced) keeps last-success timestamps."""
    from prometheus_client import generate_latest

    return generate_latest(registry(report, previous_successes(previous))).decode("utf-8")


def public_url(url: str) -> str:
    """The URL without user information, fit for a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a Pushgateway URL, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected http://HOST:PORT or https://HOST:PORT"
    return None


def grouping_key(cluster_set: str, shard: tuple[int, int] | None) -> dict[str, str]:
    """One Pushgateway group per cluster set and shard, so shards never overwrite each other."""
    return {"cluster_set": cluster_set, "shard": f"{shard[0]}-of-{shard[1]}" if shard else "all"}


def push(report: RunReport, url: str, *, cluster_set: str, timeout: float) -> None:
    """Replace this run's group on the Pushgateway; credentials in the URL go in a header, never a message."""
    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    parts = urlsplit(url)
    user, password = parts.username, parts.password

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes) -> Any:
        if user is not None:
            return basic_auth_handler(url, method, timeout, headers, data, user, password or "")
        return default_handler(url, method, timeout, headers, data)

    push_to_gateway(
        public_url(url),
        job=JOB,
        registry=registry(report),
        grouping_key=grouping_key(cluster_set, report.shard),
        timeout=timeout,
        handler=handler,
    )
