"""AKS checks: can Meshery Server, from its origin, reach the API server and the Broker through Azure's controls.

Reads ARM (the managed cluster, the node resource group's NSGs, the node subnet's NSG and VNet) once per
run and subscription, and explains a failure by the setting or rule that causes it: authorized IP
ranges, a private API server, private DNS, or the NSG rule that decides 4222. Nothing here imports the
Azure SDK at module top; cloud.azure loads it on first use.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.checks import meshery_state as ms
from preflight.checks.cloud_common import cloud_ids, cloud_probe, only_on, preloader, require
from preflight.cloud import azure as az
from preflight.cloud.rules import UNION, Rule, Verdict, describe, evaluate
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, error, fail, not_applicable, passed, warn
from preflight.engine.permissions import operator_only
from preflight.engine.probes import addresses, dns
from preflight.engine.registry import check

IDS_HINT = (
    "add azure: {subscription, resource_group, cluster} to this context's entry in the fleet file "
    "(or set AZURE_SUBSCRIPTION_ID to find the cluster by its API host)"
)
PRIVATE_FIX = (
    "A private API server has only a private address: run Meshery Server in the cluster's VNet or a peered VNet, "
    "or connect its network by VPN / ExpressRoute, then pass that private origin; or use a public API server "
    "restricted with --api-server-authorized-ip-ranges."
)


def _cluster(ctx: ClusterContext) -> az.AksCluster:
    """The AKS cluster's ARM view (memoised per cluster); raises Stop or a CloudError explaining why there is none."""

    def compute() -> az.AksCluster:
        ids = only_on(ctx, "aks")
        az.credential(_session(ctx))
        sub = ids.get("subscription") or os.environ.get("AZURE_SUBSCRIPTION_ID")
        rg, name = ids.get("resource_group"), ids.get("cluster")
        if not sub:
            require(ids, "the cluster's Azure subscription is unknown", IDS_HINT)
        if rg and name:
            return az.managed_cluster(_session(ctx), sub, rg, name)
        found = az.find_cluster(_session(ctx), sub, ctx.target.host or "")
        if found is None:
            require(ids, f"no AKS cluster in subscription {sub} has API host {ctx.target.host}", IDS_HINT)
        return found

    return ctx.memo("azure:cluster", compute)


def _probe(ctx: ClusterContext, body: Callable[[ClusterContext, az.AksCluster], Finding]) -> Finding:
    """AKS clusters only; a failed ARM read becomes the cloud policy's finding."""
    return cloud_probe(ctx, "aks", lambda _ids: body(ctx, _cluster(ctx)), lambda: {"azure_api_calls": _calls(ctx)})


def _is_private(cidr: str) -> bool:
    net = ipaddress.ip_network(cidr, strict=False)
    return all(addresses.classify(str(a)) == "private" for a in (net.network_address, net.broadcast_address))


def _calls(ctx: ClusterContext) -> int:
    return sum(ctx.state.cloud.calls(az.AzureSession.cloud).values())


def _session(ctx: ClusterContext) -> az.AzureSession:
    return az.AzureSession(ctx.settings, ctx.state.cloud)


# Importing the SDK takes seconds: once per run, before any cluster's budget starts.
_PREPARE = preloader("aks", ("azure.identity", "azure.mgmt.containerservice", "azure.mgmt.network"))


@check(
    id="azure.aks.endpoint-access",
    prepare=_PREPARE,
    title="AKS API server admits the Server's origin",
    category="azure",
    severity=Severity.CRITICAL,
    depends_on=("kubeconfig.context",),
    remediation="Add the Server's egress CIDRs to the cluster's authorized IP ranges (az aks update "
    "--api-server-authorized-ip-ranges), or for a private cluster reach it from a peered VNet / VPN.",
    timeout_factor=4.0,
)
def endpoint_access(ctx: ClusterContext) -> Finding:
    """AKS drops connections from outside authorizedIPRanges and a private cluster has no public address:
    either looks like a firewall timeout from the Server, so this names the setting."""
    return _probe(ctx, _endpoint_access)


def _endpoint_access(ctx: ClusterContext, c: az.AksCluster) -> Finding:
    seen = {"ids_from": dict(cloud_ids(ctx).sources), "kubeconfig_host": ctx.target.host}
    return decide_endpoint_access(c, ctx.settings.origin_cidrs, {**seen, "azure_api_calls": _calls(ctx)})


def decide_endpoint_access(c: az.AksCluster, origin: Sequence[str], context: dict[str, Any]) -> Finding:
    """A private API server needs a private origin; a public one, authorized IP ranges that cover the origin.

    `context` is the evidence the cluster's record does not hold (ids_from, kubeconfig_host, azure_api_calls)."""
    ranges = list(c.authorized_ranges)
    evidence: dict[str, Any] = {
        "cluster": c.id,
        "private": c.private,
        "fqdn": c.fqdn,
        "private_fqdn": c.private_fqdn,
        "public_fqdn_enabled": c.public_fqdn if c.private else None,
        "private_dns_zone": c.private_dns_zone,
        "authorized_ip_ranges": ranges,
        "origin": origin,
        **context,
    }
    if c.private:
        kind = (
            f"private API server with public FQDN {c.fqdn} (it resolves to the private address)"
            if c.public_fqdn and c.fqdn
            else "private API server without a public FQDN"
        )
        if not origin:
            return warn(
                f"{kind}; pass --origin to check the Server can reach it",
                remediation="Give the Server's egress CIDRs with --origin (or origin.cidrs in the fleet file).",
                **evidence,
            )
        public = [o for o in origin if not _is_private(o)]
        if public:
            return fail(
                f"{kind}, but the Server's origin {', '.join(public)} is not private: it has no route to the "
                "API server's private endpoint",
                remediation=PRIVATE_FIX,
                **evidence,
            )
        return passed(
            f"{kind}; the origin {', '.join(origin)} is private (reached over peering / VPN)",
            **evidence,
        )
    cmd = f"az aks update -g {c.resource_group} -n {c.name} --api-server-authorized-ip-ranges"
    if not ranges:
        return warn(
            "public API server with no authorized IP ranges: open to the whole internet, only authentication "
            "protects it",
            remediation=f"Restrict it to the Server's origin (and your admins): {cmd} "
            f"{','.join(origin) if origin else '<server egress CIDRs>'}",
            **evidence,
        )
    if not origin:
        return warn(
            f"authorized IP ranges {', '.join(ranges)}; pass --origin to check they admit the Server",
            remediation="Give the Server's egress CIDRs with --origin (or origin.cidrs in the fleet file).",
            **evidence,
        )
    v = evaluate([Rule("azure", "authorizedIPRanges", "allow", tuple(ranges))], origin, 443, semantics=UNION)
    if v.blocked:
        return fail(
            f"authorized IP ranges {', '.join(ranges)} do not cover the Server's origin {', '.join(v.blocked)}: "
            "the API server drops its connections",
            remediation=f"Add {', '.join(v.blocked)} (the flag replaces the list, so keep the current ranges): "
            f"{cmd} {','.join(ranges + v.blocked)}",
            uncovered=v.blocked,
            **evidence,
        )
    return passed(f"authorized IP ranges {', '.join(ranges)} cover the origin {', '.join(origin)}", **evidence)


def _zone(c: az.AksCluster, name: str) -> tuple[str | None, str | None]:
    """(private DNS zone, its resource group): 'system' zones live in the node resource group."""
    pdz = c.private_dns_zone or "system"
    if pdz.lower() == "none":
        return None, None
    if "/" in pdz:
        p = az.parse_id(pdz)
        return p.get("privatednszones"), p.get("resourcegroups")
    return (name.split(".", 1)[1] if "." in name else None), c.node_resource_group


def _dns_fix(zone: str | None, rg: str | None) -> str:
    if zone is None:
        return (
            "privateDNSZone is 'none': publish the API server's private address in the DNS the Server uses, "
            "or enable the public FQDN (az aks update --enable-public-fqdn)."
        )
    return (
        f"Link the private DNS zone {zone} to the Server's VNet: az network private-dns link vnet create "
        f"-g {rg or '<zone resource group>'} -z {zone} -n meshery-server -v <server-vnet-id> -e false. "
        f"Or, where the Server uses its own DNS (custom DNS servers, on-premises), add a conditional forwarder "
        f"for {zone} to 168.63.129.16 on a DNS server (or Private DNS Resolver inbound endpoint) inside a VNet "
        "linked to the zone, e.g. the peered VNet."
    )


@check(
    id="azure.aks.private-dns",
    prepare=_PREPARE,
    title="AKS private API name resolves from the Server",
    category="azure",
    severity=Severity.HIGH,
    depends_on=("kubeconfig.context",),
    after=("azure.aks.endpoint-access",),
    remediation="Link the cluster's private DNS zone to the Server's VNet, or forward the zone to 168.63.129.16 "
    "from a VNet linked to it: az network private-dns link vnet create -g <zone resource group> -z <zone> "
    "-n meshery-server -v <Server VNet id> -e false.",
)
def private_dns(ctx: ClusterContext) -> Finding:
    """A private cluster's name lives in a private DNS zone that only linked VNets see: a Server outside
    them gets NXDOMAIN even with a working network path. A kubeconfig on the public FQDN needs no zone."""
    return _probe(ctx, _private_dns)


def _private_dns(ctx: ClusterContext, c: az.AksCluster) -> Finding:
    if not c.private:
        not_applicable("public API server: no private FQDN to resolve", cluster=c.id)
    lookup = dns_lookup(c, ctx.target.host or "")
    context = {"resolver": ctx.settings.dns_server or "system", "azure_api_calls": _calls(ctx)}
    if not lookup.name:
        return decide_private_dns(c, lookup, None, context)
    try:
        answer: dns.Resolution | dns.DnsFailure = dns.resolve(
            lookup.name, ctx.settings.connect_timeout, ctx.settings.dns_server
        )
    except dns.DnsFailure as exc:
        answer = exc
    return decide_private_dns(c, lookup, answer, context)


@dataclass(frozen=True)
class DnsLookup:
    """The name the Server will look up for a private cluster, and the private DNS zone that should answer it."""

    name: str
    on_public: bool  # the kubeconfig uses the public FQDN (an Azure public DNS record of the private address)
    zone: str | None
    zone_resource_group: str | None

    @property
    def which(self) -> str:
        return "public FQDN" if self.on_public else "private FQDN"


def dns_lookup(c: az.AksCluster, host: str) -> DnsLookup:
    """The public FQDN when the kubeconfig's host is it, else the private FQDN from the private DNS zone."""
    host = host.lower().rstrip(".")
    on_public = bool(c.public_fqdn and c.fqdn and host == c.fqdn.lower())
    name = (c.fqdn if on_public else c.private_fqdn or c.fqdn) or ""
    zone, zone_rg = _zone(c, name) if not on_public else (None, None)
    return DnsLookup(name, on_public, zone, zone_rg)


def decide_private_dns(
    c: az.AksCluster,
    lookup: DnsLookup,
    answer: dns.Resolution | dns.DnsFailure | None,
    context: dict[str, Any],
) -> Finding:
    """Passes when the name resolves to a private address; `answer` is None when there is no name to look up.

    `context` holds the resolver asked and the run's ARM call count."""
    which, name = lookup.which, lookup.name
    evidence: dict[str, Any] = {
        "cluster": c.id,
        "name": name,
        "which": which,
        "private_dns_zone": c.private_dns_zone,
        "zone": lookup.zone,
        **context,
    }
    if not name or answer is None:
        return error("ARM reports no private FQDN for this private cluster", **evidence)
    fix = (
        "The kubeconfig uses the public FQDN: its A record is in Azure public DNS, so the Server's resolver must "
        "answer internet names (or use the private FQDN with a linked private DNS zone)."
        if lookup.on_public
        else _dns_fix(lookup.zone, lookup.zone_resource_group)
    )
    if isinstance(answer, dns.DnsFailure):
        if answer.kind not in ("nxdomain", "no-answer"):
            fix = "The resolver did not answer: check --dns-server / the Server's DNS settings, then the zone link."
        return fail(f"{which}: {answer}", remediation=fix, failure=answer.kind, **evidence)
    classes = {a: addresses.classify(a) for a in answer.addresses}
    evidence.update(addresses=[{"address": a, "class": k} for a, k in classes.items()], resolver=answer.resolver)
    listed = ", ".join(f"{a} ({k})" for a, k in classes.items())
    if any(k == "private" for k in classes.values()):
        return passed(f"{which} {name} → {listed}", **evidence)
    return fail(
        f"{which} {name} → {listed}: not the API server's private address (the resolver does not use the private zone)",
        remediation=fix,
        **evidence,
    )


def _targets(ctx: ClusterContext, st: ms.BrokerState, kind: str) -> list[str]:
    """Where the packets are addressed when the NSG sees them: the LB frontend (floating IP) or the nodes."""
    if kind == "LoadBalancer":
        ingress = (((st.service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [str(i["ip"]) for i in ingress if i.get("ip")]
    out: list[str] = []
    for node in ms.nodes(ctx) or []:
        for a in (node.get("status") or {}).get("addresses") or []:
            if a.get("type") == "InternalIP" and a.get("address") and a["address"] not in out:
                out.append(str(a["address"]))
    return out


@dataclass(frozen=True)
class NsgPath:
    """One node subnet's way in: the NSGs a packet crosses, in order, and the VNet's address space."""

    label: str
    nsgs: tuple[az.Nsg, ...]
    vnet_space: tuple[str, ...]


def _paths(ctx: ClusterContext, c: az.AksCluster) -> list[NsgPath]:
    """Per node subnet: the NSGs a packet crosses (subnet's, then the node resource group's) and the VNet tag space."""
    s = _session(ctx)
    group = az.group_nsgs(s, c.subscription, c.node_resource_group) if c.node_resource_group else []
    out = []
    for sid in c.subnet_ids:
        nsgs: list[az.Nsg] = []
        if sid:
            sn = az.subnet(s, sid)
            if sn.nsg_id:
                same = [n for n in group if n.id.lower() == sn.nsg_id.lower()]
                nsgs.append(same[0] if same else az.nsg(s, sn.nsg_id))
            space = az.vnet_of_subnet(s, sid).tag_space
            label = f"node subnet {sn.name}"
        else:
            vnets = az.group_vnets(s, c.subscription, c.node_resource_group) if c.node_resource_group else []
            space = tuple(p for v in vnets for p in v.tag_space)
            label = "AKS-managed VNet"
        nsgs += [n for n in group if all(n.id.lower() != m.id.lower() for m in nsgs)]
        out.append(NsgPath(label, tuple(nsgs), tuple(space)))
    return out


def _allow_fix(
    lay: az.Layer, why: list[str], blocked: list[str], port: int, target: str | None, node_rg: str | None, kind: str
) -> str:
    prio = min((lay.by_label[w].priority for w in why if w in lay.by_label), default=65500)
    n = lay.nsg
    free = az.free_priority(n, prio)
    if free is None:
        names = ", ".join(lay.by_label[w].name for w in why if w in lay.by_label)
        return (
            f"No free priority before {names} in nsg {n.name}: change it so it no longer matches {' '.join(blocked)} "
            f"(az network nsg rule update -g {n.resource_group} --nsg-name {n.name} -n {names} ...)."
        )
    cmd = (
        f"az network nsg rule create -g {n.resource_group} --nsg-name {n.name} -n allow-meshery-broker "
        f"--priority {free} --direction Inbound --access Allow --protocol Tcp "
        f"--source-address-prefixes {' '.join(blocked)} --destination-port-ranges {port}"
    )
    if target and kind == "LoadBalancer":
        cmd += f" --destination-address-prefixes {target}"
    if node_rg and n.resource_group.lower() == node_rg.lower() and kind == "LoadBalancer":
        return (
            f"nsg {n.name} belongs to AKS: add {' '.join(blocked)} to the Broker's "
            "spec.service.loadBalancerSourceRanges and AKS writes the allow rule (hand edits there are unsupported "
            f"and may be reverted); or:\n{cmd}"
        )
    return cmd


@check(
    id="azure.nsg.broker",
    permissions=operator_only((*ms.READ_BROKER, *ms.READ_NODES)),
    prepare=_PREPARE,
    title="AKS node NSGs let the Server's origin reach the Broker",
    category="azure",
    severity=Severity.HIGH,
    depends_on=("broker.service",),
    remediation="Allow the Server's origin to the Broker's port in the node subnet's and the nodes' NSGs "
    "(az network nsg rule create ... --source-address-prefixes <origin> --destination-port-ranges 4222), or set "
    "the Broker's spec.service.loadBalancerSourceRanges so AKS writes the rule.",
    timeout_factor=6.0,
)
def nsg_broker(ctx: ClusterContext) -> Finding:
    """Azure's load balancer keeps the client's address, so the NSGs on the node subnet and NICs decide who
    reaches 4222 (the node port for NodePort): lowest priority number first, and a packet must pass both."""
    return _probe(ctx, _nsg_broker)


def _nsg_broker(ctx: ClusterContext, c: az.AksCluster) -> Finding:
    st = ms.broker(ctx)
    spec = (st.service or {}).get("spec") or {}
    kind = str(spec.get("type") or "ClusterIP")
    if kind == "LoadBalancer":
        port = int(st.port.get("port") or ms.NATS_PORT)
    elif kind == "NodePort":
        port = int(st.port.get("nodePort") or 0)
        if not port:
            return error("NodePort Service without a nodePort on the Broker's port")
    else:
        not_applicable(f"{kind} Service: the Broker is not reached through the nodes' NSGs", type=kind)
    targets = _targets(ctx, st, kind)
    paths = _paths(ctx, c)
    return decide_nsg_broker(c, kind, port, targets, paths, ctx.settings.origin_cidrs, calls=_calls(ctx))


def decide_nsg_broker(
    c: az.AksCluster,
    kind: str,
    port: int,
    targets: Sequence[str],
    paths: Sequence[NsgPath],
    origin: Sequence[str],
    *,
    calls: int,
) -> Finding:
    """Every path's NSGs, in order, must let the origin through to each target (lowest priority number first);
    no NSG or a world-open rule fails too."""
    targets = list(targets)
    evidence: dict[str, Any] = {"cluster": c.id, "type": kind, "port": port, "targets": targets, "origin": origin}
    checked: list[dict[str, Any]] = []
    blocked: tuple[str, az.PathVerdict, str | None] | None = None
    world: list[str] = []
    world_nsg: dict[str, az.Nsg] = {}
    allowed: list[str] = []
    no_nsg: list[str] = []
    for path in paths:
        label, nsgs, space = path.label, path.nsgs, path.vnet_space
        if not nsgs:
            no_nsg.append(label)
            checked.append({"path": label, "nsgs": [], "verdict": "no NSG: Azure allows all inbound traffic"})
            continue
        seen: dict[tuple[tuple[str, ...], ...], list[str | None]] = {}
        layers_of: dict[tuple[tuple[str, ...], ...], list[az.Layer]] = {}
        points: list[str | None] = [*targets] or [None]  # None: destination unknown, every rule counts
        for t in points:
            layers = [az.layer(n, space, t) for n in nsgs]
            sig = tuple(tuple(r.label() for r in lay.rules) for lay in layers)
            seen.setdefault(sig, []).append(t)
            layers_of[sig] = layers
        for sig, group_targets in seen.items():
            layers = layers_of[sig]
            entry: dict[str, Any] = {
                "path": label,
                "nsgs": [lay.nsg.name for lay in layers],
                "targets": [t for t in group_targets if t][:5],
            }
            wo = az.world_open(layers, port)
            entry["world_open_rules"] = wo
            world += [w for w in wo if w not in world]
            world_nsg.update({w: lay.nsg for lay in layers for w in lay.world})
            notes = [n for lay in layers for n in lay.notes]
            if notes:
                entry["not_evaluated"] = notes
            if origin:
                pv = az.through(layers, origin, port)
                entry.update(pv.verdict.as_evidence())
                if pv.verdict.state != "allowed" and blocked is None:
                    blocked = (label, pv, group_targets[0])
                allowed += [d for d in pv.verdict.deciding if d not in allowed]
            checked.append(entry)
    evidence["paths"] = checked
    evidence["azure_api_calls"] = calls
    what = f"{port}/tcp from {', '.join(origin)}" if origin else f"{port}/tcp"
    if blocked is not None:
        label, pv, target = blocked
        fixes = [
            _allow_fix(lay, why, cidrs, port, target, c.node_resource_group, kind) for lay, cidrs, why in pv.blockers
        ]
        to = f" to {target}" if target else ""
        return fail(f"{describe(pv.verdict, what + to)} (path: {label})", remediation="\n".join(fixes), **evidence)
    if no_nsg:
        return fail(
            f"no NSG on {', '.join(no_nsg)}: nothing filters {port}/tcp, any address reaches the Broker",
            remediation="Attach an NSG to the node subnet that allows only the Server's origin to the Broker's port.",
            **evidence,
        )
    if world:
        first, src = world[0], " ".join(origin) or "<origin CIDRs>"
        n = world_nsg[first]
        rule = first.partition(": ")[2].split(" (")[0]
        fix = (
            f"Restrict it to the Server's origin: set the Broker's spec.service.loadBalancerSourceRanges to {src} "
            f"(AKS rewrites its own k8s-azure-lb_* rules), or:\naz network nsg rule update -g {n.resource_group} "
            f"--nsg-name {n.name} -n {rule} --source-address-prefixes {src}"
        )
        return fail(f"{port}/tcp is open to the whole internet through {', '.join(world)}", remediation=fix, **evidence)
    if not origin:
        return warn(
            f"{port}/tcp is not world-open; pass --origin to check the NSGs admit the Server",
            remediation="Give the Server's egress CIDRs with --origin (or origin.cidrs in the fleet file).",
            **evidence,
        )
    return passed(describe(Verdict("allowed", deciding=allowed), what), **evidence)
