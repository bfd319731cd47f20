"""RBAC checks through SelfSubjectAccessReviews and one SelfSubjectRulesReview: non-persistent questions, the
only writes we send."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from preflight.checks import meshery_state as ms
from preflight.engine import access, provider
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, error, fail, not_applicable, passed, warn
from preflight.engine.permissions import reads
from preflight.engine.registry import check

# (group, resource) MeshSync informs on, cluster-wide (nodes are rbac.node-watch's).
DISCOVERY = (
    ("", "namespaces"),
    ("", "pods"),
    ("", "services"),
    ("", "configmaps"),
    ("", "serviceaccounts"),
    ("", "persistentvolumes"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("networking.k8s.io", "ingresses"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
)
# (verb, group, resource, namespaced) the Operator's install needs.
OPERATOR_DEPLOY = (
    ("create", "", "namespaces", False),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", False),
    ("create", "rbac.authorization.k8s.io", "clusterroles", False),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", False),
    ("create", "apps", "deployments", True),
    ("create", "", "services", True),
    ("create", "", "serviceaccounts", True),
    ("create", "", "secrets", True),
    ("create", "", "configmaps", True),
    ("create", "meshery.io", "brokers", True),
    ("create", "meshery.io", "meshsyncs", True),
)
CLOUD = provider.CLOUDS


def _ask(ctx: ClusterContext, question: access.Question) -> bool | None:
    verb, group, resource, namespace = question
    return ctx.api().can(verb, resource, group, namespace)


def _rules_review(ctx: ClusterContext) -> access.RulesReview | None:
    """One rules review per cluster, in Meshery's namespace: the namespaced questions are asked there."""
    namespace = ms.ns(ctx)
    return access.RulesReview.from_status(namespace, ctx.api().rules(namespace))


def _reviews(ctx: ClusterContext, asks: Sequence[access.Question]) -> dict[tuple[str, ...], Any]:
    """Answer several access questions; each answer is True, False or None (no answer).

    The cluster's rules review and its review of everything (both asked once per cluster, whichever
    check comes first) answer what they answer exactly (preflight.engine.access); the rest are asked at once.
    The first two are asked one after the other on the client's kept-alive connection: asking them at once
    would open a second connection, a TLS handshake that costs more CPU and round trips than it saves.
    """
    review = ctx.memo("rbac.rules-review", lambda: _rules_review(ctx))
    everything = ctx.memo("rbac.everything", lambda: _ask(ctx, access.EVERYTHING))
    known = {access.EVERYTHING: everything}
    rest = [q for q in dict.fromkeys(asks) if q not in known]
    decided = {q: access.decide(q, everything, review) for q in rest}
    left = [q for q, answer in decided.items() if answer is None]
    known.update(decided)
    if len(left) == 1:
        known[left[0]] = _ask(ctx, left[0])
    elif left:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="review") as pool:
            known.update(zip(left, pool.map(lambda q: _ask(ctx, q), left), strict=True))
    return {tuple(str(x) for x in a): known[a] for a in asks}


def _label(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


@check(
    id="rbac.discovery",
    permissions=tuple(reads(r, g, verbs=("list", "watch")) for g, r in DISCOVERY),
    title="Credential can list and watch what MeshSync discovers",
    category="rbac",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation="Bind the context's identity to a ClusterRole with get, list and watch on the missing resources "
    "(Meshery's chart ships one), cluster-wide.",
    timeout_factor=4.0,
)
def discovery(ctx: ClusterContext) -> Finding:
    """MeshSync's informers need list and watch cluster-wide; a missing verb means a silent gap in discovery."""
    asks = [(verb, g, r, None) for g, r in DISCOVERY for verb in ("list", "watch")]
    answers = _reviews(ctx, asks)
    if any(v is None for v in answers.values()):
        return error("the API did not answer SelfSubjectAccessReviews", remediation="Check kube-api.auth.")
    missing: dict[str, list[str]] = {}
    for (verb, g, r, _ns), allowed in answers.items():
        if not allowed:
            missing.setdefault(_label(g, r), []).append(verb)
    if missing:
        listed = "; ".join(f"{res}: {', '.join(v)}" for res, v in missing.items())
        return fail(f"missing cluster-wide: {listed}", reason="rbac_denied", missing=missing, reviewed=len(asks))
    return passed(f"list and watch allowed on all {len(DISCOVERY)} discovered resource types", reviewed=len(asks))


@check(
    id="rbac.operator-deploy",
    meshery_code="operator_deploy_failed",
    title="Credential can install the Operator and Broker (operator mode)",
    category="rbac",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation="In operator mode Meshery installs the Operator, its CRDs and RBAC: grant the missing rights to "
    "the context's identity, or pre-install meshery-operator with Helm and use a narrower credential.",
)
def operator_deploy(ctx: ClusterContext) -> Finding:
    """Meshery deploys the Operator itself on connection; without these rights the deploy fails half-way."""
    if ms.effective_mode(ctx) != "operator" or ctx.settings.disable_operator:
        not_applicable("embedded mode (or DISABLE_OPERATOR): Meshery deploys nothing into the cluster")
    namespace = ms.ns(ctx)
    asks = [(v, g, r, namespace if namespaced else None) for v, g, r, namespaced in OPERATOR_DEPLOY]
    answers = _reviews(ctx, asks)
    if any(v is None for v in answers.values()):
        return error("the API did not answer SelfSubjectAccessReviews")
    missing = [
        f"{v} {_label(g, r)}" + (f" in {n}" if n != "None" else "") for (v, g, r, n), ok in answers.items() if not ok
    ]
    if missing:
        return fail(f"cannot {'; '.join(missing)}", reason="rbac_denied", missing=missing)
    return passed(f"allowed to create all {len(asks)} kinds of object the Operator's install needs")


def _detection(ctx: ClusterContext, can_list: bool) -> provider.Detection:
    """The kubeconfig and fleet file first; the nodes only when nothing there decides and they may be read."""
    found = provider.detect(ctx.target)
    if found.decided_by is None and can_list:
        sig = provider.node_signal(ms.nodes(ctx) or [])
        if sig:
            found = provider.decide([sig])
            ctx.target.provider = found.provider
    return found


def _declare_fix(ctx: ClusterContext) -> str:
    return (
        "Declare the cluster's provider in the fleet file (clusters: - context: "
        f"{json.dumps(ctx.target.name)} provider: eks | gke | aks, or other for a self-managed cluster); on EKS, "
        "GKE and AKS also set rbac.nodes: true in Meshery's Helm values (or bind list and watch on nodes)."
    )


@check(
    id="rbac.node-watch",
    permissions=(reads("nodes", verbs=("list", "watch")),),
    title="Node list and watch where the cloud needs it (rbac.nodes)",
    category="rbac",
    severity=Severity.MEDIUM,
    depends_on=("kube-api.auth",),
    remediation="Set rbac.nodes: true in Meshery's Helm values for this cluster (it grants node list/watch) or bind "
    "a ClusterRole with list and watch on nodes. Grant it only where needed.",
)
def node_watch(ctx: ClusterContext) -> Finding:
    """On EKS, GKE and AKS full discovery needs node watch; an informer needs list as well as watch. The cloud
    comes from the fleet file, the kubeconfig's conventions or the nodes; when none tells, this warns rather
    than assume a self-managed cluster."""
    answers = _reviews(ctx, [("list", "", "nodes", None), ("watch", "", "nodes", None)])
    can_list, can_watch = answers[("list", "", "nodes", "None")], answers[("watch", "", "nodes", "None")]
    if can_list is None or can_watch is None:
        return error("the API did not answer SelfSubjectAccessReviews")
    found = _detection(ctx, bool(can_list))
    name = found.provider
    evidence = {**found.as_evidence(), "list": can_list, "watch": can_watch}
    conflicts = "; ".join(f"{s.source} {s.value!r} says {s.provider.upper()}" for s in found.conflicts)
    note = f" (conflicting signals: {conflicts})" if conflicts else ""
    if can_watch and not can_list:
        return fail(
            "watch on nodes is granted without list: an informer cannot start" + note, reason="rbac_denied", **evidence
        )
    if name in CLOUD:
        why = f"{CLOUD[name]} cluster ({found.reason})"
        if not (can_list and can_watch):
            return fail(
                f"{why} without node list/watch: discovery will be incomplete{note}", reason="rbac_denied", **evidence
            )
        return passed(f"{why}: node list and watch granted{note}", **evidence)
    if can_list and can_watch:
        return passed("node list and watch granted" + note, **evidence)
    if name == "unknown":
        return warn(
            "cannot tell whether this is an EKS, GKE or AKS cluster (nothing in the kubeconfig says, and nodes "
            "cannot be read): there, discovery needs node list/watch, which this credential lacks",
            remediation=_declare_fix(ctx),
            **evidence,
        )
    return passed(
        f"node watch not granted: fine on a self-managed cluster ({found.reason}; grant only where needed){note}",
        **evidence,
    )


@check(
    id="rbac.least-privilege",
    title="Credential is not allowed everything",
    category="rbac",
    severity=Severity.MEDIUM,
    depends_on=("kube-api.auth",),
    remediation="Give Meshery a credential scoped to what it needs (read for discovery; install rights only in "
    "operator mode) instead of cluster-admin.",
)
def least_privilege(ctx: ClusterContext) -> Finding:
    """A cluster-admin credential in Meshery's kubeconfig folder turns a Server compromise into a cluster one."""
    answers = _reviews(ctx, [("*", "*", "*", None)])
    allowed = next(iter(answers.values()))
    if allowed is None:
        return error("the API did not answer SelfSubjectAccessReviews")
    if allowed:
        return warn("the credential may do everything on everything (cluster-admin or equivalent)", star=True)
    return passed("the credential is not allowed everything", star=False)
