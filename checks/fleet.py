"""Fleet checks: properties of the connection set as a whole, not of one cluster."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from preflight.checks.broker import PUBLISHED
from preflight.checks.meshery import DEPLOYED
from preflight.engine.context import FleetContext
from preflight.engine.model import Finding, Scope, Severity, fail, not_applicable, passed, warn
from preflight.engine.registry import check


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
    creds = [(m, m.credential) for m in fleet.members if m.credential is not None]
    if not creds:
        not_applicable("no cluster carries a credential to compare")
    keys = sorted({cred.key_id for _, cred in creds})
    if len(keys) > 1:
        not_applicable("runs used different fingerprint keys (give every run --fingerprint-key-file)", key_ids=keys)
    groups: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, str] = {}
    servers: dict[str, set[str]] = defaultdict(set)
    for m, cred in creds:
        groups[cred.fingerprint].append(m.name)
        kinds[cred.fingerprint] = cred.kind
        servers[cred.fingerprint].add(m.server)
    shared = {fp: names for fp, names in groups.items() if len(servers[fp]) > 1}
    if not shared:
        return passed(
            f"{len(groups)} distinct credential{'' if len(groups) == 1 else 's'} across {len(fleet.members)} "
            f"cluster{'' if len(fleet.members) == 1 else 's'}"
        )
    evidence: dict[str, Any] = {
        "shared": [{"credential_id": fp, "kind": kinds[fp], "clusters": sorted(names)} for fp, names in shared.items()]
    }
    listed = "; ".join(f"{kinds[fp]} used by {', '.join(sorted(n))}" for fp, n in shared.items())
    if all(kinds[fp] == "exec" for fp in shared):
        return warn(f"the same exec identity reaches several clusters: {listed}", **evidence)
    return fail(f"the same credential reaches several clusters: {listed}", **evidence)


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
    for m in fleet.members:
        if m.server:
            by_server[m.server].append(m.name)
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
    policies = sorted({m.default_mode for m in fleet.members}) or [fleet.settings.default_mode]
    policy = " / ".join(policies)
    drift, overrides = [], []
    read = fleet.facts(DEPLOYED)
    for m in fleet.members:
        deployed = read.get(m.name)
        if m.mode != m.default_mode:
            overrides.append(f"{m.name} ({m.mode})")
        if deployed is not None:
            running = "operator" if any(deployed.values()) else "embedded"
            if running != m.mode:
                drift.append(f"{m.name}: runs {running}, declared {m.mode}")
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
