"""AKS checks through the real pipeline: lab clusters whose fleet entries say AKS, the lab ARM server
(loopback HTTPS, real azure-mgmt-* clients and BearerTokenCredentialPolicy), and the lab DNS for
private FQDNs. The default credential chain never runs: every run passes Settings.azure_credential."""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.credentials import AccessToken
from azure.identity import EnvironmentCredential

import preflight.checks.azure  # noqa: F401  (registers the azure.* checks until checks/__init__ lists them)
from preflight.cloud import azure as az
from preflight.cloud import errors
from preflight.engine.runstate import CloudReads
from preflight.engine.settings import Settings
from preflight_lab.addresses import allocate
from preflight_lab.azure import LabARM, nsg_rule
from preflight_lab.broker import NATS_PORT
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from tests.runlab import result, run

TOKEN = "lab-arm-token-7f3e9c"
SUB = "11111111-2222-3333-4444-555555555555"
RG = "rg-aks"
ORIGIN_PUB = "203.0.113.10/32"
ORIGIN_PRIV = "10.20.0.0/24"
ZONE = "privatelink.eastus.azmk8s.io"
CHECKS = ("kubeconfig.context", "broker.service", "azure.*")


class StaticCredential:
    """A TokenCredential that hands out a fixed token and remembers the scopes asked for."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def lb(ip: str, **kw: Any) -> MesherySetup:
    opts: dict[str, Any] = {"service_type": "LoadBalancer", "lb_ip": ip, "broker": "absent"}
    opts.update(kw)
    return MesherySetup(**opts)


def node_rg(name: str) -> str:
    return f"MC_{RG}_{name}_eastus"


# context -> LB IP (also the NSG rules' destination, as AKS writes them), each free on 4222
LB = {
    "aks-open": allocate(NATS_PORT),
    "aks-open-2": allocate(NATS_PORT),
    "aks-ranges-ok": allocate(NATS_PORT),
    "aks-ranges-miss": allocate(NATS_PORT),
    "aks-internet": allocate(NATS_PORT),
    "aks-plural": allocate(NATS_PORT),
    "aks-layers": allocate(NATS_PORT),
    "aks-forbidden": allocate(NATS_PORT),
}
SPECS = [
    *[ClusterSpec(name=n, meshery=lb(ip)) for n, ip in LB.items()],
    ClusterSpec(name="aks-nodeport", meshery=MesherySetup(service_type="NodePort", node_port=31222, broker="absent")),
    ClusterSpec(name="aks-private-pub"),
    ClusterSpec(name="aks-private"),
    ClusterSpec(name="aks-private-nx"),
    ClusterSpec(name="aks-undeclared"),
    ClusterSpec(name="plain"),
]
DECLARED = [s.name for s in SPECS if s.name not in ("aks-undeclared", "plain")]


def aks_allow(name: str, source: Any, ip: str | None, priority: int = 500) -> dict[str, Any]:
    """The rule AKS writes for a LoadBalancer Service port (k8s-azure-lb_allow_...)."""
    return nsg_rule(name, priority, source=source, ports="4222", destination=ip or "*")


def populate(arm: LabARM) -> None:
    net_rg = "rg-net"
    shared_nsg = arm.nsg_id(SUB, net_rg, "nsg-shared")
    layers_nsg = arm.nsg_id(SUB, net_rg, "nsg-layers-subnet")
    arm.add_nsg(
        SUB, net_rg, "nsg-shared", [nsg_rule("allow-meshery-origin", 200, source="203.0.113.0/24", ports="4222")]
    )
    arm.add_nsg(
        SUB, net_rg, "nsg-layers-subnet", [nsg_rule("allow-meshery-origin", 100, source=ORIGIN_PUB, ports="4222")]
    )
    arm.add_vnet(
        SUB,
        net_rg,
        "vnet-shared",
        ["10.240.0.0/16"],
        {"nodes-a": ("10.240.0.0/24", shared_nsg), "nodes-b": ("10.240.1.0/24", shared_nsg)},
        peered_prefixes=[ORIGIN_PRIV],
    )
    arm.add_vnet(SUB, net_rg, "vnet-layers", ["10.241.0.0/16"], {"nodes": ("10.241.0.0/24", layers_nsg)})

    def cluster(name: str, nsg_rules: list[dict[str, Any]] | None = None, subnet: str | None = None, **kw: Any) -> None:
        arm.add_managed_cluster(SUB, RG, name, pools={"nodepool1": subnet}, **kw)
        if nsg_rules is not None:
            nsg_name = f"aks-agentpool-{zlib.crc32(name.encode()) % 10**8:08d}-nsg"
            arm.add_nsg(SUB, node_rg(name), nsg_name, nsg_rules)
            if subnet is None:  # AKS's managed VNet, in the node resource group
                arm.add_vnet(
                    SUB,
                    node_rg(name),
                    "aks-vnet-12345678",
                    ["10.224.0.0/12"],
                    {"aks-subnet": ("10.224.0.0/16", arm.nsg_id(SUB, node_rg(name), nsg_name))},
                )

    sub_a = arm.subnet_id(SUB, net_rg, "vnet-shared", "nodes-a")
    sub_b = arm.subnet_id(SUB, net_rg, "vnet-shared", "nodes-b")
    cluster("aks-open", [aks_allow("k8s-azure-lb_allow_IPv4_open", "203.0.113.0/24", LB["aks-open"])], sub_a)
    cluster("aks-open-2", [aks_allow("k8s-azure-lb_allow_IPv4_open2", "203.0.113.0/24", LB["aks-open-2"])], sub_b)
    cluster(
        "aks-ranges-ok",
        [
            nsg_rule("deny-partner-4222", 150, "Deny", source="203.0.113.0/25", ports="4222"),
            aks_allow("k8s-azure-lb_allow_IPv4_ok", "203.0.113.0/24", LB["aks-ranges-ok"]),
        ],
        authorized_ip_ranges=["203.0.113.0/24", "198.51.100.7/32"],
    )
    cluster("aks-ranges-miss", [], authorized_ip_ranges=["198.51.100.0/24"])
    cluster("aks-internet", [aks_allow("allow-broker-internet", "Internet", LB["aks-internet"], 300)])
    cluster(
        "aks-plural",
        [
            nsg_rule(
                "allow-plural",
                310,
                source=["198.51.100.0/24", "203.0.113.0/28"],
                ports=["80", "4000-4300"],
                destination=[LB["aks-plural"], allocate()],  # the second: an address nothing listens on
            )
        ],
    )
    cluster("aks-layers", [], arm.subnet_id(SUB, net_rg, "vnet-layers", "nodes"))
    cluster("aks-forbidden", [])
    arm.forbid(f"{arm.group_id(SUB, RG)}/providers/Microsoft.ContainerService/managedClusters/aks-forbidden")
    cluster("aks-nodeport", [nsg_rule("allow-nodeports", 400, source="203.0.113.0/24", ports="30000-32767")])
    cluster("aks-private-pub", private=True, public_fqdn=True)
    cluster("aks-private", private=True, private_fqdn=f"aks-private-5e6f7a8b.{ZONE}")
    cluster(
        "aks-private-nx",
        private=True,
        public_fqdn=True,
        private_fqdn=f"aks-private-nx-0c0c0c0c.{ZONE}",
        private_dns_zone=f"/subscriptions/{SUB}/resourceGroups/rg-dns/providers/Microsoft.Network/privateDnsZones/{ZONE}",
    )


def declare_aks(fleet: LabFleet) -> None:
    """The fleet file a user writes for AKS: provider plus subscription/resource group/cluster."""
    doc = yaml.safe_load(fleet.fleet_path.read_text())
    doc.pop("origin", None)  # each run passes its own --origin
    for entry in doc["clusters"]:
        name = entry["context"]
        if name == "plain":
            continue
        entry["provider"] = "aks"
        if name in DECLARED:
            entry["azure"] = {"subscription": SUB, "resource_group": RG, "cluster": name}
    fleet.fleet_path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabFleet, LabARM, LabDNS]]:
    with (
        LabARM(token=TOKEN, page_size=1) as arm,
        LabFleet(SPECS, tmp_path_factory.mktemp("aks-lab")) as fleet,
        LabDNS(zones=(ZONE,)) as dns,
        pytest.MonkeyPatch.context() as mp,
    ):
        populate(arm)
        declare_aks(fleet)
        dns.add_a(f"aks-private-5e6f7a8b.{ZONE}", "10.224.0.4")
        assert arm.ca_file is not None
        mp.setenv("REQUESTS_CA_BUNDLE", str(arm.ca_file))
        mp.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
        for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(var, raising=False)
        yield fleet, arm, dns


@pytest.fixture(scope="module", autouse=True)
def no_default_chain() -> Iterator[None]:
    """A test that forgot its credential fails here instead of probing the managed-identity address."""

    def refuse(*args: Any, **kwargs: Any) -> StaticCredential:
        raise AssertionError("the default Azure credential chain must not run in tests")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("azure.identity.DefaultAzureCredential", refuse)
        yield


@pytest.fixture
def credential() -> StaticCredential:
    return StaticCredential()


def _run(world: tuple[LabFleet, LabARM, LabDNS], origins: list[str], **kw: Any) -> Any:
    fleet, arm, dns = world
    opts: dict[str, Any] = {"include": CHECKS, "azure_arm_endpoint": arm.url, "dns_server": dns.address}
    opts.update(kw)
    return run(fleet=str(fleet.fleet_path), origins=origins, connect_timeout=1.0, **opts)


@pytest.fixture(scope="module")
def public_run(world: tuple[LabFleet, LabARM, LabDNS]) -> tuple[Any, list[Any], list[tuple[str, ...]]]:
    """Every context, from a public origin; the ARM request log and token scopes of exactly this run."""
    _fleet, arm, _dns = world
    cred = StaticCredential()
    arm.clear_requests()
    report = _run(world, [ORIGIN_PUB], azure_credential=lambda authority: cred)
    return report, arm.requests(), cred.scopes


def status(report: Any, cluster: str, check_id: str) -> str:
    return str(result(report, cluster, check_id).status.value)


# -- azure.aks.endpoint-access --------------------------------------------------------------------------


def test_authorized_ranges_covering_the_origin_pass(public_run) -> None:
    r = result(public_run[0], "aks-ranges-ok", "azure.aks.endpoint-access")
    assert r.status.value == "pass", r.message
    assert "203.0.113.0/24" in r.message and r.evidence["authorized_ip_ranges"] == ["203.0.113.0/24", "198.51.100.7/32"]
    assert r.evidence["azure_api_calls"] >= 1


def test_az_aks_get_credentials_user_name_gives_the_resource_group(world, tmp_path, monkeypatch) -> None:
    """No fleet file: the user `az aks get-credentials` writes (clusterUser_RG_NAME) names group and cluster."""
    fleet, arm, _dns = world
    kc = yaml.safe_load(fleet.kubeconfig_path.read_text())
    ctx = next(c for c in kc["contexts"] if c["name"] == "aks-ranges-ok")
    user = next(u for u in kc["users"] if u["name"] == ctx["context"]["user"])
    user["name"] = ctx["context"]["user"] = f"clusterUser_{RG}_aks-ranges-ok"
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(kc))
    path.chmod(0o600)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB)
    arm.clear_requests()
    cred = StaticCredential()
    rep = run(
        kubeconfig=[str(path)],
        contexts=["aks-ranges-ok"],
        origins=[ORIGIN_PUB],
        include=["azure.aks.endpoint-access"],
        azure_arm_endpoint=arm.url,
        azure_credential=lambda authority: cred,
    )
    r = result(rep, "aks-ranges-ok", "azure.aks.endpoint-access")
    assert r.status.value == "pass", r.message
    source = f"user name 'clusterUser_{RG}_aks-ranges-ok'"
    assert r.evidence["ids_from"] == {"resource_group": source, "cluster": source}
    # Read directly by resource group and name, not found by listing the subscription.
    paths = {req.path.lower() for req in arm.requests()}
    assert (
        f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.containerservice/managedclusters/aks-ranges-ok"
        in paths
    )
    assert f"/subscriptions/{SUB}/providers/microsoft.containerservice/managedclusters" not in paths


def test_authorized_ranges_missing_the_origin_fail_with_the_az_command(public_run) -> None:
    r = result(public_run[0], "aks-ranges-miss", "azure.aks.endpoint-access")
    assert r.status.value == "fail" and ORIGIN_PUB in r.message and "198.51.100.0/24" in r.message
    assert (
        f"az aks update -g {RG} -n aks-ranges-miss --api-server-authorized-ip-ranges 198.51.100.0/24,{ORIGIN_PUB}"
        in r.remediation
    )


def test_public_api_without_ranges_warns_internet_open(public_run) -> None:
    r = result(public_run[0], "aks-open", "azure.aks.endpoint-access")
    assert r.status.value == "warn" and "open to the whole internet" in r.message
    assert f"--api-server-authorized-ip-ranges {ORIGIN_PUB}" in r.remediation


def test_private_cluster_from_a_public_origin_fails_even_with_a_public_fqdn(public_run) -> None:
    r = result(public_run[0], "aks-private-pub", "azure.aks.endpoint-access")
    assert r.status.value == "fail" and "private API server" in r.message
    assert "public FQDN" in r.message and r.evidence["public_fqdn_enabled"] is True
    assert "peered VNet" in r.remediation


def test_private_dns_is_judged_even_when_the_origin_has_no_route(public_run) -> None:
    """No route and no private name are two problems: the second must not hide behind the first."""
    ea = result(public_run[0], "aks-private-nx", "azure.aks.endpoint-access")
    assert ea.status.value == "fail" and "private API server" in ea.message
    pd = result(public_run[0], "aks-private-nx", "azure.aks.private-dns")
    assert pd.status.value == "fail" and "nxdomain" in pd.message.lower(), pd.message
    assert pd.evidence["independent_of"] == ["azure.aks.endpoint-access"]
    assert "separate problem from azure.aks.endpoint-access (fail)" in pd.message
    resolving = result(public_run[0], "aks-private", "azure.aks.private-dns")
    assert resolving.status.value == "pass", resolving.message


# -- azure.aks.private-dns (private origin) --------------------------------------------------------------


@pytest.fixture(scope="module")
def private_run(world: tuple[LabFleet, LabARM, LabDNS]) -> Any:
    cred = StaticCredential()
    return _run(
        world,
        [ORIGIN_PRIV],
        include=("kubeconfig.context", "azure.aks.*"),
        contexts=["aks-private", "aks-private-nx", "aks-open"],
        azure_credential=lambda authority: cred,
    )


def test_private_cluster_from_a_private_origin_and_its_fqdn_resolving(private_run) -> None:
    ea = result(private_run, "aks-private", "azure.aks.endpoint-access")
    assert ea.status.value == "pass" and "without a public FQDN" in ea.message
    pd = result(private_run, "aks-private", "azure.aks.private-dns")
    assert pd.status.value == "pass", pd.message
    assert pd.evidence["addresses"] == [{"address": "10.224.0.4", "class": "private"}]
    assert pd.evidence["resolver"].startswith("127.0.0.1:")


def test_private_fqdn_nxdomain_fails_with_zone_link_and_forwarder_fix(private_run) -> None:
    ea = result(private_run, "aks-private-nx", "azure.aks.endpoint-access")
    assert ea.status.value == "pass" and "with public FQDN aks-private-nx-" in ea.message
    pd = result(private_run, "aks-private-nx", "azure.aks.private-dns")
    assert pd.status.value == "fail" and pd.evidence["failure"] == "nxdomain"
    assert f"az network private-dns link vnet create -g rg-dns -z {ZONE}" in pd.remediation
    assert "168.63.129.16" in pd.remediation


def test_private_dns_skips_public_clusters(private_run) -> None:
    assert status(private_run, "aks-open", "azure.aks.private-dns") == "skip"


# -- azure.nsg.broker ----------------------------------------------------------------------------------


def test_nsg_allow_passes_and_names_the_rules_of_both_layers(public_run) -> None:
    r = result(public_run[0], "aks-open", "azure.nsg.broker")
    assert r.status.value == "pass", r.message
    assert "nsg nsg-shared: allow-meshery-origin (priority 200)" in r.message
    assert "k8s-azure-lb_allow_IPv4_open (priority 500)" in r.message
    [path] = r.evidence["paths"]
    assert path["nsgs"][0] == "nsg-shared" and path["targets"] == [LB["aks-open"]]


def test_deny_at_a_lower_priority_number_blocks_and_is_named(public_run) -> None:
    r = result(public_run[0], "aks-ranges-ok", "azure.nsg.broker")
    assert r.status.value == "fail"
    assert "deny-partner-4222 (priority 150)" in r.message and "203.0.113.10/32" in r.message
    [command] = [line for line in r.remediation.splitlines() if line.startswith("az network nsg rule create")]
    assert "--priority 149 " in command and not command.endswith(".")
    assert "loadBalancerSourceRanges" in r.remediation  # the blocking NSG is AKS's own


def test_default_deny_all_inbound_blocks_when_no_rule_allows(public_run) -> None:
    r = result(public_run[0], "aks-ranges-miss", "azure.nsg.broker")
    assert r.status.value == "fail"
    assert "DenyAllInBound (priority 65500, default)" in r.message
    assert (
        "--priority 4096 --direction Inbound --access Allow --protocol Tcp "
        f"--source-address-prefixes {ORIGIN_PUB} --destination-port-ranges 4222"
    ) in r.remediation


def test_internet_tag_allow_is_world_open_and_fails(public_run) -> None:
    r = result(public_run[0], "aks-internet", "azure.nsg.broker")
    assert r.status.value == "fail" and "open to the whole internet" in r.message
    assert "allow-broker-internet (priority 300)" in r.message
    assert f"--source-address-prefixes {ORIGIN_PUB}" in r.remediation


def test_plural_prefixes_and_port_ranges(public_run) -> None:
    r = result(public_run[0], "aks-plural", "azure.nsg.broker")
    assert r.status.value == "pass", r.message
    assert "allow-plural (priority 310)" in r.message


def test_subnet_and_nic_nsgs_must_both_allow(public_run) -> None:
    r = result(public_run[0], "aks-layers", "azure.nsg.broker")
    assert r.status.value == "fail", r.message
    [path] = r.evidence["paths"]
    assert path["nsgs"][0] == "nsg-layers-subnet" and path["nsgs"][1].startswith("aks-agentpool-")
    # The subnet's NSG allows; the NICs' NSG (AKS's, in the node resource group) has only the default deny.
    assert path["deciding_rules"] == [f"nsg {path['nsgs'][1]}: DenyAllInBound (priority 65500, default)"]
    assert "subnet nodes" in r.message


def test_node_port_service_is_checked_on_the_node_port(public_run) -> None:
    r = result(public_run[0], "aks-nodeport", "azure.nsg.broker")
    assert r.status.value == "pass", r.message
    assert r.evidence["port"] == 31222 and "allow-nodeports" in r.message


def test_forbidden_read_is_an_error_naming_the_permission_and_the_reader_role(public_run) -> None:
    r = result(public_run[0], "aks-forbidden", "azure.aks.endpoint-access")
    assert r.status.value == "error" and "AuthorizationFailed" in r.message
    assert r.evidence["failure"] == "forbidden"
    assert r.evidence["permission"] == "Microsoft.ContainerService/managedClusters/read"
    assert "Microsoft.ContainerService/managedClusters/read" in r.message and "Reader" in r.remediation


def test_non_aks_and_undeclared_contexts(public_run) -> None:
    plain = result(public_run[0], "plain", "azure.aks.endpoint-access")
    assert plain.status.value == "skip" and "not an AKS cluster" in plain.message
    undeclared = result(public_run[0], "aks-undeclared", "azure.aks.endpoint-access")
    assert undeclared.status.value == "skip" and "subscription is unknown" in undeclared.message


# -- one run, many clusters: reads, caching and the bearer token -------------------------------------------


def test_only_gets_each_describe_once_and_the_bearer_token(public_run) -> None:
    _report, requests, scopes = public_run
    assert requests and all(r.method == "GET" for r in requests)
    assert {r.authorization for r in requests} == {f"Bearer {TOKEN}"}
    assert set(scopes) == {("https://management.azure.com/.default",)}
    seen = Counter((r.path.lower(), r.query) for r in requests)
    assert [k for k, n in seen.items() if n > 1] == []
    paths = Counter(r.path.lower() for r in requests)
    # Two clusters share the VNet and the subnet NSG: each read once; each cluster read once for three checks.
    net = f"/subscriptions/{SUB}/resourcegroups/rg-net/providers/microsoft.network"
    assert paths[f"{net}/virtualnetworks/vnet-shared"] == 1
    assert paths[f"{net}/networksecuritygroups/nsg-shared"] == 1
    mc = f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.containerservice/managedclusters/aks-open"
    assert paths[mc.lower()] == 1


def test_no_credentials_skip_with_the_hint_and_error_when_declared(world, monkeypatch) -> None:
    # The real EnvironmentCredential with no AZURE_* variables: CredentialUnavailableError, no network.
    for var in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_USERNAME",
        "AZURE_CLIENT_CERTIFICATE_PATH",
    ):
        monkeypatch.delenv(var, raising=False)
    _fleet, arm, _dns = world
    arm.clear_requests()
    report = _run(
        world,
        [ORIGIN_PUB],
        include=("kubeconfig.context", "azure.aks.endpoint-access"),
        contexts=["aks-open", "aks-undeclared"],
        azure_credential=lambda authority: EnvironmentCredential(),
    )
    declared = result(report, "aks-open", "azure.aks.endpoint-access")
    assert declared.status.value == "error" and az.HINT not in declared.message
    assert declared.remediation == az.HINT
    undeclared = result(report, "aks-undeclared", "azure.aks.endpoint-access")
    assert undeclared.status.value == "skip" and undeclared.evidence["hint"] == az.HINT
    assert arm.requests() == []


def test_no_origin_warns_but_world_open_still_fails(world, credential) -> None:
    report = _run(world, [], contexts=["aks-ranges-ok", "aks-internet"], azure_credential=lambda a: credential)
    assert status(report, "aks-ranges-ok", "azure.aks.endpoint-access") == "warn"
    assert status(report, "aks-internet", "azure.nsg.broker") == "fail"
    assert status(report, "aks-ranges-ok", "azure.nsg.broker") == "warn"


def test_cloud_selection_picks_endpoint_scope_and_authority(world, credential) -> None:
    _fleet, arm, _dns = world
    seen: list[str] = []

    def factory(authority: str) -> StaticCredential:
        seen.append(authority)
        return credential

    s = az.AzureSession(
        Settings(azure_cloud="china", azure_arm_endpoint=arm.url, azure_credential=factory), CloudReads()
    )
    assert az.endpoints(s.settings) == (
        arm.url,
        "https://management.chinacloudapi.cn/.default",
        "login.chinacloudapi.cn",
    )
    assert az.endpoints(Settings(azure_cloud="usgov"))[0] == "https://management.usgovcloudapi.net"
    c = az.managed_cluster(s, SUB, RG, "aks-open")
    assert c.name == "aks-open" and seen == ["login.chinacloudapi.cn"]
    assert credential.scopes[-1] == ("https://management.chinacloudapi.cn/.default",)


def test_cluster_found_by_api_host_across_pages(world, credential) -> None:
    _fleet, arm, _dns = world
    s = az.AzureSession(Settings(azure_arm_endpoint=arm.url, azure_credential=lambda a: credential), CloudReads())
    arm.clear_requests()
    found = az.find_cluster(s, SUB, f"aks-private-5e6f7a8b.{ZONE}")
    assert found is not None and found.name == "aks-private" and found.private
    assert sum("$skiptoken" in r.query or "%24skiptoken" in r.query for r in arm.requests()) >= 1
    assert az.find_cluster(s, SUB, "nowhere.hcp.eastus.azmk8s.io") is None
    assert len(arm.requests()) > 1 and sum(s.calls().values()) == 1


def test_importing_the_cli_and_the_checks_does_not_load_the_azure_sdk() -> None:
    code = (
        "import sys, preflight.cli, preflight.checks.azure, preflight.cloud.azure\n"
        "print(','.join(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_a_rejected_token_and_a_dead_endpoint_are_errors_not_verdicts(world) -> None:
    import socket

    _fleet, arm, _dns = world
    rejected_token = StaticCredential("not-the-lab-token")
    with pytest.raises(errors.Unauthenticated) as rejected:
        az.managed_cluster(
            az.AzureSession(
                Settings(azure_arm_endpoint=arm.url, azure_credential=lambda a: rejected_token), CloudReads()
            ),
            SUB,
            RG,
            "aks-open",
        )
    assert "401" in rejected.value.message and az.HINT in rejected.value.hint
    # A bound, never-listening socket answers RST: ARM unreachable; the next read fails fast, without a call.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        s = az.AzureSession(
            Settings(
                azure_arm_endpoint=f"https://127.0.0.1:{placeholder.getsockname()[1]}",
                connect_timeout=1.0,
                azure_credential=lambda a: rejected_token,
            ),
            CloudReads(),
        )
        with pytest.raises(errors.Unavailable) as dead:
            az.managed_cluster(s, SUB, RG, "aks-open")
        assert dead.value.failure == "unreachable"
        with pytest.raises(errors.Unavailable):
            az.group_nsgs(s, SUB, node_rg("aks-open"))
        assert sum(s.calls().values()) == 1  # the breaker answered: no second connect was tried
