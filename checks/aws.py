"""EKS cloud checks: what AWS itself lets through between Meshery Server and a cluster's API and Broker.

The network checks (broker.*, kube-api.*) say *that* a hop is filtered; these read the account (EKS
endpoint access, load balancer scheme, security groups, NACLs) and name the setting or rule that decides,
with the command that fixes it. boto3 is never imported here: cloud/aws.py imports it lazily, only once
an EKS cluster needs it, so other runs neither pay for nor need the SDK.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.checks import meshery_state as ms
from preflight.checks.cloud_common import cloud_probe, preloader, require
from preflight.cloud import aws
from preflight.cloud.errors import NotFound
from preflight.cloud.identity import CloudIds
from preflight.cloud.rules import FIRST_MATCH, UNION, WORLD, Rule, Verdict, describe, evaluate, inside
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, error, fail, not_applicable, passed, severity, warn
from preflight.engine.permissions import operator_only
from preflight.engine.probes import addresses
from preflight.engine.registry import check

# Several describes per check on a cold cache; each has its own connect/read deadline.
TIMEOUT_FACTOR = 6.0
NLB_TARGET_TYPE = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"
NO_ORIGIN_FIX = "Give the Server's egress CIDRs with --origin (or origin.cidrs in the fleet file) to check them."


def _probe(ctx: ClusterContext, body: Callable[[ClusterContext, CloudIds], Finding], *, broker: bool) -> Finding:
    """EKS clusters only (and operator mode for Broker checks), through the one cloud check policy
    (:func:`cloud_probe`); once the check reached for an account, its finding carries the run's call count."""
    used = ctx.memo("aws:used", threading.Event)  # set once a check of this cluster reached for an account

    def gated(ids: CloudIds) -> Finding:
        if broker and ms.effective_mode(ctx) != "operator":
            not_applicable("embedded mode: Meshery Server does not use a Broker for this cluster")
        return body(ctx, ids)

    def calls() -> dict[str, Any]:
        if not used.is_set():
            return {}
        by_operation = aws.api_calls(ctx.state.cloud)
        return {"aws_api_calls": sum(by_operation.values()), "aws_api_calls_by_operation": by_operation}

    return cloud_probe(ctx, "eks", gated, calls)


def _account(ctx: ClusterContext, ids: CloudIds) -> aws.AwsSession:
    region = ids.get("region")
    if not region:
        require(
            ids,
            "the cluster's AWS region is unknown",
            "set clusters[].aws.region in the fleet file (or use the kubeconfig from "
            "aws eks update-kubeconfig, whose context ARN and exec args carry the region)",
        )
    ctx.memo("aws:used", threading.Event).set()
    # An account named by the context's ARN is the cluster's, not necessarily the credential's: only the
    # fleet file's is taken as given.
    account = ids.get("account") if ids.sources.get("account") == "fleet file" else None
    return aws.connect(ctx.settings, ctx.state.cloud, ids.get("profile"), region, account)


def _where(acct: aws.AwsSession) -> dict[str, Any]:
    return {"account": acct.account, "region": acct.region, "profile": acct.profile}


def _is_public(cidr: str) -> bool:
    try:
        return addresses.classify(str(ipaddress.ip_network(cidr, strict=False).network_address)) == "public"
    except ValueError:
        return False


def _quoted(cidrs: list[str]) -> str:
    return ",".join(f'"{c}"' for c in cidrs)


# --------------------------------------------------------------------------------------------------
# Private connectivity (shared by the endpoint and internal load balancer checks)


def _private_reach(acct: aws.AwsSession, vpc_id: str, origin: list[str], what: str, ev: dict[str, Any]) -> Finding:
    """Read the VPC's CIDRs and private paths, then decide with :func:`private_reach`."""
    return private_reach(aws.vpc_reach(acct, vpc_id), origin, what, ev)


def private_reach(vpc: aws.VpcReach, origin: Sequence[str], what: str, ev: dict[str, Any]) -> Finding:
    """Can `origin` reach a private address in the VPC: inside it, or over peering / TGW / VPN.

    Adds the VPC's evidence to `ev` (callers go on using it for the finding they make after this one)."""
    vpc_id, cidrs, paths = vpc.vpc_id, list(vpc.cidrs), list(vpc.paths)
    origin = list(origin)
    usable = [p for p in paths if p.usable]
    ev.update(vpc=vpc_id, vpc_cidrs=cidrs, private_paths=[p.as_evidence() for p in paths])
    listed = ", ".join(p.label() for p in usable)
    _inside, outside = inside(origin, cidrs)
    connect_fix = (
        f"Connect the Server's network to {vpc_id}: VPC peering (aws ec2 create-vpc-peering-connection "
        f"--vpc-id <server-vpc> --peer-vpc-id {vpc_id}), a transit gateway attachment or a site-to-site VPN, "
        "with routes both ways."
    )
    if origin and not outside:
        return passed(f"{what}: the origin ({', '.join(origin)}) is inside {vpc_id} ({', '.join(cidrs)})", **ev)
    if not usable:
        unusable = [p.label() for p in paths]
        more = f" (not usable: {', '.join(unusable)})" if unusable else ""
        inside_note = "" if origin else f", unless the Server runs inside {vpc_id}"
        return fail(
            f"{what}, and {vpc_id} has no active VPC peering, transit gateway attachment or VPN"
            f"{more}: the Server cannot reach it{inside_note}",
            remediation=connect_fix,
            **ev,
        )
    if not origin:
        return warn(
            f"{what}; private connectivity found: {listed}. Pass --origin to check it carries the Server",
            remediation=NO_ORIGIN_FIX,
            **ev,
        )
    public = [o for o in outside if _is_public(o)]
    if public:
        return fail(
            f"{what}, but the origin {', '.join(public)} is public: private addresses are reached from "
            f"private ones over {listed}",
            remediation="Give the Server's private (peered/VPN) address "
            "range as --origin, or run it inside a connected network.",
            **ev,
        )
    peered = [p for p in usable if p.kind == "vpc-peering" and not inside(outside, p.remote_cidrs)[1]]
    if peered:
        return passed(f"{what}: the origin ({', '.join(outside)}) reaches {vpc_id} over {peered[0].label()}", **ev)
    others = [p for p in usable if p.kind != "vpc-peering"]
    if others:
        return warn(
            f"{what}: the origin ({', '.join(outside)}) is outside {vpc_id}; it reaches it only if the "
            f"routes of {', '.join(p.label() for p in others)} carry it",
            remediation="Check the transit gateway route tables / VPN static routes or BGP for the origin, "
            f"and the route tables of {vpc_id} back to it.",
            **ev,
        )
    return fail(
        f"{what}: the origin ({', '.join(outside)}) is outside {vpc_id} and outside every peered VPC ({listed})",
        remediation=connect_fix,
        **ev,
    )


# --------------------------------------------------------------------------------------------------
# aws.eks.endpoint-access


# Importing the SDK takes seconds: once per run, before any cluster's budget starts.
_PREPARE = preloader("eks", ("boto3",))


@check(
    id="aws.eks.endpoint-access",
    prepare=_PREPARE,
    title="EKS API endpoint admits the Server's origin",
    category="aws",
    severity=Severity.CRITICAL,
    depends_on=("kubeconfig.context",),
    remediation="Allow the Server's origin in the cluster's publicAccessCidrs (aws eks update-cluster-config "
    "--resources-vpc-config publicAccessCidrs=...), or reach the private endpoint over peering, a transit "
    "gateway or a VPN.",
    timeout_factor=TIMEOUT_FACTOR,
)
def eks_endpoint_access(ctx: ClusterContext) -> Finding:
    """EKS filters its public endpoint by publicAccessCidrs and answers on the private one only inside the VPC:
    a Server outside both sees a timeout that no Kubernetes setting explains."""
    return _probe(ctx, _endpoint_access, broker=False)


def _endpoint_access(ctx: ClusterContext, ids: CloudIds) -> Finding:
    name = ids.get("cluster_name")
    if not name:
        require(
            ids,
            "the EKS cluster name is unknown",
            "set clusters[].aws.cluster_name in the fleet file (or use the kubeconfig from "
            "aws eks update-kubeconfig, whose context ARN and exec args carry the cluster name)",
        )
    acct = _account(ctx, ids)
    try:
        cluster = aws.describe_cluster(acct, name)
    except NotFound as exc:
        if exc.code == "ResourceNotFoundException":
            named = ids.get("account")
            other = f"; the cluster's ARN names account {named}" if named and named != acct.account else ""
            return fail(
                f"no EKS cluster {name!r} in {acct.region} (account {acct.account}{other})",
                remediation="Correct clusters[].aws (cluster_name, region, profile) in the fleet file.",
                cluster=name,
                **_where(acct),
            )
        raise
    cfg = aws.endpoint_config(cluster)
    origin = list(ctx.settings.origin_cidrs)
    vpc_id = aws.cluster_vpc(acct, cfg) if endpoint_needs_vpc(cfg, origin) else None
    vpc = aws.vpc_reach(acct, vpc_id) if vpc_id else None
    base = {"cluster": name, **_where(acct), "ids_from": dict(ids.sources)}
    return decide_endpoint_access(cfg, origin, name, acct.region, base, vpc)


def endpoint_needs_vpc(cfg: aws.EndpointConfig, origin: Sequence[str]) -> bool:
    """Whether the decision needs the cluster's VPC: a private-only endpoint, or a private origin that
    publicAccessCidrs leave out while the private endpoint is on. Nothing else pays for its describes."""
    if not cfg.public:
        return cfg.private
    if not origin:
        return False
    _covered, uncovered = inside(origin, cfg.public_cidrs)
    return bool(uncovered) and cfg.private and not any(_is_public(o) for o in uncovered)


def decide_endpoint_access(
    cfg: aws.EndpointConfig,
    origin: Sequence[str],
    name: str,
    region: str,
    base: dict[str, Any],
    vpc: aws.VpcReach | None,
) -> Finding:
    """The endpoint's verdict from its configuration and, when :func:`endpoint_needs_vpc`, the VPC (None: unknown)."""
    origin = list(origin)
    ev: dict[str, Any] = {
        **base,
        "endpoint_public": cfg.public,
        "endpoint_private": cfg.private,
        "public_access_cidrs": cfg.public_cidrs,
        "defaults_applied": cfg.defaulted,
        "origin": origin,
    }
    cmd = f"aws eks update-cluster-config --region {region} --name {name} --resources-vpc-config"
    world = [c for c in cfg.public_cidrs if c in WORLD]
    if not cfg.public and not cfg.private:
        return fail("both the public and the private endpoint are disabled", **ev)
    if cfg.public:
        if not origin:
            if world:
                return warn(
                    "the public API endpoint is open to the world (publicAccessCidrs 0.0.0.0/0); pass "
                    "--origin to check the Server's origin",
                    remediation=NO_ORIGIN_FIX,
                    **ev,
                )
            return warn(
                f"the public API endpoint admits only {', '.join(cfg.public_cidrs)}; pass --origin to check "
                "they cover the Server",
                remediation=NO_ORIGIN_FIX,
                **ev,
            )
        _covered, uncovered = inside(origin, cfg.public_cidrs)
        if not uncovered:
            if world:
                return warn(
                    "the public API endpoint is open to the world (publicAccessCidrs 0.0.0.0/0): the "
                    "Server gets in, and so does everyone else",
                    remediation=f"Limit it to the Server's origin: {cmd} publicAccessCidrs={_quoted(origin)}",
                    **ev,
                )
            return passed(
                f"the public API endpoint admits the origin ({', '.join(origin)}) via publicAccessCidrs "
                f"{', '.join(cfg.public_cidrs)}",
                **ev,
            )
        add = [c for c in cfg.public_cidrs if c not in WORLD] + uncovered
        fix = f"Add {', '.join(uncovered)} to publicAccessCidrs: {cmd} publicAccessCidrs={_quoted(add)}"
        if vpc is not None and endpoint_needs_vpc(cfg, origin):
            via = private_reach(vpc, uncovered, "the origin is private and the private endpoint is on", ev)
            if via.status.value == "pass":
                return passed(f"publicAccessCidrs do not cover {', '.join(uncovered)}, but {via.message}", **ev)
        return fail(
            f"publicAccessCidrs {', '.join(cfg.public_cidrs)} do not cover the Server's origin "
            f"{', '.join(uncovered)}: the API endpoint drops its connections",
            remediation=fix,
            **ev,
        )
    if vpc is None:
        return error(
            f"private-only endpoint, and the cluster's VPC cannot be told (subnets "
            f"{', '.join(cfg.subnet_ids) or 'none'} not found)",
            **ev,
        )
    return private_reach(vpc, origin, "the API endpoint is private only", ev)


# --------------------------------------------------------------------------------------------------
# The Broker's load balancer


def _service(ctx: ClusterContext) -> tuple[ms.BrokerState, dict[str, Any]]:
    st = ms.broker(ctx)
    return st, (st.service or {}).get("spec") or {}


def _ingress(st: ms.BrokerState) -> tuple[str | None, str | None]:
    ingress = list((((st.service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])
    host = next((str(i["hostname"]) for i in ingress if i.get("hostname")), None)
    ip = next((str(i["ip"]) for i in ingress if i.get("ip")), None)
    return host, ip


def _lb(ctx: ClusterContext, acct: aws.AwsSession) -> aws.LoadBalancer | None:
    st, _spec = _service(ctx)
    host, ip = _ingress(st)
    found: aws.LoadBalancer | None = ctx.memo("aws:lb", lambda: aws.find_load_balancer(acct, host, ip))
    return found


def _lb_gate(ctx: ClusterContext) -> tuple[ms.BrokerState, str, str]:
    """The Broker Service's LB hostname/ip; not applicable to Services without one."""
    st, spec = _service(ctx)
    kind = str(spec.get("type") or "ClusterIP")
    host, ip = _ingress(st)
    if kind != "LoadBalancer" or not (host or ip):
        not_applicable(
            f"the Broker Service {st.service_name} is {kind} without a load balancer address: "
            "no load balancer to inspect",
            service_type=kind,
        )
    return st, kind, host or ip or ""


def _not_found(acct: aws.AwsSession, address: str) -> Finding:
    return warn(
        f"{address} is not a load balancer of account {acct.account} in {acct.region}",
        remediation="Point the fleet file's clusters[].aws (profile, region) at the account that owns the "
        "Broker's load balancer; a DNS alias (Route 53, external-dns) in the Service status hides it.",
        address=address,
        **_where(acct),
    )


def _ports(st: ms.BrokerState, spec: dict[str, Any]) -> tuple[int, int | None, bool]:
    """Listener port, the port the nodes receive on (nodePort, or the pod port for ip targets), ip targets."""
    port = st.port
    listener = int(port.get("port") or ms.NATS_PORT)
    annotations = dict((((st.service or {}).get("metadata") or {}).get("annotations")) or {})
    annotations.update(st.spec_service.get("annotations") or {})
    ip_targets = str(annotations.get(NLB_TARGET_TYPE, "")).lower() == "ip"
    if ip_targets:
        target = port.get("targetPort")
        return listener, int(target) if isinstance(target, int) else ms.NATS_PORT, True
    node_port = port.get("nodePort")
    return listener, int(node_port) if node_port else None, False


@check(
    id="aws.lb.scheme",
    permissions=operator_only(ms.READ_BROKER),
    prepare=_PREPARE,
    title="Broker load balancer's scheme suits the Server's origin",
    category="aws",
    severity=Severity.HIGH,
    depends_on=("broker.service",),
    remediation="Make the Broker's load balancer internet-facing (annotation service.beta.kubernetes.io/"
    "aws-load-balancer-scheme: internet-facing) and restrict it with loadBalancerSourceRanges, or connect the "
    "Server's network to the VPC.",
    timeout_factor=TIMEOUT_FACTOR,
)
def lb_scheme(ctx: ClusterContext) -> Finding:
    """An internal load balancer has only private addresses in its VPC: a Server outside the VPC and its peered
    networks never reaches it, whatever the security groups say."""
    return _probe(ctx, _lb_scheme, broker=True)


def _lb_scheme(ctx: ClusterContext, ids: CloudIds) -> Finding:
    _st, _kind, address = _lb_gate(ctx)
    acct = _account(ctx, ids)
    lb = _lb(ctx, acct)
    if lb is None:
        return _not_found(acct, address)
    origin = list(ctx.settings.origin_cidrs)
    vpc = aws.vpc_reach(acct, lb.vpc_id) if lb_scheme_needs_vpc(lb, origin) and lb.vpc_id else None
    return decide_lb_scheme(lb, origin, _where(acct), vpc)


def lb_scheme_needs_vpc(lb: aws.LoadBalancer, origin: Sequence[str]) -> bool:
    """Only an internal load balancer in a known VPC, checked against a given origin, needs the VPC read."""
    return lb.scheme == "internal" and bool(lb.vpc_id) and bool(origin)


def decide_lb_scheme(
    lb: aws.LoadBalancer, origin: Sequence[str], where: dict[str, Any], vpc: aws.VpcReach | None
) -> Finding:
    """Internet-facing passes; internal needs the origin to reach the VPC (read when :func:`lb_scheme_needs_vpc`)."""
    origin = list(origin)
    ev: dict[str, Any] = {"load_balancer": lb.as_evidence(), **where, "origin": origin}
    what = f"{lb.label()} ({lb.dns_name})"
    if lb.scheme != "internal":
        return passed(f"{what} is {lb.scheme or 'internet-facing'}", **ev)
    if not lb.vpc_id:
        return warn(f"{what} is internal and its VPC is unknown", **ev)
    if not origin or vpc is None:
        return warn(
            f"{what} is internal: reachable only from {lb.vpc_id} and networks connected to it; pass "
            "--origin to check the Server's",
            remediation=NO_ORIGIN_FIX,
            **ev,
        )
    return private_reach(vpc, origin, f"{what} is internal", ev)


# --------------------------------------------------------------------------------------------------
# Security groups


def _sg_finding(
    acct: aws.AwsSession,
    ctx: ClusterContext,
    group_ids: list[str],
    port: int,
    what: str,
    ev: dict[str, Any],
    *,
    prefix: str = "",
) -> Finding:
    """Read the groups, then decide with :func:`decide_security_groups`."""
    view = aws.groups_view(acct, group_ids)
    return decide_security_groups(view, list(ctx.settings.origin_cidrs), port, what, ev, prefix=prefix)


def decide_security_groups(
    view: aws.GroupsView,
    origin: Sequence[str],
    port: int,
    what: str,
    ev: dict[str, Any],
    *,
    prefix: str = "",
) -> Finding:
    """UNION over the groups for `port` from the origin: world-open fails, anything short of allowed fails."""
    origin = list(origin)
    rules = list(view.rules)
    notes = list(view.references)
    ev = dict(ev)
    ev.update(security_groups=list(view.labels), port=port, origin=origin, references=notes)
    if view.not_found:
        ev["not_found"] = list(view.not_found)
    first = view.group_ids[0] if view.group_ids else "sg-..."
    managed_note = (
        f"\n{', '.join(view.managed)} is managed by the cloud controller: set the Broker Service's "
        "loadBalancerSourceRanges instead of editing it."
        if view.managed
        else ""
    )
    world_verdict = evaluate(rules, list(WORLD), port, semantics=UNION)
    ev["world_open_rules"] = world_verdict.world_open
    if world_verdict.world_open:
        revoke = "\n".join(sorted({_revoke(r) for r in rules if r.world_open and r.covers_port(port, "tcp")}))
        return fail(
            f"{prefix}{port}/tcp on {what} is open to the world: {', '.join(world_verdict.world_open)}",
            remediation=f"Revoke the world-open rule and allow only the Server's origin:\n{revoke}" + managed_note,
            **ev,
        )
    if not origin:
        return warn(
            f"{prefix}{port}/tcp on {what} is not open to the world; pass --origin to check it admits the Server",
            remediation=NO_ORIGIN_FIX,
            **ev,
        )
    verdict: Verdict = evaluate(rules, origin, port, semantics=UNION)
    ev.update(verdict.as_evidence())
    line = describe(verdict, f"{port}/tcp from {', '.join(origin)} to {what}")
    if verdict.state == "allowed":
        return passed(prefix + line, **ev)
    for_port = [r.label() for r in rules if r.covers_port(port, "tcp")]
    near = f"; rules for {port}/tcp: {', '.join(for_port)}" if for_port else f"; no rule admits {port}/tcp from a CIDR"
    refs = (
        f"; {len(notes)} security-group reference{' never matches' if len(notes) == 1 else 's never match'} "
        "an external origin"
        if notes
        else ""
    )
    # One command a line, nothing glued to its end: `--cidr 10.0.0.0/8.` would not paste.
    fix = "\n".join(
        f"aws ec2 authorize-security-group-ingress --group-id {first} --protocol tcp --port {port} --cidr {cidr}"
        for cidr in verdict.blocked
    )
    return fail(prefix + line + near + refs, remediation=f"Allow the origin:\n{fix}" + managed_note, **ev)


def _revoke(rule: Rule) -> str:
    """The command that removes one world-open permission, as it is written in the group."""
    gid = rule.container.split(" ", 1)[0]
    source = next(s for s in rule.sources if s in WORLD)
    base = f"aws ec2 revoke-security-group-ingress --group-id {gid}"
    proto = "-1" if rule.protocol == "all" else rule.protocol
    lo, hi = rule.ports[0] if rule.ports else (0, 65535)
    if ":" in source:
        ports = f",FromPort={lo},ToPort={hi}" if proto != "-1" else ""
        return f"{base} --ip-permissions 'IpProtocol={proto}{ports},Ipv6Ranges=[{{CidrIpv6={source}}}]'"
    if proto == "-1":
        return f"{base} --protocol -1 --cidr {source}"
    return f"{base} --protocol {proto} --port {lo if lo == hi else f'{lo}-{hi}'} --cidr {source}"


def _node_groups(ctx: ClusterContext, acct: aws.AwsSession) -> tuple[dict[tuple[str, ...], list[str]], dict[str, Any]]:
    """Nodes grouped by their instances' security groups, from spec.providerID (aws:///zone/i-...)."""
    nodes = ms.nodes(ctx)
    if nodes is None:
        not_applicable(
            "cannot list the cluster's nodes to find their instances: needs list on nodes", permission="list nodes"
        )
    known = aws.instances(acct)
    groups: dict[tuple[str, ...], list[str]] = {}
    unresolved: list[str] = []
    subnets: dict[str, str | None] = {}
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name") or "?")
        pid = str((node.get("spec") or {}).get("providerID") or "")
        iid = aws.instance_id(pid)
        inst = known.get(iid or "")
        if inst is None:
            unresolved.append(f"{name} ({pid or 'no providerID'})")
            continue
        groups.setdefault(tuple(inst.security_group_ids), []).append(f"{name} ({inst.id})")
        if inst.subnet_id:
            subnets[inst.subnet_id] = inst.vpc_id
    info: dict[str, Any] = {"unresolved_nodes": unresolved, "node_subnets": subnets}
    if not groups:
        not_applicable(
            "no node maps to an EC2 instance of this account and region (spec.providerID "
            "aws:///<zone>/i-...): Fargate, or nodes in another account",
            unresolved_nodes=unresolved,
            **_where(acct),
        )
    return groups, info


def _nodes_finding(
    ctx: ClusterContext, acct: aws.AwsSession, port: int, ev: dict[str, Any], prefix: str = ""
) -> Finding:
    """Every node group must admit the port: the published endpoint may be any node's address."""
    groups, info = _node_groups(ctx, acct)
    ev["unresolved_nodes"] = info["unresolved_nodes"]
    results = []
    for sgs, members in groups.items():
        results.append(
            (members, _sg_finding(acct, ctx, list(sgs), port, f"nodes {', '.join(members)}", {}, prefix=prefix))
        )
    return combine_node_groups(results, ev)


def combine_node_groups(results: Sequence[tuple[list[str], Finding]], ev: dict[str, Any]) -> Finding:
    """Every node group must admit the port: the worst group's verdict, every group's message and evidence."""
    ev = {**ev, "node_groups": [{"nodes": m, **dict(f.evidence)} for m, f in results]}
    worst = max((f for _, f in results), key=lambda f: severity(f.status))
    if len(results) == 1:
        return Finding(worst.status, worst.message, {**ev, **dict(worst.evidence)}, worst.remediation)
    return Finding(worst.status, "; ".join(f.message for _, f in results), ev, worst.remediation)


@check(
    id="aws.lb.security-groups",
    permissions=operator_only(ms.READ_BROKER),
    prepare=_PREPARE,
    title="Broker load balancer's security groups admit only the Server's origin",
    category="aws",
    severity=Severity.CRITICAL,
    depends_on=("aws.lb.scheme",),
    remediation="Allow 4222/tcp from the Server's origin in the load balancer's security group "
    "(aws ec2 authorize-security-group-ingress --group-id sg-... --protocol tcp --port 4222 --cidr <origin>), "
    "or through the Broker Service's loadBalancerSourceRanges when the cloud controller manages the group.",
    timeout_factor=TIMEOUT_FACTOR,
)
def lb_security_groups(ctx: ClusterContext) -> Finding:
    """Security groups drop what they do not allow, silently: the Server sees a timeout on 4222. Open to the
    world, they expose cluster events to anyone. NLBs without security groups hand the decision to the nodes'."""
    return _probe(ctx, _lb_security_groups, broker=True)


def _lb_security_groups(ctx: ClusterContext, ids: CloudIds) -> Finding:
    st, _kind, address = _lb_gate(ctx)
    acct = _account(ctx, ids)
    lb = _lb(ctx, acct)
    if lb is None:
        not_applicable(
            f"{address} is not a load balancer of account {acct.account} in {acct.region} (see aws.lb.scheme)",
            **_where(acct),
        )
    _st, spec = _service(ctx)
    listener, node_port, ip_targets = _ports(st, spec)
    ev: dict[str, Any] = {"load_balancer": lb.as_evidence(), **_where(acct)}
    if lb.security_group_ids:
        return _sg_finding(acct, ctx, lb.security_group_ids, listener, lb.label(), ev)
    if node_port is None:
        return warn(
            f"{lb.label()} has no security groups and the Service allocates no node port: the targets' "
            "security groups decide, and they cannot be told",
            **ev,
        )
    target = "pod port" if ip_targets else "node port"
    ev["decided_by"] = "node security groups"
    return _nodes_finding(
        ctx,
        acct,
        node_port,
        ev,
        prefix=f"{lb.label()} has no security groups: the nodes' decide ({target} {node_port}): ",
    )


@check(
    id="aws.nodes.security-groups",
    permissions=operator_only((*ms.READ_BROKER, *ms.READ_NODES)),
    prepare=_PREPARE,
    title="Node security groups admit the Broker's node port from the Server's origin",
    category="aws",
    severity=Severity.CRITICAL,
    depends_on=("broker.service",),
    remediation="Allow the Broker's node port from the Server's origin in the nodes' security group "
    "(aws ec2 authorize-security-group-ingress --group-id sg-... --protocol tcp --port <nodePort> --cidr <origin>).",
    timeout_factor=TIMEOUT_FACTOR,
)
def nodes_security_groups(ctx: ClusterContext) -> Finding:
    """A NodePort Broker (or one behind an NLB without security groups) is reached on the nodes themselves:
    their security groups must admit the node port from the Server's origin, and not from the world."""
    return _probe(ctx, _nodes_security_groups, broker=True)


def _nodes_security_groups(ctx: ClusterContext, ids: CloudIds) -> Finding:
    st, spec = _service(ctx)
    kind = str(spec.get("type") or "ClusterIP")
    if kind not in ("NodePort", "LoadBalancer"):
        not_applicable(f"the Broker Service is {kind}: not reached on the nodes", service_type=kind)
    _listener, node_port, ip_targets = _ports(st, spec)
    acct = _account(ctx, ids)
    ev: dict[str, Any] = {"service_type": kind, **_where(acct)}
    if kind == "LoadBalancer":
        host, ip = _ingress(st)
        lb = _lb(ctx, acct)
        if lb is None:
            not_applicable(
                f"{host or ip} is not a load balancer of account {acct.account} in {acct.region} (see aws.lb.scheme)",
                **ev,
            )
        ev["load_balancer"] = lb.as_evidence()
        if lb.security_group_ids:
            not_applicable(
                f"{lb.label()} has security groups: they face the Server (aws.lb.security-groups); the nodes "
                "only need to admit the load balancer",
                **ev,
            )
    if node_port is None:
        not_applicable("the Broker Service has no node port", **ev)
    what = "pod port" if ip_targets else "node port"
    return _nodes_finding(ctx, acct, node_port, ev, prefix=f"{what} {node_port}: ")


# --------------------------------------------------------------------------------------------------
# Network ACLs


_Target = tuple[str, str | None, int, str]  # subnet, vpc, port, role


def _acl_targets(ctx: ClusterContext, acct: aws.AwsSession) -> tuple[list[_Target], dict[str, Any]]:
    """(subnet, vpc, port, role) the Server's packets cross: the LB's subnets, and the nodes' for NodePort/NLB."""
    st, spec = _service(ctx)
    kind = str(spec.get("type") or "ClusterIP")
    if kind not in ("NodePort", "LoadBalancer"):
        not_applicable(f"the Broker Service is {kind}: no subnet faces the Server", service_type=kind)
    listener, node_port, ip_targets = _ports(st, spec)
    ev: dict[str, Any] = {"service_type": kind}
    targets: list[_Target] = []
    nodes_too = kind == "NodePort"
    if kind == "LoadBalancer":
        host, ip = _ingress(st)
        if not (host or ip):
            not_applicable("the Broker's load balancer has no address yet")
        lb = _lb(ctx, acct)
        if lb is None:
            not_applicable(
                f"{host or ip} is not a load balancer of account {acct.account} in {acct.region} "
                "(see aws.lb.scheme): its subnets cannot be told",
                **_where(acct),
            )
        ev["load_balancer"] = lb.as_evidence()
        targets += [(s, lb.vpc_id, listener, f"{lb.label()} subnet") for s in lb.subnet_ids]
        # An NLB passes the client's address through: the nodes' subnets see the origin too.
        nodes_too = lb.kind == "network" and node_port is not None
    if nodes_too and node_port is not None:
        _groups, info = _node_groups(ctx, acct)
        role = "pod" if ip_targets else "node"
        targets += [(s, v, node_port, f"{role} subnet") for s, v in info["node_subnets"].items()]
    return targets, ev


def _rule_number(acl: aws.NetworkAcl, egress: bool, below: list[int]) -> int:
    used = {int(e.get("RuleNumber") or 0) for e in acl.entries if bool(e.get("Egress")) == egress}
    start = min(below) - 1 if below else 100
    n = max(start, 1)
    while n in used and n > 1:
        n -= 1
    return n


def _numbers(labels: list[str], rules: list[Rule]) -> list[int]:
    return [r.priority for r in rules if r.label() in labels and r.action == "deny"]


@check(
    id="aws.network-acl",
    permissions=operator_only(ms.READ_BROKER),
    prepare=_PREPARE,
    title="Subnet network ACLs let the Broker traffic in and the replies out",
    category="aws",
    severity=Severity.HIGH,
    depends_on=("broker.service",),
    remediation="Add NACL entries below the deny that matches: inbound tcp on the Broker's port from the origin, "
    "and outbound tcp 1024-65535 to the origin (NACLs are stateless: replies need their own rule): "
    "aws ec2 create-network-acl-entry --network-acl-id acl-... --ingress --rule-number <below the deny> "
    "--protocol tcp --port-range From=4222,To=4222 --cidr-block <origin> --rule-action allow, and the same with "
    "--egress --port-range From=1024,To=65535.",
    timeout_factor=TIMEOUT_FACTOR,
)
def network_acl(ctx: ClusterContext) -> Finding:
    """NACLs are stateless and first-match by rule number: a deny numbered below the allow, or a missing outbound
    rule for the ephemeral ports the replies use, drops the Broker's traffic behind every security group."""
    return _probe(ctx, _network_acl, broker=True)


def _network_acl(ctx: ClusterContext, ids: CloudIds) -> Finding:
    _st, spec = _service(ctx)
    kind = str(spec.get("type") or "ClusterIP")
    if kind not in ("NodePort", "LoadBalancer"):
        not_applicable(f"the Broker Service is {kind}: no subnet faces the Server", service_type=kind)
    if not ctx.settings.origin_cidrs:
        # Decided before any describe: without an origin there is nothing to evaluate.
        return warn(
            "pass --origin to check the subnets' network ACLs against the Server's origin", remediation=NO_ORIGIN_FIX
        )
    acct = _account(ctx, ids)
    targets, ev = _acl_targets(ctx, acct)
    origin = list(ctx.settings.origin_cidrs)
    ev.update(_where(acct), origin=origin)
    if not targets:
        not_applicable("no subnet found for the Broker's load balancer or nodes", **ev)
    crossings = [
        AclCrossing(subnet, port, role, *aws.acl_for_subnet(acct, subnet, vpc)) for subnet, vpc, port, role in targets
    ]
    return decide_network_acls(crossings, origin, ev)


@dataclass(frozen=True)
class AclCrossing:
    """One subnet the Broker's traffic crosses, the port it arrives on there, and the NACL that filters it."""

    subnet: str
    port: int
    role: str  # "<lb> subnet", "node subnet", "pod subnet"
    acl: aws.NetworkAcl | None
    explicit: bool  # False: the VPC's default NACL by implicit association


def decide_network_acls(crossings: Sequence[AclCrossing], origin: Sequence[str], ev: dict[str, Any]) -> Finding:
    """Each NACL must let the port in from the origin and the replies out (stateless, first match by number)."""
    origin = list(origin)
    ev = dict(ev)
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    lines_bad: list[str] = []
    lines_ok: list[str] = []
    fixes: list[str] = []
    for crossing in crossings:
        subnet, port, role, acl = crossing.subnet, crossing.port, crossing.role, crossing.acl
        if acl is None:
            lines_bad.append(f"{role} {subnet}: no network ACL found")
            continue
        key = (acl.id, port)
        if key in seen:
            seen[key]["subnets"].append(subnet)
            continue
        inbound_rules = aws.nacl_rules(acl, egress=False)
        outbound_rules = aws.nacl_rules(acl, egress=True)
        inbound = evaluate(inbound_rules, origin, port, semantics=FIRST_MATCH)
        outbound = evaluate(
            outbound_rules, origin, 0, semantics=FIRST_MATCH, port_range=aws.EPHEMERAL, direction="egress"
        )
        seen[key] = {
            "network_acl": acl.label(),
            "association": "explicit" if crossing.explicit else "implicit (the VPC's default NACL)",
            "role": role,
            "subnets": [subnet],
            "port": port,
            "inbound": inbound.as_evidence(),
            "outbound_replies": outbound.as_evidence(),
        }
        inside_acl = f"{acl.label()}: "  # every rule is this ACL's: name it once, at the front
        ins = describe(inbound, f"inbound {port}/tcp from {', '.join(origin)}").replace(inside_acl, "")
        outs = describe(outbound, f"replies to {', '.join(origin)} on tcp {aws.EPHEMERAL[0]}-{aws.EPHEMERAL[1]}")
        line = f"{acl.label()} ({role}s): {ins}; {outs.replace(inside_acl, '')}"
        if inbound.state == "allowed" and outbound.state == "allowed":
            lines_ok.append(line)
            continue
        lines_bad.append(line)
        if inbound.state != "allowed":
            n = _rule_number(acl, False, _numbers(inbound.deciding, inbound_rules))
            fixes += [
                f"aws ec2 create-network-acl-entry --network-acl-id {acl.id} --ingress --rule-number {n} "
                f"--protocol tcp --port-range From={port},To={port} --cidr-block {c} --rule-action allow"
                for c in inbound.blocked
            ]
        if outbound.state != "allowed":
            n = _rule_number(acl, True, _numbers(outbound.deciding, outbound_rules))
            fixes += [
                f"aws ec2 create-network-acl-entry --network-acl-id {acl.id} --egress --rule-number {n} "
                f"--protocol tcp --port-range From={aws.EPHEMERAL[0]},To={aws.EPHEMERAL[1]} --cidr-block {c} "
                "--rule-action allow"
                for c in outbound.blocked
            ]
    ev["network_acls"] = list(seen.values())
    if lines_bad:
        fixes = list(dict.fromkeys(fixes))  # one ACL may serve the LB's and the nodes' subnets
        return fail("; ".join(lines_bad), remediation=("; ".join(fixes) + ".") if fixes else None, **ev)
    return passed("; ".join(lines_ok), **ev)
