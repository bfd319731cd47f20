"""GCP checks end to end: the real google-cloud-container / google-cloud-compute clients (REST) and real
Application Default Credentials (a service-account key file the lab trusts) against the lab's GCP APIs,
through the real pipeline (tests/runlab.run) with GKE contexts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import preflight.checks.gcp  # noqa: F401  (registers the GCP checks, whether or not checks/__init__ lists them yet)
from preflight.engine.model import Result, RunReport
from preflight_lab.certs import create_ca
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.gcp import LabGCP, firewall, gke_cluster, instance, write_service_account_key
from preflight_lab.meshery import MesherySetup
from tests.runlab import result, run

EP = "gcp.gke.endpoint-access"
FW = "gcp.firewall.broker"
ORIGIN = "203.0.113.0/24"  # a public origin (documentation range: public per terms.md)
PRIVATE_ORIGIN = "10.8.1.0/24"
HINT = "gcloud auth application-default login"
CLUSTER_ID = "0d9a7a3e5b7c4f0e9d2c1b0a99887766554433221100ffeeddccbbaa99887766"
NODEPOOL = "cloud.google.com/gke-nodepool"
COMPUTE_URL = "https://www.googleapis.com/compute/v1"


# --------------------------------------------------------------------------------------------------
# Credentials: real ADC from a key file, with no GCE metadata probe and no gcloud config of the host


@pytest.fixture(scope="module")
def metadata_trap() -> Iterator[socket.socket]:
    """A listening loopback socket where the GCE metadata server would be: nothing may connect to it."""
    trap = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    yield trap
    trap.setblocking(False)
    with pytest.raises(BlockingIOError):
        trap.accept()
    trap.close()


def _isolate(mp: pytest.MonkeyPatch, home: Path, trap: socket.socket) -> None:
    from google.auth.compute_engine import _metadata

    host = f"127.0.0.1:{trap.getsockname()[1]}"
    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ):
        mp.delenv(name, raising=False)
    mp.setenv("CLOUDSDK_CONFIG", str(home))  # no application_default_credentials.json of the host's gcloud
    mp.setenv("NO_GCE_CHECK", "true")
    mp.setenv("GCE_METADATA_HOST", host)
    mp.setenv("GCE_METADATA_IP", host)
    # google-auth reads these when its metadata module is first imported, so set them there too.
    mp.setattr(_metadata, "_NO_GCE_CHECK", True)
    mp.setattr(_metadata, "_GCE_METADATA_HOST", host)


@pytest.fixture(scope="module")
def adc(tmp_path_factory: pytest.TempPathFactory, metadata_trap: socket.socket) -> Iterator[Path]:
    """GOOGLE_APPLICATION_CREDENTIALS: one service-account key file that every lab of this module trusts."""
    home = tmp_path_factory.mktemp("gcloud-home")
    key = write_service_account_key(home / "sa.json", "proj-ops", "http://127.0.0.1:9/token")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, home, metadata_trap)
        mp.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        yield key


SA_EMAIL = "meshery-preflight@proj-ops.iam.gserviceaccount.com"


# --------------------------------------------------------------------------------------------------
# Control plane endpoint scenarios


def ip_config(
    *,
    public: bool = True,
    authorized: tuple[str, ...] | None = None,
    enforce_private: bool | None = None,
    global_access: bool = False,
    public_ep: str = "34.118.0.10",
    private_ep: str = "10.0.0.2",
    enabled: bool = True,
) -> dict[str, Any]:
    an: dict[str, Any] = {"enabled": authorized is not None}
    if authorized:
        an["cidrBlocks"] = [{"displayName": f"net-{i}", "cidrBlock": c} for i, c in enumerate(authorized)]
    if enforce_private is not None:
        an["privateEndpointEnforcementEnabled"] = enforce_private
    cfg: dict[str, Any] = {
        "enabled": enabled,
        "enablePublicEndpoint": public,
        "globalAccess": global_access,
        "authorizedNetworksConfig": an,
        "privateEndpoint": private_ep,
    }
    if public:
        cfg["publicEndpoint"] = public_ep
    return cfg


def cpec(ip: dict[str, Any], dns: str = "", external: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"ipEndpointsConfig": ip}
    if dns:
        out["dnsEndpointConfig"] = {"endpoint": dns, "allowExternalTraffic": external}
    return out


DNS_EP = "gke-0123456789abcdef0123456789abcdef-123456789012.us-central1.gke.goog"
P = "proj-ep"
L = "us-central1"

# context -> (kubeconfig server host, cluster document)
ENDPOINT_CLUSTERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ep-covered": (
        "34.118.0.11",
        gke_cluster(
            P,
            L,
            "ep-covered",
            control_plane_endpoints_config=cpec(
                ip_config(authorized=("198.51.100.0/24", "203.0.113.0/24"), public_ep="34.118.0.11")
            ),
        ),
    ),
    "ep-not-covered": (
        "34.118.0.12",
        gke_cluster(
            P,
            L,
            "ep-not-covered",
            control_plane_endpoints_config=cpec(
                ip_config(authorized=("198.51.100.0/24",), public_ep="34.118.0.12"), dns=DNS_EP, external=True
            ),
        ),
    ),
    "ep-partial": (
        "34.118.0.13",
        gke_cluster(
            P,
            L,
            "ep-partial",
            control_plane_endpoints_config=cpec(ip_config(authorized=("203.0.113.0/25",), public_ep="34.118.0.13")),
        ),
    ),
    "ep-open": (
        "34.118.0.14",
        gke_cluster(P, L, "ep-open", control_plane_endpoints_config=cpec(ip_config(public_ep="34.118.0.14"))),
    ),
    "ep-private-no-dns": (
        "10.0.0.2",
        gke_cluster(
            P, L, "ep-private-no-dns", endpoint="10.0.0.2", control_plane_endpoints_config=cpec(ip_config(public=False))
        ),
    ),
    "ep-private-dns-used": (
        DNS_EP,
        gke_cluster(
            P,
            L,
            "ep-private-dns-used",
            endpoint="10.0.0.3",
            control_plane_endpoints_config=cpec(ip_config(public=False, private_ep="10.0.0.3"), DNS_EP, True),
        ),
    ),
    "ep-private-dns-unused": (
        "10.0.0.4",
        gke_cluster(
            P,
            L,
            "ep-private-dns-unused",
            endpoint="10.0.0.4",
            control_plane_endpoints_config=cpec(ip_config(public=False, private_ep="10.0.0.4"), DNS_EP, True),
        ),
    ),
    "ep-private-enforced": (
        "10.0.0.6",
        gke_cluster(
            P,
            L,
            "ep-private-enforced",
            endpoint="10.0.0.6",
            control_plane_endpoints_config=cpec(
                ip_config(
                    public=False,
                    private_ep="10.0.0.6",
                    global_access=True,
                    authorized=("10.9.0.0/16",),
                    enforce_private=True,
                )
            ),
        ),
    ),
    # The new block says public + covered; the legacy fields (which GKE keeps answering) disagree: new wins.
    "ep-new-beats-legacy": (
        "34.118.0.15",
        gke_cluster(
            P,
            L,
            "ep-new-beats-legacy",
            control_plane_endpoints_config=cpec(ip_config(authorized=(ORIGIN,), public_ep="34.118.0.15")),
            private_cluster_config={
                "enablePrivateNodes": True,
                "enablePrivateEndpoint": True,
                "privateEndpoint": "10.0.0.7",
            },
            master_authorized_networks_config={"enabled": True, "cidrBlocks": [{"cidrBlock": "192.0.2.0/24"}]},
        ),
    ),
    # Older answers: privateClusterConfig + masterAuthorizedNetworksConfig only.
    "ep-legacy-public": (
        "34.118.0.16",
        gke_cluster(
            P,
            L,
            "ep-legacy-public",
            endpoint="34.118.0.16",
            private_cluster_config={
                "enablePrivateNodes": True,
                "enablePrivateEndpoint": False,
                "privateEndpoint": "10.0.0.8",
                "publicEndpoint": "34.118.0.16",
            },
            master_authorized_networks_config={
                "enabled": True,
                "cidrBlocks": [{"displayName": "office", "cidrBlock": "192.0.2.0/24"}],
            },
        ),
    ),
    "ep-legacy-private": (
        "10.0.0.9",
        gke_cluster(
            P,
            L,
            "ep-legacy-private",
            endpoint="10.0.0.9",
            private_cluster_config={
                "enablePrivateNodes": True,
                "enablePrivateEndpoint": True,
                "privateEndpoint": "10.0.0.9",
                "masterIpv4CidrBlock": "172.16.0.0/28",
                "masterGlobalAccessConfig": {"enabled": True},
            },
            master_authorized_networks_config={"enabled": True, "cidrBlocks": [{"cidrBlock": "10.8.0.0/16"}]},
        ),
    ),
    "ep-forbidden": ("34.118.0.17", gke_cluster(P, L, "ep-forbidden")),
}
MISSING = "ep-missing"  # in the fleet file, not in the project
NAMED = f"gke_{P}_{L}_ep-covered"  # identified by the gcloud context naming alone, nothing declared


@pytest.fixture(scope="module")
def ep_world(tmp_path_factory: pytest.TempPathFactory, adc: Path) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("gcp-ep")
    contexts = [*ENDPOINT_CLUSTERS, MISSING, NAMED]
    hosts = {name: host for name, (host, _) in ENDPOINT_CLUSTERS.items()}
    hosts[MISSING] = "34.118.0.99"
    hosts[NAMED] = "34.118.0.11"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": f"https://{hosts[c]}"}} for c in contexts],
        "users": [{"name": c, "user": {"token": f"tok-{i:04d}-0123456789abcdef"}} for i, c in enumerate(contexts)],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts],
        "current-context": contexts[0],
    }
    (d / "kubeconfig.yaml").write_text(yaml.safe_dump(kubeconfig))
    fleet = {
        "version": 1,
        "kubeconfig": ["kubeconfig.yaml"],
        "clusters": [
            {"context": c, "provider": "gke", "gcp": {"project": P, "location": L, "cluster": c}}
            for c in [*ENDPOINT_CLUSTERS, MISSING]
        ],
    }
    (d / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    with LabGCP() as lab:
        for _, doc in ENDPOINT_CLUSTERS.values():
            lab.add_cluster(doc)
        lab.forbidden.add(f"projects/{P}/locations/{L}/clusters/ep-forbidden")
        lab.trust_service_account(adc)
        yield {"lab": lab, "dir": d, "fleet": d / "fleet.yaml", "kubeconfig": d / "kubeconfig.yaml"}


def ep_run(world: dict[str, Any], origins: list[str], **kw: Any) -> RunReport:
    kw.setdefault("fleet", str(world["fleet"]))
    kw.setdefault("contexts", list(ENDPOINT_CLUSTERS) + [MISSING])
    kw.setdefault("gcp_api_endpoint", world["lab"].url)
    return run(include=["kubeconfig.context", EP], origins=origins, **kw)


@pytest.fixture(scope="module")
def public_run(ep_world: dict[str, Any]) -> RunReport:
    return ep_run(ep_world, [ORIGIN])


@pytest.fixture(scope="module")
def private_run(ep_world: dict[str, Any]) -> RunReport:
    return ep_run(
        ep_world, [PRIVATE_ORIGIN], contexts=["ep-private-no-dns", "ep-private-enforced", "ep-legacy-private"]
    )


def ep(report: RunReport, cluster: str) -> Result:
    return result(report, cluster, EP)


def test_authorized_networks_covering_the_origin_pass(public_run: RunReport) -> None:
    r = ep(public_run, "ep-covered")
    assert r.status.value == "pass", r.message
    assert "34.118.0.11" in r.message and "net-1 (203.0.113.0/24)" in r.message
    assert r.evidence["config"] == "controlPlaneEndpointsConfig" and r.evidence["kubeconfig_endpoint"] == "public"
    assert r.evidence["gcp_api_calls"] >= 1


def test_authorized_networks_missing_the_origin_fail_with_the_cidrs_to_add(public_run: RunReport) -> None:
    r = ep(public_run, "ep-not-covered")
    assert r.status.value == "fail"
    assert "198.51.100.0/24" in r.message and "203.0.113.0/24" in r.message
    assert (
        "gcloud container clusters update ep-not-covered --project proj-ep --location us-central1 "
        "--enable-master-authorized-networks --master-authorized-networks 198.51.100.0/24,203.0.113.0/24"
    ) in r.remediation
    # Its DNS endpoint accepts external traffic: offered as the other way in.
    assert "--dns-endpoint" in r.remediation
    partial = ep(public_run, "ep-partial")
    assert partial.status.value == "fail" and "203.0.113.128/25" in partial.message
    assert "--master-authorized-networks 203.0.113.0/25,203.0.113.128/25" in partial.remediation


def test_public_endpoint_without_authorized_networks_warns(public_run: RunReport) -> None:
    r = ep(public_run, "ep-open")
    assert r.status.value == "warn" and "open to the internet" in r.message
    assert "--enable-master-authorized-networks" in r.remediation


def test_private_only_endpoint_from_a_public_origin(public_run: RunReport) -> None:
    none = ep(public_run, "ep-private-no-dns")
    assert none.status.value == "fail"
    assert "private endpoint only (10.0.0.2)" in none.message and "peering or a VPN" in none.message
    assert "global access is off" in none.message
    assert "--enable-dns-access" in none.remediation
    used = ep(public_run, "ep-private-dns-used")
    assert used.status.value == "pass", used.message
    assert DNS_EP in used.message and used.evidence["kubeconfig_endpoint"] == "dns"
    unused = ep(public_run, "ep-private-dns-unused")
    assert unused.status.value == "fail" and DNS_EP in unused.message
    assert (
        "gcloud container clusters get-credentials ep-private-dns-unused --project proj-ep --location "
        "us-central1 --dns-endpoint"
    ) in unused.remediation


def test_private_only_endpoint_from_a_private_origin(private_run: RunReport) -> None:
    regional = ep(private_run, "ep-private-no-dns")
    assert regional.status.value == "pass" and "global access is off" in regional.message
    legacy = ep(private_run, "ep-legacy-private")
    assert legacy.status.value == "pass", legacy.message
    assert legacy.evidence["config"] == "privateClusterConfig" and legacy.evidence["global_access"] is True
    assert "global access" not in legacy.message
    enforced = ep(private_run, "ep-private-enforced")
    assert enforced.status.value == "fail" and PRIVATE_ORIGIN in enforced.message
    assert "--master-authorized-networks 10.9.0.0/16,10.8.1.0/24" in enforced.remediation


def test_new_endpoint_config_wins_over_legacy_fields_and_legacy_is_the_fallback(public_run: RunReport) -> None:
    new = ep(public_run, "ep-new-beats-legacy")
    assert new.status.value == "pass" and new.evidence["config"] == "controlPlaneEndpointsConfig"
    assert new.evidence["private_endpoint"] == "10.0.0.2"
    legacy = ep(public_run, "ep-legacy-public")
    assert legacy.status.value == "fail" and legacy.evidence["config"] == "privateClusterConfig"
    assert legacy.evidence["authorized_networks"]["cidrs"] == ["192.0.2.0/24"]
    assert "--master-authorized-networks 192.0.2.0/24,203.0.113.0/24" in legacy.remediation


def test_unknown_cluster_fails_and_denied_permission_errors_naming_the_role(public_run: RunReport) -> None:
    gone = ep(public_run, MISSING)
    assert gone.status.value == "fail" and gone.evidence["failure"] == "not-found"
    denied = ep(public_run, "ep-forbidden")
    assert denied.status.value == "error" and "roles/container.clusterViewer" in denied.remediation
    assert denied.evidence["failure"] == "forbidden" and "permission denied" in denied.message
    assert denied.evidence["permission"] == "container.clusters.get (roles/container.clusterViewer)"
    assert "container.clusters.get" in denied.message


def test_each_cluster_is_read_once_with_real_credentials(ep_world: dict[str, Any]) -> None:
    lab: LabGCP = ep_world["lab"]
    lab.clear_log()
    rep = ep_run(ep_world, [ORIGIN])
    reqs = lab.requests()
    assert reqs and all(r.method == "GET" and r.path.startswith("/v1/") for r in reqs)  # no /token: signed JWTs
    assert all(r.identity == SA_EMAIL for r in reqs)
    paths = [r.path for r in reqs]
    want = [f"/v1/projects/{P}/locations/{L}/clusters/{c}" for c in [*ENDPOINT_CLUSTERS, MISSING]]
    assert sorted(paths) == sorted(want)
    assert ep(rep, "ep-covered").evidence["gcp_api_calls"] <= len(paths)


def test_no_credentials_skips_with_the_hint(ep_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    before = len(ep_world["lab"].requests())
    rep = run(
        kubeconfig=[str(ep_world["kubeconfig"])],
        contexts=[NAMED],
        include=["kubeconfig.context", EP],
        origins=[ORIGIN],
        gcp_api_endpoint=ep_world["lab"].url,
    )
    r = ep(rep, NAMED)
    assert r.status.value == "skip" and HINT not in r.message and HINT in r.remediation
    assert r.evidence["hint"].startswith(f'run "{HINT}"')
    assert len(ep_world["lab"].requests()) == before  # nothing was sent


def test_declared_cluster_without_credentials_is_an_error(
    ep_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    rep = ep_run(ep_world, [ORIGIN], contexts=["ep-covered"])
    r = ep(rep, "ep-covered")
    assert r.status.value == "error" and HINT not in r.message and HINT in r.remediation


def test_rejected_credentials_are_an_error_naming_the_login_fix(ep_world: dict[str, Any]) -> None:
    """Credentials are present but the cloud rejects them: the audit was asked for and could not decide."""
    with LabGCP() as stranger:  # does not trust the key
        stranger.add_cluster(ENDPOINT_CLUSTERS["ep-covered"][1])
        declared = ep(ep_run(ep_world, [ORIGIN], contexts=["ep-covered"], gcp_api_endpoint=stranger.url), "ep-covered")
        named = ep(
            run(
                kubeconfig=[str(ep_world["kubeconfig"])],
                contexts=[NAMED],
                include=["kubeconfig.context", EP],
                origins=[ORIGIN],
                gcp_api_endpoint=stranger.url,
            ),
            NAMED,
        )
    assert declared.status.value == "error" and "credentials were rejected" in declared.message
    assert HINT in declared.remediation and declared.evidence["failure"] == "unauthenticated"
    assert named.status.value == "error" and HINT in named.remediation
    assert named.evidence["failure"] == "unauthenticated"


def test_context_name_identifies_the_cluster(ep_world: dict[str, Any]) -> None:
    rep = run(
        kubeconfig=[str(ep_world["kubeconfig"])],
        contexts=[NAMED],
        include=["kubeconfig.context", EP],
        origins=[ORIGIN],
        gcp_api_endpoint=ep_world["lab"].url,
    )
    r = ep(rep, NAMED)
    assert r.status.value == "pass"
    assert r.evidence["ids_from"] == dict.fromkeys(("project", "location", "cluster"), f"context name {NAMED!r}")


def test_https_endpoint_with_a_custom_ca(ep_world: dict[str, Any], adc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = create_ca("lab-gcp-ca")
    cert = ca.issue_server_cert("lab-gcp", ip_addresses=["127.0.0.1"])
    bundle = ep_world["dir"] / "ca.pem"
    bundle.write_bytes(ca.cert_pem)
    doc = ENDPOINT_CLUSTERS["ep-covered"][1]
    with LabGCP(tls=cert) as tls_lab:
        tls_lab.add_cluster(doc)
        tls_lab.trust_service_account(adc)

        def once() -> Result:
            return ep(ep_run(ep_world, [ORIGIN], contexts=["ep-covered"], gcp_api_endpoint=tls_lab.url), "ep-covered")

        untrusted = once()
        assert untrusted.status.value == "error" and untrusted.evidence["failure"] == "unreachable"
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.message
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        assert once().status.value == "pass"
        monkeypatch.delenv("SSL_CERT_FILE")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        assert once().status.value == "pass"
    assert tls_lab.url.startswith("https://127.0.0.1:")


# --------------------------------------------------------------------------------------------------
# Firewall scenarios: one lab cluster per VPC network, all in one project

FP = "proj-fw"
ZONE = "us-central1-a"


def node_tag(cluster: str) -> str:
    return f"gke-{cluster}-{CLUSTER_ID[:8]}-node"


def inst_name(cluster: str) -> str:
    return f"gke-{cluster}-default-pool-1a2b3c4d-x1y2"


SA = "gke-nodes@proj-fw.iam.gserviceaccount.com"


def allow(
    name: str,
    net: str,
    *,
    ports: tuple[str, ...] = ("4222",),
    sources: tuple[str, ...] = (ORIGIN,),
    tags: tuple[str, ...] = (),
    priority: int = 1000,
    **kw: Any,
) -> dict[str, Any]:
    return firewall(
        FP,
        name,
        network=net,
        allowed=[("tcp", ports)],
        source_ranges=sources,
        target_tags=tags,
        priority=priority,
        **kw,
    )


def deny(
    name: str, net: str, *, sources: tuple[str, ...] = (ORIGIN,), priority: int = 1000, **kw: Any
) -> dict[str, Any]:
    return firewall(FP, name, network=net, denied=[("tcp", ("4222",))], source_ranges=sources, priority=priority, **kw)


def _rules() -> list[dict[str, Any]]:
    t = node_tag
    return [
        allow("allow-broker", "net-allow", tags=(t("fw-allow"),)),
        # equal priority: deny beats allow
        allow("eq-allow", "net-eq", tags=(t("fw-deny-equal"),)),
        deny("eq-deny", "net-eq", target_tags=[t("fw-deny-equal")]),
        # a higher-priority (lower number) deny blocks; a lower-priority one does not
        allow("hi-allow", "net-hi", tags=(t("fw-deny-higher"),)),
        deny("hi-deny", "net-hi", sources=("0.0.0.0/0",), priority=500),
        allow("lo-allow", "net-lo", tags=(t("fw-deny-lower"),)),
        deny("lo-deny", "net-lo", priority=2000),
        # rules for other tags, egress and disabled rules never decide
        allow("other-tags", "net-other", tags=("bastion",)),
        firewall(
            FP,
            "egress-4222",
            network="net-other",
            allowed=[("tcp", ("4222",))],
            direction="EGRESS",
            priority=1,
            target_tags=[t("fw-other-tags")],
            source_ranges=[ORIGIN],
        ),
        allow("disabled-allow", "net-other", tags=(t("fw-other-tags"),), disabled=True),
        allow("source-tag-only", "net-other", sources=(), tags=(t("fw-other-tags"),), source_tags=["bastion"]),
        # world-open
        allow("world-broker", "net-world", sources=("0.0.0.0/0",), tags=(t("fw-world"),)),
        # node port, matched by the nodes' service account
        firewall(
            FP,
            "nodeports-by-sa",
            network="net-np",
            allowed=[("tcp", ("30000-32767",))],
            source_ranges=[ORIGIN],
            target_service_accounts=[SA],
        ),
        # tags from the node pool config (no providerID on the nodes)
        allow("pool-tag", "net-pool", tags=("meshery-broker-nodes",)),
        # a rule of another network that would allow everything: filtered out
        allow("elsewhere", "net-elsewhere", ports=("1-65535",)),
    ]


def _filler(n: int) -> list[dict[str, Any]]:
    return [allow(f"filler-{i:02d}", "net-filler", ports=(str(8000 + i),)) for i in range(n)]


FW_CLUSTERS = {
    # context: (network, service type, providerID?, pool tags)
    "fw-allow": ("net-allow", "LoadBalancer", True, ()),
    "fw-deny-equal": ("net-eq", "LoadBalancer", True, ()),
    "fw-deny-higher": ("net-hi", "LoadBalancer", True, ()),
    "fw-deny-lower": ("net-lo", "LoadBalancer", True, ()),
    "fw-other-tags": ("net-other", "LoadBalancer", True, ()),
    "fw-world": ("net-world", "LoadBalancer", True, ()),
    "fw-nodeport": ("net-np", "NodePort", True, ()),
    "fw-pool-tags": ("net-pool", "LoadBalancer", False, ("meshery-broker-nodes",)),
}
PAGE = 4


def _setup(name: str, service_type: str, provider_id: bool) -> MesherySetup:
    return MesherySetup(
        service_type=service_type,
        lb_ip="34.120.0.10" if service_type == "LoadBalancer" else None,
        node_port=31222,
        broker="absent",
        source_ranges=(ORIGIN,),
        node_labels={NODEPOOL: "default-pool"},
        node_provider_id=f"gce://{FP}/{ZONE}/{inst_name(name)}" if provider_id else None,
    )


@pytest.fixture(scope="module")
def fw_world(tmp_path_factory: pytest.TempPathFactory, adc: Path) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("gcp-fw")
    specs = [ClusterSpec(name=n, meshery=_setup(n, st, pid)) for n, (_, st, pid, _) in FW_CLUSTERS.items()]
    with LabFleet(specs, d) as fleet, LabGCP(firewall_page_size=PAGE) as lab:
        lab.trust_service_account(adc)
        rules = _rules()
        # The deciding rules of fw-allow sit on the last page, after the filler.
        lab.add_firewalls(FP, _filler(2 * PAGE) + rules)
        for name, (net, _, _, pool_tags) in FW_CLUSTERS.items():
            pool: dict[str, Any] = {"name": "default-pool", "config": {"serviceAccount": SA}}
            if pool_tags:
                pool["config"]["tags"] = list(pool_tags)
            lab.add_cluster(gke_cluster(FP, "us-central1", name, network=net, cluster_id=CLUSTER_ID, node_pools=[pool]))
            lab.add_instance(instance(FP, ZONE, inst_name(name), tags=[node_tag(name)], service_accounts=[SA]))
        doc = yaml.safe_load(fleet.fleet_path.read_text())
        doc["clusters"] = [
            {
                "context": n,
                "meshsync_mode": "operator",
                "provider": "gke",
                "gcp": {"project": FP, "location": "us-central1", "cluster": n},
            }
            for n in FW_CLUSTERS
        ]
        path = d / "fleet-gcp.yaml"
        path.write_text(yaml.safe_dump(doc))
        yield {"lab": lab, "fleet": path, "rules": len(rules) + 2 * PAGE}


@pytest.fixture(scope="module")
def fw_run(fw_world: dict[str, Any]) -> RunReport:
    # Both GCP checks: the cluster read is shared between them (and the firewall list between clusters).
    return run(
        fleet=str(fw_world["fleet"]),
        include=["kubeconfig.context", "broker.service", EP, FW],
        origins=[ORIGIN],
        gcp_api_endpoint=fw_world["lab"].url,
        parallel=8,
    )


def fw(report: RunReport, cluster: str) -> Result:
    return result(report, cluster, FW)


def test_allow_rule_for_the_node_tag_passes_and_is_named(fw_run: RunReport) -> None:
    r = fw(fw_run, "fw-allow")
    assert r.status.value == "pass", r.message
    assert "allow-broker" in r.message and "tcp:4222" in r.message
    assert r.evidence["nodes"][0]["tags"] == [node_tag("fw-allow")]
    assert r.evidence["nodes"][0]["from"] == f"instance {inst_name('fw-allow')}"
    assert r.evidence["network"] == f"projects/{FP}/global/networks/net-allow"


def test_deny_at_equal_priority_blocks_and_is_named(fw_run: RunReport) -> None:
    r = fw(fw_run, "fw-deny-equal")
    assert r.status.value == "fail"
    assert "eq-deny (deny, priority 1000)" in r.message
    assert "--priority 999 --allow tcp:4222 --source-ranges 203.0.113.0/24" in r.remediation
    assert f"--target-tags {node_tag('fw-deny-equal')}" in r.remediation
    assert "--network net-eq" in r.remediation


def test_higher_priority_deny_blocks_and_lower_priority_deny_does_not(fw_run: RunReport) -> None:
    hi = fw(fw_run, "fw-deny-higher")
    assert hi.status.value == "fail" and "hi-deny (deny, priority 500)" in hi.message
    assert "--priority 499" in hi.remediation
    lo = fw(fw_run, "fw-deny-lower")
    assert lo.status.value == "pass" and "lo-allow" in lo.message


def test_rules_for_other_tags_egress_disabled_and_source_tags_are_ignored(fw_run: RunReport) -> None:
    r = fw(fw_run, "fw-other-tags")
    assert r.status.value == "fail" and "implied deny" in r.message
    assert r.evidence["verdicts"][0]["deciding_rules"] == []
    assert (
        f"gcloud compute firewall-rules create meshery-broker-4222 --project {FP} --network net-other "
        f"--direction INGRESS --priority 1000 --allow tcp:4222 --source-ranges {ORIGIN} "
        f"--target-tags {node_tag('fw-other-tags')}"
    ) == r.remediation


def test_world_open_rule_fails(fw_run: RunReport) -> None:
    r = fw(fw_run, "fw-world")
    assert r.status.value == "fail" and "open to the world" in r.message and "world-broker" in r.message
    assert r.evidence["verdicts"][0]["world_open_rules"] == ["world-broker"]
    assert f"gcloud compute firewall-rules update world-broker --project {FP} --source-ranges {ORIGIN}" in (
        r.remediation.splitlines()
    )


def test_node_port_matched_by_service_account(fw_run: RunReport) -> None:
    r = fw(fw_run, "fw-nodeport")
    assert r.status.value == "pass", r.message
    assert r.evidence["port"] == 31222 and "node port" in r.evidence["path"]
    assert "nodeports-by-sa" in r.message
    assert r.evidence["nodes"][0]["service_accounts"] == [SA]


def test_node_pool_config_tags_without_a_provider_id(fw_run: RunReport) -> None:
    r = fw(fw_run, "fw-pool-tags")
    assert r.status.value == "pass", r.message
    node = r.evidence["nodes"][0]
    assert node["from"] == "node pool config"
    assert node["tags"] == ["meshery-broker-nodes", node_tag("fw-pool-tags")]


def test_each_list_and_get_is_fetched_once_per_run(fw_world: dict[str, Any], fw_run: RunReport) -> None:
    lab: LabGCP = fw_world["lab"]
    reqs = lab.api_requests()
    assert not lab.mutating_requests() and all(r.method == "GET" for r in reqs)
    lists = [r for r in reqs if r.path == f"/compute/v1/projects/{FP}/global/firewalls"]
    pages = -(-fw_world["rules"] // PAGE)
    assert pages >= 3 and len(lists) == pages  # paged, and listed once for eight clusters in one project
    assert sum("pageToken=" in r.query for r in lists) == pages - 1
    clusters = [r for r in reqs if r.path.startswith("/v1/")]
    assert len(clusters) == len(FW_CLUSTERS) == len({r.path for r in clusters})
    instances = [r for r in reqs if "/instances/" in r.path]
    assert len(instances) == len({r.path for r in instances}) == sum(pid for _, _, pid, _ in FW_CLUSTERS.values())
    # Every result reports the run's API calls; the last one to finish saw all of them.
    total = len(lists) + len(clusters) + len(instances)
    seen = [fw(fw_run, c).evidence["gcp_api_calls"] for c in FW_CLUSTERS]
    assert max(seen) == total and min(seen) >= 1


def test_embedded_mode_and_other_clouds_skip(fw_world: dict[str, Any], ep_world: dict[str, Any]) -> None:
    doc = yaml.safe_load(fw_world["fleet"].read_text())
    for entry in doc["clusters"]:
        entry["meshsync_mode"] = "embedded"
    embedded = fw_world["fleet"].with_name("fleet-embedded.yaml")
    embedded.write_text(yaml.safe_dump(doc))
    before = len(fw_world["lab"].requests())
    rep = run(
        fleet=str(embedded),
        contexts=["fw-allow"],
        include=["broker.service", FW],
        origins=[ORIGIN],
        gcp_api_endpoint=fw_world["lab"].url,
    )
    r = fw(rep, "fw-allow")
    assert r.status.value == "skip" and r.evidence["blocked_by"] == "broker.service"
    assert len(fw_world["lab"].requests()) == before
    # Without the fleet file's provider the context name decides: "ep-covered" is not a GKE context.
    other = run(kubeconfig=[str(ep_world["kubeconfig"])], contexts=["ep-covered"], include=["kubeconfig.context", EP])
    assert ep(other, "ep-covered").status.value == "skip"


def test_firewall_check_without_credentials_is_an_error_when_declared(
    fw_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    rep = run(
        fleet=str(fw_world["fleet"]),
        contexts=["fw-allow"],
        include=["broker.service", FW],
        origins=[ORIGIN],
        gcp_api_endpoint=fw_world["lab"].url,
    )
    r = fw(rep, "fw-allow")
    assert r.status.value == "error" and HINT not in r.message and HINT in r.remediation


def test_firewall_normalisation_with_the_sdk_types() -> None:
    from google.cloud import compute_v1

    from preflight.cloud import gcp

    net = f"{COMPUTE_URL}/projects/host/global/networks/shared"
    fws = [
        compute_v1.Firewall(name="no-source", network=net, allowed=[compute_v1.Allowed(I_p_protocol="6")]),
        compute_v1.Firewall(
            name="tags-only",
            network=net,
            priority=10,
            source_tags=["x"],
            denied=[compute_v1.Denied(I_p_protocol="all")],
        ),
        compute_v1.Firewall(
            name="other-net",
            network=f"{COMPUTE_URL}/projects/host/global/networks/default",
            allowed=[compute_v1.Allowed(I_p_protocol="tcp")],
            source_ranges=["0.0.0.0/0"],
        ),
    ]
    rules = gcp.firewall_rules(fws, "host", "shared")
    assert [(r.name, r.action, r.protocol, r.priority, r.sources) for r in rules] == [
        ("no-source", "allow", "tcp", 1000, ("0.0.0.0/0",)),  # no source at all means anywhere
        ("tags-only", "deny", "all", 10, ()),  # source tags never match an external origin
    ]
    from google.cloud import container_v1

    shared = container_v1.Cluster(
        name="c",
        network="shared",
        network_config=container_v1.NetworkConfig(network="projects/host/global/networks/shared"),
    )
    assert gcp.network_of(shared, "svc-project") == ("host", "shared")
    assert gcp.network_of(container_v1.Cluster(name="c"), "p") == ("p", "default")
    assert gcp.parse_provider_id("gce://p/us-central1-a/gke-c-pool-1") == ("p", "us-central1-a", "gke-c-pool-1")
    assert gcp.parse_provider_id("aws:///us-east-1a/i-0abc") is None


# --------------------------------------------------------------------------------------------------
# Import hygiene


def test_cli_and_checks_import_no_google_sdk() -> None:
    code = (
        "import sys, json\n"
        "import preflight.cli\n"
        "cli = sorted(m for m in sys.modules if m.startswith('google'))\n"
        "import preflight.checks, preflight.checks.gcp, preflight.cloud.gcp\n"
        "sdk = sorted(m for m in sys.modules if m.startswith(('google.cloud', 'google.api_core')))\n"
        "print(json.dumps([cli, sdk]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    cli, sdk = json.loads(out.stdout)
    assert cli == [] and sdk == []


def test_lab_token_endpoint_and_read_only_log(tmp_path: Path) -> None:
    """The lab's /token trades a signed assertion for an access token, as oauth2.googleapis.com does; writes
    are refused and logged."""
    import google.auth.transport.requests
    import requests
    from google.oauth2 import service_account

    with LabGCP() as lab:
        key = lab.service_account_file(tmp_path / "sa.json", "proj-t")
        creds = service_account.Credentials.from_service_account_file(str(key), scopes=["https://x/scope"])
        session = google.auth.transport.requests.AuthorizedSession(creds)
        got = session.get(f"{lab.url}/compute/v1/projects/proj-t/global/firewalls", timeout=5)
        assert got.status_code == 200 and got.json()["kind"] == "compute#firewallList"
        posted = session.post(f"{lab.url}/compute/v1/projects/proj-t/global/firewalls", json={}, timeout=5)
        assert posted.status_code == 405
        missing = session.get(f"{lab.url}/v1/projects/proj-t/locations/l/clusters/c", timeout=5)
        assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
        forged = requests.get(
            f"{lab.url}/v1/projects/proj-t/locations/l/clusters/c",
            timeout=5,
            headers={"Authorization": "Bearer forged"},
        )
        assert forged.status_code == 401 and forged.json()["error"]["status"] == "UNAUTHENTICATED"
        session.close()
        assert [r.path for r in lab.requests("/token")] == ["/token"]
        assert [(r.method, r.status) for r in lab.mutating_requests()] == [("POST", 405)]
