"""The AWS adapter on real AWS answer shapes (fields moto leaves out), without a server."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from preflight.checks.aws import _private_reach
from preflight.cloud import aws
from preflight.cloud.errors import CloudError, Forbidden
from preflight.cloud.rules import FIRST_MATCH, UNION, evaluate
from preflight.engine.runstate import CloudReads
from preflight.engine.settings import Settings

# describe_cluster["cluster"] as real EKS answers it (trimmed), with the fields moto does not return.
REAL_CLUSTER: dict[str, Any] = {
    "name": "prod-eu",
    "arn": "arn:aws:eks:eu-west-1:111122223333:cluster/prod-eu",
    "version": "1.30",
    "endpoint": "https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
    "resourcesVpcConfig": {
        "subnetIds": ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"],
        "securityGroupIds": ["sg-0123456789abcdef0"],
        "clusterSecurityGroupId": "sg-0fedcba9876543210",
        "vpcId": "vpc-0abc1234def567890",
        "endpointPublicAccess": True,
        "endpointPrivateAccess": True,
        "publicAccessCidrs": ["203.0.113.0/24", "198.51.100.7/32"],
    },
    "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16", "ipFamily": "ipv4"},
    "status": "ACTIVE",
    "platformVersion": "eks.8",
}


class FakeAccount(aws.AwsSession):
    """A session whose requests answer from canned describe pages, counted like real ones."""

    def __init__(self, data: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(Settings(connect_timeout=1.0), CloudReads(), None, None, "eu-west-1", "111122223333")
        self.data = data
        self.requests: list[str] = []

    def pages(self, service: str, op: str, key: str, **params: Any) -> list[dict[str, Any]]:
        self.requests.append(f"{service}.{op}")
        return list(self.data[f"{service}.{op}"])


def test_real_describe_cluster_fields_are_used_as_they_are() -> None:
    cfg = aws.endpoint_config(REAL_CLUSTER)
    assert (cfg.public, cfg.private, cfg.defaulted) == (True, True, [])
    assert cfg.public_cidrs == ["203.0.113.0/24", "198.51.100.7/32"]
    assert cfg.cluster_security_group_id == "sg-0fedcba9876543210"
    acct = FakeAccount({})
    assert aws.cluster_vpc(acct, cfg) == "vpc-0abc1234def567890" and acct.requests == []  # no describe_subnets


def test_missing_endpoint_fields_take_the_eks_defaults() -> None:
    cfg = aws.endpoint_config({"resourcesVpcConfig": {"subnetIds": ["subnet-1"]}})
    assert (cfg.public, cfg.private, cfg.public_cidrs) == (True, False, ["0.0.0.0/0"])
    assert cfg.vpc_id is None and cfg.defaulted == [
        "endpointPublicAccess",
        "endpointPrivateAccess",
        "publicAccessCidrs",
    ]
    acct = FakeAccount({"ec2.describe_subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-9"}]})
    assert aws.cluster_vpc(acct, cfg) == "vpc-9"


SG: dict[str, Any] = {
    "GroupId": "sg-0lb",
    "GroupName": "k8s-elb-a1b2c3",
    "Description": "Security group for Kubernetes ELB a1b2c3 (meshery/meshery-nats)",
    "VpcId": "vpc-1",
    "Tags": [{"Key": "kubernetes.io/cluster/prod-eu", "Value": "owned"}],
    "IpPermissions": [
        {
            "IpProtocol": "tcp",
            "FromPort": 4222,
            "ToPort": 4222,
            "IpRanges": [{"CidrIp": "198.51.100.0/24", "Description": "office"}],
            "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}],
            "PrefixListIds": [{"PrefixListId": "pl-0vpn"}],
            "UserIdGroupPairs": [{"GroupId": "sg-0nodes", "UserId": "111122223333"}],
        },
        {
            "IpProtocol": "-1",
            "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            "Ipv6Ranges": [],
            "PrefixListIds": [],
            "UserIdGroupPairs": [],
        },
        {"IpProtocol": "icmp", "FromPort": 3, "ToPort": 4, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ],
}


def _group(raw: dict[str, Any]) -> aws.SecurityGroup:
    return aws.SecurityGroup(
        raw["GroupId"],
        raw["GroupName"],
        raw["VpcId"],
        raw["Description"],
        {t["Key"]: t["Value"] for t in raw["Tags"]},
        raw["IpPermissions"],
    )


def test_security_group_normalisation_resolves_prefix_lists_and_notes_references() -> None:
    g = _group(SG)
    rules, notes = aws.sg_rules(g, lambda pl: {"pl-0vpn": ["192.0.2.0/24"]}[pl])
    assert g.managed_by_kubernetes
    names = [r.label() for r in rules]
    assert "sg-0lb (k8s-elb-a1b2c3): tcp 4222 from 198.51.100.0/24 (office)" in names
    assert "sg-0lb (k8s-elb-a1b2c3): tcp 4222 from prefix list pl-0vpn" in names
    assert "sg-0lb (k8s-elb-a1b2c3): all traffic from 10.0.0.0/8" in names
    assert notes == [
        "sg-0lb (k8s-elb-a1b2c3): tcp 4222 from security group sg-0nodes (a reference: admits members "
        "of that group, never an external origin)"
    ]
    assert evaluate(rules, ["192.0.2.0/25"], 4222, semantics=UNION).state == "allowed"
    assert evaluate(rules, ["2001:db8:1::/48"], 4222, semantics=UNION).state == "allowed"
    assert evaluate(rules, ["10.1.0.0/16"], 31222, semantics=UNION).state == "allowed"  # all traffic
    v = evaluate(rules, ["203.0.113.0/24"], 4222, semantics=UNION)
    assert v.state == "blocked" and not v.world_open  # the world-open rule is icmp, not the port


DEFAULT_ACL: dict[str, Any] = {
    "NetworkAclId": "acl-0default",
    "VpcId": "vpc-1",
    "IsDefault": True,
    "Associations": [
        {"NetworkAclAssociationId": "aclassoc-1", "NetworkAclId": "acl-0default", "SubnetId": "subnet-explicit"}
    ],
    "Entries": [
        {"CidrBlock": "0.0.0.0/0", "Egress": True, "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 100},
        {"CidrBlock": "0.0.0.0/0", "Egress": True, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767},
        {"CidrBlock": "0.0.0.0/0", "Egress": False, "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 100},
        {"Ipv6CidrBlock": "::/0", "Egress": False, "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 101},
        {"CidrBlock": "0.0.0.0/0", "Egress": False, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767},
    ],
}
CUSTOM_ACL: dict[str, Any] = {
    "NetworkAclId": "acl-0custom",
    "VpcId": "vpc-1",
    "IsDefault": False,
    "Associations": [{"NetworkAclAssociationId": "aclassoc-2", "NetworkAclId": "acl-0custom", "SubnetId": "subnet-c"}],
    "Entries": [
        {
            "CidrBlock": "203.0.113.0/24",
            "Egress": False,
            "Protocol": "6",
            "RuleAction": "deny",
            "RuleNumber": 90,
            "PortRange": {"From": 4222, "To": 4222},
        },
        {
            "CidrBlock": "0.0.0.0/0",
            "Egress": False,
            "Protocol": "6",
            "RuleAction": "allow",
            "RuleNumber": 100,
            "PortRange": {"From": 4222, "To": 4222},
        },
        {
            "CidrBlock": "0.0.0.0/0",
            "Egress": True,
            "Protocol": "6",
            "RuleAction": "allow",
            "RuleNumber": 100,
            "PortRange": {"From": 443, "To": 443},
        },
        {"CidrBlock": "0.0.0.0/0", "Egress": True, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767},
    ],
}


def test_subnet_without_explicit_association_gets_the_vpc_default_nacl() -> None:
    acct = FakeAccount(
        {
            "ec2.describe_network_acls": [DEFAULT_ACL, CUSTOM_ACL],
            "ec2.describe_subnets": [{"SubnetId": "subnet-implicit", "VpcId": "vpc-1"}],
        }
    )
    acl, explicit = aws.acl_for_subnet(acct, "subnet-implicit", None)
    assert acl is not None and acl.id == "acl-0default" and not explicit
    acl, explicit = aws.acl_for_subnet(acct, "subnet-c", "vpc-1")
    assert acl is not None and acl.id == "acl-0custom" and explicit
    assert acct.requests.count("ec2.describe_network_acls") == 1  # cached for the run


def test_nacl_first_match_and_stateless_replies() -> None:
    custom = aws.NetworkAcl("acl-0custom", "vpc-1", False, CUSTOM_ACL["Entries"])
    inbound = evaluate(aws.nacl_rules(custom, egress=False), ["203.0.113.0/24"], 4222, semantics=FIRST_MATCH)
    assert inbound.state == "blocked" and inbound.deciding == [
        "acl-0custom: rule 90 (deny tcp 4222 from 203.0.113.0/24)"
    ]
    other = evaluate(aws.nacl_rules(custom, egress=False), ["198.51.100.0/24"], 4222, semantics=FIRST_MATCH)
    assert other.state == "allowed"
    replies = evaluate(
        aws.nacl_rules(custom, egress=True),
        ["198.51.100.0/24"],
        0,
        semantics=FIRST_MATCH,
        port_range=aws.EPHEMERAL,
        direction="egress",
    )
    assert replies.state == "blocked" and "acl-0custom: rule * (deny all traffic to 0.0.0.0/0)" in replies.deciding
    default = aws.NetworkAcl("acl-0default", "vpc-1", True, DEFAULT_ACL["Entries"])
    v6 = evaluate(aws.nacl_rules(default, egress=False), ["2001:db8::/64"], 4222, semantics=FIRST_MATCH)
    assert v6.state == "allowed" and v6.deciding == ["acl-0default (default): rule 101 (allow all traffic from ::/0)"]


_NETS = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.0.2.0/24"]


@settings(max_examples=150, deadline=None)
@given(
    entries=hs.lists(
        hs.tuples(
            hs.integers(1, 200),
            hs.sampled_from(["allow", "deny"]),
            hs.sampled_from(_NETS),
            hs.sampled_from([None, (4222, 4222), (4000, 5000), (1, 1023)]),
        ),
        max_size=6,
        unique_by=lambda e: e[0],
    ),
    address=hs.sampled_from(["10.1.2.3", "10.1.9.9", "10.9.9.9", "192.0.2.7", "198.51.100.1"]),
)
def test_nacl_normalisation_matches_aws_first_match_for_single_addresses(entries, address) -> None:
    """The adapter plus the evaluator agree with AWS's documented NACL rule: lowest matching number decides."""
    raw = [
        {
            "CidrBlock": c,
            "Egress": False,
            "RuleNumber": n,
            "RuleAction": a,
            "Protocol": "-1" if p is None else "6",
            **({"PortRange": {"From": p[0], "To": p[1]}} if p else {}),
        }
        for n, a, c, p in entries
    ]
    raw.append({"CidrBlock": "0.0.0.0/0", "Egress": False, "RuleNumber": 32767, "RuleAction": "deny", "Protocol": "-1"})
    acl = aws.NetworkAcl("acl-x", "vpc-1", False, raw)
    got = evaluate(aws.nacl_rules(acl, egress=False), [f"{address}/32"], 4222, semantics=FIRST_MATCH).state
    ip = ipaddress.ip_address(address)
    expected = "blocked"
    for e in sorted(raw, key=lambda e: e["RuleNumber"]):
        pr = e.get("PortRange")
        if ip in ipaddress.ip_network(e["CidrBlock"]) and (not pr or pr["From"] <= 4222 <= pr["To"]):
            expected = "allowed" if e["RuleAction"] == "allow" else "blocked"
            break
    assert got == expected


def test_load_balancer_lookup_is_exact_case_insensitive_and_knows_fixed_ips() -> None:
    nlb = {
        "LoadBalancerName": "k8s-meshery-meshery-0a1b2c",
        "Type": "network",
        "Scheme": "internet-facing",
        "DNSName": "k8s-meshery-meshery-0a1b2c-0123456789abcdef.elb.eu-west-1.amazonaws.com",
        "VpcId": "vpc-1",
        "LoadBalancerArn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/net/k8s/0a1b",
        "AvailabilityZones": [
            {
                "ZoneName": "eu-west-1a",
                "SubnetId": "subnet-a",
                "LoadBalancerAddresses": [{"IpAddress": "192.0.2.44", "AllocationId": "eipalloc-1"}],
            }
        ],
    }
    near = {**nlb, "DNSName": "k8s-meshery-meshery-0a1b2c-0123456789abcdef.elb.eu-west-1.amazonaws.com.evil"}
    classic = {
        "LoadBalancerName": "a1b2c3",
        "DNSName": "a1b2c3-1234567890.eu-west-1.elb.amazonaws.com",
        "Scheme": "internal",
        "VPCId": "vpc-1",
        "Subnets": ["subnet-b"],
        "SecurityGroups": ["sg-1"],
    }
    acct = FakeAccount({"elbv2.describe_load_balancers": [near, nlb], "elb.describe_load_balancers": [classic]})
    found = aws.find_load_balancer(acct, "K8S-MESHERY-MESHERY-0A1B2C-0123456789ABCDEF.elb.eu-west-1.amazonaws.com.")
    assert found is not None and found.kind == "network" and found.subnet_ids == ["subnet-a"]
    assert found.security_group_ids == []
    dual = aws.find_load_balancer(acct, "dualstack.a1b2c3-1234567890.eu-west-1.elb.amazonaws.com")
    assert dual is not None and dual.kind == "classic" and dual.scheme == "internal" and dual.vpc_id == "vpc-1"
    by_ip = aws.find_load_balancer(acct, None, "192.0.2.44")
    assert by_ip is not None and by_ip.name == "k8s-meshery-meshery-0a1b2c"
    assert aws.find_load_balancer(acct, "a1b2c3.eu-west-1.elb.amazonaws.com") is None
    assert acct.requests == ["elbv2.describe_load_balancers", "elb.describe_load_balancers"]


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        ("aws:///eu-west-1a/i-0123456789abcdef0", "i-0123456789abcdef0"),
        ("aws://eu-west-1a/i-0abc", "i-0abc"),
        ("aws:///eu-west-1a/fargate-ip-10-0-1-2.eu-west-1.compute.internal", None),
        ("gce://project/zone/node", None),
        ("", None),
    ],
)
def test_instance_ids_come_from_provider_ids(provider_id: str, expected: str | None) -> None:
    assert aws.instance_id(provider_id) == expected


def _paths_account(peer_cidr: str | None, tgw: bool) -> FakeAccount:
    peerings = (
        []
        if peer_cidr is None
        else [
            {
                "VpcPeeringConnectionId": "pcx-1",
                "Status": {"Code": "active"},
                "RequesterVpcInfo": {
                    "VpcId": "vpc-server",
                    "OwnerId": "444455556666",
                    "CidrBlockSet": [{"CidrBlock": peer_cidr}],
                },
                "AccepterVpcInfo": {"VpcId": "vpc-1", "CidrBlock": "10.20.0.0/16"},
            }
        ]
    )
    return FakeAccount(
        {
            "ec2.describe_vpcs": [
                {
                    "VpcId": "vpc-1",
                    "CidrBlockAssociationSet": [
                        {"CidrBlock": "10.20.0.0/16", "CidrBlockState": {"State": "associated"}},
                        {"CidrBlock": "10.21.0.0/16", "CidrBlockState": {"State": "disassociated"}},
                    ],
                }
            ],
            "ec2.describe_vpc_peering_connections": peerings,
            "ec2.describe_transit_gateway_vpc_attachments": [
                {
                    "TransitGatewayAttachmentId": "tgw-attach-1",
                    "TransitGatewayId": "tgw-1",
                    "VpcId": "vpc-1",
                    "State": "available",
                }
            ]
            if tgw
            else [],
            "ec2.describe_vpn_gateways": [],
        }
    )


def test_private_reach_over_peering_transit_gateway_or_nothing() -> None:
    ev: dict[str, Any] = {}
    ok = _private_reach(_paths_account("10.250.0.0/16", False), "vpc-1", ["10.250.1.0/24"], "private", ev)
    assert ok.status.value == "pass" and "pcx-1" in ok.message
    assert ev["vpc_cidrs"] == ["10.20.0.0/16"]  # a disassociated block does not count
    miss = _private_reach(_paths_account("10.250.0.0/16", False), "vpc-1", ["10.99.0.0/24"], "private", {})
    assert miss.status.value == "fail" and "outside every peered VPC" in miss.message
    tgw = _private_reach(_paths_account(None, True), "vpc-1", ["10.99.0.0/24"], "private", {})
    assert tgw.status.value == "warn" and "tgw-attach-1" in tgw.message
    inside = _private_reach(_paths_account(None, False), "vpc-1", ["10.20.5.0/24"], "private", {})
    assert inside.status.value == "pass" and "inside vpc-1" in inside.message
    unknown = _private_reach(_paths_account("10.250.0.0/16", False), "vpc-1", [], "private", {})
    assert unknown.status.value == "warn" and "--origin" in unknown.message


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ExpiredToken", "unauthenticated"),
        ("UnrecognizedClientException", "unauthenticated"),
        ("UnauthorizedOperation", "forbidden"),
        ("AccessDeniedException", "forbidden"),
        ("Throttling", "throttled"),
        ("InvalidGroup.NotFound", "not-found"),
        ("InternalError", "error"),
    ],
)
def test_client_errors_become_actionable(code: str, kind: str, monkeypatch, tmp_path) -> None:
    from botocore.stub import Stubber

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))  # never the user's ~/.aws
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITUNITUNIT0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    acct = aws.connect(Settings(connect_timeout=1.0), CloudReads(), None, "eu-west-1", account="111122223333")
    client = acct.client("ec2")
    with Stubber(client) as stub:
        stub.add_client_error("describe_security_groups", service_error_code=code, service_message="nope")
        with pytest.raises(CloudError) as exc:
            aws.security_groups(acct)
    assert exc.value.failure == kind and exc.value.code == code
    assert exc.value.call == "ec2:DescribeSecurityGroups"
    if kind == "forbidden":
        assert isinstance(exc.value, Forbidden) and exc.value.permission == "ec2:DescribeSecurityGroups"
        assert exc.value.hint == "grant the read-only action ec2:DescribeSecurityGroups to the identity the tool uses"
    if kind == "unauthenticated":
        assert exc.value.hint == aws.credential_hint(None)
