"""The EKS checks' decisions as tables: plain data in (what the describes returned, the origin, the port),
a finding out. No server; tests/cloud/test_aws.py drives the same checks through moto for the SDK path."""

from __future__ import annotations

from typing import Any

import pytest

from preflight.checks import aws as checks
from preflight.cloud import aws
from preflight.cloud.rules import Rule
from preflight.engine.model import Finding, Status, passed, warn

WHERE = {"account": "111122223333", "region": "eu-west-1", "profile": None}


def config(
    public: bool = True,
    private: bool = False,
    cidrs: tuple[str, ...] = ("0.0.0.0/0",),
    vpc: str | None = "vpc-1",
    subnets: tuple[str, ...] = ("subnet-1",),
) -> aws.EndpointConfig:
    return aws.EndpointConfig(public, private, list(cidrs), vpc, list(subnets), [], None)


def peering(pid: str, remote: str, state: str = "active") -> aws.PrivatePath:
    return aws.PrivatePath("vpc-peering", pid, state, state == "active", [remote], "peer vpc-9 in 444455556666")


TGW = aws.PrivatePath("transit-gateway", "tgw-attach-1", "available", True, detail="gateway tgw-1")


def vpc(*paths: aws.PrivatePath, cidrs: tuple[str, ...] = ("10.20.0.0/16",)) -> aws.VpcReach:
    return aws.VpcReach("vpc-1", cidrs, paths)


def check(finding: Finding, status: Status, fragment: str) -> None:
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message


# --------------------------------------------------------------------------------------------------
# aws.eks.endpoint-access

ENDPOINT_CASES: list[tuple[str, aws.EndpointConfig, tuple[str, ...], aws.VpcReach | None, Status, str]] = [
    ("both-off", config(public=False), (), None, Status.FAIL, "both the public and the private endpoint are disabled"),
    ("world-no-origin", config(), (), None, Status.WARN, "open to the world (publicAccessCidrs 0.0.0.0/0); pass"),
    ("restricted-no-origin", config(cidrs=("203.0.113.0/24",)), (), None, Status.WARN, "admits only 203.0.113.0/24"),
    ("world-covers", config(), ("198.51.100.7/32",), None, Status.WARN, "and so does everyone else"),
    (
        "restricted-covers",
        config(cidrs=("203.0.113.0/24",)),
        ("203.0.113.8/29",),
        None,
        Status.PASS,
        "admits the origin (203.0.113.8/29) via publicAccessCidrs 203.0.113.0/24",
    ),
    (
        "restricted-misses-public-origin",
        config(cidrs=("203.0.113.0/24",), private=True),
        ("198.51.100.7/32",),
        None,
        Status.FAIL,
        "publicAccessCidrs 203.0.113.0/24 do not cover the Server's origin 198.51.100.7/32",
    ),
    (
        "private-origin-inside-vpc",
        config(cidrs=("203.0.113.0/24",), private=True),
        ("10.20.1.0/24",),
        vpc(),
        Status.PASS,
        "do not cover 10.20.1.0/24, but the origin is private and the private endpoint is on: the origin "
        "(10.20.1.0/24) is inside vpc-1",
    ),
    (
        "private-origin-peered",
        config(cidrs=("203.0.113.0/24",), private=True),
        ("10.250.1.0/24",),
        vpc(peering("pcx-1", "10.250.0.0/16")),
        Status.PASS,
        "reaches vpc-1 over vpc-peering pcx-1",
    ),
    (
        "private-origin-unconnected",
        config(cidrs=("203.0.113.0/24",), private=True),
        ("10.99.0.0/24",),
        vpc(),
        Status.FAIL,
        "do not cover the Server's origin 10.99.0.0/24: the API endpoint drops its connections",
    ),
    (
        "private-origin-vpc-unknown",
        config(cidrs=("203.0.113.0/24",), private=True, vpc=None),
        ("10.99.0.0/24",),
        None,
        Status.FAIL,
        "do not cover the Server's origin 10.99.0.0/24",
    ),
    (
        "private-only-vpc-unknown",
        config(public=False, private=True, vpc=None),
        ("10.20.1.0/24",),
        None,
        Status.ERROR,
        "the cluster's VPC cannot be told (subnets subnet-1 not found)",
    ),
    (
        "private-only-inside",
        config(public=False, private=True),
        ("10.20.1.0/24",),
        vpc(),
        Status.PASS,
        "the API endpoint is private only: the origin (10.20.1.0/24) is inside vpc-1 (10.20.0.0/16)",
    ),
    (
        "private-only-no-origin",
        config(public=False, private=True),
        (),
        vpc(TGW),
        Status.WARN,
        "private connectivity found: transit-gateway tgw-attach-1 (available). Pass --origin",
    ),
    (
        "private-only-public-origin",
        config(public=False, private=True),
        ("198.51.100.7/32",),
        vpc(TGW),
        Status.FAIL,
        "the origin 198.51.100.7/32 is public",
    ),
    (
        "private-only-over-tgw",
        config(public=False, private=True),
        ("10.99.0.0/24",),
        vpc(TGW),
        Status.WARN,
        "reaches it only if the routes of transit-gateway tgw-attach-1 (available) carry it",
    ),
    (
        "private-only-unusable-peering",
        config(public=False, private=True),
        ("10.250.1.0/24",),
        vpc(peering("pcx-2", "10.250.0.0/16", state="pending-acceptance")),
        Status.FAIL,
        "has no active VPC peering, transit gateway attachment or VPN (not usable: vpc-peering pcx-2",
    ),
    (
        "private-only-no-origin-no-path",
        config(public=False, private=True),
        (),
        vpc(),
        Status.FAIL,
        "the Server cannot reach it, unless the Server runs inside vpc-1",
    ),
    (
        "private-only-outside-every-peer",
        config(public=False, private=True),
        ("10.99.0.0/24",),
        vpc(peering("pcx-1", "10.250.0.0/16")),
        Status.FAIL,
        "outside vpc-1 and outside every peered VPC (vpc-peering pcx-1 to 10.250.0.0/16 (active))",
    ),
]


@pytest.mark.parametrize(
    ("cfg", "origin", "reach", "status", "fragment"),
    [c[1:] for c in ENDPOINT_CASES],
    ids=[c[0] for c in ENDPOINT_CASES],
)
def test_endpoint_access(
    cfg: aws.EndpointConfig, origin: tuple[str, ...], reach: aws.VpcReach | None, status: Status, fragment: str
) -> None:
    base = {"cluster": "prod", **WHERE, "ids_from": {}}
    finding = checks.decide_endpoint_access(cfg, origin, "prod", "eu-west-1", base, reach)
    check(finding, status, fragment)
    ev = finding.evidence
    assert (ev["endpoint_public"], ev["endpoint_private"], ev["origin"]) == (cfg.public, cfg.private, list(origin))
    # The VPC's evidence is there exactly when the decision looked at the VPC.
    looked = reach is not None and checks.endpoint_needs_vpc(cfg, origin)
    assert ("vpc_cidrs" in ev) == looked
    if looked:
        assert ev["vpc"] == "vpc-1" and isinstance(ev["vpc_cidrs"], list)


def test_endpoint_fixes_keep_the_current_cidrs_and_quote_them() -> None:
    cfg = config(cidrs=("203.0.113.0/24",))
    miss = checks.decide_endpoint_access(cfg, ["198.51.100.7/32"], "prod", "eu-west-1", {}, None)
    assert miss.remediation == (
        "Add 198.51.100.7/32 to publicAccessCidrs: aws eks update-cluster-config --region eu-west-1 --name prod "
        '--resources-vpc-config publicAccessCidrs="203.0.113.0/24","198.51.100.7/32"'
    )
    world = checks.decide_endpoint_access(config(), ["198.51.100.7/32"], "prod", "eu-west-1", {}, None)
    assert world.remediation is not None and world.remediation.endswith('publicAccessCidrs="198.51.100.7/32"')


NEEDS_VPC_CASES = [
    ("private-only", config(public=False, private=True), ["198.51.100.7/32"], True),
    ("both-off", config(public=False), ["10.0.0.0/8"], False),
    ("public-no-origin", config(cidrs=("203.0.113.0/24",), private=True), [], False),
    ("public-covers", config(private=True), ["10.0.0.0/8"], False),
    ("public-misses-private-origin", config(cidrs=("203.0.113.0/24",), private=True), ["10.0.0.0/8"], True),
    ("public-misses-public-origin", config(cidrs=("203.0.113.0/24",), private=True), ["198.51.100.7/32"], False),
    ("public-only-misses", config(cidrs=("203.0.113.0/24",)), ["10.0.0.0/8"], False),
]


@pytest.mark.parametrize(
    ("cfg", "origin", "needed"), [c[1:] for c in NEEDS_VPC_CASES], ids=[c[0] for c in NEEDS_VPC_CASES]
)
def test_the_vpc_is_read_only_when_the_decision_needs_it(
    cfg: aws.EndpointConfig, origin: list[str], needed: bool
) -> None:
    assert checks.endpoint_needs_vpc(cfg, origin) is needed


# --------------------------------------------------------------------------------------------------
# aws.lb.scheme


def balancer(scheme: str = "internal", vpc_id: str | None = "vpc-1") -> aws.LoadBalancer:
    return aws.LoadBalancer("network", "broker", "broker.elb.amazonaws.com", scheme, vpc_id, ["subnet-1"], [])


SCHEME_CASES = [
    ("internet-facing", balancer("internet-facing"), ["10.99.0.0/24"], None, Status.PASS, "is internet-facing"),
    ("scheme-unreported", balancer(""), [], None, Status.PASS, "is internet-facing"),
    (
        "internal-vpc-unknown",
        balancer(vpc_id=None),
        ["10.0.0.0/8"],
        None,
        Status.WARN,
        "internal and its VPC is unknown",
    ),
    ("internal-no-origin", balancer(), [], None, Status.WARN, "reachable only from vpc-1 and networks connected to it"),
    ("internal-inside", balancer(), ["10.20.3.0/24"], vpc(), Status.PASS, "is internal: the origin (10.20.3.0/24)"),
    ("internal-unconnected", balancer(), ["10.99.0.0/24"], vpc(), Status.FAIL, "the Server cannot reach it"),
    (
        "internal-peered",
        balancer(),
        ["10.250.0.0/24"],
        vpc(peering("pcx-1", "10.250.0.0/16")),
        Status.PASS,
        "over vpc-peering pcx-1",
    ),
]


@pytest.mark.parametrize(
    ("lb", "origin", "reach", "status", "fragment"), [c[1:] for c in SCHEME_CASES], ids=[c[0] for c in SCHEME_CASES]
)
def test_lb_scheme(
    lb: aws.LoadBalancer, origin: list[str], reach: aws.VpcReach | None, status: Status, fragment: str
) -> None:
    assert checks.lb_scheme_needs_vpc(lb, origin) is (reach is not None)
    finding = checks.decide_lb_scheme(lb, origin, WHERE, reach)
    check(finding, status, fragment)
    assert finding.evidence["load_balancer"]["name"] == "broker" and finding.evidence["region"] == "eu-west-1"


# --------------------------------------------------------------------------------------------------
# Security groups (aws.lb.security-groups, aws.nodes.security-groups)


def sg_rule(source: str, lo: int | None = 4222, hi: int | None = None, proto: str = "tcp") -> Rule:
    ports = () if lo is None else ((lo, hi or lo),)
    text = "all traffic" if proto == "all" else f"{proto} {lo}" + (f"-{hi}" if hi else "")
    return Rule("aws-sg", f"{text} from {source}", "allow", (source,), ports, proto, container="sg-1 (web)")


def groups(
    *rules: Rule, references: tuple[str, ...] = (), managed: bool = False, missing: tuple[str, ...] = ()
) -> aws.GroupsView:
    ids = ("sg-1", *missing)
    return aws.GroupsView(ids, rules, references, missing, ("sg-1 (web)", *missing), ("sg-1",) if managed else ())


REF = (
    "sg-1 (web): tcp 4222 from security group sg-9 (a reference: admits members of that group, never an "
    "external origin)"
)

SG_CASES: list[tuple[str, aws.GroupsView, list[str], Status, str, str]] = [
    (
        "world-open-v4",
        groups(sg_rule("0.0.0.0/0")),
        ["10.0.0.0/8"],
        Status.FAIL,
        "4222/tcp on lb is open to the world: sg-1 (web): tcp 4222 from 0.0.0.0/0",
        "aws ec2 revoke-security-group-ingress --group-id sg-1 --protocol tcp --port 4222 --cidr 0.0.0.0/0",
    ),
    (
        "world-open-v6",
        groups(sg_rule("::/0")),
        [],
        Status.FAIL,
        "is open to the world",
        "--ip-permissions 'IpProtocol=tcp,FromPort=4222,ToPort=4222,Ipv6Ranges=[{CidrIpv6=::/0}]'",
    ),
    (
        "world-open-all-traffic",
        groups(sg_rule("0.0.0.0/0", None, proto="all")),
        [],
        Status.FAIL,
        "is open to the world",
        "--group-id sg-1 --protocol -1 --cidr 0.0.0.0/0",
    ),
    (
        "world-open-range",
        groups(sg_rule("0.0.0.0/0", 4000, 4500)),
        [],
        Status.FAIL,
        "is open to the world",
        "--protocol tcp --port 4000-4500 --cidr 0.0.0.0/0",
    ),
    (
        "world-open-managed",
        groups(sg_rule("0.0.0.0/0"), managed=True),
        [],
        Status.FAIL,
        "is open to the world",
        "sg-1 is managed by the cloud controller: set the Broker Service's loadBalancerSourceRanges",
    ),
    (
        "world-open-other-port-no-origin",
        groups(sg_rule("0.0.0.0/0", 443)),
        [],
        Status.WARN,
        "4222/tcp on lb is not open to the world; pass --origin",
        "--origin",
    ),
    ("allowed", groups(sg_rule("10.0.0.0/8")), ["10.1.0.0/16"], Status.PASS, "allowed by sg-1 (web): tcp 4222", ""),
    ("allowed-by-range", groups(sg_rule("10.0.0.0/8", 4000, 4500)), ["10.1.0.0/16"], Status.PASS, "tcp 4000-4500", ""),
    (
        "partial",
        groups(sg_rule("10.0.0.0/9")),
        ["10.0.0.0/8"],
        Status.FAIL,
        "only partly allowed: 10.0.0.0/9 get through, 10.128.0.0/9 blocked",
        "--cidr 10.128.0.0/9",
    ),
    (
        "other-port-only",
        groups(sg_rule("10.0.0.0/8", 443)),
        ["10.1.0.0/16"],
        Status.FAIL,
        "blocked (no rule allows it: implied deny); no rule admits 4222/tcp from a CIDR",
        "aws ec2 authorize-security-group-ingress --group-id sg-1 --protocol tcp --port 4222 --cidr 10.1.0.0/16",
    ),
    (
        "other-source-only",
        groups(sg_rule("192.168.0.0/16")),
        ["10.1.0.0/16"],
        Status.FAIL,
        "; rules for 4222/tcp: sg-1 (web): tcp 4222 from 192.168.0.0/16",
        "--cidr 10.1.0.0/16",
    ),
    (
        "reference-only",
        groups(references=(REF,)),
        ["10.1.0.0/16"],
        Status.FAIL,
        "; 1 security-group reference never matches an external origin",
        "--cidr 10.1.0.0/16",
    ),
    (
        "udp-does-not-count",
        groups(sg_rule("10.0.0.0/8", proto="udp")),
        ["10.1.0.0/16"],
        Status.FAIL,
        "implied deny",
        "--protocol tcp --port 4222",
    ),
]


@pytest.mark.parametrize(
    ("view", "origin", "status", "fragment", "fix"), [c[1:] for c in SG_CASES], ids=[c[0] for c in SG_CASES]
)
def test_security_groups(view: aws.GroupsView, origin: list[str], status: Status, fragment: str, fix: str) -> None:
    given: dict[str, Any] = {"load_balancer": "lb"}
    finding = checks.decide_security_groups(view, origin, 4222, "lb", given)
    check(finding, status, fragment)
    if fix:
        assert finding.remediation is not None and fix in finding.remediation
    assert given == {"load_balancer": "lb"}  # the caller's evidence is not changed
    ev = finding.evidence
    assert ev["load_balancer"] == "lb" and ev["security_groups"] == list(view.labels) and ev["port"] == 4222
    assert ev["references"] == list(view.references)


def test_security_groups_name_the_groups_not_found_and_keep_the_prefix() -> None:
    view = groups(sg_rule("10.0.0.0/8"), missing=("sg-gone",))
    finding = checks.decide_security_groups(view, ["10.1.0.0/16"], 30222, "nodes a", {}, prefix="node port 30222: ")
    assert finding.status is Status.FAIL and finding.message.startswith("node port 30222: 30222/tcp from 10.1.0.0/16")
    assert finding.evidence["not_found"] == ["sg-gone"]
    assert finding.evidence["security_groups"] == ["sg-1 (web)", "sg-gone"]


def test_node_groups_report_the_worst_group_and_every_message() -> None:
    ok = passed("30222/tcp allowed", port=30222, security_groups=["sg-1"])
    bad = warn("30222/tcp not checked", remediation="give --origin", port=30222, security_groups=["sg-2"])
    both = checks.combine_node_groups([(["a (i-1)"], ok), (["b (i-2)"], bad)], {"service_type": "NodePort"})
    assert both.status is Status.WARN and both.message == "30222/tcp allowed; 30222/tcp not checked"
    assert both.remediation == "give --origin" and "security_groups" not in both.evidence
    assert [g["nodes"] for g in both.evidence["node_groups"]] == [["a (i-1)"], ["b (i-2)"]]
    one = checks.combine_node_groups([(["a (i-1)"], ok)], {"service_type": "NodePort"})
    assert one.status is Status.PASS and one.evidence["security_groups"] == ["sg-1"]
    assert one.evidence["service_type"] == "NodePort"


# --------------------------------------------------------------------------------------------------
# aws.network-acl


def entry(number: int, action: str, cidr: str, lo: int | None = None, hi: int | None = None, egress: bool = False):
    e: dict[str, Any] = {"RuleNumber": number, "RuleAction": action, "Egress": egress, "CidrBlock": cidr}
    if lo is None:
        e["Protocol"] = "-1"
    else:
        e.update(Protocol="6", PortRange={"From": lo, "To": hi or lo})
    return e


STAR_IN = entry(32767, "deny", "0.0.0.0/0")
STAR_OUT = entry(32767, "deny", "0.0.0.0/0", egress=True)
REPLIES = entry(100, "allow", "0.0.0.0/0", 1024, 65535, egress=True)


def acl(*entries: dict[str, Any], acl_id: str = "acl-1") -> aws.NetworkAcl:
    return aws.NetworkAcl(acl_id, "vpc-1", False, [*entries, STAR_IN, STAR_OUT])


def crossing(nacl: aws.NetworkAcl | None, subnet: str = "subnet-1", explicit: bool = True) -> checks.AclCrossing:
    return checks.AclCrossing(subnet, 4222, "node subnet", nacl, explicit)


NACL_CASES: list[tuple[str, list[checks.AclCrossing], Status, str, str | None]] = [
    (
        "allowed-both-ways",
        [crossing(acl(entry(100, "allow", "10.0.0.0/8", 4222), REPLIES))],
        Status.PASS,
        "acl-1 (node subnets): inbound 4222/tcp from 10.1.0.0/16 allowed by rule 100",
        None,
    ),
    (
        "all-traffic-allowed",
        [crossing(acl(entry(100, "allow", "0.0.0.0/0"), entry(100, "allow", "0.0.0.0/0", egress=True)))],
        Status.PASS,
        "allowed by rule 100 (allow all traffic from 0.0.0.0/0)",
        None,
    ),
    (
        "no-replies",
        [crossing(acl(entry(100, "allow", "10.0.0.0/8", 4222)))],
        Status.FAIL,
        "replies to 10.1.0.0/16 on tcp 1024-65535 blocked by rule *",
        "--egress --rule-number 32766 --protocol tcp --port-range From=1024,To=65535 --cidr-block 10.1.0.0/16",
    ),
    (
        "deny-before-allow",
        [crossing(acl(entry(50, "deny", "10.1.0.0/16", 4222), entry(100, "allow", "10.0.0.0/8", 4222), REPLIES))],
        Status.FAIL,
        "inbound 4222/tcp from 10.1.0.0/16 blocked by rule 50 (deny tcp 4222 from 10.1.0.0/16)",
        "--ingress --rule-number 49 --protocol tcp --port-range From=4222,To=4222 --cidr-block 10.1.0.0/16",
    ),
    (
        "deny-at-a-used-number",
        [crossing(acl(entry(49, "allow", "192.168.0.0/16", 22), entry(50, "deny", "0.0.0.0/0", 4222), REPLIES))],
        Status.FAIL,
        "blocked by rule 50",
        "--ingress --rule-number 48 ",
    ),
    (
        "replies-partly-denied",
        [
            crossing(
                acl(
                    entry(90, "deny", "0.0.0.0/0", 32768, 65535, egress=True),
                    entry(100, "allow", "10.0.0.0/8", 4222),
                    REPLIES,
                )
            )
        ],
        Status.FAIL,
        "replies to 10.1.0.0/16 on tcp 1024-65535 blocked by rule 90",
        "--egress --rule-number 89 ",
    ),
    ("no-acl", [crossing(None)], Status.FAIL, "node subnet subnet-1: no network ACL found", None),
]


@pytest.mark.parametrize(
    ("crossings", "status", "fragment", "fix"), [c[1:] for c in NACL_CASES], ids=[c[0] for c in NACL_CASES]
)
def test_network_acls(crossings: list[checks.AclCrossing], status: Status, fragment: str, fix: str | None) -> None:
    finding = checks.decide_network_acls(crossings, ["10.1.0.0/16"], {"service_type": "NodePort"})
    check(finding, status, fragment)
    if fix is None:
        assert status is Status.PASS or finding.remediation is None
    else:
        assert finding.remediation is not None and fix in finding.remediation
    assert finding.evidence["service_type"] == "NodePort"


def test_one_acl_on_several_subnets_is_evaluated_once() -> None:
    shared = acl(entry(100, "allow", "10.0.0.0/8", 4222), REPLIES)
    default = aws.NetworkAcl("acl-d", "vpc-1", True, [entry(100, "allow", "0.0.0.0/0"), STAR_IN, STAR_OUT])
    finding = checks.decide_network_acls(
        [crossing(shared, "subnet-1"), crossing(shared, "subnet-2"), crossing(default, "subnet-3", explicit=False)],
        ["10.1.0.0/16"],
        {},
    )
    # A failure names only what fails: the passing acl-1 stays in the evidence, once for both subnets.
    assert finding.status is Status.FAIL and "acl-1" not in finding.message and "acl-d" in finding.message
    acls = finding.evidence["network_acls"]
    assert [a["subnets"] for a in acls] == [["subnet-1", "subnet-2"], ["subnet-3"]]
    assert acls[1]["association"] == "implicit (the VPC's default NACL)" and acls[1]["network_acl"] == "acl-d (default)"
    assert acls[1]["outbound_replies"]["verdict"] == "blocked"  # the default's egress here has only the '*' deny
