"""aws.kubelet-path end to end: lab clusters whose API server cannot dial the node's kubelet (the real `kubernetes`
client's port-forward gets kube-apiserver's `error dialing backend` answer), EKS accounts in moto read through
real boto3, and the real pipeline. A blocking account names the security group or NACL rule and the command;
an allowing one passes; the check does not apply when the forward worked or failed for another cause."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import preflight.checks.aws_kubelet  # noqa: F401  (registers the check whether or not checks/__init__ lists it)
from preflight_lab.addresses import allocate
from preflight_lab.aws import DEFAULT_NODE_RULES, AclEntry, AwsLab, EksLabCluster, EksSetup, SgRule
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from tests.runlab import result, run

CHECK = "aws.kubelet-path"
VPC = "10.77.0.0/16"  # kl-cidr's VPC: the control plane's subnets are inside it
TO_CLUSTER = SgRule((10250, 10250), group="cluster", description="control plane to kubelet")
ALLOW_ALL_IN = AclEntry(100, "allow", "0.0.0.0/0", protocol="-1")
ALLOW_ALL_OUT = AclEntry(100, "allow", "0.0.0.0/0", protocol="-1", egress=True)

SETUPS = {
    # Hand-made node group: its group admits the LB and itself, the cluster group has no rule: blocked.
    "kl-blocked": EksSetup("kl-blocked", lb=None),
    "kl-node-rule": EksSetup("kl-node-rule", lb=None, node_sg_rules=(*DEFAULT_NODE_RULES, TO_CLUSTER)),
    # EKS's own default: the cluster group admits everything from itself, and the nodes carry it.
    "kl-cluster-self": EksSetup(
        "kl-cluster-self", lb=None, cluster_sg_rules=(SgRule(None, group="self", protocol="-1"),)
    ),
    "kl-cidr": EksSetup(
        "kl-cidr", lb=None, vpc_cidr=VPC, node_sg_rules=(*DEFAULT_NODE_RULES, SgRule((10250, 10250), cidr=VPC))
    ),
    "kl-nacl": EksSetup(
        "kl-nacl",
        lb=None,
        vpc_cidr="10.78.0.0/16",
        node_sg_rules=(*DEFAULT_NODE_RULES, TO_CLUSTER),
        nacl_inbound=(AclEntry(90, "deny", "10.78.0.0/16", (10250, 10250)), ALLOW_ALL_IN),
        nacl_outbound=(ALLOW_ALL_OUT,),
        nacl_on="private",
    ),
    # The control plane's side: its subnets' NACL lets nothing out to 10250.
    "kl-nacl-plane": EksSetup(
        "kl-nacl-plane",
        lb=None,
        node_sg_rules=(*DEFAULT_NODE_RULES, TO_CLUSTER),
        nacl_inbound=(ALLOW_ALL_IN,),
        nacl_outbound=(AclEntry(90, "deny", "0.0.0.0/0", (10250, 10250), egress=True), ALLOW_ALL_OUT),
        nacl_on="public",
    ),
    "kl-no-cluster-sg": EksSetup("kl-no-cluster-sg", lb=None, report_cluster_sg=False),
    "kl-refused": EksSetup("kl-refused", lb=None),
    "kl-forward-ok": EksSetup("kl-forward-ok", lb=None),
    "kl-other-cause": EksSetup("kl-other-cause", lb=None),
}
KUBELET = {"kl-refused": "refused", "kl-forward-ok": "reachable"}


def _meshery(c: EksLabCluster) -> MesherySetup:
    """A ClusterIP Broker on the instance's node: the port-forward is the Server's only path."""
    return MesherySetup(
        service_type="ClusterIP",
        broker_address=allocate(NATS_PORT),
        kubelet=KUBELET.get(c.name, "timeout"),
        nats_pod="crashloop" if c.name == "kl-other-cause" else "running",
        node_internal_ips=(c.private_ips[0],),
        node_provider_id=c.provider_ids[0],
    )


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsLab]:
    """moto on loopback; the process environment carries only the lab's AWS settings."""
    home = tmp_path_factory.mktemp("aws-home")
    with pytest.MonkeyPatch.context() as mp, AwsLab() as lab:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                mp.delenv(key)
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        for key, value in lab.env().items():
            mp.setenv(key, value)
        yield lab


@pytest.fixture(scope="module")
def world(aws_env: AwsLab, tmp_path_factory: pytest.TempPathFactory):
    seeded = {name: aws_env.add(s) for name, s in SETUPS.items()}
    specs = [ClusterSpec(name=name, meshery=_meshery(c)) for name, c in seeded.items()]
    specs.append(
        ClusterSpec(name="not-eks", meshery=MesherySetup(broker_address=allocate(NATS_PORT), kubelet="timeout"))
    )
    directory = tmp_path_factory.mktemp("aws-kubelet")
    with LabFleet(specs, directory) as fleet:
        doc = fleet.fleet_document()
        doc["kubeconfig"] = [str(fleet.kubeconfig_path)]
        for entry in doc["clusters"]:
            c = seeded.get(entry["context"])
            if c is not None:
                entry.update(provider="eks", aws=c.aws_ids())
        path = directory / "fleet-eks.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield aws_env, path, seeded


@pytest.fixture(scope="module")
def report(world):
    aws_env, path, _seeded = world
    aws_env.clear_requests()
    return run(
        fleet=str(path),
        include=["broker.port-forward", CHECK],
        broker_port_forward=True,
        connect_timeout=1.5,
        parallel=8,
    )


def res(report: Any, cluster: str) -> Any:
    return result(report, cluster, CHECK)


def test_the_forward_fails_on_the_kubelet_and_names_the_node_address(report, world) -> None:
    _lab, _path, seeded = world
    forward = result(report, "kl-blocked", "broker.port-forward")
    assert forward.status.value == "fail" and forward.evidence["cause"] == "kubelet-unreachable"
    assert forward.evidence["node_ip"] == seeded["kl-blocked"].private_ips[0]
    assert forward.evidence["kubelet_dial"] == "timeout" and forward.evidence["kubelet_port"] == 10250
    assert "aws.kubelet-path names the rule that decides" in forward.remediation


def test_node_groups_without_the_cluster_group_block_naming_them_and_the_command(report, world) -> None:
    _lab, _path, seeded = world
    c = seeded["kl-blocked"]
    r = res(report, "kl-blocked")
    assert r.status.value == "fail", r.message
    assert f"tcp/10250 from the control plane to node {c.instance_ids[0]} ({c.private_ips[0]})" in r.message
    assert "is blocked by its security groups" in r.message
    assert c.node_sg in r.message and c.cluster_sg in r.message
    assert (
        f"aws ec2 authorize-security-group-ingress --group-id {c.node_sg} --protocol tcp --port 10250 "
        f"--source-group {c.cluster_sg}"
    ) in r.remediation
    assert r.evidence["cluster_security_group"] == c.cluster_sg
    assert r.evidence["node_instance"] == c.instance_ids[0]
    assert r.evidence["admitting_references"] == []


def test_a_node_rule_referencing_the_cluster_group_allows_and_is_named(report, world) -> None:
    _lab, _path, seeded = world
    c = seeded["kl-node-rule"]
    r = res(report, "kl-node-rule")
    assert r.status.value == "pass", r.message
    assert f"{c.node_sg}" in r.message and f"tcp 10250 from security group {c.cluster_sg}" in r.message
    assert "look at the node itself" in r.message  # the account is not the cause: where to look instead


def test_the_cluster_groups_own_self_reference_allows_nodes_that_carry_it(report, world) -> None:
    _lab, _path, seeded = world
    c = seeded["kl-cluster-self"]
    r = res(report, "kl-cluster-self")
    assert r.status.value == "pass", r.message
    assert f"all traffic from security group {c.cluster_sg}" in r.message


def test_a_cidr_rule_covering_the_clusters_subnets_allows(report) -> None:
    r = res(report, "kl-cidr")
    assert r.status.value == "pass", r.message
    assert "tcp 10250 from 10.77.0.0/16" in r.message
    assert r.evidence["cidr_verdict"]["verdict"] == "allowed"


def test_a_nacl_deny_below_the_allow_blocks_naming_the_rule_and_the_entry_to_add(report, world) -> None:
    _lab, _path, seeded = world
    c = seeded["kl-nacl"]
    r = res(report, "kl-nacl")
    assert r.status.value == "fail", r.message
    assert c.custom_nacl and c.custom_nacl in r.message
    assert "rule 90 (deny tcp 10250 from 10.78.0.0/16)" in r.message
    assert "admitted by its security groups" in r.message
    assert f"aws ec2 create-network-acl-entry --network-acl-id {c.custom_nacl} --ingress --rule-number 89" in (
        r.remediation
    )
    assert "--port-range From=10250,To=10250" in r.remediation
    # The same ACL also drops the replies on the control plane's side (1024-65535 includes 10250): a second
    # inbound entry, numbered apart from the first.
    replies = (
        f"--ingress --rule-number 88 --protocol tcp --port-range From=1024,To=65535 --cidr-block {c.private_ips[0]}/32"
    )
    assert replies in r.remediation


def test_a_nacl_on_the_control_planes_subnets_dropping_10250_out_is_named(report, world) -> None:
    _lab, _path, seeded = world
    c = seeded["kl-nacl-plane"]
    r = res(report, "kl-nacl-plane")
    assert r.status.value == "fail", r.message
    ip = c.private_ips[0]
    assert (
        f"{c.custom_nacl} (control plane subnet): outbound tcp/10250 to the node {ip} blocked by rule 90" in r.message
    )
    assert "(node subnet)" not in r.message  # the node's own subnet has the default NACL, which passes it
    assert (
        f"aws ec2 create-network-acl-entry --network-acl-id {c.custom_nacl} --egress --rule-number 89 --protocol tcp "
        f"--port-range From=10250,To=10250 --cidr-block {ip}/32 --rule-action allow"
    ) in r.remediation


def test_without_a_reported_cluster_group_the_additional_groups_stand_for_it(report, world) -> None:
    _lab, _path, seeded = world
    c = seeded["kl-no-cluster-sg"]
    r = res(report, "kl-no-cluster-sg")
    assert r.evidence["cluster_security_group"] is None
    assert r.evidence["control_plane_security_groups"] == [c.cluster_sg]  # securityGroupIds
    assert r.status.value == "fail" and f"--source-group {c.cluster_sg}" in r.remediation


def test_a_refused_dial_says_the_node_itself_answered(report) -> None:
    r = res(report, "kl-refused")
    assert r.status.value == "fail"
    assert r.evidence["kubelet_dial"] == "refused"
    assert "a reset comes from the node itself" in r.message


def test_not_applicable_when_the_forward_works_failed_otherwise_or_the_cluster_is_not_eks(report) -> None:
    assert result(report, "kl-forward-ok", "broker.port-forward").status.value == "pass"
    ok = res(report, "kl-forward-ok")
    assert ok.status.value == "skip" and "the port-forward works" in ok.message
    other = res(report, "kl-other-cause")
    assert other.status.value == "skip" and "failed for another cause (CrashLoopBackOff" in other.message
    plain = res(report, "not-eks")
    assert plain.status.value == "skip" and "not an EKS cluster" in plain.message


def test_not_applicable_with_the_forward_off(world) -> None:
    _lab, path, _seeded = world
    rep = run(
        fleet=str(path),
        contexts=["kl-blocked"],
        include=["broker.port-forward", CHECK],
        env={"MESHERY_MANAGED_BROKER_PORTFORWARD": "false"},
    )
    r = result(rep, "kl-blocked", CHECK)
    assert r.status.value == "skip", r.message
    assert "the managed port-forward is off (MESHERY_MANAGED_BROKER_PORTFORWARD=false)" in r.message


def test_each_describe_is_sent_once_per_run_for_every_cluster_of_the_account(report, world) -> None:
    aws_env, _path, seeded = world
    calls: dict[str, int] = {}
    for name in seeded:
        for op, n in res(report, name).evidence.get("aws_api_calls_by_operation", {}).items():
            calls[op] = max(calls.get(op, 0), n)
    judged = [n for n in seeded if res(report, n).status.value in ("pass", "fail")]
    assert len(judged) == 8
    assert calls.pop("eks.DescribeCluster") == len(judged)  # a per-cluster describe
    assert calls and all(n == 1 for n in calls.values()), calls
    assert {
        "ec2.DescribeInstances",
        "ec2.DescribeSecurityGroups",
        "ec2.DescribeSubnets",
        "ec2.DescribeNetworkAcls",
    } <= (set(calls))
    assert set(aws_env.requests()) <= {"eks", "ec2", "sts"}


def test_references_and_private_addresses_from_real_aws_answer_shapes() -> None:
    from preflight.cloud import aws

    group = aws.SecurityGroup(
        "sg-0node",
        "eks-nodes",
        "vpc-1",
        "node group",
        {},
        [
            {
                "IpProtocol": "tcp",
                "FromPort": 10250,
                "ToPort": 10250,
                "UserIdGroupPairs": [{"UserId": "111122223333", "GroupId": "sg-0cluster", "Description": "kubelet"}],
            },
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"UserId": "111122223333", "GroupId": "sg-0node"}]},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
        ],
    )
    refs = aws.reference_rules(group)
    assert [(r.sources, r.covers_port(10250, "tcp")) for r in refs] == [(("sg-0cluster",), True), (("sg-0node",), True)]
    assert refs[0].label() == "sg-0node (eks-nodes): tcp 10250 from security group sg-0cluster (kubelet)"
    assert aws._private_ips(
        {
            "PrivateIpAddress": "10.0.32.4",
            "NetworkInterfaces": [
                {"PrivateIpAddresses": [{"PrivateIpAddress": "10.0.32.4", "Primary": True}]},
                {"PrivateIpAddresses": [{"PrivateIpAddress": "10.0.40.9", "Primary": True}]},
            ],
        }
    ) == ("10.0.32.4", "10.0.40.9")
