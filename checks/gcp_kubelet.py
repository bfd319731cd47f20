"""gcp.kubelet-path: the VPC firewall rule that keeps a private GKE cluster's control plane from a node's kubelet.

broker.port-forward reports the symptom in the API server's words (`dial tcp <node>:10250: i/o timeout`);
this reads the cluster and the VPC's firewall rules and names the rule. A private cluster's control plane
connects to kubelets from its own range (privateClusterConfig.masterIpv4CidrBlock); GKE creates a rule
allowing it to the nodes' tag, and a deny of higher priority, or that rule deleted, blocks the port-forward.
Evaluated as GCP does (lowest priority number wins, deny beats allow at equal priority), with the reads
the other GKE checks share.
"""

from __future__ import annotations

from typing import Any

from preflight.checks import meshery_state as ms
from preflight.checks.broker_path import kubelet_unreachable
from preflight.checks.gcp import _PREPARE, _probe
from preflight.cloud import gcp
from preflight.cloud.rules import PRIORITY, Rule, Verdict, evaluate
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, fail, not_applicable, passed
from preflight.engine.permissions import operator_only, port_forward_only
from preflight.engine.registry import check

KUBELET_PORT = 10250
RULE_NAME = "allow-gke-control-plane-kubelet"


@check(
    id="gcp.kubelet-path",
    permissions=operator_only(port_forward_only(ms.READ_NODES)),
    prepare=_PREPARE,
    title="GKE firewall lets a private control plane reach the kubelet",
    category="gcp",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation="Allow tcp:10250 from the control plane's range (masterIpv4CidrBlock) to the nodes' network tag, "
    "at a higher priority (lower number) than any deny that matches: gcloud compute firewall-rules create "
    f"{RULE_NAME} --network NETWORK --direction INGRESS --priority <below the deny> --source-ranges <control plane "
    "CIDR> --allow tcp:10250 --target-tags <node tag>.",
    timeout_factor=8.0,
)
def kubelet_path(ctx: ClusterContext) -> Finding:
    """When broker.port-forward failed because the API server could not dial the node's kubelet (tcp:10250), a
    private GKE cluster's VPC firewall is the usual cause: GKE's own rule from the control plane's range was
    deleted, or a deny of higher priority shadows it. Reads the cluster (its control plane range and network),
    the VPC's firewall rules and the node's tags and service accounts, and names the deciding rule with the
    command that fixes it. Not applicable unless the forward failed that way (it runs after
    broker.port-forward), nor on clusters without a control plane range."""
    return _probe(ctx, _kubelet_path)


def _node_with_ip(ctx: ClusterContext, ip: str) -> list[dict[str, Any]] | None:
    """The node whose address is ``ip`` (one), every node when none is, None when nodes cannot be listed."""
    nodes = ms.nodes(ctx)
    if nodes is None:
        return None
    mine = [n for n in nodes if any(a.get("address") == ip for a in (n.get("status") or {}).get("addresses") or [])]
    return mine or list(nodes)


def _kubelet_path(ctx: ClusterContext, api: gcp.GcpSession, ids: tuple[str, str, str]) -> Finding:
    _forward, dial = kubelet_unreachable(ctx)
    project, location, name = ids
    cluster = api.cluster(*ids)
    cidr = str(cluster.private_cluster_config.master_ipv4_cidr_block or "")
    if not cidr:
        not_applicable(
            "no control plane range (privateClusterConfig.masterIpv4CidrBlock): not a private cluster with VPC "
            "peering, so no VPC firewall rule stands between the control plane and the kubelets; GKE reaches them "
            "through its konnectivity agents: check `kubectl -n kube-system get pods -l k8s-app=konnectivity-agent`",
            cluster=name,
        )
    net_project, network = gcp.network_of(cluster, project)
    rules = gcp.firewall_rules(api.firewalls(net_project), net_project, network)
    identities = gcp.node_identities(api, cluster, _node_with_ip(ctx, dial.node_ip))
    verdicts = [(i, evaluate(rules, [cidr], KUBELET_PORT, semantics=PRIORITY, target=i.targets)) for i in identities]
    ev: dict[str, Any] = {
        "cluster": name,
        "location": location,
        **dial.as_evidence(),
        "control_plane_cidr": cidr,
        "network": f"projects/{net_project}/global/networks/{network}",
        "ingress_rules": len({r.name for r in rules}),
        "nodes": [i.as_evidence() for i in identities],
        "verdicts": [{"node_pool": i.pool, **v.as_evidence()} for i, v in verdicts],
    }
    what = f"tcp:{KUBELET_PORT} from the control plane ({cidr}) to node {dial.node_ip}"
    bad = [(i, v) for i, v in verdicts if v.state != "allowed"]
    if not bad:
        by = "; ".join(f"node pool {i.pool}: {_rules_text(rules, v.deciding)}" for i, v in verdicts)
        elsewhere = (
            " (refused: the node answered, so the kubelet is not listening or the node's own firewall rejects)"
            if dial.how == "refused"
            else ": the VPC lets it through; look at the node itself or the peering's routes"
        )
        return passed(f"{what} is allowed ({by}){elsewhere}", **ev)
    ident, verdict = bad[0]
    deny = _deny(rules, verdict)
    by = f"by {_rules_text(rules, [deny.label()])}" if deny is not None else "by the implied deny: no rule allows it"
    targets = ", ".join(ident.tags + ident.service_accounts) or "no tags"
    return fail(
        f"{what}, node pool {ident.pool} ({targets}), is blocked {by}",
        remediation=_fix(net_project, network, cidr, ident, deny),
        **ev,
    )


def _deny(rules: list[Rule], verdict: Verdict) -> Rule | None:
    return next((r for label in verdict.deciding for r in rules if r.label() == label and r.action == "deny"), None)


def _rules_text(rules: list[Rule], labels: list[str]) -> str:
    by_label = {r.label(): r for r in rules}
    return ", ".join(
        f"firewall rule {lb} ({by_label[lb].action}, priority {by_label[lb].priority})" if lb in by_label else lb
        for lb in labels
    )


def _fix(net_project: str, network: str, cidr: str, ident: gcp.NodeIdentity, deny: Rule | None) -> str:
    if deny is not None and deny.priority == 0:
        return (
            f"The deny rule {deny.name} has priority 0, which no allow rule can beat: narrow it so it leaves out "
            f"{cidr} (gcloud compute firewall-rules update {deny.name} --project {net_project} --source-ranges ...) "
            "or delete it."
        )
    priority = deny.priority - 1 if deny is not None else gcp.DEFAULT_PRIORITY
    gke_tag = next((t for t in ident.tags if t.startswith("gke-") and t.endswith("-node")), None)
    if gke_tag or ident.tags:
        target = f" --target-tags {gke_tag or ident.tags[0]}"
    elif ident.service_accounts:
        target = f" --target-service-accounts {ident.service_accounts[0]}"
    else:
        target = ""
    command = (
        f"gcloud compute firewall-rules create {RULE_NAME} --project {net_project} --network {network} "
        f"--direction INGRESS --priority {priority} --source-ranges {cidr} --allow tcp:{KUBELET_PORT}{target}"
    )
    return f"Let the control plane reach the kubelets:\n{command}"
