"""Meshery's own footprint per cluster: the MeshSync mode, the Operator, the Broker resource, MeshSync."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from preflight.checks import meshery_state as ms
from preflight.checks.broker_path import judge_endpoint
from preflight.engine.context import ClusterContext
from preflight.engine.facts import Fact
from preflight.engine.model import Finding, Severity, error, fail, in_meshery_terms, not_applicable, passed, stop, warn
from preflight.engine.permissions import operator_only, reads
from preflight.engine.registry import check

SWITCH_HINT = (
    "Switch the connection's mode on Meshery's Connections page, or set meshsync_mode for this cluster in "
    "the fleet file (MESHSYNC_DEFAULT_DEPLOYMENT_MODE sets the default for new connections)."
)


DEPLOYED: Fact[dict[str, bool]] = Fact("meshery.deployed", producer="meshery.mode", fleet=True)


def _deployed(ctx: ClusterContext) -> dict[str, bool]:
    """Which components are deployed; the probe stops with an error when they cannot be read."""
    try:
        return ms.deployed(ctx)
    except ms.ReadError as exc:
        stop(error(str(exc), remediation=f"Grant get on deployments, services and brokers in {ms.ns(ctx)}."))


@check(
    id="meshery.mode",
    meshery_codes=("operator_not_deployed",),
    permissions=(*ms.READ_DEPLOYMENTS, *ms.READ_BROKER),
    title="MeshSync mode matches what is deployed",
    category="meshery",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation=SWITCH_HINT,
)
def mode(ctx: ClusterContext) -> Finding:
    """Operator mode needs the Operator, Broker and MeshSync in the cluster; embedded mode needs none."""
    have = _deployed(ctx)
    ctx.set_fact(DEPLOYED, have)
    source = (
        "fleet file" if ctx.target.mode_from_fleet else "MESHSYNC_DEFAULT_DEPLOYMENT_MODE / --meshsync-default-mode"
    )
    return decide_mode(ms.effective_mode(ctx), source, have, disable_operator=ctx.settings.disable_operator)


def decide_mode(want: str, source: str, have: dict[str, bool], *, disable_operator: bool) -> Finding:
    """The mode the connection uses (`want`, declared in `source`) against the components deployed (`have`)."""
    present = sorted(k for k, v in have.items() if v)
    evidence: dict[str, Any] = {"effective_mode": want, "mode_source": source, "deployed": present}
    if want == "operator" and disable_operator:
        disabled = fail(
            "operator mode is expected, but DISABLE_OPERATOR=true stops Meshery from deploying the Operator",
            remediation="Unset DISABLE_OPERATOR on Meshery Server, or use embedded mode for this cluster.",
            **evidence,
        )
        return in_meshery_terms("operator_not_deployed", disabled)
    if want == "embedded" and present:
        return fail(
            f"embedded mode is expected, but operator-mode components are deployed: {', '.join(present)}",
            remediation="Either switch this connection to operator mode (it is using it), or switch to embedded "
            "mode from Meshery's Connections page so Meshery undeploys them.",
            **evidence,
        )
    if want == "operator" and not have["operator"]:
        absent = warn(
            "operator mode is expected, but the Operator is not deployed yet (Meshery deploys it on connection)",
            remediation="Connect the cluster in Meshery (or switch the connection to operator mode) and re-run.",
            **evidence,
        )
        return in_meshery_terms("operator_not_deployed", absent)
    return passed(f"{want} mode ({source}); deployed: {', '.join(present) or 'nothing'}", **evidence)


@check(
    id="meshery.operator",
    meshery_code="operator_deploy_failed",
    meshery_codes=("operator_not_deployed",),
    permissions=ms.READ_DEPLOYMENTS,
    title="Meshery Operator is ready (operator mode) or absent (embedded)",
    category="meshery",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation="Check the Operator's pods (kubectl -n meshery describe deploy meshery-operator): image pulls, "
    "resources, RBAC. Toggle the Operator off and on from Meshery's UI to redeploy it.",
)
def operator(ctx: ClusterContext) -> Finding:
    """The Operator heals the Broker and MeshSync; without it, operator mode silently stops discovering."""
    have = _deployed(ctx)
    dep = ms.deployment(ctx, ms.OPERATOR_DEPLOYMENT)
    return decide_operator(
        ms.effective_mode(ctx), have, dep, ms.ns(ctx), disable_operator=ctx.settings.disable_operator
    )


def decide_operator(
    want: str, have: dict[str, bool], dep: dict[str, Any] | None, namespace: str, *, disable_operator: bool
) -> Finding:
    """Operator mode needs the Operator's Deployment ready; otherwise nothing of operator mode should be left."""
    if want != "operator" or disable_operator:
        leftovers = sorted(k for k, v in have.items() if v)
        why = "DISABLE_OPERATOR=true" if disable_operator else "embedded mode"
        if leftovers:
            return warn(
                f"{why}, but in-cluster components are still deployed: {', '.join(leftovers)}",
                remediation="Remove the leftovers (switch the connection to embedded mode, or "
                f"helm uninstall meshery-operator -n {namespace}).",
                leftovers=leftovers,
            )
        return passed(f"{why}: no Operator expected, none deployed")
    if dep is None:
        absent = fail(f"no Deployment {namespace}/{ms.OPERATOR_DEPLOYMENT} in operator mode", namespace=namespace)
        return in_meshery_terms("operator_not_deployed", absent)
    ready, detail = ms.deployment_ready(dep)
    evidence = {"version": ms.image_version(dep), "replicas": detail}
    if not ready:
        return fail(f"the Operator is not ready: {detail}", **evidence)
    return passed(f"Operator {evidence['version'] or ''} ready ({detail})".replace("  ", " "), **evidence)


def _condition(resource: dict[str, Any], kind: str = "Ready") -> dict[str, Any] | None:
    for c in ((resource.get("status") or {}).get("conditions")) or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def _broker_workload(ctx: ClusterContext) -> ms.BrokerWorkload | None:
    try:
        return ms.broker_workload(ctx)
    except ms.ReadError as exc:
        stop(error(str(exc), remediation=f"Grant get on statefulsets.apps in {ms.ns(ctx)}."))


def _without_broker(ctx: ClusterContext) -> str:
    """No Broker resource: Meshery says the Operator is not deployed, or (it is) that deploying failed."""
    try:
        operator = ms.deployment(ctx, ms.OPERATOR_DEPLOYMENT)
    except ms.ReadError:
        return "operator_deploy_failed"  # the Operator unreadable: only the Broker's absence is known
    return "operator_deploy_failed" if operator is not None else "operator_not_deployed"


def _pods_fix(namespace: str, workload: ms.BrokerWorkload | None) -> str | None:
    """Where to look when the Broker's pods are not ready: its first pod, by name."""
    if workload is None:
        return None
    pod = workload.first_pod
    return (
        f"Look at the Broker's pod: kubectl -n {namespace} describe pod {pod} (events: image pulls, scheduling, "
        f"probes) and kubectl -n {namespace} logs {pod} (a config NATS refuses crash-loops it)."
    )


@check(
    id="meshery.broker-resource",
    meshery_code="broker_unreachable",
    meshery_codes=("operator_not_deployed", "operator_deploy_failed"),
    permissions=operator_only((*ms.READ_BROKER, *ms.READ_BROKER_WORKLOAD, *ms.READ_DEPLOYMENTS)),
    title="Broker resource is ready and publishes its endpoints",
    category="meshery",
    severity=Severity.CRITICAL,
    depends_on=("kube-api.auth",),
    remediation="Check the Operator's logs for the Broker controller (kubectl -n meshery logs deploy/meshery-operator) "
    "and the Broker's Service: the Operator publishes status.endpoint only once the Service has an address.",
)
def broker_resource(ctx: ClusterContext) -> Finding:
    """Meshery Server connects to whatever the Broker resource publishes in status.endpoint.external; its
    StatefulSet (meshery-nats, or classic meshery-broker) says whether the NATS pods behind it are ready."""
    if ms.effective_mode(ctx) != "operator":
        not_applicable("embedded mode: MeshSync runs inside Meshery Server, no Broker is used")
    st = ms.broker(ctx)
    workload = _broker_workload(ctx)
    code = _without_broker(ctx) if st.resource is None and not st.problems else None
    return decide_broker_resource(
        st, workload, ms.ns(ctx), without_code=code, no_endpoint=lambda finding: judge_endpoint(ctx, finding)
    )


def decide_broker_resource(
    st: ms.BrokerState,
    workload: ms.BrokerWorkload | None,
    namespace: str,
    *,
    without_code: str | None,
    no_endpoint: Callable[[Finding], Finding] = lambda finding: finding,
) -> Finding:
    """The Broker resource must exist, be Ready, have ready pods and publish an external endpoint.

    `without_code` is Meshery's diagnostic for a missing resource (read only when it is missing);
    `no_endpoint` judges the missing-endpoint failure (the Broker path's view: a working port-forward)."""
    if st.resource is None:
        if st.problems:
            return error("; ".join(st.problems), remediation=f"Grant get on brokers.meshery.io in {namespace}.")
        runs = f"; StatefulSet {workload.name} ({workload.generation} generation) exists without it" if workload else ""
        missing = fail(
            f"no Broker resource {namespace}/{ms.BROKER_NAME} (tried {', '.join(ms.BROKER_VERSIONS)}){runs}",
            remediation="Meshery deploys it with the Operator: connect the cluster in operator mode, or check that "
            "the meshery-operator chart installed the brokers.meshery.io CRD.",
        )
        return in_meshery_terms(without_code or "operator_deploy_failed", missing)
    evidence: dict[str, Any] = {
        "api_version": f"{ms.GROUP}/{st.version}",
        "generation": st.generation,
        "external": st.published_external,
        "internal": st.published_internal,
        "statefulset": {"name": workload.name, "replicas": workload.detail} if workload else None,
    }
    pods = _pods_fix(namespace, workload)
    ready = _condition(st.resource)
    if ready is not None:
        evidence["ready"] = {k: ready.get(k) for k in ("status", "reason", "message")}
        if str(ready.get("status")) != "True":
            sts = f" (StatefulSet {workload.name}: {workload.detail})" if workload else ""
            return fail(
                f"Broker is not Ready: {ready.get('reason') or ''} {ready.get('message') or ''}".strip() + sts,
                remediation=pods,
                **evidence,
            )
    if workload is not None and not workload.ready:
        return fail(
            f"the Broker's StatefulSet {workload.name} is not ready: {workload.detail}", remediation=pods, **evidence
        )
    if not st.published_external:
        return no_endpoint(
            fail("Broker publishes no external endpoint (status.endpoint.external is empty)", **evidence)
        )
    return passed(f"Broker ({st.generation} generation, {st.version}) publishes {st.published_external}", **evidence)


def _watch_list(ctx: ClusterContext, resource: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The watch list: embedded in spec.watch-list, or a ConfigMap the CR names."""
    spec = resource.get("spec") or {}
    embedded = spec.get("watch-list") or spec.get("watchList")
    if isinstance(embedded, dict):
        return dict(embedded.get("data") or {}), "spec.watch-list"
    name = "meshery-meshsync-config"
    if isinstance(embedded, str):
        name = embedded
    path = f"/api/v1/namespaces/{ms.ns(ctx)}/configmaps/{name}"
    cm = ms._get(ctx, path, f"configmap {ms.ns(ctx)}/{name}")
    return dict((cm or {}).get("data") or {}), f"configmap {name}"


def _parse_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value or "").strip()
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except ValueError:
        return [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


_COUNTED = ("/api/v1/pods", "/api/v1/configmaps", "/api/v1/services", "/apis/apps/v1/replicasets")
_COUNTED_RESOURCES = (("", "pods"), ("", "configmaps"), ("", "services"), ("apps", "replicasets"))


def _object_count(ctx: ClusterContext) -> int | None:
    """Cheap size estimate: list with limit=1 and read remainingItemCount where the server sends it."""
    total = 0
    for path in _COUNTED:
        resp = ctx.api().get(f"{path}?limit=1")
        if not resp.ok or not isinstance(resp.body, dict):
            return None
        meta = resp.body.get("metadata") or {}
        items = len(resp.body.get("items") or [])
        total += items + int(meta.get("remainingItemCount") or 0)
    return total


@check(
    id="meshery.meshsync",
    permissions=operator_only(
        (
            *ms.READ_MESHSYNC,
            *ms.READ_DEPLOYMENTS,
            reads("configmaps", meshery_namespace=True),
            *(reads(r, g, verbs=("list",)) for g, r in _COUNTED_RESOURCES),
        )
    ),
    title="MeshSync is deployed, ready and sized for the cluster",
    category="meshery",
    severity=Severity.MEDIUM,
    depends_on=("kube-api.auth",),
    remediation="Edit the MeshSync resource's watch list: use either a whitelist or a blacklist, and on large "
    "clusters blacklist the resource types Meshery does not need (events, endpointslices, replicasets...).",
)
def meshsync(ctx: ClusterContext) -> Finding:
    """MeshSync informs on every watched type: both lists at once is unsupported; no blacklist on a big cluster
    costs the cluster and the Server."""
    if ms.effective_mode(ctx) != "operator":
        not_applicable("embedded mode: MeshSync runs as a library inside Meshery Server")
    try:
        resource = ms.meshsync(ctx)
        dep = ms.deployment(ctx, ms.MESHSYNC_DEPLOYMENT)
    except ms.ReadError as exc:
        return error(str(exc), remediation=f"Grant get on meshsyncs.meshery.io and deployments in {ms.ns(ctx)}.")
    problem = decide_meshsync_deployment(ms.ns(ctx), resource, dep)
    if problem is not None:
        return problem
    assert resource is not None and dep is not None  # a missing one is the problem above
    data, where = _watch_list(ctx, resource)
    white, black = _parse_list(data.get("whitelist")), _parse_list(data.get("blacklist"))
    count = None if white and black else _object_count(ctx)  # both lists fail without the count's four lists
    _ready, detail = ms.deployment_ready(dep)
    return decide_meshsync_watch(detail, where, white, black, count, ctx.settings.large_cluster_objects)


def decide_meshsync_deployment(
    namespace: str, resource: dict[str, Any] | None, dep: dict[str, Any] | None
) -> Finding | None:
    """The MeshSync resource and a ready Deployment; None when both are there and the watch list decides."""
    if resource is None:
        return fail(
            f"no MeshSync resource {namespace}/{ms.MESHSYNC_NAME}",
            remediation="The Operator creates it: check the Operator is ready.",
        )
    if dep is None:
        return fail(
            f"no Deployment {namespace}/{ms.MESHSYNC_DEPLOYMENT}",
            remediation="The Operator deploys MeshSync: check the Operator's logs.",
        )
    ready, detail = ms.deployment_ready(dep)
    if not ready:
        return fail(
            f"MeshSync is not ready: {detail}",
            remediation="kubectl -n meshery describe deploy meshery-meshsync",
            replicas=detail,
        )
    return None


def decide_meshsync_watch(
    detail: str, where: str, white: list[str], black: list[str], count: int | None, threshold: int
) -> Finding:
    """One kind of list at most; a cluster above `threshold` objects (`count`, None: unknown) wants a blacklist."""
    evidence: dict[str, Any] = {
        "replicas": detail,
        "watch_list": where,
        "whitelist": len(white),
        "blacklist": len(black),
    }
    if white and black:
        return fail(
            f"the watch list ({where}) sets both a whitelist and a blacklist, which MeshSync does not support",
            **evidence,
        )
    evidence["objects_estimated"] = count
    if count is not None and count > threshold and not black and not white:
        return warn(
            f"about {count} objects (threshold {threshold}) and no blacklist: MeshSync will inform on everything",
            **evidence,
        )
    lists = "whitelist" if white else "blacklist" if black else "no watch list"
    return passed(f"MeshSync ready ({detail}), {lists}", **evidence)
