"""aws.kubelet-path: the security group or NACL rule that keeps an EKS control plane from a node's kubelet.

broker.port-forward reports the symptom in the API server's words (`dial tcp <node>:10250: i/o timeout`);
this reads the account and names the rule. The control plane reaches a kubelet from network interfaces in
the cluster's subnets that carry the cluster security group (and the cluster's additional groups): the
node's security groups must admit tcp/10250 from one of those groups (a reference) or from those subnets
(a CIDR), evaluated together as AWS does (union), and the node subnet's NACL must let the connection in
and its replies out (first match by rule number). Every read is one the other EKS checks share.
"""

from __future__ import annotations

from typing import Any

from preflight.checks.aws import _PREPARE, TIMEOUT_FACTOR, _account, _numbers, _probe, _rule_number, _where
from preflight.checks.broker_path import kubelet_unreachable
from preflight.checks.cloud_common import require
from preflight.cloud import aws
from preflight.cloud.identity import CloudIds
from preflight.cloud.rules import FIRST_MATCH, UNION, Verdict, describe, evaluate
from preflight.context import ClusterContext
from preflight.model import Finding, Severity, fail, not_applicable, passed
from preflight.registry import check

KUBELET_PORT = 10250


@check(
    id="aws.kubelet-path",
    prepare=_PREPARE,
    title="EKS security groups and NACLs let the control plane reach the kubelet",
    category="aws",
    severity=Severity.HIGH,
    depends_on=("kube-api.auth",),
    remediation="Allow tcp/10250 from the cluster security group into the node's security group: aws ec2 "
    "authorize-security-group-ingress --group-id <node-sg> --protocol tcp --port 10250 --source-group "
    "<cluster-sg>; and, where a network ACL denies it, an entry below the deny for tcp 10250 in from the "
    "cluster's subnets and tcp 1024-65535 back out to them.",
    timeout_factor=TIMEOUT_FACTOR,
)
def kubelet_path(ctx: ClusterContext) -> Finding:
    """When broker.port-forward failed because the API server could not dial the node's kubelet (tcp/10250),
    the cause on EKS is nearly always the account: node groups made by hand whose security group does not
    admit the cluster security group, or a NACL that drops 10250 or the replies. Reads the cluster (its
    cluster security group and subnets), the instance with the node's address, its security groups and its
    subnet's NACL, and names the deciding rule with the command that fixes it. Not applicable unless the
    forward failed that way (it runs after broker.port-forward)."""
    return _probe(ctx, _kubelet_path, broker=True)


def _kubelet_path(ctx: ClusterContext, ids: CloudIds) -> Finding:
    _forward, dial = kubelet_unreachable(ctx)
    name = ids.get("cluster_name")
    if not name:
        require(
            ids,
            "the EKS cluster name is unknown",
            "set clusters[].aws.cluster_name in the fleet file (or use the kubeconfig from aws eks update-kubeconfig)",
        )
    acct = _account(ctx, ids)
    cfg = aws.endpoint_config(aws.describe_cluster(acct, name))
    plane_groups = list(dict.fromkeys(g for g in (cfg.cluster_security_group_id, *cfg.security_group_ids) if g))
    known = aws.subnets(acct)
    plane_cidrs = [str(known[s]["CidrBlock"]) for s in cfg.subnet_ids if (known.get(s) or {}).get("CidrBlock")]
    ev: dict[str, Any] = {
        "cluster": name,
        **_where(acct),
        **dial.as_evidence(),
        "control_plane_security_groups": plane_groups,
        "cluster_security_group": cfg.cluster_security_group_id,
        "control_plane_subnet_cidrs": plane_cidrs,
    }
    node = aws.instance_with_ip(acct, dial.node_ip)
    if node is None:
        not_applicable(
            f"no EC2 instance of account {acct.account} in {acct.region} has the node address {dial.node_ip} "
            "(a Fargate pod, or a node of another account or region): no security group to read",
            **ev,
        )
    ev.update(node_instance=node.id, node_security_groups=node.security_group_ids, node_subnet=node.subnet_id)
    what = f"tcp/{KUBELET_PORT} from the control plane to node {node.id} ({dial.node_ip})"
    refused = (
        " The API server was refused, not timed out: a reset comes from the node itself (the kubelet is not "
        "listening, or the node's own firewall rejects), which no security group or NACL sends."
        if dial.how == "refused"
        else ""
    )
    blocked = _security_groups(acct, node, plane_groups, plane_cidrs, ev)
    if blocked is not None:
        source = cfg.cluster_security_group_id or (plane_groups[0] if plane_groups else "<cluster-sg>")
        own = [g for g in node.security_group_ids if g not in plane_groups] or node.security_group_ids
        command = (
            f"aws ec2 authorize-security-group-ingress --group-id {own[0] if own else '<node-sg>'} --protocol tcp "
            f"--port {KUBELET_PORT} --source-group {source}"
        )
        return fail(
            f"{what} is blocked by its security groups: {blocked}.{refused}",
            remediation=f"Let the cluster security group reach the kubelet:\n{command}",
            **ev,
        )
    return _network_acl(acct, node, plane_cidrs, what, refused, ev)


def _security_groups(
    acct: aws.AwsSession, node: aws.Instance, plane_groups: list[str], plane_cidrs: list[str], ev: dict[str, Any]
) -> str | None:
    """None when a node group admits 10250 from a control-plane group or from every control-plane subnet;
    else why not, naming what there is for 10250."""
    groups = aws.security_groups(acct)
    references = [r for g in node.security_group_ids if g in groups for r in aws.reference_rules(groups[g])]
    admitting = [
        r.label() for r in references if set(r.sources) & set(plane_groups) and r.covers_port(KUBELET_PORT, "tcp")
    ]
    rules, _notes, missing = aws.group_rules(acct, node.security_group_ids)
    cidr: Verdict | None = evaluate(rules, plane_cidrs, KUBELET_PORT, semantics=UNION) if plane_cidrs else None
    ev.update(
        admitting_references=admitting,
        cidr_verdict=cidr.as_evidence() if cidr else None,
        **({"security_groups_not_found": missing} if missing else {}),
    )
    labels = ", ".join(groups[g].label() if g in groups else g for g in node.security_group_ids) or "none"
    if admitting:
        ev["allowed_by"] = admitting
        return None
    if cidr is not None and cidr.state == "allowed":
        ev["allowed_by"] = cidr.deciding
        return None
    for_port = [r.label() for r in [*references, *rules] if r.covers_port(KUBELET_PORT, "tcp")]
    near = f"; rules for tcp/{KUBELET_PORT}: {', '.join(for_port)}" if for_port else ""
    partly = (
        f"; from the cluster's subnets only {', '.join(cidr.allowed)} is admitted"
        if cidr is not None and cidr.state == "partial"
        else ""
    )
    return (
        f"no rule of {labels} admits it from the control plane's security groups "
        f"({', '.join(plane_groups) or 'none reported'}) or subnets ({', '.join(plane_cidrs) or 'unknown'})"
        f"{near}{partly}"
    )


def _network_acl(
    acct: aws.AwsSession, node: aws.Instance, plane_cidrs: list[str], what: str, refused: str, ev: dict[str, Any]
) -> Finding:
    """The node subnet's NACL, both ways: 10250 in from the control plane's subnets, the replies out to them."""
    allowed_by = ", ".join(ev.get("allowed_by") or [])
    if not node.subnet_id or not plane_cidrs:
        return passed(
            f"{what} is admitted by {allowed_by}; the network ACL cannot be judged (node subnet or the cluster's "
            f"subnets unknown).{refused}",
            **ev,
        )
    acl, explicit = aws.acl_for_subnet(acct, node.subnet_id, node.vpc_id)
    if acl is None:
        return passed(f"{what} is admitted by {allowed_by}; no network ACL found for {node.subnet_id}.{refused}", **ev)
    inbound_rules, outbound_rules = aws.nacl_rules(acl, egress=False), aws.nacl_rules(acl, egress=True)
    inbound = evaluate(inbound_rules, plane_cidrs, KUBELET_PORT, semantics=FIRST_MATCH)
    outbound = evaluate(
        outbound_rules, plane_cidrs, 0, semantics=FIRST_MATCH, port_range=aws.EPHEMERAL, direction="egress"
    )
    ev["network_acl"] = {
        "id": acl.label(),
        "association": "explicit" if explicit else "implicit (the VPC's default NACL)",
        "subnet": node.subnet_id,
        "inbound": inbound.as_evidence(),
        "outbound_replies": outbound.as_evidence(),
    }
    ins = describe(inbound, f"inbound tcp/{KUBELET_PORT} from {', '.join(plane_cidrs)}")
    outs = describe(outbound, f"replies to them on tcp {aws.EPHEMERAL[0]}-{aws.EPHEMERAL[1]}")
    if inbound.state == "allowed" and outbound.state == "allowed":
        elsewhere = (
            ""
            if refused
            else " The account lets it through: look at the node itself (its host firewall, the kubelet's address)."
        )
        return passed(f"{what} is admitted by {allowed_by}; {ins}; {outs}.{elsewhere}{refused}", **ev)
    fixes = []
    if inbound.state != "allowed":
        n = _rule_number(acl, False, _numbers(inbound.deciding, inbound_rules))
        fixes += [
            f"aws ec2 create-network-acl-entry --network-acl-id {acl.id} --ingress --rule-number {n} --protocol tcp "
            f"--port-range From={KUBELET_PORT},To={KUBELET_PORT} --cidr-block {c} --rule-action allow"
            for c in inbound.blocked
        ]
    if outbound.state != "allowed":
        n = _rule_number(acl, True, _numbers(outbound.deciding, outbound_rules))
        fixes += [
            f"aws ec2 create-network-acl-entry --network-acl-id {acl.id} --egress --rule-number {n} --protocol tcp "
            f"--port-range From={aws.EPHEMERAL[0]},To={aws.EPHEMERAL[1]} --cidr-block {c} --rule-action allow"
            for c in outbound.blocked
        ]
    return fail(
        f"{what} is admitted by its security groups ({allowed_by}), but the network ACL of its subnet "
        f"{node.subnet_id} drops it: {ins}; {outs}.{refused}",
        remediation="Add entries below the deny (NACLs are stateless: the replies need their own):\n"
        + "\n".join(fixes),
        **ev,
    )
