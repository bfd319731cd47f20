"""EKS cloud checks end to end: the real pipeline, real boto3, moto's server on loopback as the account.

Every AWS request goes to moto through boto3's standard AWS_ENDPOINT_URL; credentials are fake keys; the
metadata service is disabled and the user's ~/.aws is hidden, so no credential chain leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import preflight.checks.aws  # noqa: F401  (registers the AWS checks whether or not checks/__init__ lists them)
from preflight.cloud.errors import Unavailable
from preflight_lab.addresses import allocate
from preflight_lab.aws import ACCOUNT, OFFICE, AclEntry, AwsLab, EksLabCluster, EksSetup, SgRule
from preflight_lab.broker import NATS_PORT
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from tests.runlab import result, run

ORIGIN = OFFICE  # 203.0.113.0/24: the Server's public egress, as the firewalls see it
OTHER = "198.51.100.0/24"
PEERED_ORIGIN = "10.250.0.0/24"  # the Server inside the peered VPC
AWS_CHECKS = (
    "aws.eks.endpoint-access",
    "aws.lb.scheme",
    "aws.lb.security-groups",
    "aws.nodes.security-groups",
    "aws.network-acl",
)
NODE_OK = (SgRule((31222, 31222), cidr=ORIGIN, description="meshery server"),)
ALLOW_ALL_IN = AclEntry(100, "allow", "0.0.0.0/0", protocol="-1")
ALLOW_ALL_OUT = AclEntry(100, "allow", "0.0.0.0/0", protocol="-1", egress=True)

SETUPS = [
    # NLB without security groups (the cloud controller's default): the nodes' groups decide.
    EksSetup("eks-good", node_sg_rules=NODE_OK),
    EksSetup("eks-world", lb="classic", lb_sg_rules=(SgRule((4222, 4222), cidr="0.0.0.0/0"),)),
    EksSetup(
        "eks-sg-miss",
        lb_security_groups=True,
        node_sg_rules=NODE_OK,
        lb_sg_rules=(SgRule((4222, 4222), cidr=OTHER, description="old office"), SgRule((4222, 4222), group="nodes")),
    ),
    EksSetup("eks-prefix-list", lb="classic", lb_sg_rules=(SgRule((4222, 4222), prefix_list=[ORIGIN, OTHER]),)),
    EksSetup("eks-nodes-closed"),  # NLB, nodes admit only the LB's group: nothing from the origin
    EksSetup(
        "eks-nacl-deny",
        node_sg_rules=NODE_OK,
        nacl_inbound=(
            AclEntry(90, "deny", ORIGIN, (4222, 4222)),
            AclEntry(95, "deny", ORIGIN, (31222, 31222)),
            ALLOW_ALL_IN,
        ),
        nacl_outbound=(ALLOW_ALL_OUT,),
    ),
    EksSetup(
        "eks-nacl-no-ephemeral",
        node_sg_rules=NODE_OK,
        nacl_inbound=(ALLOW_ALL_IN,),
        nacl_outbound=(AclEntry(100, "allow", "0.0.0.0/0", (443, 443), egress=True),),
    ),
    EksSetup("eks-public-narrow", public_access_cidrs=(OTHER,)),
    EksSetup("eks-api-defaults", endpoint_public=None, endpoint_private=None, public_access_cidrs=None),
    EksSetup("eks-private-alone", endpoint_public=False, endpoint_private=True, public_access_cidrs=None),
    EksSetup(
        "eks-private-peered",
        endpoint_public=False,
        endpoint_private=True,
        public_access_cidrs=None,
        connectivity=("peering",),
    ),
    EksSetup("eks-internal-lb", lb_scheme="internal", node_sg_rules=NODE_OK),
    EksSetup("eks-nodeport", lb=None, nodes_in="public"),
    EksSetup("eks-foreign-lb", lb=None, node_sg_rules=NODE_OK),
]
FOREIGN_LB = "k8s-meshery-other-0123456789.elb.eu-central-1.amazonaws.com"


def _overrides(c: EksLabCluster) -> dict[str, Any]:
    """How a cluster's Broker Service deviates from publishing its own load balancer's DNSName."""
    if c.name == "eks-world":
        assert c.lb_dns_name
        return {"lb_hostname": c.lb_dns_name.upper() + "."}  # DNS names match case-insensitively
    if c.name == "eks-foreign-lb":
        return {"service_type": "LoadBalancer", "lb_hostname": FOREIGN_LB}
    return {}


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsLab]:
    """moto on loopback; the process environment carries only the lab's AWS settings."""
    home = tmp_path_factory.mktemp("aws-home")
    with pytest.MonkeyPatch.context() as mp, AwsLab() as lab:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                mp.delenv(key)
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))  # never the user's ~/.aws
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        for key, value in lab.env().items():
            mp.setenv(key, value)
        yield lab


@pytest.fixture(scope="module")
def world(aws_env: AwsLab, tmp_path_factory: pytest.TempPathFactory):
    seeded = {s.name: aws_env.add(s) for s in SETUPS}
    specs = []
    for name, c in seeded.items():
        specs.append(ClusterSpec(name=name, meshery=c.meshery_setup(allocate(NATS_PORT), **_overrides(c))))
    plain = allocate(NATS_PORT)
    specs.append(
        ClusterSpec(name="plain", meshery=MesherySetup(service_type="LoadBalancer", lb_ip=plain, broker_address=plain))
    )
    specs.append(ClusterSpec(name="eks-embedded"))
    directory = tmp_path_factory.mktemp("aws-lab")
    with LabFleet(specs, directory) as fleet, LabDNS(zones=("amazonaws.com",)) as dns:
        for host, address in fleet.dns_records().items():
            dns.add_a(host, address)
        embedded = aws_env.add(EksSetup("eks-embedded", lb=None))
        fleet_doc = _eks_fleet(fleet, {**seeded, "eks-embedded": embedded})
        path = directory / "fleet-eks.yaml"
        path.write_text(yaml.safe_dump(fleet_doc, sort_keys=False))
        yield aws_env, fleet, dns, path, seeded


def _eks_fleet(fleet: LabFleet, eks: dict[str, EksLabCluster], declared: bool = True) -> dict[str, Any]:
    doc = fleet.fleet_document()
    doc["kubeconfig"] = [str(fleet.kubeconfig_path)]
    for entry in doc["clusters"]:
        c = eks.get(entry["context"])
        if c is not None:
            entry["provider"] = "eks"
            if declared:
                entry["aws"] = c.aws_ids()
    return doc


@pytest.fixture(scope="module")
def report(world):
    _lab, _fleet, dns, path, _seeded = world
    return run(fleet=str(path), dns_server=dns.address, origins=[ORIGIN], connect_timeout=2.0, parallel=16)


def res(report, cluster: str, check_id: str):
    return result(report, cluster, check_id)


def st(report, cluster: str, check_id: str) -> str:
    return res(report, cluster, check_id).status.value


# -- aws.eks.endpoint-access -----------------------------------------------------------------------


def test_public_endpoint_covering_the_origin_passes(report) -> None:
    r = res(report, "eks-good", "aws.eks.endpoint-access")
    assert r.status.value == "pass", r.message
    assert r.evidence["public_access_cidrs"] == [ORIGIN] and r.evidence["account"] == ACCOUNT
    assert r.evidence["aws_api_calls"] >= 2  # sts + eks at least


def test_public_cidrs_not_covering_the_origin_fail_with_the_update_command(report) -> None:
    r = res(report, "eks-public-narrow", "aws.eks.endpoint-access")
    assert r.status.value == "fail" and ORIGIN in r.message and OTHER in r.message
    assert "aws eks update-cluster-config --region eu-west-1 --name eks-public-narrow" in r.remediation
    assert f'publicAccessCidrs="{OTHER}","{ORIGIN}"' in r.remediation


def test_absent_endpoint_fields_get_eks_defaults_and_world_open_warns(report) -> None:
    r = res(report, "eks-api-defaults", "aws.eks.endpoint-access")
    assert r.status.value == "warn" and "open to the world" in r.message
    assert r.evidence["defaults_applied"] == ["endpointPublicAccess", "endpointPrivateAccess", "publicAccessCidrs"]
    assert r.evidence["endpoint_public"] is True and r.evidence["endpoint_private"] is False
    assert f'publicAccessCidrs="{ORIGIN}"' in r.remediation


def test_private_only_endpoint_without_peering_fails(report, world) -> None:
    seeded = world[4]
    r = res(report, "eks-private-alone", "aws.eks.endpoint-access")
    assert r.status.value == "fail", r.message
    assert "no active VPC peering, transit gateway attachment or VPN" in r.message
    assert r.evidence["vpc"] == seeded["eks-private-alone"].vpc_id  # found through the subnets (moto has no vpcId)
    assert "create-vpc-peering-connection" in r.remediation


def test_private_only_endpoint_with_a_public_origin_fails_even_with_peering(report) -> None:
    r = res(report, "eks-private-peered", "aws.eks.endpoint-access")
    assert r.status.value == "fail" and "is public" in r.message


@pytest.fixture(scope="module")
def peered_report(world):
    _lab, _fleet, dns, path, _seeded = world
    return run(
        fleet=str(path),
        dns_server=dns.address,
        origins=[PEERED_ORIGIN],
        connect_timeout=2.0,
        contexts=["eks-private-peered", "eks-private-alone"],
        include=["kubeconfig.*", "aws.eks.*"],
    )


def test_private_only_endpoint_reached_over_peering_passes(peered_report, world) -> None:
    seeded = world[4]
    r = res(peered_report, "eks-private-peered", "aws.eks.endpoint-access")
    assert r.status.value == "pass", r.message
    assert seeded["eks-private-peered"].peering in r.message
    assert r.evidence["private_paths"][0]["kind"] == "vpc-peering"
    alone = res(peered_report, "eks-private-alone", "aws.eks.endpoint-access")
    assert alone.status.value == "fail"


# -- aws.lb.scheme --------------------------------------------------------------------------------


def test_internet_facing_lb_is_found_by_its_dns_name(report, world) -> None:
    seeded = world[4]
    r = res(report, "eks-good", "aws.lb.scheme")
    assert r.status.value == "pass" and "internet-facing" in r.message
    assert r.evidence["load_balancer"]["dns_name"] == seeded["eks-good"].lb_dns_name
    assert r.evidence["load_balancer"]["type"] == "network"  # from Type, though moto's ARN says app/
    classic = res(report, "eks-world", "aws.lb.scheme")
    assert classic.status.value == "pass" and classic.evidence["load_balancer"]["type"] == "classic"


def test_internal_lb_with_an_origin_outside_the_vpc_fails(report) -> None:
    r = res(report, "eks-internal-lb", "aws.lb.scheme")
    assert r.status.value == "fail" and "internal" in r.message
    assert st(report, "eks-internal-lb", "aws.lb.security-groups") == "skip"  # depends on the scheme


def test_hostname_that_is_no_elb_of_the_account_warns(report) -> None:
    r = res(report, "eks-foreign-lb", "aws.lb.scheme")
    assert r.status.value == "warn", r.message
    assert f"{FOREIGN_LB} is not a load balancer of account {ACCOUNT} in eu-west-1" in r.message
    for cid in ("aws.lb.security-groups", "aws.nodes.security-groups", "aws.network-acl"):
        assert st(report, "eks-foreign-lb", cid) == "skip", cid


# -- aws.lb.security-groups ------------------------------------------------------------------------


def test_nlb_without_security_groups_falls_to_the_node_groups(report, world) -> None:
    seeded = world[4]
    r = res(report, "eks-good", "aws.lb.security-groups")
    assert r.status.value == "pass", r.message
    assert "has no security groups: the nodes' decide (node port 31222)" in r.message
    assert seeded["eks-good"].node_sg in r.message and f"tcp 31222 from {ORIGIN}" in r.message
    assert r.evidence["decided_by"] == "node security groups"


def test_world_open_lb_security_group_fails_with_the_revoke_command(report, world) -> None:
    sg = world[4]["eks-world"].lb_sg
    r = res(report, "eks-world", "aws.lb.security-groups")
    assert r.status.value == "fail" and "open to the world" in r.message
    assert f"{sg} (k8s-meshery-eks-world-lb): tcp 4222 from 0.0.0.0/0" in r.message
    # The command stands alone on its line: nothing glued to its end (`0.0.0.0/0.` would not paste).
    assert f"aws ec2 revoke-security-group-ingress --group-id {sg} --protocol tcp --port 4222 --cidr 0.0.0.0/0" in (
        r.remediation.splitlines()
    )


def test_lb_security_group_missing_the_origin_fails_naming_the_rules(report, world) -> None:
    sg = world[4]["eks-sg-miss"].lb_sg
    r = res(report, "eks-sg-miss", "aws.lb.security-groups")
    assert r.status.value == "fail", r.message
    assert f"4222/tcp from {ORIGIN}" in r.message and "blocked" in r.message
    assert f"{sg} (k8s-meshery-eks-sg-miss-lb): tcp 4222 from {OTHER} (old office)" in r.message
    assert "reference never matches an external origin" in r.message and r.evidence["references"]
    assert (
        f"aws ec2 authorize-security-group-ingress --group-id {sg} --protocol tcp --port 4222 --cidr {ORIGIN}"
        in r.remediation.splitlines()
    )


def test_prefix_list_entries_are_resolved(report, world) -> None:
    pl = world[4]["eks-prefix-list"].prefix_lists[0]
    r = res(report, "eks-prefix-list", "aws.lb.security-groups")
    assert r.status.value == "pass", r.message
    assert f"from prefix list {pl}" in r.message


# -- aws.nodes.security-groups ---------------------------------------------------------------------


def test_node_groups_admitting_the_node_port_pass(report) -> None:
    assert st(report, "eks-good", "aws.nodes.security-groups") == "pass"
    lb_sgs = res(report, "eks-sg-miss", "aws.nodes.security-groups")
    assert lb_sgs.status.value == "skip" and "face the Server" in lb_sgs.message


def test_node_groups_closed_to_the_origin_fail(report, world) -> None:
    c = world[4]["eks-nodes-closed"]
    r = res(report, "eks-nodes-closed", "aws.nodes.security-groups")
    assert r.status.value == "fail", r.message
    assert "node port 31222" in r.message and c.instance_ids[0] in r.message
    assert f"--group-id {c.node_sg} --protocol tcp --port 31222 --cidr {ORIGIN}" in r.remediation
    assert st(report, "eks-nodes-closed", "aws.lb.security-groups") == "fail"


def test_nodeport_service_is_checked_on_the_nodes(report) -> None:
    r = res(report, "eks-nodeport", "aws.nodes.security-groups")
    assert r.status.value == "fail" and "no rule admits 31222/tcp from a CIDR" in r.message
    assert st(report, "eks-nodeport", "aws.lb.scheme") == "skip"


# -- aws.network-acl -------------------------------------------------------------------------------


def test_default_nacl_lets_traffic_in_and_replies_out(report, world) -> None:
    acl = world[4]["eks-good"].default_nacl
    r = res(report, "eks-good", "aws.network-acl")
    assert r.status.value == "pass", r.message
    assert f"{acl} (default) (node subnets): inbound 31222/tcp from {ORIGIN} allowed by rule 100 (allow" in r.message
    roles = {a["role"] for a in r.evidence["network_acls"]}
    assert roles == {f"network load balancer {world[4]['eks-good'].lb_name} subnet", "node subnet"}
    assert {a["association"] for a in r.evidence["network_acls"]} == {"explicit"}  # moto lists default ones


def test_nacl_deny_before_allow_blocks_naming_the_rule_number(report, world) -> None:
    acl = world[4]["eks-nacl-deny"].custom_nacl
    r = res(report, "eks-nacl-deny", "aws.network-acl")
    assert r.status.value == "fail", r.message
    assert f"inbound 4222/tcp from {ORIGIN} blocked by rule 90 (deny tcp 4222 from {ORIGIN})" in r.message
    assert f"inbound 31222/tcp from {ORIGIN} blocked by rule 95 (deny tcp 31222 from {ORIGIN})" in r.message
    assert r.message.startswith(acl)
    assert f"--network-acl-id {acl} --ingress --rule-number 89" in r.remediation


def test_nacl_without_outbound_ephemeral_blocks_the_replies(report, world) -> None:
    acl = world[4]["eks-nacl-no-ephemeral"].custom_nacl
    r = res(report, "eks-nacl-no-ephemeral", "aws.network-acl")
    assert r.status.value == "fail", r.message
    assert f"replies to {ORIGIN} on tcp 1024-65535 blocked" in r.message
    assert "--egress" in r.remediation and "From=1024,To=65535" in r.remediation and acl in r.remediation
    assert r.remediation.count("create-network-acl-entry") == 1  # LB and node subnets share the ACL
    assert r.evidence["network_acls"][0]["inbound"]["verdict"] == "allowed"


# -- skips ----------------------------------------------------------------------------------------


def test_non_eks_cluster_skips_every_aws_check(report) -> None:
    for cid in AWS_CHECKS:
        r = res(report, "plain", cid)
        assert r.status.value == "skip", (cid, r.message)
        # aws.lb.security-groups is skipped by the runner, through aws.lb.scheme.
        assert "not an EKS cluster" in r.message or r.evidence.get("blocked_by") == "aws.lb.scheme", r.message


def test_embedded_mode_skips_the_broker_checks_but_not_the_endpoint(report) -> None:
    assert st(report, "eks-embedded", "aws.eks.endpoint-access") == "pass"
    for cid in AWS_CHECKS[1:]:
        assert st(report, "eks-embedded", cid) == "skip", cid


# -- API calls ------------------------------------------------------------------------------------


def test_each_describe_is_fetched_once_for_two_clusters_of_one_account(world) -> None:
    _lab, _fleet, dns, path, _seeded = world
    two = ["eks-good", "eks-nacl-deny"]
    rep = run(
        fleet=str(path),
        dns_server=dns.address,
        origins=[ORIGIN],
        contexts=two,
        include=["kubeconfig.*", "kube-api.*", "broker.service", "aws.*"],
    )
    seen: dict[str, int] = {}
    for name in two:
        for cid in AWS_CHECKS:
            assert st(rep, name, cid) in ("pass", "fail"), (name, cid, res(rep, name, cid).message)
            for op, n in res(rep, name, cid).evidence["aws_api_calls_by_operation"].items():
                seen[op] = max(seen.get(op, 0), n)
    assert seen.pop("eks.DescribeCluster") == 2  # one per cluster: a per-cluster describe
    assert seen and all(n == 1 for n in seen.values()), seen
    assert {
        "ec2.DescribeSecurityGroups",
        "ec2.DescribeNetworkAcls",
        "ec2.DescribeInstances",
        "elbv2.DescribeLoadBalancers",
        "elb.DescribeLoadBalancers",
        "sts.GetCallerIdentity",
    } <= set(seen)


# -- credentials ----------------------------------------------------------------------------------


def _undeclared(fleet: LabFleet, lab_cluster: EksLabCluster, directory: Path) -> Path:
    """A kubeconfig whose exec plugin carries `eks get-token --cluster-name X --region R`, as aws eks writes it."""
    kc = yaml.safe_load(fleet.kubeconfig_path.read_text())
    for user in kc["users"]:
        if user["name"] == f"{lab_cluster.name}-user":
            user["user"]["exec"]["args"] += [
                "eks",
                "get-token",
                "--cluster-name",
                lab_cluster.name,
                "--region",
                lab_cluster.region,
            ]
    path = directory / "kubeconfig-undeclared.yaml"
    path.write_text(yaml.safe_dump(kc, sort_keys=False))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def creds_world(aws_env: AwsLab, tmp_path_factory: pytest.TempPathFactory):
    a = aws_env.add(EksSetup("eks-cred-declared", lb=None))
    b = aws_env.add(EksSetup("eks-cred-exec", lb=None))
    specs = [ClusterSpec(name=a.name), ClusterSpec(name=b.name, auth="exec")]
    directory = tmp_path_factory.mktemp("aws-creds")
    with LabFleet(specs, directory) as fleet:
        doc = fleet.fleet_document()
        doc["kubeconfig"] = [str(_undeclared(fleet, b, directory))]
        for entry in doc["clusters"]:
            entry["provider"] = "eks"
            if entry["context"] == a.name:
                entry["aws"] = a.aws_ids()
        path = directory / "fleet.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield path, a, b


HINT = "configure AWS credentials: aws sso login --profile <profile>, or AWS_PROFILE / AWS_ACCESS_KEY_ID"


def test_ids_from_exec_args_with_credentials_run_the_check(creds_world) -> None:
    path, _a, b = creds_world
    rep = run(fleet=str(path), origins=[ORIGIN], contexts=[b.name], include=["kubeconfig.*", "aws.eks.*"])
    r = res(rep, b.name, "aws.eks.endpoint-access")
    assert r.status.value == "pass" and r.evidence["cluster"] == b.name, r.message


def test_no_credentials_skip_with_the_hint_or_error_when_declared(creds_world, monkeypatch) -> None:
    path, a, b = creds_world
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    rep = run(fleet=str(path), origins=[ORIGIN], include=["kubeconfig.*", "aws.eks.*"])
    undeclared = res(rep, b.name, "aws.eks.endpoint-access")
    assert undeclared.status.value == "skip", undeclared.message
    assert undeclared.evidence["hint"] == HINT and undeclared.remediation == HINT
    # Said once each: the message what is missing, the fix how to give it.
    assert HINT not in undeclared.message
    declared = res(rep, a.name, "aws.eks.endpoint-access")
    assert declared.status.value == "error" and declared.remediation == HINT


def test_profile_from_the_fleet_file_names_itself_in_the_hint(creds_world, tmp_path, monkeypatch) -> None:
    path, a, _b = creds_world
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (Path(os.environ["AWS_CONFIG_FILE"])).write_text("[profile meshery-prod]\nregion = eu-west-1\n")
    try:
        doc = yaml.safe_load(path.read_text())
        for entry in doc["clusters"]:
            if entry["context"] == a.name:
                entry["aws"]["profile"] = "meshery-prod"
        alt = tmp_path / "fleet.yaml"
        alt.write_text(yaml.safe_dump(doc))
        rep = run(fleet=str(alt), origins=[ORIGIN], contexts=[a.name], include=["kubeconfig.*", "aws.eks.*"])
    finally:
        Path(os.environ["AWS_CONFIG_FILE"]).unlink()
    r = res(rep, a.name, "aws.eks.endpoint-access")
    assert r.status.value == "error" and "aws sso login --profile meshery-prod" in r.remediation


def test_context_named_by_aws_eks_update_kubeconfig_identifies_the_cluster(aws_env, tmp_path) -> None:
    """Context, cluster and user named by the ARN, a static token, no ids in the fleet file: the ARN says it all."""
    c = aws_env.add(EksSetup("eks-arn-named", lb=None))
    arn = f"arn:aws:eks:{c.region}:{ACCOUNT}:cluster/{c.name}"
    with LabFleet([ClusterSpec(name=arn)], tmp_path / "lab") as fleet:
        kc = yaml.safe_load(fleet.kubeconfig_path.read_text())
        kc["users"][0]["name"] = kc["contexts"][0]["context"]["user"] = arn
        path = tmp_path / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(kc))
        path.chmod(0o600)
        rep = run(kubeconfig=[str(path)], origins=[ORIGIN], include=["aws.eks.endpoint-access"])
    r = res(rep, arn, "aws.eks.endpoint-access")
    assert r.status.value == "pass", r.message
    assert (r.evidence["cluster"], r.evidence["region"], r.evidence["account"]) == (c.name, c.region, ACCOUNT)
    assert r.evidence["ids_from"] == dict.fromkeys(("region", "account", "cluster_name"), f"context name {arn!r}")


def test_arn_named_context_without_credentials_says_once_what_is_missing(aws_env, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    arn = f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/nowhere"
    with LabFleet([ClusterSpec(name=arn)], tmp_path / "lab") as fleet:
        rep = run(kubeconfig=[str(fleet.kubeconfig_path)], include=["aws.eks.endpoint-access"])
    r = res(rep, arn, "aws.eks.endpoint-access")
    assert r.status.value == "skip" and r.remediation == HINT and HINT not in r.message
    assert "cluster name is unknown" not in r.message and "region is unknown" not in r.message


# -- adapter details --------------------------------------------------------------------------------


def test_per_service_endpoint_variable_wins_and_an_unreachable_api_is_an_error(aws_env, monkeypatch) -> None:
    from preflight.cloud import aws
    from preflight.engine.runstate import CloudReads
    from preflight.engine.settings import Settings

    aws_env.add(EksSetup("eks-endpoints", lb=None))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL_EKS", aws_env.endpoint)
    # No STS call: the account is given.
    acct = aws.connect(Settings(connect_timeout=1.0), CloudReads(), None, "eu-west-1", account=ACCOUNT)
    assert aws.describe_cluster(acct, "eks-endpoints")["name"] == "eks-endpoints"
    with pytest.raises(Unavailable) as exc:
        aws.security_groups(acct)
    assert exc.value.failure == "unreachable" and "ec2:DescribeSecurityGroups" in str(exc.value)


def test_only_read_only_operations_are_callable(aws_env) -> None:
    from preflight.cloud import aws
    from preflight.engine.runstate import CloudReads
    from preflight.engine.settings import Settings

    acct = aws.connect(Settings(connect_timeout=1.0), CloudReads(), None, "eu-west-1", account=ACCOUNT)
    with pytest.raises(ValueError, match="not a read-only call"):
        acct.call("ec2", "authorize_security_group_ingress", GroupId="sg-1")


def test_cli_import_and_help_do_not_load_boto3() -> None:
    code = (
        "import sys, preflight.cli, preflight.checks, preflight.checks.aws, preflight.cloud.aws\n"
        "assert not any(m.split('.')[0] in ('boto3', 'botocore') for m in sys.modules), 'SDK imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    helped = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "preflight.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "boto3" not in helped.stderr


# -- a forbidden read ----------------------------------------------------------------------------------


@pytest.fixture
def auditor_without_ec2(aws_env: AwsLab, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An IAM user that may read load balancers but no EC2 security group, and moto enforcing IAM."""
    iam = aws_env.client("iam")
    user = f"auditor-{os.getpid()}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="load-balancers-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "elasticloadbalancing:Describe*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    _reset_auth(aws_env, "0")  # from now on moto evaluates every request against IAM
    try:
        yield user
    finally:
        _reset_auth(aws_env, "inf")


def _reset_auth(lab: AwsLab, count: str) -> None:
    request = urllib.request.Request(
        f"{lab.endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would be parsed away before moto reads it
    )
    urllib.request.urlopen(request, timeout=10).close()


def test_forbidden_read_is_an_error_naming_the_permission(world, auditor_without_ec2) -> None:
    _lab, _fleet, dns, path, _seeded = world
    rep = run(
        fleet=str(path),
        dns_server=dns.address,
        origins=[ORIGIN],
        contexts=["eks-sg-miss"],
        include=["aws.lb.security-groups"],  # and what it depends on
    )
    assert st(rep, "eks-sg-miss", "aws.lb.scheme") == "pass"  # the load balancer reads were allowed
    r = res(rep, "eks-sg-miss", "aws.lb.security-groups")
    assert r.status.value == "error" and r.evidence["failure"] == "forbidden", r.message
    assert r.evidence["permission"] == "ec2:DescribeSecurityGroups" and "ec2:DescribeSecurityGroups" in r.message
    assert r.remediation == "grant the read-only action ec2:DescribeSecurityGroups to the identity the tool uses"
