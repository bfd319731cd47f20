"""The path Meshery Server takes to a cluster's Broker, and the managed port-forward verified end to end.

Current Servers outside the cluster reach the Broker, by default, through a port-forward over the cluster's
API server to the NATS pod (MESHERY_MANAGED_BROKER_PORTFORWARD, on unless false), and fall back to the
published endpoint; in the cluster they use the ClusterIP. broker.port-forward runs before the endpoint
checks (it is declared first; the endpoint checks read its FORWARD fact when it ran), so they can say when
their failure does not keep Meshery from its Broker. Not an ``after`` dependency: with the forward off this
check does not apply, and ``after`` would make every endpoint check not applicable with it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, NoReturn

from preflight.checks import meshery_state as ms
from preflight.checks import reach
from preflight.checks.broker_secret import secret_token
from preflight.engine import provider
from preflight.engine.context import ClusterContext
from preflight.engine.facts import Fact, MissingFact
from preflight.engine.kube import KubeSetupError, TransportError
from preflight.engine.model import Finding, Probe, Severity, Status, Stop, fail, not_applicable, passed, warn
from preflight.engine.permissions import Permission, operator_only, port_forward_only, reads
from preflight.engine.probes import dns, nats, tcp
from preflight.engine.probes import portforward as pf
from preflight.engine.registry import check
from preflight.engine.settings import PORT_FORWARD_ENV

NATS_SELECTOR = "app.kubernetes.io/name=nats"
NATS_CONTAINER = "nats"


@dataclass(frozen=True)
class Forward:
    """What the port-forward check found: whether Meshery reaches the Broker through it, and if not, why."""

    works: bool
    step: str  # access | pod | tunnel | nats: the step that decided
    cause: str  # a short cause (rbac, crash-looping, kubelet-unreachable...), "" when it works
    message: str
    pod: str | None = None
    # When the control plane could not dial the node's kubelet: which node, and how (the cloud checks read it).
    kubelet: pf.KubeletDial | None = None


FORWARD: Fact[Forward] = Fact("broker.forward", producer="broker.port-forward")

PERMISSIONS: tuple[Permission, ...] = operator_only(
    port_forward_only(
        (
            reads("pods", verbs=("list",), meshery_namespace=True),
            Permission(("create",), "", "pods/portforward", in_meshery_namespace=True),
            reads("secrets", meshery_namespace=True, names=(ms.TOKEN_SECRET,)),
        )
    )
)


def forward_on(ctx: ClusterContext) -> bool:
    """Out of the cluster with the managed port-forward on (the default)."""
    return not ctx.target.in_cluster and ctx.settings.broker_port_forward is not False


def policy(ctx: ClusterContext) -> str:
    """Why the forward is on or off for this cluster, in the words of its source."""
    on = "on" if ctx.settings.broker_port_forward is not False else "off"
    source = ctx.settings.broker_port_forward_source
    if source == "environment":
        return f"{PORT_FORWARD_ENV}={'false' if on == 'off' else 'true'}"
    if source == "flag":
        return f"--{'no-' if on == 'off' else ''}broker-port-forward"
    if source == "fleet file":
        return f"broker_port_forward: {'false' if on == 'off' else 'true'} in the fleet file"
    return f"{PORT_FORWARD_ENV} unset (on by default)"


def _role_rule(ns: str) -> str:
    return (
        f"a Role in {ns} with rules: [{{apiGroups: [''], resources: [pods], verbs: [list]}}, "
        f"{{apiGroups: [''], resources: [pods/portforward], verbs: [create]}}], bound to the Server's identity"
    )


_KUBELET_FIX = {
    "eks": "EKS: allow tcp/10250 from the cluster security group to the node security group (the nodes' inbound "
    "rules); private node groups created by hand often lack it. aws.kubelet-path names the rule that decides.",
    "gke": "GKE private cluster: add a VPC firewall rule allowing tcp:10250 from the control plane's CIDR "
    "(masterIpv4CidrBlock) to the nodes' network tags. gcp.kubelet-path names the rule that decides.",
    "aks": "AKS: the API server reaches kubelets through the konnectivity agent: check "
    "`kubectl -n kube-system get pods -l app=konnectivity-agent` (running, ready) and its logs.",
    "other": "Allow tcp/10250 from the control plane to the nodes in the firewall between them (self-managed "
    "clusters: the nodes' host firewall and any network ACL).",
}


def _kubelet_fix(ctx: ClusterContext) -> str:
    """The fix for the provider this cluster runs on; every provider's when it is not known."""
    kind = ctx.target.provider if ctx.target.provider in provider.CLOUDS else "other"
    if kind != "other":
        return _KUBELET_FIX[kind]
    return " ".join(_KUBELET_FIX[k] for k in ("other", "eks", "gke", "aks"))


def _stop(
    step: str,
    cause: str,
    message: str,
    fix: str,
    pod: str | None = None,
    kubelet: pf.KubeletDial | None = None,
    **evidence: Any,
) -> NoReturn:
    """The forward failed at ``step``: the verdict waits for the endpoint path (warn when it answers)."""
    raise _Failed(Forward(False, step, cause, message, pod, kubelet), fix, evidence)


class _Failed(Exception):
    def __init__(self, forward: Forward, fix: str, evidence: dict[str, Any]) -> None:
        super().__init__(forward.message)
        self.forward, self.fix, self.evidence = forward, fix, evidence


def _access(ctx: ClusterContext) -> None:
    ns, api = ms.ns(ctx), ctx.api()
    may_list = api.can("list", "pods", "", ns)
    may_forward = api.can("create", "pods", "", ns, subresource="portforward")
    if may_list is None or may_forward is None:
        _stop("access", "no-review", "the API did not answer SelfSubjectAccessReviews", "Check kube-api.auth.")
    missing = [w for w, ok in (("list pods", may_list), ("create pods/portforward", may_forward)) if not ok]
    if missing:
        _stop(
            "access",
            "rbac",
            f"this credential may not {' or '.join(missing)} in namespace {ns}: Meshery Server cannot open its "
            "Broker port-forward",
            f"Grant {_role_rule(ns)}.",
            missing=missing,
        )


def _waiting(pod: dict[str, Any]) -> tuple[dict[str, Any], str | None, int]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    mine = next((c for c in statuses if c.get("name") == NATS_CONTAINER), statuses[0] if statuses else {})
    waiting = (mine.get("state") or {}).get("waiting") or {}
    return mine, waiting.get("reason"), int(mine.get("restartCount") or 0)


def _pod(ctx: ClusterContext) -> tuple[str, dict[str, Any]]:
    """The NATS pod Meshery would forward to: the first running, ready one; else name why none is."""
    ns = ms.ns(ctx)
    resp = ctx.api().get(f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io%2Fname%3Dnats")
    if not resp.ok or not isinstance(resp.body, dict):
        _stop("pod", "read", f"listing pods in {ns} answered {resp.status}: {resp.reason}", "Check kube-api.auth.")
    pods = list(resp.body.get("items") or [])
    if not pods:
        _stop(
            "pod",
            "no-pod",
            f"no pod labelled {NATS_SELECTOR} in {ns}: the port-forward has nothing to reach",
            "Current Operators deploy the Broker with the NATS chart (StatefulSet meshery-nats): check "
            f"`kubectl -n {ns} get statefulset,pods` and the Operator's logs.",
        )
    for pod in pods:
        mine, _reason, _restarts = _waiting(pod)
        if (pod.get("status") or {}).get("phase") == "Running" and mine.get("ready"):
            return str(pod["metadata"]["name"]), pod
    pod = pods[0]
    name = str(pod["metadata"]["name"])
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    mine, reason, restarts = _waiting(pod)
    why = f", container {mine.get('name', NATS_CONTAINER)} {reason}" if reason else ", its nats container not ready"
    pull = " (ImagePullBackOff: the image or its registry is unreachable from the nodes)"
    _stop(
        "pod",
        str(reason or "not-ready"),
        f"NATS pod {name} is {phase}{why}, {restarts} restarts: the port-forward has no Broker to reach",
        f"Read why: `kubectl -n {ns} logs {name} -c {mine.get('name', NATS_CONTAINER)} --previous` and "
        f"`kubectl -n {ns} describe pod {name}`" + (pull if reason == "ImagePullBackOff" else ""),
        pod=name,
        phase=phase,
        waiting=reason,
        restarts=restarts,
    )


def _tunnel_failed(ctx: ClusterContext, exc: pf.TunnelError, pod: str, how: str) -> NoReturn:
    ns = ms.ns(ctx)
    fixes = {
        pf.FORBIDDEN: f"Grant {_role_rule(ns)}.",
        pf.UNAUTHORIZED: "The credential is not accepted for the upgrade: see kube-api.auth.",
        pf.POD_GONE: f"The pod went away between the list and the connect: rerun; if it recurs, check "
        f"`kubectl -n {ns} get pods -w`.",
        pf.KUBELET: _kubelet_fix(ctx),
        pf.UPGRADE: "Something between the Server and the API server does not pass the HTTP/1.1 Upgrade (a proxy, "
        "a load balancer, an ingress in front of the API): let it pass Connection: Upgrade (SPDY/3.1, as "
        "Meshery's client upgrades), or connect to the API server directly.",
        pf.NOTHING_LISTENS: f"Nothing listens on {ms.NATS_PORT} in pod {pod}: check its nats container "
        f"(`kubectl -n {ns} logs {pod} -c nats`) and its port.",
    }
    what = {
        pf.FORBIDDEN: "RBAC refused create pods/portforward",
        pf.POD_GONE: f"pod {pod} is gone",
        pf.KUBELET: "the control plane cannot reach the node's kubelet on 10250",
        pf.UPGRADE: f"the upgrade was refused or stripped on the way (HTTP {exc.status})",
        pf.NOTHING_LISTENS: f"nothing listens on {ms.NATS_PORT} in the pod",
    }.get(exc.cause, "the tunnel did not open")
    dial = pf.kubelet_dial(exc.detail) if exc.cause == pf.KUBELET else None
    _stop(
        "tunnel",
        exc.cause,
        f"the {how} port-forward to {pod}:{ms.NATS_PORT} through the API server failed: {what}: {exc.detail}",
        fixes.get(exc.cause, "Check the API server's logs for the port-forward request."),
        pod=pod,
        kubelet=dial,
        transport=how,
        status=exc.status,
        **(dial.as_evidence() if dial else {}),
    )


def _through(ctx: ClusterContext, pod: str) -> tuple[nats.NatsInfo, str]:
    """One SPDY/3.1 port-forward, as Meshery's client opens it; NATS INFO, CONNECT with Meshery's token and PING
    through it; the tunnel closed."""
    ns, timeout = ms.ns(ctx), ctx.settings.connect_timeout
    token = secret_token(ctx)
    try:
        with pf.forward(ctx.api(), ns, pod, ms.NATS_PORT, timeout) as stream:
            try:
                info, outcome = nats.handshake(stream, token, timeout)
            except (nats.NotNats, OSError) as exc:
                error_text = stream.error()
                if error_text:
                    raise pf.TunnelError(pf.NOTHING_LISTENS, error_text) from None
                _stop("nats", "not-nats", f"through the port-forward to {pod}:{ms.NATS_PORT}: {exc}", _NATS_FIX, pod)
    except pf.TunnelError as exc:
        _tunnel_failed(ctx, exc, pod, pf.SPDY)
    if not outcome.answer.startswith("PONG"):
        _stop(
            "nats",
            "auth",
            f"through the port-forward the Broker answered CONNECT with {outcome.answer}",
            "The token in Secret meshery-nats-auth and the Broker disagree: restart the meshery-nats pods so they "
            "load the current Secret.",
            pod,
        )
    return info, outcome.answer


_NATS_FIX = "The pod's 4222 does not speak NATS: check the Broker StatefulSet's container and ports."


def _endpoint_answers(ctx: ClusterContext) -> str | None:
    """The published endpoint accepts connections from here (the connect broker.tcp reuses): the Server's
    fallback when the forward fails."""
    try:
        st = ms.broker(ctx)
    except ms.ReadError:
        return None
    published = st.published_external
    host, port = ms.split_endpoint(published)
    if not published or port is None or (ms.is_loopback(host) and not ms.local_cluster(ctx)):
        return None
    if host == ((st.service or {}).get("spec") or {}).get("clusterIP"):
        return None  # cluster-internal: never dialled from outside
    try:
        res = dns.resolve(host, ctx.settings.connect_timeout, ctx.settings.dns_server)
    except dns.DnsFailure:
        return None
    for address in res.addresses[: reach.MAX_ADDRESSES]:
        if reach.connect(ctx, address, port).state == tcp.OPEN:
            return published
    return None


@check(
    id="broker.port-forward",
    permissions=PERMISSIONS,
    title="Meshery's managed port-forward reaches the Broker",
    category="broker",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.auth",),
    remediation=f"Let the Server's credential list pods and create pods/portforward in the Meshery namespace, keep "
    "the NATS pod running, let the control plane reach the nodes' kubelets on tcp/10250 and every hop pass the "
    f"HTTP Upgrade; or set {PORT_FORWARD_ENV}=false on the Server and publish a reachable endpoint.",
    timeout_factor=6.0,
    meshery_code="broker_unreachable",
)
def port_forward(ctx: ClusterContext) -> Finding:
    """Current Meshery Servers outside the cluster reach the Broker through a port-forward over the API server
    (on unless MESHERY_MANAGED_BROKER_PORTFORWARD=false). In order: the credential may list pods and create
    pods/portforward; a NATS pod runs and is ready; the tunnel opens (one SPDY/3.1 upgrade and the port's error
    and data streams, as Meshery's client opens them); NATS INFO, CONNECT with the meshery-nats-auth token, PONG
    through it. Causes:
    RBAC (fix: the Role rule), a crash-looping or unpullable pod (fix: its logs), the control plane unable to
    reach the kubelet on 10250 (fix: EKS cluster to node security group, GKE firewall from the control plane
    CIDR, AKS konnectivity agent), an Upgrade stripped by a proxy, nothing listening in the pod. A failure is a
    warning while the published endpoint answers (Meshery falls back to it)."""
    if ms.effective_mode(ctx) != "operator":
        not_applicable("embedded mode: Meshery Server does not use a Broker for this cluster")
    if ctx.target.in_cluster:
        not_applicable("in cluster: Meshery Server connects to the Broker Service's ClusterIP, no port-forward")
    if not forward_on(ctx):
        not_applicable(f"the managed port-forward is off ({policy(ctx)}): the Server uses the published endpoint")
    pod: str | None = None
    try:
        _access(ctx)
        pod, _obj = _pod(ctx)
        info, _answer = _through(ctx, pod)
    except _Failed as failed:
        ctx.set_fact(FORWARD, failed.forward)
        fallback = _endpoint_answers(ctx)
        evidence = {"step": failed.forward.step, "cause": failed.forward.cause, **failed.evidence}
        if fallback:
            return warn(
                f"{failed.forward.message}; Meshery falls back to the published endpoint {fallback}, which accepts "
                "connections (the broker.* endpoint checks judge it)",
                remediation=failed.fix,
                fallback=fallback,
                **evidence,
            )
        return fail(
            f"{failed.forward.message}; the published endpoint does not answer either (broker.endpoint says why)",
            remediation=failed.fix,
            **evidence,
        )
    except (TransportError, KubeSetupError) as exc:
        return Finding(Status.ERROR, f"the API server did not answer: {exc}", {"pod": pod})
    ctx.set_fact(FORWARD, Forward(True, "nats", "", f"port-forward to {pod}:{ms.NATS_PORT} answered PONG", pod))
    return passed(
        f"port-forward through the API server to {pod}:{ms.NATS_PORT} (SPDY/3.1, as Meshery's client): "
        f"NATS {info.version}, CONNECT with the {ms.TOKEN_SECRET} token answered PONG",
        pod=pod,
        version=info.version,
        policy=policy(ctx),
    )


def kubelet_unreachable(ctx: ClusterContext) -> tuple[Forward, pf.KubeletDial]:
    """The forward failed because the control plane could not dial the node's kubelet, and the node it named;
    the check reading it does not apply otherwise (forward off, not run, working, or failed for another cause)."""
    if ms.effective_mode(ctx) != "operator":
        not_applicable("embedded mode: Meshery Server does not use a Broker for this cluster")
    if not forward_on(ctx):
        where = "in cluster" if ctx.target.in_cluster else f"the managed port-forward is off ({policy(ctx)})"
        not_applicable(f"{where}: no port-forward through the API server, so no control plane -> kubelet hop")
    forward = ctx.get_fact(FORWARD)
    if forward is None:
        not_applicable(
            "broker.port-forward did not get to the tunnel in this run (not selected, or it stopped "
            "earlier): nothing says the control plane cannot reach a kubelet"
        )
    if forward.works:
        not_applicable("the port-forward works: the control plane reaches the node's kubelet on 10250")
    if forward.cause != pf.KUBELET:
        not_applicable(
            f"the port-forward failed for another cause ({forward.cause}, see broker.port-forward), not the control "
            "plane's path to the kubelet"
        )
    if forward.kubelet is None:
        not_applicable("the API server's answer names no node address to look up", detail=forward.message)
    return forward, forward.kubelet


WHY_ENDPOINT = (
    "Meshery reaches this Broker through its managed port-forward (broker.port-forward passed); the published "
    f"endpoint matters only with {PORT_FORWARD_ENV}=false on the Server or a Server older than the managed "
    "port-forward"
)


def judge_endpoint(ctx: ClusterContext, finding: Finding) -> Finding:
    """An endpoint-path failure, as Meshery lives it: a warning while the forward works, both causes when not."""
    forward = ctx.get_fact(FORWARD)
    if forward is None or not forward_on(ctx):
        return finding
    if forward.works and finding.status is Status.WARN and finding.meshery_code == "broker_unreachable":
        # A warning that the endpoint may not get the Server to its Broker: it does not need to.
        return dataclasses.replace(
            finding,
            message=f"{finding.message} — {WHY_ENDPOINT}",
            evidence={**finding.evidence, "reached_through": "port-forward"},
            meshery_code=None,
        )
    if finding.status is not Status.FAIL:
        return finding
    if forward.works:
        # Nothing to fix for Meshery: a cause-specific endpoint fix stays in the evidence for Servers that need it
        # (the check's general fix is in `explain`).
        return dataclasses.replace(
            finding,
            status=Status.WARN,
            message=f"{finding.message} — {WHY_ENDPOINT}",
            evidence={
                **finding.evidence,
                "reached_through": "port-forward",
                **({"endpoint_fix": finding.remediation} if finding.remediation else {}),
            },
            remediation="",
            meshery_code=None,
        )
    return dataclasses.replace(
        finding,
        message=f"{finding.message}; the port-forward fails too ({forward.cause}: broker.port-forward)",
        evidence={**finding.evidence, "port_forward": forward.cause},
    )


def endpoint_path(probe: Probe) -> Probe:
    """Wrap an endpoint check's probe so its failure is judged with the forward's outcome (judge_endpoint)."""

    @functools.wraps(probe)
    def judged(ctx: ClusterContext) -> Finding:
        try:
            finding = probe(ctx)
        except Stop as stopped:
            finding = stopped.finding
        except MissingFact as exc:
            # Its producer failed and was judged a warning (the forward works): nothing here to test.
            producer = exc.fact.producer
            return Finding(Status.SKIP, f"skipped: {producer} did not pass", {"blocked_by": producer}, "")
        return judge_endpoint(ctx, finding)

    return judged
