"""Broker checks: can Meshery Server, from where it runs, reach and use each cluster's Broker on 4222.

The commonest fleet failure: a published endpoint the Server cannot reach. The checks walk the path
in order (Service, endpoint, DNS, TCP, NATS, auth) and say which hop breaks, and exposure says
whether the way in is wider (or narrower) than the Server's origin.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from preflight.checks import broker_path as bp
from preflight.checks import meshery_state as ms
from preflight.checks import reach, vantage
from preflight.checks.broker_path import endpoint_path
from preflight.checks.broker_secret import secret_token as _secret_token
from preflight.cloud.rules import inside
from preflight.engine import reasons
from preflight.engine.context import ClusterContext
from preflight.engine.facts import Fact
from preflight.engine.model import (
    Finding,
    Severity,
    Status,
    error,
    fail,
    in_meshery_terms,
    not_applicable,
    passed,
    stop,
    warn,
)
from preflight.engine.permissions import operator_only, reads
from preflight.engine.probes import addresses, dns, nats, tcp
from preflight.engine.registry import check

_TCP_FIX = reach.fixes(
    filtered="Something drops the SYN to 4222: allow the Server's origin in the load balancer's or nodes' "
    "security group / firewall rule, the Service's loadBalancerSourceRanges (Broker "
    "spec.service.loadBalancerSourceRanges) and the subnet's network ACL.",
    refused="The address answers but nothing listens on the port: check the Broker pods "
    "(kubectl -n meshery get pods meshery-nats-0 meshery-broker-0: the current and the classic Operator's), the "
    "Service's port and the load balancer listener.",
    unreachable="No route from here: a private load balancer or node needs VPC/VNet peering, a transit "
    "gateway or a VPN from the Server's network; or expose the Broker on a reachable load balancer.",
)
PUBLISHED: Fact[str] = Fact("broker.published", producer="broker.endpoint", fleet=True)
# The published endpoint as broker.dns resolved it: the hops after it (tcp, nats, auth) dial this one.
DIALED: Fact[str] = Fact("broker.dialed", producer="broker.dns")
ADDRESSES: Fact[list[str]] = Fact("broker.addresses", producer="broker.dns")
ADDRESS: Fact[tuple[str, int]] = Fact("broker.address", producer="broker.tcp")
INFO: Fact[nats.NatsInfo] = Fact("broker.info", producer="broker.nats")

_DNS_FIX = (
    "The published name does not resolve from here: check the load balancer behind it (deleted, not yet "
    "provisioned) and the resolver the Server uses (--dns-server)."
)

INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("aws", ("true", "0.0.0.0/0")),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("aws", ("internal",)),
    "networking.gke.io/load-balancer-type": ("gcp", ("internal",)),
    "cloud.google.com/load-balancer-type": ("gcp", ("internal",)),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("azure", ("true",)),
}


def _operator_only(ctx: ClusterContext) -> None:
    if ms.effective_mode(ctx) != "operator":
        not_applicable("embedded mode: Meshery Server does not use a Broker for this cluster")


def _broker_state(ctx: ClusterContext) -> ms.BrokerState:
    """The Broker and its Service, read once per cluster; a refused read ends the probe as an error naming it."""
    try:
        return ms.broker(ctx)
    except ms.ReadError as exc:
        stop(error(str(exc), remediation=f"Grant get on services and brokers.meshery.io in {ms.ns(ctx)}."))


def _svc_spec(st: ms.BrokerState) -> dict[str, Any]:
    return (st.service or {}).get("spec") or {}


def _ingress(st: ms.BrokerState) -> list[dict[str, Any]]:
    return list((((st.service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


@check(
    id="broker.service",
    meshery_code="broker_unreachable",
    permissions=operator_only(ms.READ_BROKER),
    title="Broker Service can serve an out-of-cluster Server",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.auth",),
    remediation="Set the Broker's spec.service.type to LoadBalancer (or NodePort), or set "
    "spec.service.externalEndpointOverride to an address the Server reaches (a private LB, an ingress).",
)
@endpoint_path
def service(ctx: ClusterContext) -> Finding:
    """A ClusterIP-only Broker is invisible to a Server outside the cluster (and current Operators default to it)."""
    _operator_only(ctx)
    st = _broker_state(ctx)
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
            endpoint = addresses.hostport(host, p)
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


def _probe_candidate(ctx: ClusterContext, cand: dict[str, Any]) -> dict[str, Any]:
    host, port = ms.split_endpoint(cand["endpoint"])
    if cand["kind"] == "cluster-ip" and ms.remote_server(ctx):
        return {**cand, "answers": "not probed (cluster-internal address)"}
    if ms.is_loopback(host) and not ms.local_cluster(ctx):
        return {**cand, "answers": f"not probed (loopback: {vantage.loopback_means(ctx)})"}
    try:
        res = dns.resolve(host, ctx.settings.connect_timeout, ctx.settings.dns_server)
    except dns.DnsFailure as exc:
        return {**cand, "answers": f"dns {exc.kind}"}
    out = reach.connect(ctx, res.addresses[0], port or ms.NATS_PORT)
    return {**cand, "answers": out.state}


def _published_problem(ctx: ClusterContext, st: ms.BrokerState, published: str) -> str | None:
    host, port = ms.split_endpoint(published)
    if not published:
        return "no external endpoint is published (pending)"
    if port is None:
        return f"the published endpoint {published!r} has no port"
    if ms.is_loopback(host) and not ms.local_cluster(ctx):
        return f"the published endpoint {published} is loopback: it means {vantage.loopback_means(ctx)}"
    cluster_ip = _svc_spec(st).get("clusterIP")
    if ms.remote_server(ctx) and host == cluster_ip:
        return f"the published endpoint {published} is the Service's ClusterIP, unreachable from outside the cluster"
    return None


@check(
    id="broker.endpoint",
    meshery_code="broker_unreachable",
    permissions=operator_only((*ms.READ_BROKER, *ms.READ_NODES)),
    title="Published Broker endpoint is the right one",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.auth",),
    after=("broker.service",),
    remediation="Publish an endpoint the Server reaches: set the Broker's spec.service.externalEndpointOverride, "
    "or change spec.service.type so the Operator publishes a load balancer address.",
    timeout_factor=4.0,
)
@endpoint_path
def endpoint(ctx: ClusterContext) -> Finding:
    """Compares what the Operator published with every candidate, and tests which candidates answer from here."""
    _operator_only(ctx)
    st = _broker_state(ctx)
    published = st.published_external
    ctx.set_fact(PUBLISHED, published)
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
        stale = warn(
            f"the published endpoint {published} matches none of the Service's current addresses (stale?)" + better,
            remediation=fix or "Restart the Operator so it re-publishes the Broker's endpoint.",
            **evidence,
        )
        return in_meshery_terms("broker_unreachable", stale)
    kind, answers = next((c["kind"], c["answers"]) for c in probed if c["endpoint"] == published)
    if kind == "classic-localhost-nodeport":
        fallback = warn(
            f"publishes {published}, the classic Operator's fallback: reachable only where the Server runs on a "
            "node, or the node port is mapped to this machine" + better,
            remediation=fix
            or "Give the Broker a LoadBalancer, or map the node port to the Server's host (kind: extraPortMappings).",
            **evidence,
        )
        return in_meshery_terms("broker_unreachable", fallback)
    tally = f"{len(working)} of {len(probed)} candidates answer"
    if answers in _TCP_FIX or str(answers).startswith("dns "):
        # The Operator published the right endpoint by its rules, and the Server still cannot use it from here:
        # the same verdict broker.dns/broker.tcp reach for this address, not an all-clear.
        return fail(
            f"publishes {published} ({kind}), the right endpoint by the Operator's rules, but it does not answer "
            f"from here ({answers}): Meshery Server will fail to connect to it; {tally}" + better,
            remediation=fix or _TCP_FIX.get(str(answers)) or _DNS_FIX,
            **evidence,
        )
    return passed(f"publishes {published} ({kind}); {tally}", **evidence)


def _origin_is_private(ctx: ClusterContext) -> bool | None:
    cidrs = ctx.settings.origin_cidrs
    if not cidrs:
        return None
    return all(addresses.classify(str(ipaddress.ip_network(c).network_address)) == "private" for c in cidrs)


@check(
    id="broker.dns",
    meshery_code="broker_unreachable",
    permissions=operator_only(ms.READ_BROKER),
    title="Broker endpoint resolves to addresses the Server can reach",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation="Make the Broker's load balancer resolvable and reachable from the Server: a deleted or "
    "unprovisioned load balancer leaves NXDOMAIN; an internal one answers private addresses that need peering.",
)
@endpoint_path
def broker_dns(ctx: ClusterContext) -> Finding:
    """AWS publishes a hostname (follow its CNAMEs); GCP and Azure an IP. Private answers need a private path.

    Runs whenever the published endpoint was read and is one the Server would dial, whatever broker.endpoint
    concluded: when the published endpoint answers nothing from here, this check (then broker.tcp) says at
    which hop and why.
    """
    _operator_only(ctx)
    st = _broker_state(ctx)
    published = st.published_external
    problem = _published_problem(ctx, st, published)
    if problem:
        stop(
            Finding(
                Status.SKIP,
                f"skipped: nothing to resolve: {problem}",
                {"blocked_by": "broker.endpoint"},
                remediation="Fix broker.endpoint first; this check runs once the published endpoint is usable.",
            )
        )
    ctx.set_fact(DIALED, published)
    host, _port = ms.split_endpoint(published)
    try:
        res = dns.resolve(host, ctx.settings.connect_timeout, ctx.settings.dns_server)
    except dns.DnsFailure as exc:
        fix = None
        if exc.kind == "nxdomain":
            fix = (
                "The load balancer behind this name was deleted or never provisioned: check the Broker "
                "Service's events, then let the Operator re-publish the endpoint."
            )
        return fail(str(exc), remediation=fix, reason=reasons.of(reasons.DNS, exc.kind), host=host, failure=exc.kind)
    classes = {a: addresses.classify(a) for a in res.addresses}
    ctx.set_fact(ADDRESSES, res.addresses)
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
            reason="private_address_unreachable",
            **evidence,
        )
    return passed(f"{shown} {listed}", **evidence)


@check(
    id="broker.tcp",
    meshery_code="broker_unreachable",
    title="Broker port is reachable over TCP",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("broker.dns",),
    reads=(DIALED, ADDRESSES),
    remediation=_TCP_FIX[tcp.FILTERED],
)
@endpoint_path
def broker_tcp(ctx: ClusterContext) -> Finding:
    """Open, refused, filtered or unreachable: each names a different fix."""
    _host, port = ms.split_endpoint(ctx.fact(DIALED))
    port = port or ms.NATS_PORT
    addresses = ctx.fact(ADDRESSES)
    finding, address = reach.first_open(ctx, addresses, port, _TCP_FIX)
    if address is not None:
        ctx.set_fact(ADDRESS, (address, port))
    return finding


@check(
    id="broker.nats",
    meshery_code="broker_unreachable",
    title="What answers on the Broker port is NATS",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("broker.tcp",),
    reads=(ADDRESS,),
    remediation="The published endpoint leads to something that is not the Broker: check which Service or "
    "load balancer listener owns that address and port, and that it targets the meshery-nats / meshery-broker pods.",
)
@endpoint_path
def broker_nats(ctx: ClusterContext) -> Finding:
    """A port can be open and still not be the Broker (another service, a proxy that never answers)."""
    address, port = ctx.fact(ADDRESS)
    try:
        info = nats.read_info(address, port, ctx.settings.connect_timeout)
    except nats.NotNats as exc:
        return fail(f"{addresses.hostport(address, port)} {exc}", kind=exc.kind)
    except OSError as exc:
        return error(f"could not read from {addresses.hostport(address, port)}: {exc}")
    ctx.set_fact(INFO, info)
    evidence = {
        "version": info.version,
        "auth_required": info.auth_required,
        "tls_required": info.tls_required,
        "server_id": info.server_id,
    }
    return passed(f"NATS {info.version} (auth {'required' if info.auth_required else 'not required'})", **evidence)


def _token(ctx: ClusterContext) -> str:
    """The token a Broker that requires auth gets from Meshery; the probe stops when there is none."""
    token = _secret_token(ctx)
    if token is None:
        stop(
            fail(
                f"the Broker requires auth but Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET} does not exist",
                remediation="The Operator creates the token Secret with the Broker: check the Operator's logs.",
            )
        )
    return token


_NUMERIC_FIX = (
    "Use a non-numeric token: put one with letters in Secret meshery-nats-auth (key token) and restart the "
    'meshery-nats pods. Quoting the variable in the NATS config (token: "$TOKEN") does not help: a quoted '
    "variable is not interpolated."
)

_TLS_FIX = {
    "unknown-ca": "Issue the Broker's certificate (its nats tls block) from a CA the Server trusts: the cluster's "
    "CA, or a CA in the trust store of the machine where Meshery Server runs (or add its issuer there). "
    "Never turn verification off.",
    "name-mismatch": "Reissue the Broker's certificate with {name} in its subjectAltName (a DNS name, or an IP "
    "address for an address), or publish an endpoint the certificate covers (the Broker's "
    "spec.service.externalEndpointOverride).",
    "expired": "Renew the Broker's certificate (cert-manager: check the Certificate and its issuer) and restart the "
    "meshery-nats pods so they load it.",
    "not-yet-valid": "Check the clocks of this machine and of the CA that issued the Broker's certificate, or "
    "wait until it is valid.",
    "untrusted": "Reissue the Broker's certificate as a TLS server certificate (key usage digitalSignature, "
    "extended key usage serverAuth) from a CA the Server trusts.",
    "client-cert-required": "The Broker verifies client certificates (tls verify): give Meshery Server a client "
    "certificate its CA trusts, or drop verify from the Broker's tls block.",
    "handshake": "The Broker does not complete a TLS handshake: check its tls block (cert_file, key_file) and "
    "the meshery-nats pods' logs.",
}


def _tls_plan(ctx: ClusterContext, address: str) -> nats.TlsPlan:
    """Verify the published endpoint's host name (or the address when it is one) against the cluster's CA from
    the kubeconfig, then this machine's store: Meshery Server dials that name, and may trust either."""
    host, _port = ms.split_endpoint(ctx.fact(DIALED))
    sources: list[nats.TrustSource] = []
    if ctx.target.ca_pem:
        where = (
            "the ServiceAccount's ca.crt"
            if ctx.target.in_cluster
            else f"certificate-authority of {ctx.target.cluster_name or ctx.name} in the kubeconfig"
        )
        sources.append(nats.TrustSource(f"the cluster's CA ({where})", ctx.target.ca_pem))
    return nats.TlsPlan(host or address, (*sources, nats.SYSTEM_STORE))


def _tls_evidence(session: nats.TlsSession | None) -> dict[str, Any]:
    if session is None:
        return {"tls": False}
    cert = session.cert
    return {
        "tls": True,
        "tls_version": session.version,
        "tls_server_name": session.server_name,
        "tls_trusted_by": session.trusted_by,
        "certificate": _cert_evidence(cert) if cert else None,
    }


def _cert_evidence(cert: nats.PeerCert) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "names": list(cert.names),
        "not_after": cert.not_after.isoformat(),
    }


def _tls_failed(exc: nats.TlsFailure) -> Finding:
    """One message per cause, naming what the certificate says and the fix for that cause."""
    cert, name = exc.cert, exc.server_name
    head = "the Broker's TLS certificate does not verify"
    if exc.cause == "unknown-ca":
        issuer = f"issued by {cert.issuer}, " if cert else ""
        trusts = f"neither {' nor '.join(exc.tried)} trusts" if len(exc.tried) > 1 else f"{exc.tried[0]} does not trust"
        message = f"{head}: unknown CA: {issuer}which {trusts} ({exc.detail})"
    elif exc.cause == "name-mismatch":
        covers = ", ".join(cert.names) if cert and cert.names else "no subjectAltName"
        message = f"{head}: name mismatch: it covers {covers}, not {name} (the published endpoint's host)"
    elif exc.cause == "expired":
        until = f" on {cert.not_after:%Y-%m-%d %H:%M} UTC" if cert else ""
        message = f"{head}: it expired{until}"
    elif exc.cause == "not-yet-valid":
        start = f" before {cert.not_before:%Y-%m-%d %H:%M} UTC" if cert else ""
        message = f"{head}: it is not yet valid{start}"
    elif exc.cause == "client-cert-required":
        message = f"the Broker requires a client certificate for TLS ({exc.detail})"
    elif exc.cause == "handshake":
        message = f"the TLS handshake with the Broker failed: {exc.detail}"
    else:
        message = f"{head}: {exc.detail}"
    return fail(
        message,
        remediation=_TLS_FIX[exc.cause].format(name=name),
        reason=reasons.of(reasons.TLS, exc.cause),
        auth_required=True,
        tls=True,
        tls_failure=exc.cause,
        tls_server_name=name,
        tls_tried=list(exc.tried),
        certificate=_cert_evidence(cert) if cert else None,
    )


def _numeric(token: str | None) -> bool:
    return token is not None and token.isascii() and token.isdigit()


_NUMERIC = (
    f"the token in Secret {ms.TOKEN_SECRET} is all digits: a NATS config that interpolates it unquoted reads a "
    "number, and the Broker then refuses its config and crash-loops"
)


def _over(session: nats.TlsSession | None) -> str:
    if session is None:
        return ""
    return f" over {session.version} (certificate for {session.server_name} verified against {session.trusted_by})"


def _judge(outcome: nats.AuthOutcome, token: str | None) -> Finding:
    """PONG passes, a rejection fails; whether the token is one NATS can load at all is broker.token's verdict."""
    evidence = {"auth_required": True, **_tls_evidence(outcome.tls)}
    over = _over(outcome.tls)
    if outcome.answer.startswith("PONG"):
        return passed(f"CONNECT with the meshery-nats-auth token{over} answered PONG", **evidence)
    message = f"the Broker rejected the token from {ms.TOKEN_SECRET}{over}: {outcome.answer}"
    if _numeric(token):
        message += " (the token is all digits too: see broker.token)"
    return fail(message, **evidence)


def _unauthenticated(ctx: ClusterContext, address: str, port: int, info: nats.NatsInfo, plan: nats.TlsPlan) -> Finding:
    """No auth is a warning; a Broker that still requires TLS has its certificate verified all the same."""
    session = None
    if info.tls_required:
        try:
            session = nats.exchange(address, port, None, ctx.settings.connect_timeout, plan).tls
        except nats.TlsFailure as exc:
            return _tls_failed(exc)
    return warn(
        "the Broker accepts clients without authentication: anyone who reaches 4222 can read cluster events",
        remediation="Upgrade to a current Operator (token auth via meshery-nats-auth) and restrict 4222 to the "
        "Server's origin.",
        auth_required=False,
        **_tls_evidence(session),
    )


@check(
    id="broker.auth",
    meshery_code="broker_unreachable",
    permissions=operator_only((reads("secrets", meshery_namespace=True, names=(ms.TOKEN_SECRET,)),)),
    title="Broker accepts Meshery's credentials",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("broker.nats",),
    reads=(INFO, ADDRESS, DIALED),
    remediation="The token in Secret meshery-nats-auth and the Broker disagree: restart the meshery-nats pods so "
    "they load the current Secret, or let the Operator regenerate both.",
    timeout_factor=4.0,
)
def broker_auth(ctx: ClusterContext) -> Finding:
    """Connect with the token Meshery would use and expect PONG; a Broker that requires TLS gets a verified
    upgrade first (the cluster's CA from the kubeconfig, then the system store). The token never leaves this probe."""
    info = ctx.fact(INFO)
    address, port = ctx.fact(ADDRESS)
    plan = _tls_plan(ctx, address)
    if not info.auth_required:
        return _unauthenticated(ctx, address, port, info, plan)
    token = _token(ctx)
    try:
        outcome = nats.exchange(address, port, token, ctx.settings.connect_timeout, plan)
    except nats.TlsFailure as exc:
        return _tls_failed(exc)
    return _judge(outcome, token)


@check(
    id="broker.token",
    permissions=operator_only((reads("secrets", meshery_namespace=True, names=(ms.TOKEN_SECRET,)),)),
    title="Broker token is one NATS can load",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation=_NUMERIC_FIX,
)
def broker_token(ctx: ClusterContext) -> Finding:
    """Reads only the Secret, so it judges the token also while the Broker is down: an all-digit token is why a
    Broker whose config interpolates it unquoted crash-loops, and then nothing on the network path can say so."""
    _operator_only(ctx)
    token = _secret_token(ctx)
    if token is None:
        not_applicable(f"no Secret {ms.ns(ctx)}/{ms.TOKEN_SECRET}: a Broker without token auth (broker.auth says more)")
    if _numeric(token):
        return warn(_NUMERIC[0].upper() + _NUMERIC[1:], token_numeric=True)
    return passed(f"the token in Secret {ms.TOKEN_SECRET} is a string NATS loads as given", token_numeric=False)


@check(
    id="broker.exposure",
    meshery_codes=("broker_unreachable",),
    permissions=operator_only(ms.READ_BROKER),
    title="Broker exposure is limited to the Server's origin",
    category="broker",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    after=("broker.service",),
    remediation="Set the Broker's spec.service.loadBalancerSourceRanges (or the Service's "
    "loadBalancerSourceRanges) to the Server's origin CIDRs, or use an internal load balancer over private "
    "connectivity.",
)
def exposure(ctx: ClusterContext) -> Finding:
    """4222 open to the world exposes cluster events; ranges that miss the Server's origin block Meshery. With
    Meshery's port-forward working, any exposure outside the cluster is exposure nobody needs."""
    return _unneeded(ctx, _exposure(ctx))


_CLUSTER_IP_FIX = (
    "Make the Broker ClusterIP-only: set the Broker resource's spec.service.type to ClusterIP (kubectl -n meshery "
    'patch brokers.meshery.io meshery-broker --type merge -p \'{"spec":{"service":{"type":"ClusterIP"}}}\'), '
    f"unless some Server runs with {bp.PORT_FORWARD_ENV}=false or predates the managed port-forward."
)


def _unneeded(ctx: ClusterContext, finding: Finding) -> Finding:
    forward = ctx.get_fact(bp.FORWARD)
    kind = finding.evidence.get("type")
    if forward is None or not forward.works or not bp.forward_on(ctx) or kind not in ("LoadBalancer", "NodePort"):
        return finding
    note = (
        f"the Broker is exposed through a {kind} Service although Meshery reaches it through its port-forward "
        "(broker.port-forward passed): exposure nobody needs"
    )
    if finding.status in (Status.FAIL, Status.ERROR):
        return dataclasses.replace(finding, message=f"{finding.message}; and {note}")
    return warn(f"{note} ({finding.message})", remediation=_CLUSTER_IP_FIX, **finding.evidence)


def _exposure(ctx: ClusterContext) -> Finding:
    _operator_only(ctx)
    st = _broker_state(ctx)
    if st.service is None:
        not_applicable("no Broker Service to expose (broker.service says why)")
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
        not_applicable("ClusterIP Service: not exposed outside the cluster", **evidence)
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
    _covered, uncovered = inside(origin, ranges)
    if uncovered:
        blocked = fail(
            f"source ranges {', '.join(ranges)} do not cover the Server's origin {', '.join(uncovered)}: "
            "the Server will be blocked",
            remediation=f"Add {', '.join(uncovered)} to the Broker's spec.service.loadBalancerSourceRanges.",
            **evidence,
        )
        return in_meshery_terms("broker_unreachable", blocked)
    return passed(f"limited to {', '.join(ranges)}, which admit{'s' * (len(ranges) == 1)} the origin", **evidence)


_ENDPOINT_CHECKS = ("broker.service", "broker.endpoint", "broker.dns", "broker.tcp", "broker.nats", "broker.auth")
_PROBLEM = (Status.WARN, Status.FAIL, Status.ERROR)


def _endpoint_outcome(ctx: ClusterContext) -> tuple[bool | None, str]:
    """Whether the published endpoint gets the Server to a Broker that accepts it (None: the checks did not
    decide), and the first endpoint check's problem."""
    results = ctx.results

    def problem_in(cid: str) -> bool:
        # A Broker that takes clients without auth (broker.auth warns) still takes the Server.
        return cid in results and results[cid].status in (_PROBLEM[1:] if cid == "broker.auth" else _PROBLEM)

    problem = next((f"{cid}: {results[cid].message}" for cid in _ENDPOINT_CHECKS if problem_in(cid)), "")
    nats_result = results.get("broker.nats")
    if nats_result is None:
        return None, problem
    if nats_result.status is Status.PASS:
        auth = results.get("broker.auth")
        return not (auth is not None and auth.status in (Status.FAIL, Status.ERROR)), problem
    return (False if problem else None), problem


@check(
    id="broker.transport",
    permissions=operator_only(ms.READ_BROKER),
    title="Meshery Server has a working path to the Broker",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.auth",),
    remediation="Fix the path the Server uses: broker.port-forward (the managed port-forward) or the endpoint "
    "checks (broker.endpoint, broker.dns, broker.tcp, broker.nats, broker.auth) name the cause and the fix.",
    meshery_code="broker_unreachable",
)
def transport(ctx: ClusterContext) -> Finding:
    """Which paths Meshery Server tries for this cluster (its broker_networking): in the cluster, the Broker
    Service's ClusterIP; outside with the managed port-forward on, the forward, then the published endpoint,
    then 127.0.0.1:<port> and host.docker.internal:<port>; with MESHERY_MANAGED_BROKER_PORTFORWARD=false, the
    published endpoint only. Passes when one of them reaches the Broker; both causes, root cause first, when
    none does."""
    return _paths(ctx)


def _paths(ctx: ClusterContext) -> Finding:
    """The paths, which one works, and the verdict (broker.transport's probe without its Meshery code)."""
    _operator_only(ctx)
    st = _broker_state(ctx)
    published = st.published_external or "(none published)"
    endpoint_ok, endpoint_problem = _endpoint_outcome(ctx)
    forward = ctx.get_fact(bp.FORWARD)
    evidence: dict[str, Any] = {"policy": bp.policy(ctx), "published": st.published_external}
    if ctx.target.in_cluster or not bp.forward_on(ctx):
        # One path: the endpoint checks' verdicts are this Server's; this result only names the path.
        if ctx.target.in_cluster:
            svc = f"{st.service_name or 'meshery-nats'}.{ms.ns(ctx)}:{st.port.get('port') or ms.NATS_PORT}"
            head = f"in cluster: Meshery Server connects to the Broker Service's ClusterIP ({svc}) directly"
            evidence["broker_networking"] = {"paths": [f"clusterip {svc}"]}
        else:
            head = f"the managed port-forward is off ({bp.policy(ctx)}): Meshery Server connects to {published} only"
            evidence["broker_networking"] = {"paths": [f"endpoint {published}"]}
        if endpoint_ok:
            return passed(f"{head}, which reaches the Broker", **evidence)
        not_applicable(f"{head}; the endpoint checks judge that path ({endpoint_problem or 'undecided'})", **evidence)
    port = st.port.get("port") or ms.NATS_PORT
    paths = ["port-forward", f"endpoint {published}", f"127.0.0.1:{port}", f"host.docker.internal:{port}"]
    works = [p for p, ok in (("port-forward", forward.works if forward else None), ("endpoint", endpoint_ok)) if ok]
    evidence["broker_networking"] = {"paths": paths, "works": works}
    tries = (
        f"Meshery Server tries the port-forward through the API server, then the published endpoint {published}, "
        f"then 127.0.0.1:{port} and host.docker.internal:{port}"
    )
    if works:
        which = " and ".join("the port-forward" if w == "port-forward" else f"the endpoint {published}" for w in works)
        return passed(f"{tries}; {which} reach{'es' * (len(works) == 1)} the Broker", **evidence)
    if forward is None or endpoint_ok is None:
        not_applicable(f"{tries}; broker.port-forward or the endpoint checks did not decide", **evidence)
    causes = [f"port-forward: {forward.message}", f"endpoint {endpoint_problem or 'does not answer'}"]
    if forward.step == "pod":
        causes[0] = f"root cause: {forward.message} (neither path has a Broker to reach)"
    # Each cause carries its own fix (broker.port-forward, the endpoint checks): none repeated here.
    return fail(f"{tries}; none reaches the Broker: " + "; ".join(causes), remediation="", **evidence)
