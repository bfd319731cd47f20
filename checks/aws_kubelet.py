"""aws.kubelet-path: the security group or NACL rule that keeps an EKS control plane from a node's kubelet.

broker.port-forward reports the symptom in the API server's words (`dial tcp <node>:10250: i/o timeout`);
this reads the account and names the rule. The control plane reaches a kubelet from network interfaces in
the cluster's subnets that carry the cluster security group (and the cluster's additional groups): the
node's security groups must admit tcp/10250 from one of those groups (a reference) or from those subnets
(a CIDR), evaluated together as AWS does (union); the NACLs, stateless and first match by rule number, must
pass the connection and its replies on both ends (the node's subnet and the control plane's subnets).
Every read is one the other EKS checks share.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from preflight.checks.aws import _PREPARE, TIMEOUT_FACTOR, _account, _numbers, _probe, _rule_number, _where
from preflight.checks.broker_path import kubelet_unreachable
from preflight.checks.cloud_common import require
from preflight.cloud import aws
from preflight.cloud.identity import CloudIds
from preflight.cloud.rules import FIRST_MATCH, UNION, Verdict, describe, evaluate
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, fail, not_applicable, passed
from preflight.engine.registry import check

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
    cluster security group and subnets), the instance with the node's address, its security groups and the
    NACLs of its subnet and the cluster's, and names the deciding rule with the command that fixes it. Not
    applicable unless the forward failed that way (it runs after broker.port-forward)."""
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
    return _network_acl(acct, node, cfg.subnet_ids, plane_cidrs, dial.node_ip, what, refused, ev)


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


def _free_number(n: int, taken: set[int]) -> int:
    """``n``, or the next lower number no earlier fix took (two entries of one ACL cannot share a number)."""
    while n in taken and n > 1:
        n -= 1
    taken.add(n)
    return n


_Hop = tuple[aws.NetworkAcl, bool, str, bool, tuple[int, int], list[str], str]


def _hops(
    acct: aws.AwsSession, node: aws.Instance, subnet_ids: list[str], plane_cidrs: list[str], ip: str
) -> list[_Hop]:
    """Each NACL crossing of the connection and its replies: (acl, explicit, role, egress, ports, peers, what).

    On the node's subnet 10250 comes in from the control plane's subnets and the replies go out to them; on
    each control-plane subnet 10250 goes out to the node and the replies come back (NACLs are stateless)."""
    hops: list[_Hop] = []
    seen: set[tuple[str, str]] = set()
    kubelet, replies = (KUBELET_PORT, KUBELET_PORT), aws.EPHEMERAL
    node_cidr = [f"{ip}/32"]
    sides = [(node.subnet_id, "node subnet", False)] + [(s, "control plane subnet", True) for s in subnet_ids]
    for subnet, role, plane in sides:
        if not subnet:
            continue
        acl, explicit = aws.acl_for_subnet(acct, subnet, node.vpc_id)
        if acl is None or (acl.id, role) in seen:
            continue
        seen.add((acl.id, role))
        if plane:
            hops.append(
                (acl, explicit, role, True, kubelet, node_cidr, f"outbound tcp/{KUBELET_PORT} to the node {ip}")
            )
            hops.append(
                (
                    acl,
                    explicit,
                    role,
                    False,
                    replies,
                    node_cidr,
                    f"replies from the node on tcp {replies[0]}-{replies[1]}",
                )
            )
        else:
            peers = ", ".join(plane_cidrs)
            hops.append((acl, explicit, role, False, kubelet, plane_cidrs, f"inbound tcp/{KUBELET_PORT} from {peers}"))
            hops.append(
                (acl, explicit, role, True, replies, plane_cidrs, f"replies to them on tcp {replies[0]}-{replies[1]}")
            )
    return hops


def _network_acl(
    acct: aws.AwsSession,
    node: aws.Instance,
    subnet_ids: list[str],
    plane_cidrs: list[str],
    dial_ip: str,
    what: str,
    refused: str,
    ev: dict[str, Any],
) -> Finding:
    """The NACLs of the node's subnet and of the control plane's subnets, for the connection and its replies."""
    allowed_by = ", ".join(ev.get("allowed_by") or [])
    if not plane_cidrs:
        return passed(
            f"{what} is admitted by {allowed_by}; the network ACLs cannot be judged (the cluster's subnets are "
            f"unknown).{refused}",
            **ev,
        )
    bad: list[str] = []
    fixes: list[str] = []
    crossings: list[dict[str, Any]] = []
    taken: dict[tuple[str, bool], set[int]] = defaultdict(set)  # numbers the fixes already use, per ACL and way
    for acl, explicit, role, egress, (lo, hi), peers, text in _hops(acct, node, subnet_ids, plane_cidrs, dial_ip):
        rules = aws.nacl_rules(acl, egress=egress)
        direction = "egress" if egress else "ingress"
        verdict = evaluate(
            rules, peers, lo, semantics=FIRST_MATCH, port_range=None if lo == hi else (lo, hi), direction=direction
        )
        crossings.append(
            {
                "network_acl": acl.label(),
                "association": "explicit" if explicit else "implicit (the VPC's default NACL)",
                "role": role,
                "direction": direction,
                **verdict.as_evidence(),
            }
        )
        if verdict.state == "allowed":
            continue
        bad.append(f"{acl.label()} ({role}): {describe(verdict, text).replace(f'{acl.label()}: ', '')}")
        for c in verdict.blocked:
            n = _free_number(_rule_number(acl, egress, _numbers(verdict.deciding, rules)), taken[(acl.id, egress)])
            fixes.append(
                f"aws ec2 create-network-acl-entry --network-acl-id {acl.id} --{direction} --rule-number {n} "
                f"--protocol tcp --port-range From={lo},To={hi} --cidr-block {c} --rule-action allow"
            )
    ev["network_acls"] = crossings
    if not bad:
        elsewhere = (
            ""
            if refused
            else " The account lets it through: look at the node itself (its host firewall, the kubelet's address)."
        )
        acls = ", ".join(dict.fromkeys(c["network_acl"] for c in crossings)) or "none found"
        return passed(
            f"{what} is admitted by {allowed_by}, and the network ACLs ({acls}) pass it and its replies.{elsewhere}"
            f"{refused}",
            **ev,
        )
    return fail(
        f"{what} is admitted by its security groups ({allowed_by}), but a network ACL drops it: {'; '.join(bad)}."
        f"{refused}",
        remediation="Add entries below the deny (NACLs are stateless: the replies need their own):\n"
        + "\n".join(dict.fromkeys(fixes)),
        **ev,
    )
