"""cloud/rules.py: provider semantics table tests, and evaluate() against a per-address brute force."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.cloud.rules import FIRST_MATCH, PRIORITY, UNION, WORLD, Rule, Verdict, describe, evaluate

BROKER = 4222
EPHEMERAL = (1024, 65535)


def sg(
    group: str,
    index: int,
    sources: tuple[str, ...],
    ports: tuple[tuple[int, int], ...] = ((BROKER, BROKER),),
    protocol: str = "tcp",
) -> Rule:
    return Rule("aws-sg", f"ingress[{index}]", "allow", sources, ports, protocol, container=group)


def nacl(
    number: int,
    action: str,
    source: str,
    ports: tuple[tuple[int, int], ...] = (),
    protocol: str = "all",
    direction: str = "ingress",
) -> Rule:
    return Rule(
        "aws-nacl",
        f"rule {number}",
        action,
        (source,),
        ports,
        protocol,
        priority=number,
        direction=direction,
        container="acl-0f00 (private-a)",
    )


def gcp(
    name: str,
    action: str,
    priority: int,
    sources: tuple[str, ...] = ("10.0.0.0/8",),
    targets: frozenset[str] | None = None,
    ports: tuple[tuple[int, int], ...] = ((BROKER, BROKER),),
) -> Rule:
    return Rule("gcp", name, action, sources, ports, "tcp", priority, targets=targets, container=f"firewall {name}")


def azure(
    name: str, action: str, priority: int, sources: tuple[str, ...], ports: tuple[tuple[int, int], ...] = ()
) -> Rule:
    return Rule("azure", name, action, sources, ports, "all", priority, container="nsg aks-agentpool-nsg")


AZURE_DEFAULTS = (
    azure("AllowVnetInBound", "allow", 65000, ("10.224.0.0/12",)),
    azure("AllowAzureLoadBalancerInBound", "allow", 65001, ("168.63.129.16/32",)),
    azure("DenyAllInBound", "deny", 65500, WORLD),
)


# --- AWS security groups: union ------------------------------------------------------------------


def test_sg_union_over_several_groups() -> None:
    rules = [
        sg("sg-0abc (eks-nodes)", 0, ("10.0.0.0/16",)),
        sg("sg-0abc (eks-nodes)", 1, ("0.0.0.0/0",), ports=((443, 443),)),
        sg("sg-0def (meshery)", 0, ("192.168.10.0/24",)),
    ]
    v = evaluate(rules, ["10.0.5.0/24", "192.168.10.7/32"], BROKER, semantics=UNION)
    assert v.state == "allowed"
    assert v.allowed == ["10.0.5.0/24", "192.168.10.7/32"] and v.blocked == []
    assert v.deciding == ["sg-0abc (eks-nodes): ingress[0]", "sg-0def (meshery): ingress[0]"]
    assert v.world_open == []  # the world-open rule is for 443, not the broker port

    v = evaluate(rules, ["172.16.0.0/16"], BROKER, semantics=UNION)
    assert v.state == "blocked" and v.blocked == ["172.16.0.0/16"] and v.deciding == []

    # Half of a /15 is in the allowed /16.
    v = evaluate(rules, ["10.0.0.0/15"], BROKER, semantics=UNION)
    assert (v.state, v.allowed, v.blocked) == ("partial", ["10.0.0.0/16"], ["10.1.0.0/16"])


def test_sg_ignores_deny_rules() -> None:
    rules = [sg("sg-1", 0, ("10.0.0.0/8",)), dataclasses.replace(sg("sg-1", 1, ("10.0.0.0/8",)), action="deny")]
    assert evaluate(rules, ["10.1.1.1/32"], BROKER, semantics=UNION).state == "allowed"


def test_sg_ipv6_world_open_flagged() -> None:
    rules = [sg("sg-0abc (eks-nodes)", 0, ("10.0.0.0/16",)), sg("sg-0abc (eks-nodes)", 1, ("::/0",))]
    v = evaluate(rules, ["2001:db8:1::/48"], BROKER, semantics=UNION)
    assert v.state == "allowed" and v.allowed == ["2001:db8:1::/48"]
    assert v.world_open == ["sg-0abc (eks-nodes): ingress[1]"]
    # The ::/0 rule does nothing for IPv4.
    v = evaluate(rules, ["203.0.113.9/32"], BROKER, semantics=UNION)
    assert v.state == "blocked" and v.world_open == ["sg-0abc (eks-nodes): ingress[1]"]


# --- AWS network ACLs: first match by rule number --------------------------------------------------

NACL_DEFAULT_DENY = nacl(32767, "deny", "0.0.0.0/0")


def test_nacl_deny_before_allow() -> None:
    rules = [
        nacl(100, "deny", "10.0.1.0/24"),
        nacl(200, "allow", "10.0.0.0/16", ((BROKER, BROKER),), "tcp"),
        NACL_DEFAULT_DENY,
    ]
    v = evaluate(rules, ["10.0.0.0/23"], BROKER, semantics=FIRST_MATCH)
    assert (v.state, v.allowed, v.blocked) == ("partial", ["10.0.0.0/24"], ["10.0.1.0/24"])
    assert set(v.deciding) == {"acl-0f00 (private-a): rule 100", "acl-0f00 (private-a): rule 200"}
    # Outside the /16 the catch-all deny decides.
    v = evaluate(rules, ["10.9.0.0/24"], BROKER, semantics=FIRST_MATCH)
    assert v.state == "blocked" and v.deciding == ["acl-0f00 (private-a): rule 32767"]


def test_nacl_allow_before_deny() -> None:
    rules = [
        nacl(100, "allow", "10.0.0.0/16", ((BROKER, BROKER),), "tcp"),
        nacl(200, "deny", "10.0.1.0/24"),
        NACL_DEFAULT_DENY,
    ]
    v = evaluate(rules, ["10.0.0.0/23"], BROKER, semantics=FIRST_MATCH)
    assert (v.state, v.allowed, v.blocked) == ("allowed", ["10.0.0.0/23"], [])
    assert v.deciding == ["acl-0f00 (private-a): rule 100"]


def test_nacl_orders_by_rule_number_not_list_order() -> None:
    listed = [NACL_DEFAULT_DENY, nacl(200, "allow", "10.0.0.0/16"), nacl(100, "deny", "10.0.1.0/24")]
    v = evaluate(listed, ["10.0.0.0/23"], BROKER, semantics=FIRST_MATCH)
    assert (v.state, v.allowed, v.blocked) == ("partial", ["10.0.0.0/24"], ["10.0.1.0/24"])
    # Reversed numbers, same list order: the allow now comes first.
    listed = [NACL_DEFAULT_DENY, nacl(100, "allow", "10.0.0.0/16"), nacl(200, "deny", "10.0.1.0/24")]
    assert evaluate(listed, ["10.0.0.0/23"], BROKER, semantics=FIRST_MATCH).state == "allowed"


def test_nacl_no_match_is_deny() -> None:
    v = evaluate([nacl(100, "allow", "10.0.0.0/16")], ["10.1.0.0/16"], BROKER, semantics=FIRST_MATCH)
    assert v.state == "blocked" and v.deciding == []


# --- GCP firewall: priority, deny wins ties, target tags -----------------------------------------


def test_gcp_deny_beats_allow_at_same_priority() -> None:
    rules = [gcp("allow-broker", "allow", 1000), gcp("deny-broker", "deny", 1000, ("10.1.0.0/16",))]
    v = evaluate(rules, ["10.1.2.0/24"], BROKER, semantics=PRIORITY)
    assert v.state == "blocked" and v.deciding == ["firewall deny-broker: deny-broker"]
    # Order in the list does not matter.
    v = evaluate(rules[::-1], ["10.1.2.0/24"], BROKER, semantics=PRIORITY)
    assert v.state == "blocked" and v.deciding == ["firewall deny-broker: deny-broker"]
    # Outside the deny's range the allow decides.
    v = evaluate(rules, ["10.0.0.0/15"], BROKER, semantics=PRIORITY)
    assert (v.state, v.allowed, v.blocked) == ("partial", ["10.0.0.0/16"], ["10.1.0.0/16"])


@pytest.mark.parametrize(
    ("allow_prio", "deny_prio", "state"),
    [(900, 1000, "allowed"), (1000, 900, "blocked"), (0, 65534, "allowed"), (65534, 0, "blocked")],
)
def test_gcp_lower_priority_number_wins(allow_prio: int, deny_prio: int, state: str) -> None:
    rules = [gcp("deny-all", "deny", deny_prio, ("0.0.0.0/0",)), gcp("allow-meshery", "allow", allow_prio)]
    assert evaluate(rules, ["10.20.0.0/16"], BROKER, semantics=PRIORITY).state == state


def test_gcp_target_tags() -> None:
    node = frozenset({"gke-prod-node", "sa:nodes@proj.iam.gserviceaccount.com"})
    rules = [
        gcp("allow-broker", "allow", 1000, targets=frozenset({"gke-prod-node"})),
        gcp("deny-db", "deny", 100, ("0.0.0.0/0",), targets=frozenset({"db"})),
    ]
    # The deny applies to other instances only: ignored here.
    v = evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=PRIORITY, target=node)
    assert v.state == "allowed" and v.deciding == ["firewall allow-broker: allow-broker"]
    # On a db instance the deny applies and the allow does not.
    v = evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=PRIORITY, target=frozenset({"db"}))
    assert v.state == "blocked" and v.deciding == ["firewall deny-db: deny-db"]
    # A service-account target matches too.
    sa_rule = gcp("allow-sa", "allow", 1000, targets=frozenset({"sa:nodes@proj.iam.gserviceaccount.com"}))
    assert evaluate([sa_rule], ["10.0.0.0/24"], BROKER, semantics=PRIORITY, target=node).state == "allowed"
    # Unknown instance: only target-less rules apply.
    v = evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=PRIORITY, target=None)
    assert v.state == "blocked" and v.deciding == []


def test_gcp_implied_deny() -> None:
    v = evaluate([], ["10.0.0.0/24"], BROKER, semantics=PRIORITY)
    assert (v.state, v.allowed, v.blocked, v.deciding) == ("blocked", [], ["10.0.0.0/24"], [])
    assert describe(v, "broker port 4222") == "broker port 4222 blocked (no rule allows it: implied deny)"


# --- Azure NSG: first match by priority, including the default rules -----------------------------


def test_azure_priority_first_match() -> None:
    rules = [
        *AZURE_DEFAULTS,
        azure("DenyPartnerNet", "deny", 110, ("203.0.113.128/25",)),
        azure("AllowMesheryBroker", "allow", 100, ("203.0.113.0/24",), ((BROKER, BROKER),)),
    ]
    # 100 comes before 110: the whole /24 gets through.
    v = evaluate(rules, ["203.0.113.0/24"], BROKER, semantics=FIRST_MATCH)
    assert v.state == "allowed" and v.deciding == ["nsg aks-agentpool-nsg: AllowMesheryBroker"]
    # Another port: the deny at 110 then the default deny decide.
    v = evaluate(rules, ["203.0.113.0/24"], 22, semantics=FIRST_MATCH)
    assert v.state == "blocked"
    assert v.deciding == ["nsg aks-agentpool-nsg: DenyAllInBound", "nsg aks-agentpool-nsg: DenyPartnerNet"]
    # The default VNet rule lets the VNet in on every port.
    v = evaluate(rules, ["10.224.3.0/24"], 22, semantics=FIRST_MATCH)
    assert v.state == "allowed" and v.deciding == ["nsg aks-agentpool-nsg: AllowVnetInBound"]
    # The internet hits DenyAllInBound, also over IPv6.
    v = evaluate(rules, ["198.51.100.7/32", "2001:db8::1/128"], BROKER, semantics=FIRST_MATCH)
    assert v.state == "blocked" and v.deciding == ["nsg aks-agentpool-nsg: DenyAllInBound"]
    assert describe(v, "broker") == "broker blocked by nsg aks-agentpool-nsg: DenyAllInBound"


# --- protocols, ports, port ranges, directions ---------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "ports", "state"),
    [
        ("udp", ((BROKER, BROKER),), "blocked"),
        ("icmp", (), "blocked"),
        ("tcp", ((BROKER, BROKER),), "allowed"),
        ("all", (), "allowed"),
        ("tcp", ((4000, 4300),), "allowed"),
        ("tcp", ((4223, 5000),), "blocked"),
        ("tcp", ((1, 4221),), "blocked"),
        ("tcp", ((22, 22), (4222, 4222)), "allowed"),
        ("tcp", ((22, 22), (443, 443)), "blocked"),
    ],
)
def test_protocol_and_port_filtering(protocol: str, ports: tuple[tuple[int, int], ...], state: str) -> None:
    rules = [sg("sg-1", 0, ("10.0.0.0/8",), ports=ports, protocol=protocol)]
    assert evaluate(rules, ["10.1.0.0/16"], BROKER, semantics=UNION).state == state
    assert evaluate(rules, ["10.1.0.0/16"], BROKER, semantics=UNION, protocol="tcp").state == state


def test_udp_query_matches_udp_rule() -> None:
    rules = [sg("sg-1", 0, ("10.0.0.0/8",), protocol="udp")]
    assert evaluate(rules, ["10.0.0.1/32"], BROKER, semantics=UNION, protocol="udp").state == "allowed"


def out(number: int, action: str, ports: tuple[tuple[int, int], ...], source: str = "0.0.0.0/0") -> Rule:
    return nacl(number, action, source, ports, "tcp", direction="egress")


@pytest.mark.parametrize(
    ("rules", "state"),
    [
        # The usual return-traffic rule covers the whole ephemeral range.
        ([out(100, "allow", (EPHEMERAL,)), out(32767, "deny", ())], "allowed"),
        ([out(100, "allow", ((0, 65535),))], "allowed"),
        ([out(100, "allow", ())], "allowed"),
        # Linux-only ephemeral range: clients picking ports 1024-32767 would be cut off.
        ([out(100, "allow", ((32768, 65535),)), out(32767, "deny", ())], "blocked"),
        ([out(100, "allow", ((BROKER, BROKER),))], "blocked"),
        # A deny of part of the range in front of an allow-everything still cuts some connections.
        ([out(100, "deny", ((1024, 2000),)), out(200, "allow", ())], "blocked"),
        # An allow of part of the range in front of that deny does not matter for the rest.
        ([out(50, "allow", ((1024, 2000),)), out(100, "deny", ((1024, 2000),)), out(200, "allow", ())], "allowed"),
        # Two rules that together cover the range are enough.
        (
            [out(100, "allow", ((1024, 30000),)), out(110, "allow", ((30001, 65535),)), out(32767, "deny", ())],
            "allowed",
        ),
    ],
)
def test_port_range_mode_for_nacl_return_traffic(rules: list[Rule], state: str) -> None:
    v = evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=FIRST_MATCH, port_range=EPHEMERAL, direction="egress")
    assert v.state == state


def test_port_range_deciding_rules() -> None:
    rules = [out(100, "allow", ((1024, 30000),)), out(110, "allow", ((30001, 65535),)), out(32767, "deny", ())]
    v = evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=FIRST_MATCH, port_range=EPHEMERAL, direction="egress")
    assert v.deciding == ["acl-0f00 (private-a): rule 100", "acl-0f00 (private-a): rule 110"]
    rules = [out(100, "allow", ((32768, 65535),)), out(32767, "deny", ())]
    v = evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=FIRST_MATCH, port_range=EPHEMERAL, direction="egress")
    assert v.deciding == ["acl-0f00 (private-a): rule 32767"]


def test_direction_filtering() -> None:
    rules = [out(100, "allow", ()), nacl(100, "deny", "0.0.0.0/0")]
    assert evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=FIRST_MATCH).state == "blocked"
    assert evaluate(rules, ["10.0.0.0/24"], BROKER, semantics=FIRST_MATCH, direction="egress").state == "allowed"
    assert evaluate([out(100, "allow", ())], ["10.0.0.0/24"], BROKER, semantics=UNION).world_open == []


# --- origins --------------------------------------------------------------------------------------


def test_mixed_ipv4_ipv6_origin() -> None:
    rules = [sg("sg-1", 0, ("10.0.0.0/8", "2001:db8:aa::/48"))]
    v = evaluate(rules, ["10.0.0.0/24", "2001:db8::/32"], BROKER, semantics=UNION)
    assert v.state == "partial"
    assert v.allowed == ["10.0.0.0/24", "2001:db8:aa::/48"]
    assert "2001:db8::/41" in v.blocked and "2001:db8:ab::/48" in v.blocked
    assert len(v.blocked) == 16  # 2001:db8::/32 minus one /48


def test_overlapping_and_invalid_origins() -> None:
    rules = [sg("sg-1", 0, ("10.0.0.0/25",))]
    v = evaluate(rules, ["10.0.0.0/24", "10.0.0.0/25", "10.0.0.128/26", "not-a-cidr"], BROKER, semantics=UNION)
    assert (v.state, v.allowed, v.blocked) == ("partial", ["10.0.0.0/25"], ["10.0.0.128/25"])
    # A host address with host bits set is read as its network.
    v = evaluate(rules, ["10.0.0.5/30"], BROKER, semantics=UNION)
    assert v.allowed == ["10.0.0.4/30"]


def test_unknown_semantics() -> None:
    with pytest.raises(ValueError, match="unknown semantics"):
        evaluate([], ["10.0.0.0/24"], BROKER, semantics="bogus")


# --- describe -------------------------------------------------------------------------------------


def test_describe_wording() -> None:
    allowed = Verdict("allowed", allowed=["10.0.0.0/24"], deciding=["sg-0abc (eks-nodes): ingress[0]"])
    assert describe(allowed, "Meshery -> broker :4222") == (
        "Meshery -> broker :4222 allowed by sg-0abc (eks-nodes): ingress[0]"
    )
    partial = Verdict("partial", allowed=["10.0.0.0/24"], blocked=["10.0.1.0/24"], deciding=["rule 100", "rule 200"])
    assert describe(partial, "broker") == (
        "broker only partly allowed: 10.0.0.0/24 get through, 10.0.1.0/24 blocked (by rule 100, rule 200)"
    )
    assert describe(Verdict("partial", allowed=["a"], blocked=["b"]), "x") == (
        "x only partly allowed: a get through, b blocked"
    )
    assert describe(Verdict("blocked", blocked=["b"], deciding=["rule 100"]), "x") == "x blocked by rule 100"
    assert describe(Verdict("blocked", blocked=["b"]), "x") == "x blocked (no rule allows it: implied deny)"
    # And from a real evaluation.
    v = evaluate(
        [nacl(100, "deny", "10.0.1.0/24"), nacl(200, "allow", "10.0.0.0/16")],
        ["10.0.0.0/23"],
        BROKER,
        semantics=FIRST_MATCH,
    )
    assert describe(v, "broker") == (
        "broker only partly allowed: 10.0.0.0/24 get through, 10.0.1.0/24 blocked "
        "(by acl-0f00 (private-a): rule 200, acl-0f00 (private-a): rule 100)"
    )
    assert v.as_evidence() == {
        "verdict": "partial",
        "allowed": ["10.0.0.0/24"],
        "blocked": ["10.0.1.0/24"],
        "deciding_rules": ["acl-0f00 (private-a): rule 200", "acl-0f00 (private-a): rule 100"],
        "world_open_rules": [],
    }


# --- property tests: evaluate() against a per-address brute force --------------------------------

V4 = ipaddress.IPv4Network("10.0.0.0/24")
V6 = ipaddress.IPv6Network("2001:db8::/120")
PORT = 4222
RANGE = (4220, 4224)  # small so that the oracle can try every port
TAGS = ("a", "b", "c")


@st.composite
def cidrs(draw: st.DrawFn, inside: bool = False) -> str:
    kinds = ["v4", "v6"] if inside else ["v4", "v4", "v4", "v6", "v6", "world4", "world6", "outside", "junk"]
    kind = draw(st.sampled_from(kinds))
    if kind == "world4":
        return "0.0.0.0/0"
    if kind == "world6":
        return "::/0"
    if kind == "outside":
        return draw(st.sampled_from(["10.0.1.0/24", "192.0.2.0/28", "2001:db8::100/120", "9.0.0.0/8"]))
    if kind == "junk":
        return "VirtualNetwork"
    base = V4 if kind == "v4" else V6
    plen = draw(st.integers(base.prefixlen, base.max_prefixlen))
    addr = base.network_address + draw(st.integers(0, base.num_addresses - 1))
    if draw(st.booleans()):
        return f"{addr}/{plen}"  # host bits set: read as the network
    return str(ipaddress.ip_network(f"{addr}/{plen}", strict=False))


port_ranges = st.tuples(st.integers(4216, 4228), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1]))


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    n = draw(st.integers(0, 6))
    rules = []
    for i in range(n):
        rules.append(
            Rule(
                provider="test",
                name=f"r{i}",
                action=draw(st.sampled_from(["allow", "allow", "deny"])),
                sources=tuple(draw(st.lists(cidrs(), min_size=1, max_size=2))),
                ports=tuple(draw(st.lists(port_ranges, max_size=2))),
                protocol=draw(st.sampled_from(["tcp", "tcp", "all", "udp"])),
                priority=draw(st.integers(0, 3)),  # collisions on purpose
                direction=draw(st.sampled_from(["ingress", "ingress", "ingress", "egress"])),
                targets=draw(st.none() | st.frozensets(st.sampled_from(TAGS), max_size=2)),
                container=draw(st.sampled_from(["", "sg-1", "sg-2"])),
            )
        )
    return rules


def _ranges(rule: Rule) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for s in rule.sources:
        try:
            n = ipaddress.ip_network(s, strict=False)
        except ValueError:
            continue
        out.append((n.version, int(n.network_address), int(n.broadcast_address)))
    return out


def oracle_one_port(
    rules: list[Rule], semantics: str, version: int, addr: int, port: int, target: frozenset[str] | None
) -> tuple[bool, Rule | None]:
    """What the cloud does for one address and one port, straight from the provider docs."""
    hits = [
        r
        for r in rules
        if r.direction == "ingress"
        and (r.targets is None or (target is not None and r.targets & target))
        and r.protocol in ("all", "tcp")
        and (not r.ports or any(lo <= port <= hi for lo, hi in r.ports))
        and any(v == version and lo <= addr <= hi for v, lo, hi in _ranges(r))
    ]
    if semantics == UNION:
        allows = [r for r in hits if r.action == "allow"]
        return bool(allows), (allows[0] if allows else None)
    if semantics == FIRST_MATCH:
        hits.sort(key=lambda r: r.priority)
        return (bool(hits) and hits[0].action == "allow"), (hits[0] if hits else None)
    if not hits:
        return False, None
    best = min(r.priority for r in hits)
    top = [r for r in hits if r.priority == best]
    denies = [r for r in top if r.action == "deny"]
    return not denies, (denies[0] if denies else top[0])


def oracle(
    rules: list[Rule],
    semantics: str,
    version: int,
    addr: int,
    port_range: tuple[int, int] | None,
    target: frozenset[str] | None,
) -> tuple[bool, set[str]]:
    """Allowed iff every port is allowed; deciding: every port's rule if allowed, else the first failing port's."""
    ports = range(port_range[0], port_range[1] + 1) if port_range else [PORT]
    decided = [oracle_one_port(rules, semantics, version, addr, p, target) for p in ports]
    failing = [rule for ok, rule in decided if not ok]
    if failing:
        return False, ({failing[0].label()} if failing[0] else set())
    return True, {rule.label() for _, rule in decided if rule is not None}


def _addresses(cidr_list: list[str]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for c in cidr_list:
        n = ipaddress.ip_network(c)  # strict: the verdict's CIDRs must be proper networks
        lo = int(n.network_address)
        out.update((n.version, a) for a in range(lo, lo + n.num_addresses))
    return out


def _check(
    rules: list[Rule],
    semantics: str,
    origin: list[str],
    target: frozenset[str] | None,
    port_range: tuple[int, int] | None,
) -> None:
    v = evaluate(rules, origin, PORT, semantics=semantics, target=target, port_range=port_range)

    origin_addrs = _addresses([str(ipaddress.ip_network(c, strict=False)) for c in origin])
    allowed_addrs, blocked_addrs = _addresses(v.allowed), _addresses(v.blocked)
    # (c) disjoint, no overlapping CIDRs inside either list, together exactly the origin
    assert sum(ipaddress.ip_network(c).num_addresses for c in v.allowed) == len(allowed_addrs)
    assert sum(ipaddress.ip_network(c).num_addresses for c in v.blocked) == len(blocked_addrs)
    assert not allowed_addrs & blocked_addrs
    assert allowed_addrs | blocked_addrs == origin_addrs

    # (a) each address lands exactly where the brute force puts it
    deciding: set[str] = set()
    for version, addr in origin_addrs:
        ok, labels = oracle(rules, semantics, version, addr, port_range, target)
        assert ((version, addr) in allowed_addrs) == ok, (version, addr)
        deciding |= labels
    assert set(v.deciding) == deciding
    assert len(v.deciding) == len(set(v.deciding))

    # (b) state
    expected = "allowed" if not blocked_addrs else "blocked" if not allowed_addrs else "partial"
    assert v.state == expected
    assert (v.state == "allowed") == (bool(v.allowed) and not v.blocked)
    assert (v.state == "blocked") == (not v.allowed)

    # world-open: allow rules from 0.0.0.0/0 or ::/0 that apply to this port (range) and target
    ports = range(port_range[0], port_range[1] + 1) if port_range else [PORT]
    world = {
        r.label()
        for r in rules
        if r.action == "allow"
        and set(r.sources) & set(WORLD)
        and r.direction == "ingress"
        and (r.targets is None or (target is not None and r.targets & target))
        and any(r.covers_port(p, "tcp") for p in ports)
    }
    assert v.world_open == sorted(world)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=rule_sets(),
    origin=st.lists(cidrs(inside=True), min_size=1, max_size=3),
    target=st.none() | st.frozensets(st.sampled_from(TAGS), max_size=2),
    port_range=st.none() | st.just(RANGE),
    data=st.data(),
)
def test_evaluate_matches_brute_force(
    rules: list[Rule],
    origin: list[str],
    target: frozenset[str] | None,
    port_range: tuple[int, int] | None,
    data: st.DataObject,
) -> None:
    _check(rules, UNION, origin, target, port_range)
    _check(rules, PRIORITY, origin, target, port_range)
    # NACL and NSG numbers are unique within a list.
    numbers = data.draw(st.permutations(range(len(rules))))
    unique = [dataclasses.replace(r, priority=n) for r, n in zip(rules, numbers, strict=True)]
    _check(unique, FIRST_MATCH, origin, target, port_range)
