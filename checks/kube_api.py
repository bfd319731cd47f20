"""Kubernetes API checks: can Meshery Server resolve, reach, trust and authenticate to each API server."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import statistics
import time
from typing import Any

from preflight.checks import reach, vantage
from preflight.engine import reasons
from preflight.engine.context import ClusterContext
from preflight.engine.execcred import ExecError, ExecTimeout
from preflight.engine.facts import Fact
from preflight.engine.kube import KubeSetupError, PluginTimeout, Response, TransportError
from preflight.engine.model import Finding, Severity, error, fail, passed, stop, warn
from preflight.engine.probes import addresses, dns, tcp, tls
from preflight.engine.probes import proxy as proxy_probe
from preflight.engine.probes.proxy import Proxy
from preflight.engine.registry import check
from preflight.engine.targets import ClusterTarget

CERT_WARN_DAYS = 14
# Kubernetes minors Meshery's client libraries are built and tested against.
SUPPORTED_MINORS = (24, 34)

API_ADDRESSES: Fact[list[str]] = Fact("kube-api.addresses", producer="kube-api.dns")
API_ADDRESS: Fact[str] = Fact("kube-api.address", producer="kube-api.tcp")
IDENTITY: Fact[str | None] = Fact("kube-api.identity", producer="kube-api.auth")

_TCP_REMEDIATION = reach.fixes(
    filtered="Something drops the SYN between this machine and the API: check the security group / "
    "firewall rules, the control plane's authorized networks (EKS publicAccessCidrs, GKE master authorized "
    "networks, AKS authorized IP ranges) and NACLs for the Server's origin.",
    refused="The address answers but nothing listens on that port: check the port in the server URL "
    "and that the API server (or its load balancer listener) is up.",
    unreachable="There is no route from here to that address: for a private API endpoint connect the "
    "Server's network by VPC/VNet peering, a transit gateway or a VPN, or use the public endpoint.",
)


def _proxy_of(t: ClusterTarget) -> Proxy | None:
    return Proxy.from_url(t.proxy_url) if t.proxy_url else None


def _proxy_evidence(t: ClusterTarget, proxy: Proxy) -> dict[str, Any]:
    return {"proxy": proxy.label, "proxy_source": t.proxy_source}


def _proxy_where(t: ClusterTarget) -> str:
    if t.proxy_source == "proxy-url":
        return f"proxy-url of cluster {t.cluster_name!r} in the kubeconfig"
    return f"{t.proxy_source} in the Server's environment"


def _bypass(t: ClusterTarget) -> str:
    """How to reach this API without the proxy, for when the Server can reach it directly."""
    if t.proxy_source == "proxy-url":
        return f"remove proxy-url from cluster {t.cluster_name!r}"
    host = (t.host or "").strip("[]")
    return f'add its host to NO_PROXY (export NO_PROXY="$NO_PROXY,{host}")'


def proxy_remediation(t: ClusterTarget, proxy: Proxy, kind: str, status: int | None = None) -> str:
    """A fix for a tunnel the proxy would not open, naming the proxy, where it is set and the API address."""
    api = addresses.hostport(t.host or "", t.port or 443)
    where, bypass = _proxy_where(t), _bypass(t)
    test = f"curl -sv -o /dev/null --proxy {shlex.quote(proxy.label)} {shlex.quote(f'https://{api}/version')}"
    if kind == proxy_probe.UNREACHABLE:
        return (
            f"Nothing accepts connections at the proxy {proxy.endpoint} ({where}): start the proxy or correct its "
            f"address there; if the Server reaches the API {api} without a proxy, {bypass}."
        )
    if kind == proxy_probe.ACL:
        return (
            f"The proxy {proxy.endpoint} forbids CONNECT to {api} (403, its access rules): allow that destination "
            f"and port {t.port or 443} in the proxy's ACL (Squid tunnels only to SSL_ports, 443 by default: add "
            f"acl SSL_ports port {t.port or 443}), or {bypass}. Test with: {test}"
        )
    if kind == proxy_probe.AUTH:
        if proxy.username is not None:
            return (
                f"The proxy {proxy.endpoint} rejected the credentials in the proxy URL (407) for the tunnel to "
                f"{api}: correct the user and password in the {where}, or {bypass}."
            )
        return (
            f"The proxy {proxy.endpoint} requires authentication (407) before it tunnels to {api}: put its "
            f"credentials in the proxy URL (user and password, then @, in front of {proxy.endpoint} in the {where}), "
            "which kubectl "
            f"and Meshery Server send as Proxy-Authorization, or {bypass}."
        )
    if kind == proxy_probe.UPSTREAM:
        return (
            f"The proxy {proxy.endpoint} took the request but cannot reach the API {api} itself ({status}): from "
            f"the proxy's host, check that {t.host} resolves and port {t.port or 443} answers (its DNS, routes and "
            f"egress firewall); or, if the Server reaches {api} directly, {bypass}. Test with: {test}"
        )
    if kind == proxy_probe.NO_ANSWER:
        return (
            f"{proxy.endpoint} does not answer as an HTTP CONNECT proxy, so nothing reaches {api} through it: check "
            f"the scheme and port of the proxy in the {where}, or {bypass}."
        )
    return f"The proxy {proxy.endpoint} refused the tunnel to {api} ({status}): see its log for why, or {bypass}."


@check(
    id="kube-api.dns",
    meshery_code="connection_inactive",
    title="API server host resolves",
    category="kube-api",
    severity=Severity.CRITICAL,
    depends_on=("kubeconfig.context",),
    remediation="Make the API host resolvable from the Server: for private endpoints use the VPC/VNet's "
    "private DNS (Route 53 resolver, Cloud DNS, Azure Private DNS) or a conditional forwarder.",
)
def api_dns(ctx: ClusterContext) -> Finding:
    """A host the Server cannot resolve is an API it cannot reach, whatever the firewall says."""
    t = ctx.target
    host = t.host or ""
    proxy = _proxy_of(t)
    if proxy:
        # The proxy resolves the API host; what must resolve from here is the proxy itself.
        host = proxy.host
    try:
        res = dns.resolve(host, ctx.settings.connect_timeout, ctx.settings.dns_server)
    except dns.DnsFailure as exc:
        if proxy:
            return fail(
                f"the proxy {str(exc)}",
                remediation=proxy_remediation(t, proxy, proxy_probe.UNREACHABLE),
                reason="proxy_unreachable",
                host=host,
                failure=exc.kind,
                **_proxy_evidence(t, proxy),
            )
        return fail(str(exc), reason=reasons.of(reasons.DNS, exc.kind), host=host, failure=exc.kind)
    classes = {a: addresses.classify(a) for a in res.addresses}
    ctx.set_fact(API_ADDRESSES, res.addresses)
    evidence: dict[str, Any] = {
        "host": host,
        "addresses": [{"address": a, "class": c} for a, c in classes.items()],
        "private": any(c == "private" for c in classes.values()),
        "resolver": res.resolver,
    }
    if res.cnames:
        evidence["cnames"] = res.cnames
    if proxy:
        evidence.update(_proxy_evidence(t, proxy))
    listed = ", ".join(f"a {c} address" if res.resolver == "literal" else f"{a} ({c})" for a, c in classes.items())
    verb = "is" if res.resolver == "literal" else "resolves to"
    via = f" (the proxy; it resolves {t.host})" if proxy else ""
    return passed(f"{host}{via} {verb} {listed}", **evidence)


@check(
    id="kube-api.tcp",
    meshery_code="connection_inactive",
    title="API server port is reachable over TCP",
    category="kube-api",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.dns",),
    reads=(API_ADDRESSES,),
    remediation=_TCP_REMEDIATION[tcp.FILTERED],
)
def api_tcp(ctx: ClusterContext) -> Finding:
    """Distinguishes filtered (firewall), refused (nothing listening) and unreachable (no route); with
    --server-vantage docker, a loopback API server (kind, minikube, k3d) is the Server's own container."""
    t = ctx.target
    targets = ctx.get_fact(API_ADDRESSES) or [t.host or ""]
    proxy = _proxy_of(t)
    if not proxy and (own := vantage.unreachable_api(ctx, t.host or "", t.port or 443)):
        return own
    if proxy:
        port, via = proxy.port, f" (the proxy {proxy.endpoint})"
    else:
        port, via = t.port or 443, ""
    finding, address = reach.first_open(ctx, targets, port, _TCP_REMEDIATION, via)
    if address is not None:
        ctx.set_fact(API_ADDRESS, address)
        return finding
    fix = proxy_remediation(t, proxy, proxy_probe.UNREACHABLE) if proxy else finding.remediation
    if not proxy and t.proxy_source and fix:
        fix += (
            f" {t.proxy_source} sends {addresses.hostport(t.host or '', port)} around the HTTPS proxy: if the API "
            f"is reachable only through the proxy, take {t.host} out of {t.proxy_source}."
        )
    evidence = {**finding.evidence, **(_proxy_evidence(t, proxy) if proxy else {})}
    reason = "proxy_unreachable" if proxy else finding.reason
    return Finding(finding.status, finding.message, evidence, fix, reason=reason)


@check(
    id="kube-api.tls",
    meshery_code="connection_inactive",
    title="API server certificate verifies and is not expiring",
    category="kube-api",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.tcp",),
    reads=(API_ADDRESS,),
    remediation="Put the cluster's current CA in certificate-authority-data (for managed clusters, "
    "re-fetch the kubeconfig: aws eks update-kubeconfig, gcloud container clusters get-credentials, "
    "az aks get-credentials) and make sure the server URL uses a name the certificate covers.",
)
def api_tls(ctx: ClusterContext) -> Finding:
    """A chain that does not verify means a wrong CA in the kubeconfig, or someone in the middle."""
    t = ctx.target
    proxy = _proxy_of(t)
    # Through a proxy the tunnel goes to the API host by name, as the client's would.
    address = t.host or "" if proxy else ctx.get_fact(API_ADDRESS) or t.host or ""
    name = t.tls_server_name or t.host or ""
    res = tls.inspect(address, t.port or 443, name, t.ca_pem, ctx.settings.connect_timeout, proxy)
    evidence: dict[str, Any] = {
        "server_name": name,
        "verified": res.verified,
        "tls_version": res.tls_version,
        "subject": res.subject,
        "issuer": res.issuer,
        "sans": res.sans,
        "not_after": res.not_after.isoformat() if res.not_after else None,
        "ca": "kubeconfig CA" if t.ca_pem else "system trust store",
    }
    if res.proxy_error and proxy:
        pe = res.proxy_error
        evidence.update(_proxy_evidence(t, proxy), proxy_status=pe.status, proxy_failure=pe.kind)
        return fail(
            f"TLS handshake failed: {pe}",
            remediation=proxy_remediation(t, proxy, pe.kind, pe.status),
            reason=reasons.of(reasons.PROXY, pe.kind),
            **evidence,
        )
    if res.timed_out:
        return error(
            f"no TLS answer from {addresses.hostport(address, t.port or 443)} within "
            f"{ctx.settings.connect_timeout:g} s: {res.handshake_error}",
            remediation=_hung_handshake_remediation(t, name, proxy),
            reason="tls_handshake",
            handshake="timeout",
            **evidence,
        )
    if res.handshake_error:
        return fail(f"TLS handshake failed: {res.handshake_error}", reason="tls_handshake", **evidence)
    now = dt.datetime.now(dt.timezone.utc)
    if res.not_after and res.not_after <= now:
        return fail(
            f"the API server certificate expired on {res.not_after:%Y-%m-%d}",
            remediation="Rotate the API server certificate (kubeadm certs renew, or the provider's "
            "credential rotation); until then every client fails.",
            reason="tls_expired",
            **evidence,
        )
    if res.hostname_ok is False:
        return fail(
            f"the certificate does not cover {name!r} (it names {', '.join(res.sans) or 'no SANs'})",
            remediation="Use a server URL whose host the certificate covers, or set tls-server-name to one of "
            "its names.",
            reason="tls_name_mismatch",
            **evidence,
        )
    if not res.verified:
        message = f"the certificate chain does not verify against the {evidence['ca']}: {res.verify_error}"
        if t.insecure:
            return warn(
                message + " (verification is off: insecure-skip-tls-verify)", reason="tls_untrusted", **evidence
            )
        return fail(message, reason="tls_untrusted", **evidence)
    if res.not_after and (res.not_after - now).days < CERT_WARN_DAYS:
        return warn(
            f"the API server certificate expires in {(res.not_after - now).days} days ({res.not_after:%Y-%m-%d})",
            remediation="Rotate the API server certificate before it expires.",
            reason="tls_expiring",
            **evidence,
        )
    expiry = f"{res.not_after:%Y-%m-%d}" if res.not_after else "unknown"
    return passed(f"chain verifies against the {evidence['ca']}; valid until {expiry}", **evidence)


def _hung_handshake_remediation(t: ClusterTarget, name: str, proxy: Proxy | None) -> str:
    """Nothing answered the ClientHello: no CA can be blamed; the server or something in the path holds it."""
    api = addresses.hostport(t.host or "", t.port or 443)
    via = f" (through the proxy {proxy.endpoint})" if proxy else ""
    test = f"openssl s_client -connect {shlex.quote(api)} -servername {shlex.quote(name)} </dev/null"
    return (
        f"{api} accepts the connection{via} but never answers the TLS handshake: the API server may be hung or "
        "overloaded (check the control plane's health, and that its load balancer has healthy targets), or a "
        "middlebox in the path (a firewall inspecting TLS, a transparent proxy, a load balancer without a backend) "
        "holds the connection. From the Server's network the handshake should finish within seconds. "
        f"Test with: {test}"
    )


def _auth_remediation(kind: str) -> str:
    return {
        "token": "The token was rejected: it expired or was revoked. Issue a new one for this cluster "
        "(kubectl create token SA --duration ...) or switch to an exec plugin.",
        "token-file": "The token in tokenFile was rejected: refresh the file's token.",
        "client-cert": "The client certificate was rejected: it expired, or was not signed by the cluster's "
        "client CA. Issue a new one.",
        "exec": "The exec plugin's token was rejected: check the identity it logs in as is mapped in the "
        "cluster (EKS access entries / aws-auth, GKE IAM, AKS Entra ID RBAC).",
        "oidc": "The OIDC id-token was rejected or expired: log in again to refresh it.",
    }.get(kind, "The credential was rejected: refresh it, or fetch a new kubeconfig for this cluster.")


@check(
    id="kube-api.auth",
    meshery_code="connection_inactive",
    title="Authenticated request succeeds",
    category="kube-api",
    severity=Severity.CRITICAL,
    depends_on=("kubeconfig.context", "kube-api.tls"),
    remediation="Refresh the context's credential and make sure its identity is allowed into the cluster.",
    timeout_factor=3.0,
)
def api_auth(ctx: ClusterContext) -> Finding:
    """Proves the Server's credential works, and names the identity it acts as (SelfSubjectReview)."""
    api = ctx.api()
    kind = ctx.target.credential.kind
    try:
        resp = api.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    except ExecError as exc:
        return fail(
            str(exc),
            remediation="Fix the exec credential plugin so it prints a credential.",
            reason="exec_plugin_timeout" if isinstance(exc, ExecTimeout) else "exec_plugin_failed",
            kind=kind,
        )
    except KubeSetupError as exc:
        return fail(str(exc), reason="credential_missing", kind=kind)
    except TransportError as exc:
        why = "exec_plugin_timeout" if isinstance(exc, PluginTimeout) else None
        return error(f"request failed: {exc}", reason=why, kind=kind)
    evidence: dict[str, Any] = {"kind": kind, "http_status": resp.status}
    if resp.status == 401:
        return fail(
            f"credential rejected (401 Unauthorized): {resp.reason}",
            remediation=_auth_remediation(kind),
            reason="credential_rejected",
            **evidence,
        )
    if resp.ok and isinstance(resp.body, dict):
        info = (resp.body.get("status") or {}).get("userInfo") or {}
        evidence.update(identity=info.get("username"), groups=info.get("groups") or [])
        ctx.set_fact(IDENTITY, info.get("username"))
        return passed(f"authenticated as {info.get('username')!r}", **evidence)
    # Older clusters (< 1.28) do not serve SelfSubjectReview: prove authentication with discovery instead.
    try:
        probe = api.get("/api")
    except TransportError as exc:
        return error(f"request failed: {exc}", **evidence)
    evidence["http_status"] = probe.status
    if probe.status == 401:
        return fail(
            f"credential rejected (401 Unauthorized): {probe.reason}",
            remediation=_auth_remediation(kind),
            reason="credential_rejected",
            **evidence,
        )
    if probe.status == 403:
        return fail(
            f"authenticated but forbidden even API discovery (403): {probe.reason}",
            remediation="Bind the identity to a role that allows discovery (system:discovery) and what Meshery reads.",
            reason="forbidden",
            **evidence,
        )
    if probe.ok:
        return passed(f"authenticated (identity not shown: SelfSubjectReview answered {resp.status})", **evidence)
    return error(f"unexpected answer {probe.status}: {probe.reason}", **evidence)


_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def parse_version(body: dict[str, Any]) -> tuple[int, int] | None:
    """Managed clusters say minor "30+" and gitVersion "v1.30.4-eks-a737599": parse leniently."""
    m = _VERSION.match(str(body.get("gitVersion") or ""))
    if m:
        return int(m.group(1)), int(m.group(2))
    try:
        return int(re.sub(r"\D", "", str(body.get("major")))), int(re.sub(r"\D", "", str(body.get("minor"))))
    except ValueError:
        return None


def _get(ctx: ClusterContext, path: str) -> Response:
    """A GET, or the probe stops: a broken credential fails, a broken transport is undecided."""
    try:
        return ctx.api().get(path)
    except (ExecError, KubeSetupError) as exc:
        stop(fail(str(exc)))
    except TransportError as exc:
        stop(error(f"request failed: {exc}"))


@check(
    id="kube-api.version",
    title="Kubernetes version is supported by Meshery",
    category="kube-api",
    severity=Severity.MEDIUM,
    depends_on=("kube-api.auth",),
    remediation=f"Upgrade the cluster to Kubernetes 1.{SUPPORTED_MINORS[0]} or newer; Meshery's client "
    f"libraries are tested up to 1.{SUPPORTED_MINORS[1]}.",
)
def api_version(ctx: ClusterContext) -> Finding:
    """Meshery's discovery relies on API versions that very old clusters do not serve."""
    resp = _get(ctx, "/version")
    if not resp.ok or not isinstance(resp.body, dict):
        return error(f"/version answered {resp.status}: {resp.reason}")
    body = resp.body
    parsed = parse_version(body)
    evidence = {"git_version": body.get("gitVersion"), "platform": body.get("platform")}
    if parsed is None:
        return error(f"could not read a version from {body.get('gitVersion')!r}", **evidence)
    major, minor = parsed
    evidence["minor"] = minor
    label = f"{body.get('gitVersion') or f'{major}.{minor}'}"
    if major != 1 or minor < SUPPORTED_MINORS[0]:
        return fail(f"Kubernetes {label} is older than 1.{SUPPORTED_MINORS[0]}", **evidence)
    if minor > SUPPORTED_MINORS[1]:
        return warn(
            f"Kubernetes {label} is newer than 1.{SUPPORTED_MINORS[1]}, the newest Meshery is tested with",
            remediation="Usually fine; watch Meshery's release notes for support of this version.",
            **evidence,
        )
    return passed(f"Kubernetes {label}", **evidence)


@check(
    id="kube-api.latency",
    title="API round trip is fast enough for discovery",
    category="kube-api",
    severity=Severity.LOW,
    depends_on=("kube-api.auth",),
    remediation="High latency slows discovery streaming and every API call: consider a regional "
    "management plane (a Meshery Server closer to these clusters) or a faster network path.",
    timeout_factor=4.0,
)
def api_latency(ctx: ClusterContext) -> Finding:
    """The median of several requests, so one slow answer does not decide."""
    s = ctx.settings
    samples: list[float] = []
    for _ in range(max(1, s.latency_samples)):
        if samples and ctx.remaining() < s.connect_timeout:
            break
        t0 = time.monotonic()
        resp = _get(ctx, "/version")
        if not resp.ok:
            return error(f"/version answered {resp.status}: {resp.reason}")
        samples.append((time.monotonic() - t0) * 1000)
    median = round(statistics.median(samples), 1)
    evidence: dict[str, Any] = {
        "median_ms": median,
        "samples_ms": [round(x, 1) for x in samples],
        "warn_ms": s.latency_warn_ms,
        "fail_ms": s.latency_fail_ms,
    }
    if median >= s.latency_fail_ms:
        return fail(f"median round trip {median:g} ms (limit {s.latency_fail_ms:g} ms)", **evidence)
    if median >= s.latency_warn_ms:
        return warn(f"median round trip {median:g} ms (warning at {s.latency_warn_ms:g} ms)", **evidence)
    return passed(f"median round trip {median:g} ms over {len(samples)} request{'s' * (len(samples) != 1)}", **evidence)
