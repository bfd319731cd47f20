"""Prometheus metrics of a run: a textfile for node-exporter's textfile collector, or a Pushgateway push.

Labels carry only names from bounded sets (cluster, check id, category, severity, status), never a
message or an address, so the series count is clusters x checks however the run went. prometheus-client
is imported inside the functions: only runs that ask for metrics load it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from preflight.engine.model import (
    CHANGES,
    STATUS_ORDER,
    STATUS_RANK,
    ClusterReport,
    RunReport,
    Status,
    cluster_status,
    summarize,
)

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
    return bool(cluster.results) and STATUS_RANK[cluster_status(cluster.results)] < STATUS_RANK[Status.FAIL]


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


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, labels=labels)


def _check_status(clusters: Sequence[ClusterReport]) -> Any:
    family = _gauge(
        f"{PREFIX}_check_status",
        f"Status of each check per cluster: {_MAPPING}.",
        ["cluster", "check", "category", "severity"],
    )
    for c in clusters:
        for r in c.results:
            family.add_metric([c.name, r.check_id, r.category, r.severity.value], STATUS_VALUE[r.status])
    return family


def _cluster_results(clusters: Sequence[ClusterReport]) -> Any:
    family = _gauge(
        f"{PREFIX}_cluster_results", "Results per cluster and status in the last run.", ["cluster", "status"]
    )
    for c in clusters:
        for status, n in summarize(c.results).items():
            family.add_metric([c.name, status], n)
    return family


def _cluster_healthy(clusters: Sequence[ClusterReport]) -> Any:
    family = _gauge(f"{PREFIX}_cluster_healthy", "1 when no check of the cluster failed or errored.", ["cluster"])
    for c in clusters:
        family.add_metric([c.name], 1 if succeeded(c) else 0)
    return family


def last_success_lines(lines: Iterable[str]) -> str:
    """The lines of a previous textfile that :func:`previous_successes` reads (the last-success family),
    picked while reading it, so the previous metrics of a fleet are never held whole."""
    heads = (f"# HELP {LAST_SUCCESS} ", f"# TYPE {LAST_SUCCESS} ", f"{LAST_SUCCESS}{{", f"{LAST_SUCCESS} ")
    return "".join(line for line in lines if line.startswith(heads))


class _RunCollector:
    """Every metric of a run, families in the order the textfile has always listed them; those with a
    sample per cluster can be built from a slice of the clusters, as :func:`chunks` renders them."""

    def __init__(self, report: RunReport, previous: Mapping[str, float]) -> None:
        self.report, self.previous = report, previous

    def sections(self) -> list[tuple[bool, Callable[[Sequence[ClusterReport]], Any]]]:
        """The families up to the run-wide ones, each built from a slice of the clusters; True where the
        family has samples per cluster (the fleet checks' family ignores the slice)."""
        return [
            (True, _check_status),
            (False, lambda _: self._fleet()),
            (True, _cluster_results),
            (True, _cluster_healthy),
            (True, self._last_success),
        ]

    def _fleet(self) -> Any:
        family = _gauge(
            f"{PREFIX}_fleet_check_status",
            f"Status of each fleet-wide check: {_MAPPING}.",
            ["check", "category", "severity"],
        )
        for r in self.report.fleet_results:
            family.add_metric([r.check_id, r.category, r.severity.value], STATUS_VALUE[r.status])
        return family

    def _last_success(self, clusters: Sequence[ClusterReport]) -> Any:
        family = _gauge(
            LAST_SUCCESS, "When a run last found no failure or error on the cluster (Unix time).", ["cluster"]
        )
        finished = as_utc(self.report.finished_at).timestamp()
        for c in clusters:
            when = finished if succeeded(c) else self.previous.get(c.name)
            if when is not None:
                family.add_metric([c.name], when)
        return family

    def run_wide(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        report = self.report
        totals = GaugeMetricFamily(f"{PREFIX}_results", "Results per status in the last run.", labels=["status"])
        for status, n in report.summary.items():
            totals.add_metric([status], n)
        yield totals
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

    def collect(self) -> Iterator[Any]:
        for _, build in self.sections():
            yield build(self.report.clusters)
        yield from self.run_wide()


class _Families:
    """A collector of given families, for rendering some of a run's metrics."""

    def __init__(self, *families: Any) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def collector(report: RunReport, previous: Mapping[str, float] | None = None) -> Any:
    """A prometheus-client collector of every metric of ``report`` (what the textfile holds), for a server
    that exposes the latest run (`serve`); ``previous``: last-success times of clusters that failed now."""
    return _RunCollector(report, previous or {})


def registry(report: RunReport, previous: Mapping[str, float] | None = None) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_RunCollector(report, previous or {}))
    return reg


def render(report: RunReport, previous: str | None = None) -> str:
    """The text exposition format; ``previous`` (the file being replaced) keeps last-success timestamps."""
    return "".join(chunks(report, previous))


# Clusters per piece of a per-cluster family.
SLICE = 20


def chunks(report: RunReport, previous: str | None = None) -> Iterator[str]:
    """:func:`render`'s text, the per-cluster families a slice of clusters at a time. Each slice is the
    library's exposition of a family holding only those samples; after the first, its ``# HELP`` and
    ``# TYPE`` lines (always the first two) are dropped, so the pieces join into the one family."""
    from prometheus_client import generate_latest

    collector = _RunCollector(report, previous_successes(previous))
    clusters = report.clusters
    for per_cluster, build in collector.sections():
        for start in range(0, max(len(clusters), 1) if per_cluster else 1, SLICE):
            part = clusters[start : start + SLICE] if per_cluster else clusters
            text = generate_latest(_Families(build(part))).decode("utf-8")
            yield text if start == 0 else text.split("\n", 2)[2]
    yield generate_latest(_Families(*collector.run_wide())).decode("utf-8")


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
