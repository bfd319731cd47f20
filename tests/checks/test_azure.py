"""The AKS checks' decisions as tables: the managed cluster, the NSGs on each node subnet and a DNS answer as
plain data, the origin and the port in, a finding out. No server; tests/cloud/test_azure.py drives the same
checks through the lab's fake ARM for the SDK path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from preflight.checks import azure as checks
from preflight.cloud import azure as az
from preflight.engine.model import Status
from preflight.engine.probes import dns

FQDN = "prod-dns-1a2b.hcp.westeurope.azmk8s.io"
PRIVATE_FQDN = "prod-1a2b.privatelink.westeurope.azmk8s.io"
CLUSTER = az.AksCluster(
    id="/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod",
    name="prod",
    subscription="sub",
    resource_group="rg",
    fqdn=FQDN,
    private_fqdn=None,
    private=False,
    public_fqdn=True,
    authorized_ranges=(),
    private_dns_zone=None,
    node_resource_group="MC_rg_prod_westeurope",
    pools=(("nodepool1", None),),
)
PRIVATE = replace(CLUSTER, private=True, private_fqdn=PRIVATE_FQDN, private_dns_zone="system")
CONTEXT = {"ids_from": {"subscription": "fleet file"}, "kubeconfig_host": FQDN, "azure_api_calls": 1}


# --------------------------------------------------------------------------------------------------
# azure.aks.endpoint-access

ENDPOINT_CASES: list[tuple[str, az.AksCluster, tuple[str, ...], Status, str, str]] = [
    (
        "public-open",
        CLUSTER,
        ("198.51.100.7/32",),
        Status.WARN,
        "public API server with no authorized IP ranges: open to the whole internet",
        "az aks update -g rg -n prod --api-server-authorized-ip-ranges 198.51.100.7/32",
    ),
    (
        "public-open-no-origin",
        CLUSTER,
        (),
        Status.WARN,
        "open to the whole internet",
        "--api-server-authorized-ip-ranges <server egress CIDRs>",
    ),
    (
        "ranges-no-origin",
        replace(CLUSTER, authorized_ranges=("203.0.113.0/24",)),
        (),
        Status.WARN,
        "authorized IP ranges 203.0.113.0/24; pass --origin",
        "--origin",
    ),
    (
        "ranges-cover",
        replace(CLUSTER, authorized_ranges=("203.0.113.0/24", "198.51.100.0/24")),
        ("198.51.100.7/32",),
        Status.PASS,
        "authorized IP ranges 203.0.113.0/24, 198.51.100.0/24 cover the origin 198.51.100.7/32",
        "",
    ),
    (
        "ranges-miss",
        replace(CLUSTER, authorized_ranges=("203.0.113.0/24",)),
        ("198.51.100.7/32", "203.0.113.9/32"),
        Status.FAIL,
        "do not cover the Server's origin 198.51.100.7/32: the API server drops its connections",
        "--api-server-authorized-ip-ranges 203.0.113.0/24,198.51.100.7/32",
    ),
    (
        "ranges-partly-miss",
        replace(CLUSTER, authorized_ranges=("198.51.100.0/25",)),
        ("198.51.100.0/24",),
        Status.FAIL,
        "do not cover the Server's origin 198.51.100.128/25",
        "198.51.100.0/25,198.51.100.128/25",
    ),
    ("private-no-origin", PRIVATE, (), Status.WARN, "(it resolves to the private address); pass --origin", "--origin"),
    (
        "private-public-origin",
        replace(PRIVATE, public_fqdn=False),
        ("10.1.0.0/16", "198.51.100.7/32"),
        Status.FAIL,
        "private API server without a public FQDN, but the Server's origin 198.51.100.7/32 is not private",
        "run Meshery Server in the cluster's VNet or a peered VNet",
    ),
    (
        "private-private-origin",
        PRIVATE,
        ("10.1.0.0/16",),
        Status.PASS,
        f"private API server with public FQDN {FQDN} (it resolves to the private address); the origin 10.1.0.0/16 "
        "is private",
        "",
    ),
]


@pytest.mark.parametrize(
    ("cluster", "origin", "status", "fragment", "fix"),
    [c[1:] for c in ENDPOINT_CASES],
    ids=[c[0] for c in ENDPOINT_CASES],
)
def test_endpoint_access(
    cluster: az.AksCluster, origin: tuple[str, ...], status: Status, fragment: str, fix: str
) -> None:
    finding = checks.decide_endpoint_access(cluster, origin, CONTEXT)
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message
    if fix:
        assert finding.remediation is not None and fix in finding.remediation, finding.remediation
    ev = finding.evidence
    assert ev["cluster"] == cluster.id and ev["private"] is cluster.private and ev["azure_api_calls"] == 1
    assert ev["public_fqdn_enabled"] == (cluster.public_fqdn if cluster.private else None)


# --------------------------------------------------------------------------------------------------
# azure.aks.private-dns

LOOKUP_CASES = [
    ("private-fqdn-system-zone", PRIVATE, "other.example", PRIVATE_FQDN, False, "privatelink.westeurope.azmk8s.io"),
    ("public-fqdn-used", PRIVATE, FQDN.upper() + ".", FQDN, True, None),
    (
        "no-public-fqdn",
        replace(PRIVATE, public_fqdn=False),
        FQDN,
        PRIVATE_FQDN,
        False,
        "privatelink.westeurope.azmk8s.io",
    ),
    ("zone-none", replace(PRIVATE, private_dns_zone="none"), "", PRIVATE_FQDN, False, None),
    (
        "custom-zone",
        replace(
            PRIVATE,
            private_dns_zone="/subscriptions/sub/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/"
            "privatelink.westeurope.azmk8s.io",
        ),
        "",
        PRIVATE_FQDN,
        False,
        "privatelink.westeurope.azmk8s.io",
    ),
]


@pytest.mark.parametrize(
    ("cluster", "host", "name", "on_public", "zone"), [c[1:] for c in LOOKUP_CASES], ids=[c[0] for c in LOOKUP_CASES]
)
def test_the_name_looked_up_and_its_zone(
    cluster: az.AksCluster, host: str, name: str, on_public: bool, zone: str | None
) -> None:
    lookup = checks.dns_lookup(cluster, host)
    assert (lookup.name, lookup.on_public, lookup.zone) == (name, on_public, zone)


def test_a_custom_zone_names_its_own_resource_group_and_a_system_zone_the_node_group() -> None:
    custom = replace(
        PRIVATE,
        private_dns_zone="/subscriptions/sub/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/z.io",
    )
    assert checks.dns_lookup(custom, "").zone_resource_group == "dns-rg"
    assert checks.dns_lookup(PRIVATE, "").zone_resource_group == "MC_rg_prod_westeurope"


PRIVATE_LOOKUP = checks.DnsLookup(PRIVATE_FQDN, False, "privatelink.westeurope.azmk8s.io", "MC_rg_prod_westeurope")
PUBLIC_LOOKUP = checks.DnsLookup(FQDN, True, None, None)


def answer(*addresses: str) -> dns.Resolution:
    return dns.Resolution(PRIVATE_FQDN, list(addresses), resolver="127.0.0.53")


DNS_CASES: list[tuple[str, checks.DnsLookup, Any, Status, str, str]] = [
    ("private-address", PRIVATE_LOOKUP, answer("10.240.0.10"), Status.PASS, "10.240.0.10 (private)", ""),
    (
        "public-address",
        PRIVATE_LOOKUP,
        answer("20.1.2.3"),
        Status.FAIL,
        "→ 20.1.2.3 (public): not the API server's private address",
        "az network private-dns link vnet create -g MC_rg_prod_westeurope -z privatelink.westeurope.azmk8s.io",
    ),
    (
        "nxdomain",
        PRIVATE_LOOKUP,
        dns.DnsFailure("nxdomain", "no such name"),
        Status.FAIL,
        "private FQDN: no such name",
        "Link the private DNS zone privatelink.westeurope.azmk8s.io to the Server's VNet",
    ),
    (
        "timeout",
        PRIVATE_LOOKUP,
        dns.DnsFailure("timeout", "no answer in 2s"),
        Status.FAIL,
        "no answer in 2s",
        "The resolver did not answer",
    ),
    (
        "public-fqdn-nxdomain",
        PUBLIC_LOOKUP,
        dns.DnsFailure("nxdomain", "no such name"),
        Status.FAIL,
        "public FQDN: no such name",
        "its A record is in Azure public DNS",
    ),
    (
        "zone-none-public-answer",
        checks.DnsLookup(PRIVATE_FQDN, False, None, None),
        answer("20.1.2.3"),
        Status.FAIL,
        "not the API server's private address",
        "privateDNSZone is 'none'",
    ),
    ("no-name", checks.DnsLookup("", False, None, None), None, Status.ERROR, "ARM reports no private FQDN", ""),
]


@pytest.mark.parametrize(
    ("lookup", "result", "status", "fragment", "fix"), [c[1:] for c in DNS_CASES], ids=[c[0] for c in DNS_CASES]
)
def test_private_dns(lookup: checks.DnsLookup, result: Any, status: Status, fragment: str, fix: str) -> None:
    finding = checks.decide_private_dns(PRIVATE, lookup, result, {"resolver": "system", "azure_api_calls": 2})
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message
    if fix:
        assert finding.remediation is not None and fix in finding.remediation, finding.remediation
    ev = finding.evidence
    assert ev["name"] == lookup.name and ev["which"] == lookup.which and ev["azure_api_calls"] == 2
    if isinstance(result, dns.Resolution):
        assert ev["resolver"] == "127.0.0.53" and [a["address"] for a in ev["addresses"]] == result.addresses
    if isinstance(result, dns.DnsFailure):
        assert ev["failure"] == result.kind


# --------------------------------------------------------------------------------------------------
# azure.nsg.broker

VNET = ("10.240.0.0/16",)
LB_IP = "20.50.60.70"
NODE_RG = "MC_rg_prod_westeurope"


def nsg(*rules: az.NsgRule, name: str = "aks-agentpool-nsg", rg: str = NODE_RG) -> az.Nsg:
    nid = f"/subscriptions/sub/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"
    return az.Nsg(nid, name, rg, (*rules, *az.DEFAULT_RULES))


def rule(name: str, priority: int, access: str = "Allow", src: str = "*", port: str = "4222") -> az.NsgRule:
    return az.NsgRule(name, priority, "Inbound", access, "Tcp", (src,), ("*",), (port,))


def path(*nsgs: az.Nsg, label: str = "node subnet aks-subnet") -> checks.NsgPath:
    return checks.NsgPath(label, nsgs, VNET)


OFFICE = ("198.51.100.0/24",)
SUBNET_NSG = nsg(rule("allow-office", 200, src="198.51.100.0/24"), name="subnet-nsg", rg="net-rg")

NSG_CASES: list[tuple[str, str, int, list[checks.NsgPath], tuple[str, ...], Status, str, str]] = [
    (
        "allowed-through-both",
        "LoadBalancer",
        4222,
        [path(SUBNET_NSG, nsg(rule("k8s-azure-lb_allow", 500, src="198.51.100.0/24")))],
        OFFICE,
        Status.PASS,
        "4222/tcp from 198.51.100.0/24 allowed by nsg subnet-nsg: allow-office (priority 200)",
        "",
    ),
    (
        "blocked-by-default-deny",
        "LoadBalancer",
        4222,
        [path(nsg())],
        OFFICE,
        Status.FAIL,
        f"4222/tcp from 198.51.100.0/24 to {LB_IP} blocked by nsg aks-agentpool-nsg: DenyAllInBound (priority 65500, "
        "default) (path: node subnet aks-subnet)",
        "nsg aks-agentpool-nsg belongs to AKS: add 198.51.100.0/24 to the Broker's "
        "spec.service.loadBalancerSourceRanges",
    ),
    (
        "blocked-in-the-second-nsg",
        "NodePort",
        30222,
        [path(nsg(rule("allow-np", 200, src="198.51.100.0/24", port="30222"), name="subnet-nsg", rg="net-rg"), nsg())],
        OFFICE,
        Status.FAIL,
        "30222/tcp from 198.51.100.0/24 to 10.240.0.4 blocked by nsg aks-agentpool-nsg: DenyAllInBound",
        "az network nsg rule create -g MC_rg_prod_westeurope --nsg-name aks-agentpool-nsg -n allow-meshery-broker "
        "--priority 4096 --direction Inbound --access Allow --protocol Tcp --source-address-prefixes 198.51.100.0/24 "
        "--destination-port-ranges 30222",
    ),
    (
        "explicit-deny-first",
        "LoadBalancer",
        4222,
        [path(nsg(rule("deny-office", 300, "Deny", src="198.51.100.0/24"), rule("allow-all", 400), rg="net-rg"))],
        OFFICE,
        Status.FAIL,
        "blocked by nsg aks-agentpool-nsg: deny-office (priority 300)",
        "--priority 299 ",
    ),
    (
        "no-nsg",
        "LoadBalancer",
        4222,
        [path()],
        OFFICE,
        Status.FAIL,
        "no NSG on node subnet aks-subnet: nothing filters 4222/tcp, any address reaches the Broker",
        "Attach an NSG to the node subnet",
    ),
    (
        "world-open",
        "LoadBalancer",
        4222,
        [path(nsg(rule("k8s-azure-lb_allow", 500, src="Internet")))],
        OFFICE,
        Status.FAIL,
        "4222/tcp is open to the whole internet through nsg aks-agentpool-nsg: k8s-azure-lb_allow (priority 500)",
        "--nsg-name aks-agentpool-nsg -n k8s-azure-lb_allow --source-address-prefixes 198.51.100.0/24",
    ),
    (
        "world-open-stopped-by-the-subnet-nsg",
        "LoadBalancer",
        4222,
        [path(SUBNET_NSG, nsg(rule("k8s-azure-lb_allow", 500, src="Internet")))],
        OFFICE,
        Status.PASS,
        "allowed by nsg subnet-nsg: allow-office (priority 200)",
        "",
    ),
    (
        "no-origin",
        "LoadBalancer",
        4222,
        [path(SUBNET_NSG)],
        (),
        Status.WARN,
        "4222/tcp is not world-open; pass --origin",
        "--origin",
    ),
    (
        "other-destination",
        "LoadBalancer",
        4222,
        [
            path(
                nsg(
                    az.NsgRule("allow-other-ip", 200, "Inbound", "Allow", "Tcp", ("*",), ("20.9.9.9",), ("4222",)),
                    rg="net-rg",
                )
            )
        ],
        OFFICE,
        Status.FAIL,
        "blocked by nsg aks-agentpool-nsg: DenyAllInBound",
        "--destination-address-prefixes 20.50.60.70",
    ),
]


@pytest.mark.parametrize(
    ("kind", "port", "paths", "origin", "status", "fragment", "fix"),
    [c[1:] for c in NSG_CASES],
    ids=[c[0] for c in NSG_CASES],
)
def test_nsg_broker(
    kind: str,
    port: int,
    paths: list[checks.NsgPath],
    origin: tuple[str, ...],
    status: Status,
    fragment: str,
    fix: str,
) -> None:
    targets = [LB_IP] if kind == "LoadBalancer" else ["10.240.0.4"]
    finding = checks.decide_nsg_broker(CLUSTER, kind, port, targets, paths, origin, calls=4)
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message
    if fix:
        assert finding.remediation is not None and fix in finding.remediation, finding.remediation
    ev = finding.evidence
    assert (ev["type"], ev["port"], ev["targets"], ev["azure_api_calls"]) == (kind, port, targets, 4)
    assert [p["path"] for p in ev["paths"]] == [p.label for p in paths]


def test_targets_with_the_same_rules_are_evaluated_once_and_a_destination_rule_splits_them() -> None:
    only_first = az.NsgRule("allow-one", 200, "Inbound", "Allow", "Tcp", OFFICE, ("10.240.0.4",), ("30222",))
    finding = checks.decide_nsg_broker(
        CLUSTER, "NodePort", 30222, ["10.240.0.4", "10.240.0.5", "10.240.0.6"], [path(nsg(only_first))], OFFICE, calls=0
    )
    assert [p["targets"] for p in finding.evidence["paths"]] == [["10.240.0.4"], ["10.240.0.5", "10.240.0.6"]]
    assert finding.status is Status.FAIL and "to 10.240.0.5 blocked" in finding.message
