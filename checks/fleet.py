"""Fleet checks: properties of the connection set as a whole, not of one cluster."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from preflight.checks.broker import PUBLISHED
from preflight.checks.meshery import DEPLOYED
from preflight.context import FleetContext
from preflight.model import Finding, Scope, Severity, fail, not_applicable, passed, warn
from preflight.probes import addresses
from preflight.registry import check


@check(
    id="fleet.shared-credential",
    title="Each cluster has its own credential",
    category="fleet",
    severity=Severity.HIGH,
    scope=Scope.FLEET,
    remediation="Avoid one all-powerful credential spanning the fleet: give every cluster its own "
    "least-privilege credential, so that one leak or revocation touches one cluster.",
)
def shared_credential(fleet: FleetContext) -> Finding:
    """The same token, certificate or exec identity reaching several API servers widens a leak's blast radius."""
    groups: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, str] = {}
    servers: dict[str, set[str]] = defaultdict(set)
    for c in fleet.clusters:
        fp = c.target.credential.fingerprint()
        if fp is None:
            continue
        groups[fp].append(c.name)
        kinds[fp] = c.target.credential.kind
        servers[fp].add(c.target.server)
    shared = {fp: names for fp, names in groups.items() if len(servers[fp]) > 1}
    if not groups:
        not_applicable("no cluster carries a credential to compare")
    if not shared:
        return passed(
            f"{len(groups)} distinct credential{'' if len(groups) == 1 else 's'} across {len(fleet.clusters)} "
            f"cluster{'' if len(fleet.clusters) == 1 else 's'}"
        )
    evidence: dict[str, Any] = {
        "shared": [{"credential_id": fp, "kind": kinds[fp], "clusters": sorted(names)} for fp, names in shared.items()]
    }
    listed = "; ".join(f"{kinds[fp]} used by {', '.join(sorted(n))}" for fp, n in shared.items())
    if all(kinds[fp] == "exec" for fp in shared):
        return warn(f"the same exec identity reaches several clusters: {listed}", **evidence)
    return fail(f"the same credential reaches several clusters: {listed}", **evidence)


def _normalized(server: str) -> str:
    parts = urlsplit(server)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{addresses.hostport(host, port)}"


@check(
    id="fleet.duplicate-cluster",
    title="No two contexts point at the same API server",
    category="fleet",
    severity=Severity.MEDIUM,
    scope=Scope.FLEET,
    remediation="Keep one context per cluster: remove the duplicate context, or Meshery will register the "
    "same cluster twice (and deploy its components twice in operator mode).",
)
def duplicate_cluster(fleet: FleetContext) -> Finding:
    """Two contexts for one API server become two Meshery connections to one cluster."""
    by_server: dict[str, list[str]] = defaultdict(list)
    for c in fleet.clusters:
        if c.target.server:
            by_server[_normalized(c.target.server)].append(c.name)
    dups = {s: names for s, names in by_server.items() if len(names) > 1}
    if not dups:
        return passed(f"{len(by_server)} distinct API server{'' if len(by_server) == 1 else 's'}")
    listed = "; ".join(f"{s}: {', '.join(n)}" for s, n in dups.items())
    return fail(
        f"several contexts point at one API server: {listed}",
        duplicates=[{"server": s, "contexts": n} for s, n in dups.items()],
    )


@check(
    id="fleet.broker-endpoint-collision",
    title="Every cluster publishes its own Broker endpoint",
    category="fleet",
    severity=Severity.HIGH,
    scope=Scope.FLEET,
    depends_on=("broker.endpoint",),
    reads=(PUBLISHED,),
    remediation="Give each cluster's Broker a distinct external endpoint (a load balancer, or a distinct "
    "spec.service.externalEndpointOverride); local clusters that all publish localhost:4222 collide.",
)
def broker_endpoint_collision(fleet: FleetContext) -> Finding:
    """Meshery Server keys Broker connections by endpoint: two clusters on one endpoint means one is never heard."""
    by_endpoint: dict[str, list[str]] = defaultdict(list)
    for name, published in fleet.facts(PUBLISHED).items():
        if published:
            by_endpoint[published].append(name)
    if not by_endpoint:
        not_applicable("no cluster published a Broker endpoint (embedded mode, or Broker checks did not run)")
    clashes = {e: n for e, n in by_endpoint.items() if len(n) > 1}
    if clashes:
        listed = "; ".join(f"{e}: {', '.join(n)}" for e, n in clashes.items())
        return fail(
            f"several clusters publish one Broker endpoint: {listed}",
            collisions=[{"endpoint": e, "clusters": n} for e, n in clashes.items()],
        )
    return passed(f"{len(by_endpoint)} distinct Broker endpoint{'' if len(by_endpoint) == 1 else 's'}")


@check(
    id="fleet.mode-consistency",
    title="Clusters run the MeshSync mode the policy declares",
    category="fleet",
    severity=Severity.MEDIUM,
    scope=Scope.FLEET,
    depends_on=("meshery.mode",),
    reads=(DEPLOYED,),
    remediation="Codify the mode with MESHSYNC_DEFAULT_DEPLOYMENT_MODE and per-cluster meshsync_mode in the fleet "
    "file, then switch the deviating connections on Meshery's Connections page.",
)
def mode_consistency(fleet: FleetContext) -> Finding:
    """A fleet drifts when some connections run another mode than the one codified for them."""
    policy = fleet.settings.default_mode
    drift, overrides = [], []
    read = fleet.facts(DEPLOYED)
    for c in fleet.clusters:
        deployed = read.get(c.name)
        effective = c.target.mode or policy
        if c.target.mode and c.target.mode != policy:
            overrides.append(f"{c.name} ({c.target.mode})")
        if deployed is not None:
            running = "operator" if any(deployed.values()) else "embedded"
            if running != effective:
                drift.append(f"{c.name}: runs {running}, declared {effective}")
    evidence: dict[str, Any] = {"policy": policy, "overrides": overrides, "drift": drift}
    if not read:
        not_applicable("no cluster's deployment could be read (meshery checks did not run)", **evidence)
    if drift:
        return warn(
            f"{len(drift)} cluster{' drifts' if len(drift) == 1 else 's drift'} from the declared mode: "
            f"{'; '.join(drift)}",
            **evidence,
        )
    extra = f"; per-cluster overrides: {', '.join(overrides)}" if overrides else ""
    return passed(f"every cluster runs its declared mode (policy {policy}){extra}", **evidence)
