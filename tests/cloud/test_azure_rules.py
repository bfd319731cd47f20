"""Azure NSG rules in the shared rule model: service tags, singular/plural fields, destinations, layers."""

from __future__ import annotations

import ipaddress

from preflight.cloud import azure as az

VNET = ("10.240.0.0/16",)
PEERED = ("10.20.0.0/24",)
NODE = "10.240.0.4"
LB_IP = "20.50.60.70"


def nsg(*rules: az.NsgRule, name: str = "nsg-a", rg: str = "rg") -> az.Nsg:
    return az.Nsg(
        f"/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}",
        name,
        rg,
        (*rules, *az.DEFAULT_RULES),
    )


def rule(
    name: str,
    priority: int,
    access: str = "Allow",
    *,
    src: tuple[str, ...] = ("*",),
    dst: tuple[str, ...] = ("*",),
    ports: tuple[str, ...] = ("4222",),
    proto: str = "Tcp",
    direction: str = "Inbound",
    **kw: bool,
) -> az.NsgRule:
    return az.NsgRule(name, priority, direction, access, proto, src, dst, ports, **kw)


def test_internet_tag_is_everything_but_private_space() -> None:
    nets = [ipaddress.ip_network(n) for n in az.INTERNET]
    for public in ("203.0.113.9", "8.8.8.8", "168.63.129.16", "2001:db8::1"):
        ip = ipaddress.ip_address(public)
        assert any(ip in n for n in nets if n.version == ip.version), public
    for private in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1"):
        ip = ipaddress.ip_address(private)
        assert not any(ip in n for n in nets if n.version == ip.version), private


def test_service_tags_and_literal_prefixes() -> None:
    assert az.expand("*", VNET) == ["0.0.0.0/0", "::/0"]
    assert az.expand("VirtualNetwork", VNET + PEERED) == ["10.240.0.0/16", "10.20.0.0/24"]
    assert az.expand("virtualnetwork", ()) == [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
    ]
    assert az.expand("AzureLoadBalancer", VNET) == ["168.63.129.16/32"]
    assert az.expand("198.51.100.7", VNET) == ["198.51.100.7/32"]
    assert az.expand("Storage.WestEurope", VNET) is None


def test_vnet_tag_admits_a_peered_private_origin() -> None:
    lay = az.layer(nsg(), VNET + PEERED, NODE)
    v = az.through([lay], ["10.20.0.0/24"], 31222).verdict
    assert v.state == "allowed" and v.deciding == ["nsg nsg-a: AllowVnetInBound (priority 65000, default)"]
    # A public frontend IP is not in the VNet: the same origin then falls to DenyAllInBound.
    v = az.through([az.layer(nsg(), VNET + PEERED, LB_IP)], ["10.20.0.0/24"], 4222).verdict
    assert v.state == "blocked" and v.deciding == ["nsg nsg-a: DenyAllInBound (priority 65500, default)"]


def test_outbound_other_ports_and_protocols_are_ignored() -> None:
    lay = az.layer(
        nsg(
            rule("out", 100, src=("203.0.113.0/24",), direction="Outbound"),
            rule("udp", 110, src=("203.0.113.0/24",), proto="Udp"),
            rule("other-port", 120, src=("203.0.113.0/24",), ports=("443", "8000-8080")),
            rule("any-proto", 130, src=("203.0.113.0/24",), proto="*", ports=("4000-4300",)),
        ),
        VNET,
        LB_IP,
    )
    v = az.through([lay], ["203.0.113.10/32"], 4222).verdict
    assert v.state == "allowed" and v.deciding == ["nsg nsg-a: any-proto (priority 130)"]


def test_destination_must_cover_the_target() -> None:
    other_lb = rule("k8s-azure-lb_allow_other", 200, src=("203.0.113.0/24",), dst=("20.50.60.99",))
    mine = rule("k8s-azure-lb_allow_mine", 210, src=("203.0.113.0/24",), dst=(LB_IP, "20.50.60.98"))
    v = az.through([az.layer(nsg(other_lb, mine), VNET, LB_IP)], ["203.0.113.10/32"], 4222).verdict
    assert v.deciding == ["nsg nsg-a: k8s-azure-lb_allow_mine (priority 210)"]
    # Destination unknown (None): every rule counts.
    v = az.through([az.layer(nsg(other_lb, mine), VNET, None)], ["203.0.113.10/32"], 4222).verdict
    assert v.deciding == ["nsg nsg-a: k8s-azure-lb_allow_other (priority 200)"]


def test_partial_origin_names_the_deny() -> None:
    lay = az.layer(
        nsg(
            rule("deny-half", 100, "Deny", src=("203.0.113.0/25",)),
            rule("allow-all-origin", 200, src=("203.0.113.0/24",)),
        ),
        VNET,
        LB_IP,
    )
    v = az.through([lay], ["203.0.113.0/24"], 4222).verdict
    assert v.state == "partial" and v.allowed == ["203.0.113.128/25"] and v.blocked == ["203.0.113.0/25"]
    assert v.deciding == ["nsg nsg-a: deny-half (priority 100)"]


def test_two_layers_allow_only_where_both_allow() -> None:
    subnet = az.layer(nsg(rule("allow-wide", 100, src=("203.0.113.0/24",)), name="nsg-subnet"), VNET, LB_IP)
    nic = az.layer(nsg(rule("allow-narrow", 100, src=("203.0.113.0/28",)), name="nsg-nic"), VNET, LB_IP)
    pv = az.through([subnet, nic], ["203.0.113.0/24"], 4222)
    assert pv.verdict.state == "partial" and pv.verdict.allowed == ["203.0.113.0/28"]
    [(layer, blocked, why)] = pv.blockers
    assert layer.nsg.name == "nsg-nic" and why == ["nsg nsg-nic: DenyAllInBound (priority 65500, default)"]
    assert "203.0.113.128/25" in blocked


def test_world_open_counts_only_rules_that_let_the_internet_through() -> None:
    internet = rule("allow-internet", 300, src=("Internet",))
    assert az.world_open([az.layer(nsg(internet), VNET, LB_IP)], 4222) == ["nsg nsg-a: allow-internet (priority 300)"]
    star = rule("allow-any", 300, src=("*",))
    assert az.world_open([az.layer(nsg(star), VNET, LB_IP)], 4222) == ["nsg nsg-a: allow-any (priority 300)"]
    shadowed = (rule("deny-internet", 100, "Deny", src=("Internet",)), internet)
    assert az.world_open([az.layer(nsg(*shadowed), VNET, LB_IP)], 4222) == []
    # Open on the NICs but restricted on the subnet: not world-open.
    subnet = az.layer(nsg(rule("origin-only", 100, src=("203.0.113.10/32",)), name="s"), VNET, LB_IP)
    assert az.world_open([subnet, az.layer(nsg(internet, name="n"), VNET, LB_IP)], 4222) == []


def test_application_security_groups_and_unknown_tags_are_noted() -> None:
    lay = az.layer(
        nsg(rule("asg", 100, src=("*",), source_asgs=True), rule("storage", 110, src=("Storage",))), VNET, LB_IP
    )
    assert any("application security groups" in n for n in lay.notes)
    assert any("'Storage'" in n for n in lay.notes)


def test_free_priority_skips_used_numbers() -> None:
    n = nsg(rule("a", 149), rule("b", 150, "Deny"))
    assert az.free_priority(n, 150) == 148
    assert az.free_priority(n, 65500) == 4096
    assert az.free_priority(nsg(rule("first", 100, "Deny")), 100) is None


def test_sdk_models_normalise_singular_plural_and_enums() -> None:
    from azure.mgmt.network.models import NetworkSecurityGroup

    model = NetworkSecurityGroup(
        {
            "id": "/subscriptions/s/resourceGroups/MC_rg_c_eastus/providers/Microsoft.Network/networkSecurityGroups/n",
            "name": "n",
            "properties": {
                "securityRules": [
                    {
                        "name": "r",
                        "properties": {
                            "priority": 100,
                            "access": "Allow",
                            "direction": "Inbound",
                            "protocol": "Tcp",
                            "sourceAddressPrefixes": ["198.51.100.0/24", "203.0.113.0/28"],
                            "destinationAddressPrefix": "*",
                            "destinationPortRange": "4222",
                            "destinationPortRanges": [],
                        },
                    }
                ]
            },
        }
    )
    parsed = az._nsg_from(model)
    r = parsed.rules[0]
    assert (r.access, r.direction, r.protocol) == ("Allow", "Inbound", "Tcp")
    assert r.sources == ("198.51.100.0/24", "203.0.113.0/28") and r.ports == ("4222",)
    assert parsed.resource_group == "MC_rg_c_eastus"
    # No defaultSecurityRules in the response: ARM's defaults are assumed, never "no rule, allow".
    assert [d.name for d in parsed.rules if d.default] == [
        "AllowVnetInBound",
        "AllowAzureLoadBalancerInBound",
        "DenyAllInBound",
    ]
