"""GCP checks: may Meshery Server's origin reach each GKE cluster's control plane, and its Broker's nodes on 4222?

The cloud's own configuration explains what a TCP timeout cannot: which authorized network is missing,
which firewall rule drops the SYN. Reads only (clusters.get, firewalls.list, instances.get), through
cloud/gcp.py, which imports the Google SDKs only when a GKE cluster is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.checks import meshery_state as ms
from preflight.checks.cloud_common import cloud_ids, cloud_probe, failure, preloader, require
from preflight.cloud import gcp
from preflight.cloud.errors import CloudError
from preflight.cloud.identity import CloudIds
from preflight.cloud.rules import PRIORITY, UNION, Rule, Verdict, evaluate
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, fail, not_applicable, passed, stop, warn
from preflight.engine.permissions import operator_only
from preflight.engine.registry import check

IDS_HINT = "name the context gke_PROJECT_LOCATION_CLUSTER or set gcp: {project, location, cluster} in the fleet file"


def _api(ctx: ClusterContext) -> gcp.GcpSession:
    return gcp.GcpSession(ctx.settings, ctx.state.cloud)


def _calls(api: gcp.GcpSession) -> dict[str, Any]:
    calls = api.calls()
    return {"gcp_api_calls": sum(calls.values()), "gcp_api_calls_by_operation": calls}


def _ids(ids: CloudIds) -> tuple[str, str, str]:
    project, location, name = ids.get("project"), ids.get("location"), ids.get("cluster")
    if not (project and location and name):
        require(ids, "the GKE project, location or cluster name is unknown", IDS_HINT)
    return project, location, name


def _probe(
    ctx: ClusterContext, body: Callable[[ClusterContext, gcp.GcpSession, tuple[str, str, str]], Finding]
) -> Finding:
    """GKE clusters only; a failed read becomes the cloud policy's finding, with the run's GCP call count."""
    api = _api(ctx)
    return cloud_probe(ctx, "gke", lambda ids: body(ctx, api, _ids(ids)), lambda: _calls(api))


# --------------------------------------------------------------------------------------------------
# gcp.gke.endpoint-access


def _authorized_verdict(access: gcp.EndpointAccess, origin: list[str]) -> Verdict:
    rules = [Rule("gcp", f"{name or 'unnamed'} ({cidr})", "allow", (cidr,)) for name, cidr in access.authorized]
    return evaluate(rules, origin, 443, semantics=UNION)


def _add_networks_fix(access: gcp.EndpointAccess, ids: tuple[str, str, str], add: list[str]) -> str:
    project, location, name = ids
    cidrs = [c for _, c in access.authorized] + [c for c in add if c not in {c for _, c in access.authorized}]
    return (
        f"Add {', '.join(add)} to the cluster's authorized networks (the flag replaces the list, so keep the "
        f"current entries): gcloud container clusters update {name} --project {project} --location {location} "
        f"--enable-master-authorized-networks --master-authorized-networks {','.join(cidrs)}"
    )


def used_endpoint(host: str, access: gcp.EndpointAccess) -> str | None:
    """Which of the control plane's endpoints the kubeconfig's server host names (None: none of them)."""
    host = host.strip("[]").lower()
    if not host:
        return None
    if access.dns_endpoint and host == access.dns_endpoint.lower():
        return "dns"
    if access.private_endpoint and host == access.private_endpoint:
        return "private"
    if access.public_endpoint and host == access.public_endpoint:
        return "public"
    return None


# Importing the SDK takes seconds: once per run, before any cluster's budget starts.
_PREPARE = preloader("gke", ("google.auth", "google.cloud.compute_v1", "google.cloud.container_v1"))


@check(
    id="gcp.gke.endpoint-access",
    prepare=_PREPARE,
    title="GKE control plane accepts the Server's origin",
    category="gcp",
    severity=Severity.CRITICAL,
    depends_on=("kubeconfig.context",),
    remediation="Allow the Server's origin in the cluster's authorized networks, or reach the control plane "
    "through its DNS endpoint or over private connectivity (peering, VPN): gcloud container clusters update "
    "CLUSTER --location LOCATION --enable-master-authorized-networks --master-authorized-networks "
    "<current CIDRs>,<origin>.",
    timeout_factor=4.0,
)
def endpoint_access(ctx: ClusterContext) -> Finding:
    """Authorized networks, a private-only endpoint or a missing DNS endpoint turn the Server away before TLS;
    the cluster's configuration says which, and what to change."""
    return _probe(ctx, _endpoint_access)


def _endpoint_access(ctx: ClusterContext, api: gcp.GcpSession, ids: tuple[str, str, str]) -> Finding:
    access = gcp.endpoint_access(api.cluster(*ids))
    origin = list(ctx.settings.origin_cidrs)
    return decide_endpoint_access(
        access, origin, ids, ctx.target.host or "", ids_from=dict(cloud_ids(ctx).sources), calls=_calls(api)
    )


def decide_endpoint_access(
    access: gcp.EndpointAccess,
    origin: Sequence[str],
    ids: tuple[str, str, str],
    host: str,
    *,
    ids_from: dict[str, str],
    calls: dict[str, Any],
) -> Finding:
    """The control plane's verdict from its endpoint configuration, the origin and the kubeconfig's host."""
    project, location, name = ids
    origin = list(origin)
    private_origin = gcp.is_private_origin(origin)
    used = used_endpoint(host, access)
    evidence: dict[str, Any] = {
        **access.as_evidence(),
        "origin": origin,
        "origin_private": private_origin,
        "kubeconfig_endpoint": used,
        "ids_from": ids_from,
    }
    an = _authorized_verdict(access, origin) if access.authorized_enabled and origin else None
    if an is not None:
        evidence["authorized_networks_verdict"] = an.as_evidence()
    evidence.update(calls)
    get_creds = f"gcloud container clusters get-credentials {name} --project {project} --location {location}"

    region_note = "" if access.global_access else f" (global access is off: only from {location}'s region)"

    if not origin:
        if access.public_enabled and not access.authorized_enabled:
            return warn(
                f"the public endpoint {access.public_endpoint or ''} is open to the internet (authorized networks "
                "disabled): only authentication protects it",
                remediation=_add_networks_fix(access, ids, ["<Server egress CIDR>"]),
                **evidence,
            )
        return warn(
            "pass --origin (or origin.cidrs) to check the control plane's access rules against the Server's egress",
            remediation="Give the Server's egress CIDRs with --origin.",
            **evidence,
        )

    path = used
    if path is None:
        if private_origin and access.ip_enabled and access.private_endpoint:
            path = "private"
        elif access.public_enabled:
            path = "public"
        elif access.dns_endpoint and (access.dns_external or private_origin):
            path = "dns"
        else:
            path = "private"
    evidence["path"] = path
    dns_open = bool(access.dns_endpoint) and access.dns_external
    use_dns = f"{get_creds} --dns-endpoint"

    if path == "dns":
        if access.dns_external or private_origin:
            reach = "external traffic" if access.dns_external else "traffic from the VPC"
            return passed(
                f"the DNS endpoint {access.dns_endpoint} accepts {reach} (IAM-authenticated; authorized "
                "networks do not apply)",
                **evidence,
            )
        return fail(
            f"the DNS endpoint {access.dns_endpoint} does not allow external traffic and the origin "
            f"{', '.join(origin)} is not private",
            remediation=f"Allow external traffic on it: gcloud container clusters update {name} --project {project} "
            f"--location {location} --enable-dns-access",
            **evidence,
        )

    if path == "public" and access.public_enabled:
        if not access.authorized_enabled:
            return warn(
                f"the public endpoint {access.public_endpoint} is open to the internet (authorized networks "
                "disabled): only authentication protects it",
                remediation=_add_networks_fix(access, ids, origin),
                **evidence,
            )
        assert an is not None
        if an.state == "allowed":
            return passed(
                f"the public endpoint {access.public_endpoint} admits {', '.join(origin)} "
                f"(authorized network {', '.join(an.deciding)})",
                **evidence,
            )
        alt = (
            (f" Or use the DNS endpoint {access.dns_endpoint}, which authorized networks do not restrict: {use_dns}")
            if dns_open
            else ""
        )
        if access.gcp_public_cidrs and private_origin is False:
            return warn(
                f"{', '.join(an.blocked)} is not in the authorized networks; it gets through only if it is a Google "
                "Cloud public address (gcpPublicCidrsAccessEnabled)",
                remediation=_add_networks_fix(access, ids, an.blocked) + alt,
                **evidence,
            )
        return fail(
            f"authorized networks ({', '.join(c for _, c in access.authorized) or 'none'}) do not cover the "
            f"Server's origin {', '.join(an.blocked)}: the public endpoint {access.public_endpoint} drops it",
            remediation=_add_networks_fix(access, ids, an.blocked) + alt,
            **evidence,
        )

    # The private endpoint (or a public one the cluster no longer offers).
    if private_origin and access.ip_enabled and access.private_endpoint:
        if access.private_enforced and an is not None and an.state != "allowed":
            return fail(
                f"authorized networks are enforced on the private endpoint {access.private_endpoint} and do not "
                f"cover the Server's origin {', '.join(an.blocked)}",
                remediation=_add_networks_fix(access, ids, an.blocked),
                **evidence,
            )
        return passed(
            f"private endpoint {access.private_endpoint} for the private origin {', '.join(origin)}: it connects "
            f"over the VPC, peering or a VPN{region_note}",
            **evidence,
        )
    if not access.ip_enabled:
        what = "no IP endpoint"
    elif access.public_enabled:
        what = (
            f"a public endpoint {access.public_endpoint}, but the kubeconfig uses the private one "
            f"({access.private_endpoint})"
        )
    else:
        what = f"a private endpoint only ({access.private_endpoint or 'address not reported'})"
    who = f"the origin {', '.join(origin)}" + ("" if private_origin else " (not private)")
    if dns_open:
        return fail(
            f"the control plane has {what}, which {who} cannot reach; the "
            f"DNS endpoint {access.dns_endpoint} accepts external traffic, but the kubeconfig does not use it",
            remediation=f"Point the kubeconfig at the DNS endpoint: {use_dns}",
            **evidence,
        )
    if access.public_enabled:
        return fail(
            f"the control plane has {what}, which {who} cannot reach",
            remediation=f"Use the public endpoint: {get_creds} (without --internal-ip)",
            **evidence,
        )
    dns_fix = f"gcloud container clusters update {name} --project {project} --location {location} --enable-dns-access"
    return fail(
        f"the control plane has {what} and no DNS endpoint open to external traffic: {who} needs VPC "
        f"peering or a VPN to reach it{region_note}",
        remediation=f"Run Meshery Server inside the cluster's VPC (or a peered one, or over a VPN), or enable the "
        f"DNS endpoint ({dns_fix}) and use it ({use_dns}).",
        **evidence,
    )


# --------------------------------------------------------------------------------------------------
# gcp.firewall.broker


def _rule_detail(rules: list[Rule], label: str) -> dict[str, Any]:
    r = next((x for x in rules if x.label() == label), None)
    if r is None:
        return {"name": label}
    return {
        "name": r.name,
        "action": r.action,
        "priority": r.priority,
        "sources": list(r.sources),
        "targets": sorted(r.targets) if r.targets else "all instances",
    }


def _describe_rules(rules: list[Rule], labels: list[str]) -> str:
    parts = []
    for label in labels:
        d = _rule_detail(rules, label)
        parts.append(
            f"firewall rule {label} ({d.get('action')}, priority {d.get('priority')})" if "action" in d else label
        )
    return ", ".join(parts)


def _create_fix(
    net_project: str, network: str, port: int, blocked: list[str], ident: gcp.NodeIdentity, deny: Rule | None
) -> str:
    if deny is not None and deny.priority == 0:
        return (
            f"The deny rule {deny.name} has priority 0, which no allow rule can beat: narrow its source ranges "
            f"(gcloud compute firewall-rules update {deny.name} --project {net_project} --source-ranges ...) "
            "or delete it."
        )
    priority = deny.priority - 1 if deny is not None else gcp.DEFAULT_PRIORITY
    target = ""
    gke_tag = next((t for t in ident.tags if t.startswith("gke-") and t.endswith("-node")), None)
    if gke_tag or ident.tags:
        target = f" --target-tags {gke_tag or ident.tags[0]}"
    elif ident.service_accounts:
        target = f" --target-service-accounts {ident.service_accounts[0]}"
    return (
        f"gcloud compute firewall-rules create meshery-broker-{port} --project {net_project} --network {network} "
        f"--direction INGRESS --priority {priority} --allow tcp:{port} --source-ranges {','.join(blocked)}{target}"
    )


@check(
    id="gcp.firewall.broker",
    permissions=operator_only((*ms.READ_BROKER, *ms.READ_NODES)),
    prepare=_PREPARE,
    title="VPC firewall admits the Server's origin to the Broker's nodes",
    category="gcp",
    severity=Severity.HIGH,
    depends_on=("broker.service",),
    remediation="Allow tcp:4222 (or the node port) from the Server's origin to the nodes' network tag with a "
    "VPC firewall rule, at a higher priority (lower number) than any deny rule that matches: gcloud compute "
    "firewall-rules create allow-meshery-broker --network NETWORK --direction INGRESS --allow tcp:4222 "
    "--source-ranges <origin> --target-tags <node tag> --priority <below the deny>.",
    timeout_factor=12.0,
)
def firewall_broker(ctx: ClusterContext) -> Finding:
    """GKE's passthrough load balancer keeps the client's address, so the VPC firewall on the nodes decides who
    reaches the Broker: the rules are evaluated as GCP does (lowest priority number wins, deny beats allow)."""
    return _probe(ctx, _firewall_broker)


def _firewall_broker(ctx: ClusterContext, api: gcp.GcpSession, ids: tuple[str, str, str]) -> Finding:
    st = ms.broker(ctx)
    spec = (st.service or {}).get("spec") or {}
    kind = str(spec.get("type") or "ClusterIP")
    if kind == "LoadBalancer":
        port, path = int(st.port.get("port") or ms.NATS_PORT), "load balancer; passthrough keeps the origin address"
    elif kind == "NodePort" and st.port.get("nodePort"):
        port, path = int(st.port["nodePort"]), "node port"
    else:
        not_applicable(f"the Broker Service is {kind}: no node firewall is on the Server's path", type=kind)
    cluster = api.cluster(*ids)
    project = ids[0]
    net_project, network = gcp.network_of(cluster, project)
    try:
        firewalls = api.firewalls(net_project)
    except CloudError as exc:
        stop(failure(ctx, exc, network=f"projects/{net_project}/global/networks/{network}", **_calls(api)))
    rules = gcp.firewall_rules(firewalls, net_project, network)
    identities = gcp.node_identities(api, cluster, ms.nodes(ctx))
    where = FirewallPath(net_project, network, kind, port, path)
    return decide_firewall_broker(where, rules, identities, list(ctx.settings.origin_cidrs), calls=_calls(api))


@dataclass(frozen=True)
class FirewallPath:
    """Where the Broker's traffic meets the VPC firewall: the network (in its host project) and the port."""

    project: str
    network: str
    service_type: str
    port: int
    path: str  # how the packets get there, as the message says it


def decide_firewall_broker(
    where: FirewallPath,
    rules: Sequence[Rule],
    identities: Sequence[gcp.NodeIdentity],
    origin: Sequence[str],
    *,
    calls: dict[str, Any],
) -> Finding:
    """GCP's own evaluation (lowest priority number wins, deny beats allow) for every node pool's targets."""
    net_project, network, kind, port, path = where.project, where.network, where.service_type, where.port, where.path
    rules, origin = list(rules), list(origin)
    evidence: dict[str, Any] = {
        "network": f"projects/{net_project}/global/networks/{network}",
        "service_type": kind,
        "port": port,
        "path": path,
        "origin": origin,
        "ingress_rules": len({r.name for r in rules}),
        "nodes": [i.as_evidence() for i in identities],
    }
    verdicts = [(i, evaluate(rules, origin, port, semantics=PRIORITY, target=i.targets)) for i in identities]
    evidence["verdicts"] = [
        {"node_pool": i.pool, **v.as_evidence(), "rules": [_rule_detail(rules, lb) for lb in v.deciding]}
        for i, v in verdicts
    ]
    evidence.update(calls)
    what = f"tcp:{port} ({path})"

    world = sorted({r for _, v in verdicts for r in v.world_open})
    if world:
        names = ", ".join(world)
        return fail(
            f"{what} is open to the world (0.0.0.0/0) on the Broker's nodes by firewall rule {names}: anyone who "
            "reaches it can try the Broker",
            remediation="Narrow the rule to the Server's origin (for a LoadBalancer Service, set the Broker's "
            "spec.service.loadBalancerSourceRanges instead: GKE rewrites its k8s-fw-* rule from them):\n"
            f"gcloud compute firewall-rules update {world[0]} "
            f"--project {net_project} --source-ranges {','.join(origin) or '<Server egress CIDR>'}",
            **evidence,
        )
    if not origin:
        return warn(
            f"pass --origin (or origin.cidrs) to evaluate the {len(rules)} ingress "
            f"rule{'' if len(rules) == 1 else 's'} of {network} for {what}",
            remediation="Give the Server's egress CIDRs with --origin.",
            **evidence,
        )
    bad = [(i, v) for i, v in verdicts if v.state != "allowed"]
    if not bad:
        by = "; ".join(f"node pool {i.pool}: {_describe_rules(rules, v.deciding)}" for i, v in verdicts)
        return passed(f"{what} from {', '.join(origin)} allowed ({by})", **evidence)
    ident, v = bad[0]
    deny = next((r for lb in v.deciding for r in rules if r.label() == lb and r.action == "deny"), None)
    blocked = v.blocked or origin
    if deny is not None:
        by = f"by {_describe_rules(rules, [deny.label()])}"
    else:
        by = "by the implied deny: no rule allows it"
    if v.allowed:
        allowed_by = [lb for lb in v.deciding if deny is None or lb != deny.label()]
        by += f" (only {', '.join(v.allowed)} is allowed, by {_describe_rules(rules, allowed_by)})"
    more = f" (and {len(bad) - 1} more node pools)" if len(bad) > 1 else ""
    targets = ", ".join(ident.tags + ident.service_accounts) or "no tags"
    return fail(
        f"{what} from {', '.join(blocked)} to node pool {ident.pool} ({targets}){more} is blocked {by}",
        remediation=_create_fix(net_project, network, port, blocked, ident, deny),
        **evidence,
    )
