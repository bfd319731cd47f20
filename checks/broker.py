"""Broker checks: can Meshery Server, from where it runs, reach and use each cluster's Broker on 4222.

The commonest fleet failure: a published endpoint the Server cannot reach. The checks walk the path
in order (Service, endpoint, DNS, TCP, NATS, auth) and say which hop breaks, and exposure says
whether the way in is wider (or narrower) than the Server's origin.
"""

from __future__ import annotations

import base64
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from preflight.checks import meshery_state as ms
from preflight.context import ClusterContext
from preflight.model import Finding, Severity, error, fail, passed, skip, warn
from preflight.probes import addresses, dns, nats, tcp
from preflight.registry import check

_TCP_FIX = {
    tcp.FILTERED: "Something drops the SYN to 4222: allow the Server's origin in the load balancer's or nodes' "
    "security group / firewall rule, the Service's loadBalancerSourceRanges (Broker "
    "spec.service.loadBalancerSourceRanges) and the subnet's network ACL.",
    tcp.REFUSED: "The address answers but nothing listens on the port: check the Broker pods "
    "(kubectl -n meshery get pods -l app=meshery-broker), the Service's port and the load balancer listener.",
    tcp.UNREACHABLE: "No route from here: a private load balancer or node needs VPC/VNet peering, a transit "
    "gateway or a VPN from the Server's network; or expose the Broker on a reachable load balancer.",
    tcp.FAILED: "The connection failed locally: check this machine's network configuration.",
}

INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("aws", ("true", "0.0.0.0/0")),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("aws", ("internal",)),
    "networking.gke.io/load-balancer-type": ("gcp", ("internal",)),
    "cloud.google.com/load-balancer-type": ("gcp", ("internal",)),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("azure", ("true",)),
}


def _connect(ctx: ClusterContext, address: str, port: int) -> tcp.TcpOutcome:
    """One connect per address and port per cluster: a filtered Broker costs one deadline, not two."""
    return ctx.memo(f"tcp:{address}:{port}", lambda: tcp.connect(address, port, ctx.settings.connect_timeout))


def _operator_only(ctx: ClusterContext) -> Finding | None:
    if ms.effective_mode(ctx) != "operator":
        return skip("embedded mode: Meshery Server does not use a Broker for this cluster")
    return None


def _svc_spec(st: ms.BrokerState) -> dict[str, Any]:
    return (st.service or {}).get("spec") or {}


def _ingress(st: ms.BrokerState) -> list[dict[str, Any]]:
    return list((((st.service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


@check(
    id="broker.service",
    title="Broker Service can serve an out-of-cluster Server",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.auth",),
    remediation="Set the Broker's spec.service.type to LoadBalancer (or NodePort), or set "
    "spec.service.externalEndpointOverride to an address the Server reaches (a private LB, an ingress).",
)
def service(ctx: ClusterContext) -> Finding:
    """A ClusterIP-only Broker is invisible to a Server outside the cluster (and current Operators default to it)."""
    gate = _operator_only(ctx)
    if gate:
        return gate
    try:
        st = ms.broker(ctx)
    except ms.ReadError as exc:
        return error(str(exc), remediation=f"Grant get on services and brokers.meshery.io in {ms.ns(ctx)}.")
    if st.service is None:
        names = " or ".join(n for n, _, _ in ms.SERVICES)
        return fail(
            f"no Broker Service ({names}) in {ms.ns(ctx)}",
            remediation="The Operator creates it from the Broker resource: check the Operator's logs.",
        )
    spec = _svc_spec(st)
    kind = str(spec.get("type") or "ClusterIP")
    port = st.port
    evidence: dict[str, Any] = {
        "service": st.service_name,
        "generation": st.generation,
        "type": kind,
        "port": port.get("port"),
        "node_port": port.get("nodePort"),
        "override": st.spec_service.get("externalEndpointOverride"),
    }
    if kind == "ClusterIP" and ms.remote_server(ctx) and not evidence["override"]:
        return fail(
            f"Service {st.service_name} is ClusterIP: a Meshery Server outside the cluster cannot reach it",
            **evidence,
        )
    if kind == "LoadBalancer" and not _ingress(st):
        return fail(
            f"Service {st.service_name} is LoadBalancer but has no address yet (load balancer pending)",
            remediation="Check the Service's events (kubectl -n meshery describe svc): quota, subnet tags "
            "(kubernetes.io/role/elb), or the cloud controller's permissions.",
            **evidence,
        )
    return passed(f"{st.service_name} ({st.generation} generation) is {kind}", **evidence)


def _candidates(ctx: ClusterContext, st: ms.BrokerState) -> list[dict[str, Any]]:
    """Every endpoint the Operator could publish, in the documented order of preference."""
    spec, port = _svc_spec(st), st.port
    svc_port, node_port = port.get("port") or ms.NATS_PORT, port.get("nodePort")
    out: list[dict[str, Any]] = []

    def add(kind: str, host: str | None, p: Any) -> None:
        if host and p:
            endpoint = f"[{host}]:{p}" if ":" in host else f"{host}:{p}"
            if all(c["endpoint"] != endpoint for c in out):
                out.append({"kind": kind, "endpoint": endpoint})

    override = st.spec_service.get("externalEndpointOverride")
    if override:
        host, p = ms.split_endpoint(str(override))
        add("override", host, p)
    ingress = _ingress(st)
    for ing in ingress:
        add("lb-hostname", ing.get("hostname"), svc_port)
    for ing in ingress:
        add("lb-ip", ing.get("ip"), svc_port)
    add("api-host-nodeport", ctx.target.host, node_port)
    add("cluster-ip", spec.get("clusterIP") if spec.get("clusterIP") not in (None, "None") else None, svc_port)
    for node in ms.nodes(ctx) or []:
        addrs = (node.get("status") or {}).get("addresses") or []
        for want in ("ExternalIP", "InternalIP"):
            for a in addrs:
                if a.get("type") == want:
                    add(f"node-{want.lower()}", a.get("address"), node_port)
    if st.generation == "classic":
        # Classic Operators fall back to this; it only works where the Server runs on a node.
        add("classic-localhost-nodeport", "localhost", node_port)
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _probe_candidate(ctx: ClusterContext, cand: dict[str, Any]) -> dict[str, Any]:
    host, port = ms.split_endpoint(cand["endpoint"])
    if cand["kind"] == "cluster-ip" and ms.remote_server(ctx):
        return {**cand, "answers": "not probed (cluster-internal address)"}
    if _is_loopback(host) and not ms.local_cluster(ctx):
        return {**cand, "answers": "not probed (loopback: this machine, not the cluster)"}
    try:
        res = dns.resolve(host, ctx.settings.connect_timeout, ctx.settings.dns_server)
    except dns.DnsFailure as exc:
        return {**cand, "answers": f"dns {exc.kind}"}
    out = _connect(ctx, res.addresses[0], port or ms.NATS_PORT)
    return {**cand, "answers": out.state}


def _published_problem(ctx: ClusterContext, st: ms.BrokerState, published: str) -> str | None:
    host, port = ms.split_endpoint(published)
    if not published:
        return "no external endpoint is published (pending)"
    if port is None:
        return f"the published endpoint {published!r} has no port"
    if _is_loopback(host) and not ms.local_cluster(ctx):
        return f"the published endpoint {published} is loopback: it means this machine, not the cluster"
    cluster_ip = _svc_spec(st).get("clusterIP")
    if ms.remote_server(ctx) and host == cluster_ip:
        return f"the published endpoint {published} is the Service's ClusterIP, unreachable from outside the cluster"
    return None


@check(
    id="broker.endpoint",
    title="Published Broker endpoint is the right one",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("broker.service",),
    remediation="Publish an endpoint the Server reaches: set the Broker's spec.service.externalEndpointOverride, "
    "or change spec.service.type so the Operator publishes a load balancer address.",
    timeout_factor=4.0,
)
def endpoint(ctx: ClusterContext) -> Finding:
    """Compares what the Operator published with every candidate, and tests which candidates answer from here."""
    st = ms.broker(ctx)
    published = st.published_external
    ctx.facts["broker.published"] = published
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="candidate") as pool:
        probed = list(pool.map(lambda c: _probe_candidate(ctx, c), _candidates(ctx, st)))
    evidence: dict[str, Any] = {"published": published, "generation": st.generation, "candidates": probed}
    working = [c for c in probed if c["answers"] == tcp.OPEN]
    better = f"; {working[0]['endpoint']} ({working[0]['kind']}) answers from here" if working else ""
    fix = None
    if working:
        fix = (
            f"Set the Broker's spec.service.externalEndpointOverride to {working[0]['endpoint']}, "
            "which answers from the Server's network position."
        )
    problem = _published_problem(ctx, st, published)
    if problem:
        return fail(problem + better, remediation=fix, **evidence)
    if published not in {c["endpoint"] for c in probed}:
        return warn(
            f"the published endpoint {published} matches none of the Service's current addresses (stale?)" + better,
            remediation=fix or "Restart the Operator so it re-publishes the Broker's endpoint.",
            **evidence,
        )
    kind = next(c["kind"] for c in probed if c["endpoint"] == published)
    if kind == "classic-localhost-nodeport":
        return warn(
            f"publishes {published}, the classic Operator's fallback: reachable only where the Server runs on a "
            "node, or the node port is mapped to this machine" + better,
            remediation=fix
            or "Give the Broker a LoadBalancer, or map the node port to the Server's host (kind: extraPortMappings).",
            **evidence,
        )
    return passed(f"publishes {published} ({kind}); {len(working)} of {len(probed)} candidates answer", **evidence)


def _origin_is_private(ctx: ClusterContext) -> bool | None:
    cidrs = ctx.settings.origin_cidrs
    if not cidrs:
        return None
    return all(addresses.classify(str(ipaddress.ip_network(c).network_address)) == "private" for c in cidrs)


@check(
    id="broker.dns",
    title="Broker endpoint resolves to addresses the Server can reach",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("broker.endpoint",),
    remediation="Make the Broker's load balancer resolvable and reachable from the Server: a deleted or "
    "unprovisioned load balancer leaves NXDOMAIN; an internal one answers private addresses that need peering.",
)
def broker_dns(ctx: ClusterContext) -> Finding:
    """AWS publishes a hostname (follow its CNAMEs); GCP and Azure an IP. Private answers need a private path."""
    host, _port = ms.split_endpoint(ctx.facts.get("broker.published", ""))
    try:
        res = dns.resolve(host, ctx.settings.connect_timeout, ctx.settings.dns_server)
    except dns.DnsFailure as exc:
        fix = None
        if exc.kind == "nxdomain":
            fix = (
                "The load balancer behind this name was deleted or never provisioned: check the Broker "
                "Service's events, then let the Operator re-publish the endpoint."
            )
        return fail(str(exc), remediation=fix, host=host, failure=exc.kind)
    classes = {a: addresses.classify(a) for a in res.addresses}
    ctx.facts["broker.addresses"] = res.addresses
    evidence: dict[str, Any] = {
        "host": host,
        "addresses": [{"address": a, "class": c} for a, c in classes.items()],
        "cnames": res.cnames,
        "resolver": res.resolver,
        "origin_cidrs": ctx.settings.origin_cidrs,
    }
    listed = ", ".join(f"a {c} address" if res.resolver == "literal" else f"{a} ({c})" for a, c in classes.items())
    shown = f"{host} is" if res.resolver == "literal" else f"{host} →"
    private = [a for a, c in classes.items() if c == "private"]
    if private and _origin_is_private(ctx) is False:
        return fail(
            f"{host} answers private addresses ({', '.join(private)}) but the Server's origin "
            f"({', '.join(ctx.settings.origin_cidrs)}) is outside private ranges: an internal load balancer",
            remediation="Reach it over VPC/VNet peering, a transit gateway or a VPN, or make the Broker's load "
            "balancer internet-facing and restrict it with loadBalancerSourceRanges.",
            **evidence,
        )
    return passed(f"{shown} {listed}", **evidence)


@check(
    id="broker.tcp",
    title="Broker port is reachable over TCP",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("broker.dns",),
    remediation=_TCP_FIX[tcp.FILTERED],
)
def broker_tcp(ctx: ClusterContext) -> Finding:
    """Open, refused, filtered or unreachable: each names a different fix."""
    _host, port = ms.split_endpoint(ctx.facts.get("broker.published", ""))
    port = port or ms.NATS_PORT
    attempts = []
    for address in (ctx.facts.get("broker.addresses") or [])[:4]:
        out = _connect(ctx, address, port)
        attempts.append(out.as_evidence())
        if out.state == tcp.OPEN:
            ctx.facts["broker.address"] = (address, port)
            return passed(f"{address}:{port} open in {out.elapsed_ms:g} ms", attempts=attempts)
        if ctx.remaining() < ctx.settings.connect_timeout:
            break
    if not attempts:
        return error("no address to connect to")
    last = attempts[-1]
    return fail(
        f"{last['address']}:{port} is {last['state']}: {last['detail']}",
        remediation=_TCP_FIX.get(str(last["state"])),
        attempts=attempts,
        state=last["state"],
    )


@check(
    id="broker.nats",
    title="What answers on the Broker port is NATS",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("broker.tcp",),
    remediation="The published endpoint leads to something that is not the Broker: check which Service or "
    "load balancer listener owns that address and port, and that it targets the meshery-nats / meshery-broker pods.",
)
def broker_nats(ctx: ClusterContext) -> Finding:
    """A port can be open and still not be the Broker (another service, a proxy that never answers)."""
    address, port = ctx.facts["broker.address"]
    try:
        info = nats.read_info(address, port, ctx.settings.connect_timeout)
    except nats.NotNats as exc:
        return fail(f"{address}:{port} {exc}", kind=exc.kind)
    except OSError as exc:
        return error(f"could not read from {address}:{port}: {exc}")
    ctx.facts["broker.info"] = info
    evidence = {
        "version": info.version,
        "auth_required": info.auth_required,
        "tls_required": info.tls_required,
        "server_id": info.server_id,
    }
    return passed(f"NATS {info.version} (auth {'required' if info.auth_required else 'not required'})", **evidence)


def _token(ctx: ClusterContext) -> tuple[str | None, Finding | None]:
    resp = ctx.api().get(f"/api/v1/namespaces/{ms.ns(ctx)}/secrets/{ms.TOKEN_SECRET}")
    if resp.status in (401, 403):
        return None, skip(
            f"cannot read Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} to test the token: needs get on secrets "
            f"(resourceNames: [{ms.TOKEN_SECRET}]) in namespace {ms.ns(ctx)}",
            permission=f"get secrets/{ms.TOKEN_SECRET} in {ms.ns(ctx)}",
        )
    if resp.status == 404:
        return None, fail(
            f"the Broker requires auth but Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} does not exist",
            remediation="The Operator creates the token Secret with the Broker: check the Operator's logs.",
        )
    data = ((resp.body or {}).get("data") or {}) if isinstance(resp.body, dict) else {}
    raw = data.get("token")
    if not raw:
        return None, fail(f"Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} has no 'token' key")
    try:
        token = base64.b64decode(raw).decode()
    except ValueError:
        return None, fail(f"Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} key 'token' is not base64")
    ctx.add_secret(token)
    ctx.add_secret(str(raw))
    return token, None


@check(
    id="broker.auth",
    title="Broker accepts Meshery's credentials",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("broker.nats",),
    remediation="The token in Secret meshery-nats-auth and the Broker disagree: restart the meshery-nats pods so "
    "they load the current Secret, or let the Operator regenerate both.",
)
def broker_auth(ctx: ClusterContext) -> Finding:
    """Connect with the token Meshery would use and expect PONG; the token itself never leaves this probe."""
    info: nats.NatsInfo = ctx.facts["broker.info"]
    address, port = ctx.facts["broker.address"]
    if not info.auth_required:
        return warn(
            "the Broker accepts clients without authentication: anyone who reaches 4222 can read cluster events",
            remediation="Upgrade to a current Operator (token auth via meshery-nats-auth) and restrict 4222 to the "
            "Server's origin.",
            auth_required=False,
        )
    token, problem = _token(ctx)
    if problem:
        return problem
    answer = nats.authenticate(address, port, token, ctx.settings.connect_timeout)
    if answer.startswith("PONG"):
        return passed("CONNECT with the meshery-nats-auth token answered PONG", auth_required=True)
    return fail(f"the Broker rejected the token from {ms.TOKEN_SECRET}: {answer}", auth_required=True)


def _covers(ranges: list[str], origin: list[str]) -> tuple[bool, list[str]]:
    nets = []
    for r in ranges:
        try:
            nets.append(ipaddress.ip_network(r, strict=False))
        except ValueError:
            continue
    uncovered = []
    for o in origin:
        on = ipaddress.ip_network(o, strict=False)
        if not any(on.version == n.version and on.subnet_of(n) for n in nets):  # type: ignore[arg-type]
            uncovered.append(o)
    return not uncovered, uncovered


@check(
    id="broker.exposure",
    title="Broker exposure is limited to the Server's origin",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("broker.service",),
    remediation="Set the Broker's spec.service.loadBalancerSourceRanges (or the Service's "
    "loadBalancerSourceRanges) to the Server's origin CIDRs, or use an internal load balancer over private "
    "connectivity.",
)
def exposure(ctx: ClusterContext) -> Finding:
    """4222 open to the world exposes cluster events; ranges that miss the Server's origin block Meshery."""
    st = ms.broker(ctx)
    spec = _svc_spec(st)
    kind = str(spec.get("type") or "ClusterIP")
    annotations = dict((((st.service or {}).get("metadata") or {}).get("annotations")) or {})
    annotations.update(st.spec_service.get("annotations") or {})
    internal = sorted(
        f"{cloud}: {k}={annotations[k]}"
        for k, (cloud, values) in INTERNAL_LB_ANNOTATIONS.items()
        if str(annotations.get(k, "")).lower() in values
    )
    ranges = list(spec.get("loadBalancerSourceRanges") or [])
    ranges += [r for r in st.spec_service.get("loadBalancerSourceRanges") or [] if r not in ranges]
    ann_ranges = annotations.get("service.beta.kubernetes.io/load-balancer-source-ranges")
    if ann_ranges:
        ranges += [r.strip() for r in str(ann_ranges).split(",") if r.strip() and r.strip() not in ranges]
    origin = ctx.settings.origin_cidrs
    evidence: dict[str, Any] = {"type": kind, "source_ranges": ranges, "internal_lb": internal, "origin": origin}
    if kind == "ClusterIP":
        return skip("ClusterIP Service: not exposed outside the cluster", **evidence)
    if kind == "NodePort":
        return warn(
            "NodePort Service: source ranges do not apply; the nodes' firewall decides who reaches the port",
            remediation="Restrict the node port to the Server's origin in the nodes' security group / firewall "
            "rules (the cloud checks name the rule).",
            **evidence,
        )
    world = [r for r in ranges if r in ("0.0.0.0/0", "::/0")]
    if world:
        return fail(f"the Broker's load balancer is open to the world ({', '.join(world)})", **evidence)
    if not ranges:
        if internal:
            return warn(
                f"internal load balancer ({'; '.join(internal)}) with no source ranges: every network peered "
                "with the VPC reaches 4222",
                **evidence,
            )
        return fail("no source ranges on an internet-facing load balancer: 4222 is open to the world", **evidence)
    if not origin:
        return warn(
            f"source ranges {', '.join(ranges)}; pass --origin (or origin.cidrs) to check they cover the Server",
            remediation="Give the Server's egress CIDRs with --origin so the ranges can be checked.",
            **evidence,
        )
    ok, uncovered = _covers(ranges, origin)
    if not ok:
        return fail(
            f"source ranges {', '.join(ranges)} do not cover the Server's origin {', '.join(uncovered)}: "
            "the Server will be blocked",
            remediation=f"Add {', '.join(uncovered)} to the Broker's spec.service.loadBalancerSourceRanges.",
            **evidence,
        )
    return passed(f"limited to {', '.join(ranges)}, which admit{'s' * (len(ranges) == 1)} the origin", **evidence)
