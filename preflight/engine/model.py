"""The result model every part of meshery-preflight speaks.

Checks produce :class:`Finding`s, the runner turns them into :class:`Result`s, and renderers see
only a :class:`RunReport`. Nothing here performs I/O, so the model stays importable everywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NoReturn, TypeVar

from preflight.engine.facts import Fact
from preflight.engine.permissions import Permission
from preflight.engine.reasons import validate as _validate_reason

T = TypeVar("T")

DOCS_BASE_URL = "https://github.com/meshery/meshery-preflight/blob/main/docs/checks.md"


class Status(str, Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"
    MUTED = "muted"


# The order statuses are listed and counted in (summaries, JSON keys, the Prometheus gauge's values):
# a display order, not a ranking.
STATUS_ORDER: tuple[Status, ...] = (
    Status.PASS,
    Status.WARN,
    Status.FAIL,
    Status.SKIP,
    Status.ERROR,
    Status.MUTED,
)

# THE ranking, best first, behind every "worst status" of the tool: a cluster's status in every report format,
# a matrix cell, worst-first tables, and a check combining findings. A decided failure outranks an undecided
# error (both fail a run: see STATUS_RANK); a live warning outranks a muted problem (someone looked at it); a
# muted problem outranks a skip that says what to fix, and that a pass. Checks that do not apply
# (:func:`is_not_applicable`) never count towards a status.
SEVERITY_ORDER: tuple[Status, ...] = (
    Status.PASS,
    Status.SKIP,
    Status.MUTED,
    Status.WARN,
    Status.ERROR,
    Status.FAIL,
)
_SEVERITY: dict[Status, int] = {s: i for i, s in enumerate(SEVERITY_ORDER)}

# The gate level of a status, for --fail-on and --baseline: SEVERITY_ORDER coarsened (it never contradicts it).
# `error` gates with `fail`: an undecided probe must not pass CI.
STATUS_RANK: dict[Status, int] = {
    Status.PASS: 0,
    Status.SKIP: 0,
    Status.MUTED: 0,
    Status.WARN: 1,
    Status.ERROR: 2,
    Status.FAIL: 2,
}


def severity(status: Status) -> int:
    """How bad ``status`` is in :data:`SEVERITY_ORDER` (higher is worse): the sort key for worst-first."""
    return _SEVERITY[status]


def worst(statuses: Iterable[Status], default: Status = Status.PASS) -> Status:
    """The worst of ``statuses`` by :data:`SEVERITY_ORDER`; ``default`` when there is none."""
    return max(statuses, key=severity, default=default)


class Severity(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class Scope(str, Enum):
    CLUSTER = "cluster"
    FLEET = "fleet"


# Meshery Server's own diagnostics per connection, as its UI shows them. A result that corresponds to one
# carries it (`meshery_code`), so a user can match a finding with what Meshery says.
MESHERY_CODES: tuple[str, ...] = (
    "connection_inactive",
    "operator_not_deployed",
    "operator_deploy_failed",
    "broker_unreachable",
    "broker_networking",
)


def _known_meshery_code(code: str | None) -> None:
    if code is not None and code not in MESHERY_CODES:
        raise ValueError(f"unknown Meshery diagnostic {code!r}; one of {', '.join(MESHERY_CODES)}")


@dataclass(frozen=True)
class Finding:
    """What a probe decides. ``remediation`` overrides the check's default when the cause is known."""

    status: Status
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    remediation: str | None = None
    # The Meshery diagnostic this finding is (overrides the check's default for a fail); see MESHERY_CODES.
    meshery_code: str | None = None
    # The classified cause, a code from preflight.engine.reasons (a bounded metric label); None: from the status.
    reason: str | None = None

    def __post_init__(self) -> None:
        _known_meshery_code(self.meshery_code)
        _validate_reason(self.reason)


def passed(message: str, **evidence: Any) -> Finding:
    return Finding(Status.PASS, message, evidence)


def warn(message: str, *, remediation: str | None = None, reason: str | None = None, **evidence: Any) -> Finding:
    return Finding(Status.WARN, message, evidence, remediation, reason=reason)


def fail(message: str, *, remediation: str | None = None, reason: str | None = None, **evidence: Any) -> Finding:
    return Finding(Status.FAIL, message, evidence, remediation, reason=reason)


def skip(message: str, **evidence: Any) -> Finding:
    return Finding(Status.SKIP, message, evidence)


def error(message: str, *, remediation: str | None = None, reason: str | None = None, **evidence: Any) -> Finding:
    return Finding(Status.ERROR, message, evidence, remediation, reason=reason)


def in_meshery_terms(code: str, finding: Finding) -> Finding:
    """``finding`` as the Meshery diagnostic ``code`` (one of MESHERY_CODES), whatever its status."""
    return dataclasses.replace(finding, meshery_code=code)


class Stop(Exception):
    """A probe's final answer, raised from any helper it calls: the runner reports ``finding`` as the result.

    The one way to say "this check does not apply" (:func:`not_applicable`) or "stop here with this
    finding" (:func:`stop`) from below the probe itself.
    """

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def stop(finding: Finding) -> NoReturn:
    raise Stop(finding)


def not_applicable(reason: str, **evidence: Any) -> NoReturn:
    """End the probe with a skip: the check does not apply to this cluster, and its dependants inherit why."""
    raise Stop(Finding(Status.SKIP, reason, evidence, reason="not_applicable"))


Probe = Callable[[Any], Finding]


@dataclass(frozen=True)
class Check:
    """A check's metadata and probe: the unit a newcomer copies to add one."""

    id: str
    title: str
    category: str
    severity: Severity
    scope: Scope
    probe: Probe
    remediation: str
    docs_anchor: str
    # Two kinds of dependency. `depends_on`: needs its data, so it cannot run until they pass (else it is
    # skipped, naming the root cause). `after`: an independent verdict reported after them; it runs whatever
    # they found, and says so when both fail, so a failing neighbour never hides it.
    depends_on: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    # Facts the probe reads; each must be produced by this check or one in its depends_on closure.
    reads: tuple[Fact[Any], ...] = ()
    description: str = ""
    # The API requests the probe makes (and rights it verifies): `meshery-preflight rbac` grants exactly these.
    permissions: tuple[Permission, ...] = ()
    # Run once per run, before any cluster's budget starts, with every cluster target: slow one-time set-up
    # (importing a cloud SDK takes seconds) must not count against the first cluster's deadline.
    prepare: Callable[[Sequence[Any]], None] | None = None
    # Budget for the probe as a multiple of --connect-timeout; probes that make several calls ask for more.
    timeout_factor: float = 2.0
    # The Meshery diagnostic (MESHERY_CODES) a fail of this check is, unless the probe names one; `meshery_codes`:
    # the others its findings may name. Both are documented per check.
    meshery_code: str | None = None
    meshery_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for code in (self.meshery_code, *self.meshery_codes):
            _known_meshery_code(code)

    @property
    def docs_url(self) -> str:
        return f"{DOCS_BASE_URL}#{self.docs_anchor}"


@dataclass(frozen=True)
class Result:
    check_id: str
    title: str
    category: str
    severity: Severity
    status: Status
    message: str
    remediation: str
    docs_url: str
    evidence: Mapping[str, Any]
    duration_s: float
    # Set only when the run is compared with a baseline (--baseline): one of CHANGES.
    change: str | None = None
    # The Meshery diagnostic this result corresponds to (MESHERY_CODES), when it is one.
    meshery_code: str | None = None
    # The finding's classified cause (a preflight.engine.reasons code), None when it had none.
    reason: str | None = None


def is_not_applicable(result: Result) -> bool:
    """A skip with nothing to fix: the check does not apply here (embedded mode, another cloud). The one
    test for it; such results never make a cluster look worse than a pass."""
    return result.status is Status.SKIP and not result.remediation


def applicable(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if not is_not_applicable(r)]


def cluster_status(results: Iterable[Result]) -> Status:
    """A cluster's (or the fleet checks') status in every report: the worst of the checks that apply there."""
    return worst(r.status for r in applicable(results))


def summarize(results: list[Result]) -> dict[str, int]:
    counts = {s.value: 0 for s in STATUS_ORDER}
    for r in results:
        counts[r.status.value] += 1
    return counts


# What a result did since the baseline run, worst first: `new` got worse (or appeared not passing),
# `fixed` got better, `changed` kept its status with another cause.
CHANGES: tuple[str, ...] = ("new", "changed", "fixed", "unchanged")


@dataclass(frozen=True)
class BaselineInfo:
    """The run a report was compared with, and how many results moved."""

    started_at: _dt.datetime
    tool_version: str
    counts: Mapping[str, int]
    # Results of the baseline this run no longer has (a cluster or check left the selection).
    gone: int = 0


@dataclass(frozen=True)
class RunOrigin:
    """Which run checked a cluster, for reports merged from several runs (`merge`)."""

    report: str
    started_at: _dt.datetime
    shard: tuple[int, int] | None = None


@dataclass(frozen=True)
class CredentialRef:
    """A credential as the fleet checks compare it: its kind and a keyed fingerprint, never the secret."""

    kind: str
    fingerprint: str
    # Id of the key the fingerprint was made with: fingerprints compare only under one key.
    key_id: str


@dataclass(frozen=True)
class FleetMember:
    """What the fleet checks know of one cluster, in one shape a live run and `merge` (from JSON) both provide."""

    name: str
    # The API server's identity (scheme://host:port), see targets.normalized_server.
    server: str
    # The MeshSync mode declared for the cluster (fleet file, else the default) and the run's default.
    mode: str
    default_mode: str
    credential: CredentialRef | None = None
    # Values of the facts marked for the fleet (Fact.fleet), by fact name.
    facts: Mapping[str, Any] = field(default_factory=dict)

    def fact(self, fact: Fact[T]) -> T | None:
        value: T | None = self.facts.get(fact.name)
        return value


@dataclass
class ClusterReport:
    name: str
    server: str
    provider: str
    mode: str
    results: list[Result] = field(default_factory=list)
    origin: RunOrigin | None = None
    # What the fleet checks need of this cluster; None in reports of versions that did not record it.
    member: FleetMember | None = None

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.results)


@dataclass
class RunReport:
    tool_name: str
    tool_version: str
    started_at: _dt.datetime
    finished_at: _dt.datetime
    origin_cidrs: list[str]
    clusters: list[ClusterReport]
    fleet_results: list[Result]
    # Set when the run stopped early (Ctrl-C, fatal error): reports are still written, marked so.
    aborted: str | None = None
    # Set when the run is compared with a baseline (--baseline).
    baseline: BaselineInfo | None = None
    # (K, N) when this run checked shard K of N (--shard); fleet checks are then skipped.
    shard: tuple[int, int] | None = None

    @property
    def all_results(self) -> list[Result]:
        out = [r for c in self.clusters for r in c.results]
        out.extend(self.fleet_results)
        return out

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.all_results)

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def worst_rank(results: list[Result]) -> int:
    return max((STATUS_RANK[r.status] for r in results), default=0)


# --fail-on: a status value (the run fails at or above its rank), or `new` (only what got worse since --baseline).
FAIL_ON: dict[str, int] = {s.value: STATUS_RANK[s] for s in (Status.WARN, Status.FAIL, Status.ERROR)}


def counts_against(status: Status, fail_on: str) -> bool:
    """Whether one result of this status makes the run fail under ``--fail-on`` (never, for ``new``)."""
    return fail_on != "new" and STATUS_RANK[status] >= FAIL_ON[fail_on]


def run_fails(report: RunReport, fail_on: str) -> bool:
    """The one verdict behind exit 1, for the CLI and for the reports that state the exit code."""
    if fail_on == "new":
        return any(r.change == "new" for r in report.all_results)
    return worst_rank(report.all_results) >= FAIL_ON[fail_on]
