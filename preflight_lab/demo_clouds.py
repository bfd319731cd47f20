"""The demo's cloud clusters: one EKS, one GKE and one AKS account, each with one rule blocking the Broker.

Their accounts are the cloud labs the tests use, started in-process on loopback: moto for AWS, the REST lab
for GCP, the HTTPS ARM lab for Azure. The run reaches them through the standard endpoint overrides and
lab-only credentials, set in this process's environment for the demo's duration; no default credential chain
runs, so nothing asks a metadata address. Like the rest of the lab, this knows nothing of the checks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer

ORIGIN = "127.0.0.0/8"


def _broker(address: str, **kw: Any) -> MesherySetup:
    kw.setdefault("source_ranges", (ORIGIN,))
    return behind_load_balancer(address, **kw)


# -- the cloud clusters ------------------------------------------------------------------------------
# Each admits the Server's origin everywhere but at one rule, which the cloud check must name. Their Brokers
# are backlogged listeners, so broker.tcp sees the drop the rule would cause; the cloud check says which rule.

OLD_OFFICE = "203.0.113.0/24"  # where the Server used to run: what the stale rules still admit
EKS_CLUSTER = "eks-broker-sg-closed"
GKE_CLUSTER = "gke-broker-firewall-deny"
GKE_PROJECT, GKE_LOCATION, GKE_ZONE = "meshery-demo", "europe-west1", "europe-west1-b"
GKE_NETWORK = "meshery-vpc"
GKE_DENY = "deny-nats-from-anywhere"
AKS_CLUSTER = "aks-broker-nsg-deny"
AKS_SUBSCRIPTION = "5e1f7a2c-0d3b-4c8e-9a61-7b2f4d8c0e13"
AKS_GROUP, AKS_NET_GROUP, AKS_LOCATION = "rg-meshery", "rg-network", "westeurope"
AKS_NSG, AKS_DENY = "nsg-aks-nodes", "deny-nats-4222"
_ARM_TOKEN = "lab-arm-demo-token"  # the only bearer token the lab ARM accepts
# Prefixes and names of variables that would steer the SDKs elsewhere (profiles, real credentials, proxies).
_DROP_PREFIXES = ("AWS_", "MOTO_", "GOOGLE_", "GCE_", "AZURE_")
_DROP = (
    "CLOUDSDK_CONFIG",
    "GCLOUD_PROJECT",
    "NO_GCE_CHECK",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@dataclass
class Cloud:
    """One cloud cluster of the demo, its cloud lab running and seeded."""

    spec: ClusterSpec
    entry: dict[str, Any]  # the fleet file's provider and cloud ids
    settings: dict[str, Any] = field(default_factory=dict)  # Settings fields: where the run finds the API
    dns: dict[str, str] = field(default_factory=dict)  # A records the Broker's names need
    after_fleet: Callable[[LabFleet], None] | None = None  # seeding that needs the lab cluster's address
    lab: Any = None  # the running cloud lab (AwsLab, LabGCP, LabARM): tests count the requests it answered


def _eks(stack: contextlib.ExitStack, home: Path) -> Cloud:
    """moto as the account; the Broker's NLB has a security group that still admits only the old office."""
    from preflight_lab.aws import AwsLab, EksSetup, SgRule

    os.environ.update(
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"),
        MOTO_EC2_LOAD_DEFAULT_AMIS="false",
    )  # moto's 1300 public AMIs: a third of a second, unused
    aws = stack.enter_context(AwsLab())
    os.environ.update(aws.env())  # endpoint, fake keys, no instance metadata
    c = aws.add(
        EksSetup(
            EKS_CLUSTER,
            public_access_cidrs=(ORIGIN,),
            lb_security_groups=True,
            lb_sg_rules=(SgRule((4222, 4222), cidr=OLD_OFFICE, description="old office VPN"),),
        )
    )
    assert c.lb_dns_name
    address = allocate(NATS_PORT)
    setup = c.meshery_setup(address, broker="backlogged", source_ranges=(ORIGIN,))
    return Cloud(
        ClusterSpec(name=EKS_CLUSTER, meshery=setup),
        {"provider": "eks", "aws": c.aws_ids()},
        dns={c.lb_dns_name: address},
        lab=aws,
    )


def _gke(stack: contextlib.ExitStack, home: Path) -> Cloud:
    """The GCP REST lab; a hardening deny at priority 900 beats the allow for the Server at 1000."""
    from google.auth.compute_engine import _metadata  # reads its variables once, at import

    from preflight_lab.gcp import LabGCP, firewall, gke_cluster, instance

    gcp = stack.enter_context(LabGCP())
    # Application Default Credentials from a key file the lab trusts: google.auth never tries the metadata
    # server, and its address points at a bound socket that refuses connections in case anything did.
    trap = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stack.callback(trap.close)
    trap.bind(("127.0.0.1", 0))
    metadata = f"127.0.0.1:{trap.getsockname()[1]}"
    key = gcp.service_account_file(home / "gcp-sa.json", GKE_PROJECT)
    os.environ.update(
        GOOGLE_APPLICATION_CREDENTIALS=str(key),
        CLOUDSDK_CONFIG=str(home / "gcloud"),
        NO_GCE_CHECK="true",
        GCE_METADATA_HOST=metadata,
        GCE_METADATA_IP=metadata,
    )
    for attr, value in (("_NO_GCE_CHECK", True), ("_GCE_METADATA_HOST", metadata)):
        stack.callback(setattr, _metadata, attr, getattr(_metadata, attr))
        setattr(_metadata, attr, value)

    doc = gke_cluster(GKE_PROJECT, GKE_LOCATION, GKE_CLUSTER, network=GKE_NETWORK)
    tag = f"gke-{GKE_CLUSTER}-{doc['id'][:8]}-node"
    node = f"gke-{GKE_CLUSTER}-default-pool-1a2b3c4d-x1y2"
    gcp.add_instance(instance(GKE_PROJECT, GKE_ZONE, node, tags=[tag]))
    gcp.add_firewalls(
        GKE_PROJECT,
        [
            firewall(
                GKE_PROJECT,
                "allow-meshery-broker",
                network=GKE_NETWORK,
                allowed=[("tcp", ["4222"])],
                source_ranges=[ORIGIN],
                target_tags=[tag],
                priority=1000,
            ),
            firewall(
                GKE_PROJECT,
                GKE_DENY,
                network=GKE_NETWORK,
                denied=[("tcp", ["4222"])],
                source_ranges=["0.0.0.0/0"],
                target_tags=[tag],
                priority=900,
            ),
        ],
    )

    def add_cluster(fleet: LabFleet) -> None:
        # The control plane's public endpoint is the lab API server the kubeconfig uses, open to the origin.
        host = fleet.clusters[GKE_CLUSTER].address
        ip = {
            "enabled": True,
            "enablePublicEndpoint": True,
            "publicEndpoint": host,
            "privateEndpoint": "10.0.0.2",
            "authorizedNetworksConfig": {
                "enabled": True,
                "cidrBlocks": [{"displayName": "meshery-server", "cidrBlock": ORIGIN}],
            },
        }
        gcp.add_cluster(
            gke_cluster(
                GKE_PROJECT,
                GKE_LOCATION,
                GKE_CLUSTER,
                network=GKE_NETWORK,
                endpoint=host,
                control_plane_endpoints_config={"ipEndpointsConfig": ip},
            )
        )

    setup = _broker(
        allocate(NATS_PORT),
        broker="backlogged",
        node_labels={"cloud.google.com/gke-nodepool": "default-pool"},
        node_provider_id=f"gce://{GKE_PROJECT}/{GKE_ZONE}/{node}",
    )
    ids = {"project": GKE_PROJECT, "location": GKE_LOCATION, "cluster": GKE_CLUSTER}
    return Cloud(
        ClusterSpec(name=GKE_CLUSTER, meshery=setup),
        {"provider": "gke", "gcp": ids},
        settings={"gcp_api_endpoint": gcp.url},
        after_fleet=add_cluster,
        lab=gcp,
    )


class _LabToken:
    """The demo's Azure credential: the lab ARM's token, so DefaultAzureCredential never runs."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(_ARM_TOKEN, int(time.time()) + 3600)


def _aks(stack: contextlib.ExitStack, home: Path) -> Cloud:
    """The HTTPS ARM lab; the node subnet's NSG denies 4222 before AKS's own NSG would allow the origin."""
    from preflight_lab.azure import LabARM, nsg_rule

    arm = stack.enter_context(LabARM(token=_ARM_TOKEN))
    assert arm.ca_file is not None

    address = allocate(NATS_PORT)
    node_group = f"MC_{AKS_GROUP}_{AKS_CLUSTER}_{AKS_LOCATION}"
    subnet = arm.subnet_id(AKS_SUBSCRIPTION, AKS_NET_GROUP, "vnet-platform", "aks-nodes")
    arm.add_nsg(
        AKS_SUBSCRIPTION,
        AKS_NET_GROUP,
        AKS_NSG,
        [nsg_rule(AKS_DENY, 200, "Deny", source="*", ports="4222")],
        location=AKS_LOCATION,
    )
    arm.add_vnet(
        AKS_SUBSCRIPTION,
        AKS_NET_GROUP,
        "vnet-platform",
        ["10.240.0.0/16"],
        {"aks-nodes": ("10.240.0.0/24", arm.nsg_id(AKS_SUBSCRIPTION, AKS_NET_GROUP, AKS_NSG))},
        location=AKS_LOCATION,
    )
    # AKS's own NSG, with the rule it writes from the Broker's loadBalancerSourceRanges.
    arm.add_nsg(
        AKS_SUBSCRIPTION,
        node_group,
        "aks-agentpool-31415926-nsg",
        [nsg_rule("k8s-azure-lb_allow_IPv4_4222", 500, source=ORIGIN, ports="4222", destination=address)],
        location=AKS_LOCATION,
    )
    arm.add_managed_cluster(
        AKS_SUBSCRIPTION,
        AKS_GROUP,
        AKS_CLUSTER,
        location=AKS_LOCATION,
        authorized_ip_ranges=[ORIGIN],
        node_resource_group=node_group,
        pools={"nodepool1": subnet},
    )
    ids = {"subscription": AKS_SUBSCRIPTION, "resource_group": AKS_GROUP, "cluster": AKS_CLUSTER}
    return Cloud(
        ClusterSpec(name=AKS_CLUSTER, meshery=_broker(address, broker="backlogged")),
        {"provider": "aks", "azure": ids},
        settings={
            "azure_arm_endpoint": arm.url,
            "azure_credential": lambda authority: _LabToken(),
            "cloud_ca_file": str(arm.ca_file),
        },
        lab=arm,
    )


# cloud -> (what its lab and the checks import, how to start it)
_CLOUDS: dict[str, tuple[tuple[str, ...], Callable[[contextlib.ExitStack, Path], Cloud]]] = {
    "AWS": (("moto.server", "boto3"), _eks),
    "GCP": (("google.auth", "google.cloud.container_v1", "google.cloud.compute_v1"), _gke),
    "Azure": (("azure.identity", "azure.mgmt.containerservice", "azure.mgmt.network"), _aks),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


@contextlib.contextmanager
def _process_environment() -> Iterator[None]:
    """The demo's cloud settings live in os.environ while it runs; the caller's environment comes back after."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(_DROP_PREFIXES) or key in _DROP:
                del os.environ[key]
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_clouds(stack: contextlib.ExitStack) -> list[Cloud]:
    """Start and seed every cloud lab whose SDKs are installed; the stack stops them and restores the environment."""
    home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="preflight-demo-cloud-")))
    stack.enter_context(_process_environment())
    clouds = []
    for name, (modules, start) in _CLOUDS.items():
        absent = [m for m in modules if not _installed(m)]
        if absent:
            click.echo(f"  (no {name} cluster: {', '.join(absent)} not installed; pip install -e '.[test]')", err=True)
            continue
        clouds.append(start(stack, home))
    return clouds
