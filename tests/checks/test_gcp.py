"""The GKE checks' decisions as tables: the cluster's endpoint configuration and the VPC's firewall rules as
plain data, the origin and the port in, a finding out. No server; tests/cloud/test_gcp.py drives the same
checks through the lab's fake GCP APIs for the SDK path."""

from __future__ import annotations

from typing import Any

import pytest

from preflight.checks import gcp as checks
from preflight.cloud import gcp
from preflight.cloud.rules import Rule
from preflight.engine.model import Finding, Status

IDS = ("proj", "europe-west1", "prod")
PUBLIC_IP, PRIVATE_IP, DNS = "34.1.2.3", "10.0.0.2", "gke-abc.europe-west1.gke.goog"
OFFICE = ("office", "203.0.113.0/24")


def access(**fields: Any) -> gcp.EndpointAccess:
    base: dict[str, Any] = {"public_endpoint": PUBLIC_IP, "private_endpoint": PRIVATE_IP}
    return gcp.EndpointAccess("controlPlaneEndpointsConfig", **{**base, **fields})


def decide(a: gcp.EndpointAccess, origin: list[str], host: str = "") -> Finding:
    return checks.decide_endpoint_access(a, origin, IDS, host, ids_from={"project": "context name"}, calls={"n": 1})


ENDPOINT_CASES: list[tuple[str, gcp.EndpointAccess, list[str], str, Status, str, str]] = [
    (
        "no-origin-open",
        access(),
        [],
        "",
        Status.WARN,
        f"the public endpoint {PUBLIC_IP} is open to the internet (authorized networks disabled)",
        "--master-authorized-networks <Server egress CIDR>",
    ),
    (
        "no-origin-restricted",
        access(authorized_enabled=True, authorized=[OFFICE]),
        [],
        "",
        Status.WARN,
        "pass --origin",
        "--origin",
    ),
    (
        "dns-external",
        access(dns_endpoint=DNS, dns_external=True, authorized_enabled=True),
        ["198.51.100.7/32"],
        DNS,
        Status.PASS,
        f"the DNS endpoint {DNS} accepts external traffic (IAM-authenticated",
        "",
    ),
    (
        "dns-internal-private-origin",
        access(dns_endpoint=DNS),
        ["10.8.0.0/16"],
        DNS,
        Status.PASS,
        "accepts traffic from the VPC",
        "",
    ),
    (
        "dns-internal-public-origin",
        access(dns_endpoint=DNS),
        ["198.51.100.7/32"],
        DNS.upper(),
        Status.FAIL,
        f"the DNS endpoint {DNS} does not allow external traffic and the origin 198.51.100.7/32 is not private",
        "--enable-dns-access",
    ),
    (
        "public-open",
        access(),
        ["198.51.100.7/32"],
        PUBLIC_IP,
        Status.WARN,
        "is open to the internet (authorized networks disabled)",
        "--master-authorized-networks 198.51.100.7/32",
    ),
    (
        "public-authorized",
        access(authorized_enabled=True, authorized=[OFFICE]),
        ["203.0.113.64/26"],
        PUBLIC_IP,
        Status.PASS,
        f"the public endpoint {PUBLIC_IP} admits 203.0.113.64/26 (authorized network office (203.0.113.0/24))",
        "",
    ),
    (
        "public-not-authorized",
        access(authorized_enabled=True, authorized=[OFFICE]),
        ["198.51.100.7/32"],
        "",
        Status.FAIL,
        f"authorized networks (203.0.113.0/24) do not cover the Server's origin 198.51.100.7/32: the public endpoint "
        f"{PUBLIC_IP} drops it",
        "--master-authorized-networks 203.0.113.0/24,198.51.100.7/32",
    ),
    (
        "public-not-authorized-dns-open",
        access(authorized_enabled=True, authorized=[OFFICE], dns_endpoint=DNS, dns_external=True),
        ["198.51.100.7/32"],
        PUBLIC_IP,
        Status.FAIL,
        "do not cover the Server's origin 198.51.100.7/32",
        f"Or use the DNS endpoint {DNS}, which authorized networks do not restrict",
    ),
    (
        "public-gcp-public-cidrs",
        access(authorized_enabled=True, authorized=[OFFICE], gcp_public_cidrs=True),
        ["198.51.100.7/32"],
        PUBLIC_IP,
        Status.WARN,
        "it gets through only if it is a Google Cloud public address (gcpPublicCidrsAccessEnabled)",
        "--master-authorized-networks 203.0.113.0/24,198.51.100.7/32",
    ),
    (
        "private-endpoint-private-origin",
        access(global_access=True),
        ["10.8.0.0/16"],
        PRIVATE_IP,
        Status.PASS,
        f"private endpoint {PRIVATE_IP} for the private origin 10.8.0.0/16: it connects over the VPC, peering or a VPN",
        "",
    ),
    (
        "private-endpoint-enforced",
        access(authorized_enabled=True, authorized=[OFFICE], private_enforced=True, public_enabled=False),
        ["10.8.0.0/16"],
        "",
        Status.FAIL,
        f"authorized networks are enforced on the private endpoint {PRIVATE_IP} and do not cover the Server's "
        "origin 10.8.0.0/16",
        "--master-authorized-networks 203.0.113.0/24,10.8.0.0/16",
    ),
    (
        "private-only-public-origin",
        access(public_enabled=False, public_endpoint=""),
        ["198.51.100.7/32"],
        "",
        Status.FAIL,
        f"the control plane has a private endpoint only ({PRIVATE_IP}) and no DNS endpoint open to external "
        "traffic: the origin 198.51.100.7/32 (not private) needs VPC peering or a VPN to reach it (global access is "
        "off: only from europe-west1's region)",
        "Run Meshery Server inside the cluster's VPC",
    ),
    (
        "private-host-dns-open",
        access(public_enabled=False, dns_endpoint=DNS, dns_external=True),
        ["198.51.100.7/32"],
        PRIVATE_IP,
        Status.FAIL,
        f"the DNS endpoint {DNS} accepts external traffic, but the kubeconfig does not use it",
        "gcloud container clusters get-credentials prod --project proj --location europe-west1 --dns-endpoint",
    ),
    (
        "private-host-public-on",
        access(),
        ["198.51.100.7/32"],
        PRIVATE_IP,
        Status.FAIL,
        f"a public endpoint {PUBLIC_IP}, but the kubeconfig uses the private one ({PRIVATE_IP})",
        "(without --internal-ip)",
    ),
    (
        "no-ip-endpoint",
        access(ip_enabled=False, public_enabled=False, public_endpoint="", private_endpoint=""),
        ["198.51.100.7/32"],
        "",
        Status.FAIL,
        "the control plane has no IP endpoint and no DNS endpoint open to external traffic",
        "--enable-dns-access",
    ),
    (
        "no-ip-endpoint-dns-from-vpc",
        access(ip_enabled=False, public_enabled=False, dns_endpoint=DNS),
        ["10.8.0.0/16"],
        "",
        Status.PASS,
        "accepts traffic from the VPC",
        "",
    ),
]


@pytest.mark.parametrize(
    ("a", "origin", "host", "status", "fragment", "fix"),
    [c[1:] for c in ENDPOINT_CASES],
    ids=[c[0] for c in ENDPOINT_CASES],
)
def test_endpoint_access(
    a: gcp.EndpointAccess, origin: list[str], host: str, status: Status, fragment: str, fix: str
) -> None:
    finding = decide(a, origin, host)
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message
    if fix:
        assert finding.remediation is not None and fix in finding.remediation, finding.remediation
    ev = finding.evidence
    assert ev["origin"] == origin and ev["ids_from"] == {"project": "context name"} and ev["n"] == 1
    assert ("authorized_networks_verdict" in ev) == bool(a.authorized_enabled and origin)
    assert ("path" in ev) == bool(origin)  # which endpoint the Server takes is decided only for an origin


USED_CASES = [
    ("public", PUBLIC_IP, "public"),
    ("private", PRIVATE_IP, "private"),
    ("dns-any-case", DNS.upper(), "dns"),
    ("bracketed", f"[{PRIVATE_IP}]", "private"),
    ("other", "example.internal", None),
    ("none", "", None),
]


@pytest.mark.parametrize(("host", "used"), [c[1:] for c in USED_CASES], ids=[c[0] for c in USED_CASES])
def test_the_kubeconfig_host_names_the_endpoint(host: str, used: str | None) -> None:
    assert checks.used_endpoint(host, access(dns_endpoint=DNS)) == used


# --------------------------------------------------------------------------------------------------
# gcp.firewall.broker

NODE_TAG = "gke-prod-1234abcd-node"
POOL_A = gcp.NodeIdentity("pool-a", (NODE_TAG,), (), "instance gke-a-1")
POOL_B = gcp.NodeIdentity("pool-b", ("batch",), (), "instance gke-b-1")
SA_ONLY = gcp.NodeIdentity("pool-sa", (), ("nodes@proj.iam.gserviceaccount.com",), "node pool config")
WHERE = checks.FirewallPath("net", "vpc", "LoadBalancer", 4222, "load balancer; passthrough keeps the origin address")
ORIGIN = ["10.1.0.0/16"]


def fw(
    name: str,
    sources: str = "10.0.0.0/8",
    action: str = "allow",
    priority: int = 1000,
    ports: tuple[tuple[int, int], ...] = ((4222, 4222),),
    targets: tuple[str, ...] = (),
) -> Rule:
    return Rule("gcp", name, action, (sources,), ports, "tcp", priority, targets=frozenset(targets) or None)


FIREWALL_CASES: list[tuple[str, list[Rule], list[gcp.NodeIdentity], list[str], Status, str, str]] = [
    (
        "world-open",
        [fw("k8s-fw-broker", "0.0.0.0/0")],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        "tcp:4222 (load balancer; passthrough keeps the origin address) is open to the world (0.0.0.0/0) on the "
        "Broker's nodes by firewall rule k8s-fw-broker",
        "gcloud compute firewall-rules update k8s-fw-broker --project net --source-ranges 10.1.0.0/16",
    ),
    (
        "world-open-no-origin",
        [fw("k8s-fw-broker", "0.0.0.0/0")],
        [POOL_A],
        [],
        Status.FAIL,
        "is open to the world",
        "--source-ranges <Server egress CIDR>",
    ),
    (
        "no-origin",
        [fw("allow-broker"), fw("allow-ssh", ports=((22, 22),))],
        [POOL_A],
        [],
        Status.WARN,
        "pass --origin (or origin.cidrs) to evaluate the 2 ingress rules of vpc",
        "--origin",
    ),
    (
        "allowed",
        [fw("allow-broker", targets=(f"tag:{NODE_TAG}",))],
        [POOL_A],
        ORIGIN,
        Status.PASS,
        "from 10.1.0.0/16 allowed (node pool pool-a: firewall rule allow-broker (allow, priority 1000))",
        "",
    ),
    (
        "implied-deny",
        [fw("allow-ssh", ports=((22, 22),))],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        f"to node pool pool-a ({NODE_TAG}) is blocked by the implied deny: no rule allows it",
        "gcloud compute firewall-rules create meshery-broker-4222 --project net --network vpc --direction INGRESS "
        f"--priority 1000 --allow tcp:4222 --source-ranges 10.1.0.0/16 --target-tags {NODE_TAG}",
    ),
    (
        "other-target",
        [fw("allow-broker", targets=("tag:web",))],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        "blocked by the implied deny",
        f"--target-tags {NODE_TAG}",
    ),
    (
        "deny-wins-by-priority",
        [fw("deny-10", "10.0.0.0/8", "deny", 900), fw("allow-broker", priority=1000)],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        "is blocked by firewall rule deny-10 (deny, priority 900)",
        "--priority 899 --allow tcp:4222",
    ),
    (
        "deny-wins-at-equal-priority",
        [fw("allow-broker", priority=1000), fw("deny-10", "10.0.0.0/8", "deny", 1000)],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        "blocked by firewall rule deny-10 (deny, priority 1000)",
        "--priority 999 ",
    ),
    (
        "deny-at-priority-zero",
        [fw("deny-all", "0.0.0.0/0", "deny", 0), fw("allow-broker")],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        "blocked by firewall rule deny-all (deny, priority 0)",
        "The deny rule deny-all has priority 0, which no allow rule can beat",
    ),
    (
        "partial",
        [fw("allow-half", "10.1.0.0/17")],
        [POOL_A],
        ORIGIN,
        Status.FAIL,
        "from 10.1.128.0/17 to node pool pool-a",
        "--source-ranges 10.1.128.0/17",
    ),
    (
        "service-account-target",
        [],
        [SA_ONLY],
        ORIGIN,
        Status.FAIL,
        "node pool pool-sa (nodes@proj.iam.gserviceaccount.com)",
        "--target-service-accounts nodes@proj.iam.gserviceaccount.com",
    ),
    (
        "one-pool-of-two-blocked",
        [fw("allow-broker", targets=(f"tag:{NODE_TAG}",))],
        [POOL_A, POOL_B],
        ORIGIN,
        Status.FAIL,
        "to node pool pool-b (batch) is blocked",
        "--target-tags batch",
    ),
    (
        "two-pools-blocked",
        [],
        [POOL_A, POOL_B],
        ORIGIN,
        Status.FAIL,
        "to node pool pool-a (gke-prod-1234abcd-node) (and 1 more node pools) is blocked",
        "",
    ),
]


@pytest.mark.parametrize(
    ("rules", "identities", "origin", "status", "fragment", "fix"),
    [c[1:] for c in FIREWALL_CASES],
    ids=[c[0] for c in FIREWALL_CASES],
)
def test_firewall_broker(
    rules: list[Rule], identities: list[gcp.NodeIdentity], origin: list[str], status: Status, fragment: str, fix: str
) -> None:
    finding = checks.decide_firewall_broker(WHERE, rules, identities, origin, calls={"gcp_api_calls": 3})
    assert finding.status is status, finding
    assert fragment in finding.message, finding.message
    if fix:
        assert finding.remediation is not None and fix in finding.remediation, finding.remediation
    ev = finding.evidence
    assert ev["network"] == "projects/net/global/networks/vpc" and ev["port"] == 4222 and ev["gcp_api_calls"] == 3
    assert [v["node_pool"] for v in ev["verdicts"]] == [i.pool for i in identities]
    assert ev["ingress_rules"] == len({r.name for r in rules})


def test_a_node_port_names_its_path() -> None:
    where = checks.FirewallPath("net", "vpc", "NodePort", 30222, "node port")
    finding = checks.decide_firewall_broker(where, [fw("np", ports=((30000, 32767),))], [POOL_A], ORIGIN, calls={})
    assert finding.status is Status.PASS and finding.message.startswith("tcp:30222 (node port) from 10.1.0.0/16")
    assert finding.evidence["verdicts"][0]["rules"] == [
        {"name": "np", "action": "allow", "priority": 1000, "sources": ["10.0.0.0/8"], "targets": "all instances"}
    ]
