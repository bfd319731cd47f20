"""The demo's lab: a fleet with the classic failures, started on loopback for `meshery-preflight demo`.

Besides the plain lab clusters, one EKS, one GKE and one AKS cluster have their Broker's 4222 blocked by a
cloud rule (a security group, a VPC firewall deny, an NSG deny). Their accounts are the cloud labs the tests
use, started in-process on loopback: moto for AWS, the REST lab for GCP, the HTTPS ARM lab for Azure. The
run reaches them through the standard endpoint overrides and lab-only credentials, set in this process's
environment for the demo's duration; no default credential chain runs, so nothing asks a metadata address.
The cloud SDKs are imported only here, when the demo runs. Like the rest of the lab this knows nothing of
the checks or the engine: it hands back a fleet file and the settings the run needs.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT, make_broker
from preflight_lab.demo_clouds import Cloud, start_clouds
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer
from preflight_lab.rbac import Rule

ORIGIN = "127.0.0.0/8"
# Reads what discovery needs except nodes: the classic EKS gap that rbac.nodes: true closes.
_NO_NODES = (
    Rule(
        verbs=("get", "list", "watch"),
        api_groups=("", "apps", "batch", "networking.k8s.io", "apiextensions.k8s.io"),
        resources=(
            "namespaces",
            "pods",
            "services",
            "configmaps",
            "serviceaccounts",
            "persistentvolumes",
            "persistentvolumeclaims",
            "deployments",
            "daemonsets",
            "statefulsets",
            "replicasets",
            "jobs",
            "cronjobs",
            "ingresses",
            "customresourcedefinitions",
        ),
    ),
)


# What Meshery Server needs and no more (reads, reviews, the Operator's install, the Broker port-forward): the
# Broker tour's clusters use it with an exec plugin's short-lived token, so their reports show their Broker, not
# the lab's static cluster-admin token again (prod-eu and its neighbours show that).
_SERVER_RULES = (
    Rule(verbs=("get", "list", "watch")),
    Rule(
        verbs=("create",),
        api_groups=("", "apps", "apiextensions.k8s.io", "rbac.authorization.k8s.io", "meshery.io"),
        resources=(
            "namespaces",
            "customresourcedefinitions",
            "clusterroles",
            "clusterrolebindings",
            "deployments",
            "services",
            "serviceaccounts",
            "secrets",
            "configmaps",
            "brokers",
            "meshsyncs",
        ),
    ),
    Rule(
        verbs=("create",),
        api_groups=("authorization.k8s.io", "authentication.k8s.io"),
        resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"),
    ),
    Rule(verbs=("get",), non_resource_urls=("*",)),
)
_PORT_FORWARD = Rule(verbs=("create",), api_groups=("",), resources=("pods/portforward",))


def _lb(address: str, **kw: Any) -> MesherySetup:
    kw.setdefault("source_ranges", (ORIGIN,))
    return behind_load_balancer(address, **kw)


HEALTHY_LB = "a1b2c3-broker.elb.lab.test"


def demo_fleet(broker_address: Callable[[], str]) -> list[ClusterSpec]:
    """The demo's plain lab clusters; each Broker gets ``broker_address()`` (free on 4222, see addresses)."""
    # Context names say what each lab cluster gets wrong, so the report reads as a tour.
    return [
        ClusterSpec(name="prod-eu", scenario="healthy"),
        ClusterSpec(name="prod-us-exec", scenario="exec-ok"),
        ClusterSpec(name="staging-client-cert", scenario="client-cert"),
        ClusterSpec(name="edge-api-refused", scenario="refused"),
        ClusterSpec(name="dr-wrong-ca", scenario="wrong-ca"),
        ClusterSpec(name="dev-expired-token", scenario="expired-token"),
        ClusterSpec(name="ci-hung-exec-plugin", scenario="hung-exec"),
        ClusterSpec(name="lab-insecure-tls", scenario="insecure"),
        ClusterSpec(name="ops-broker-healthy", meshery=_lb(broker_address(), lb_ip=None, lb_hostname=HEALTHY_LB)),
        ClusterSpec(
            name="ops-broker-lb-gone",
            meshery=_lb(broker_address(), lb_ip=None, lb_hostname="deleted-broker.elb.lab.test"),
        ),
        ClusterSpec(name="ops-broker-4222-filtered", meshery=_lb(broker_address(), broker="backlogged")),
        # While the classic Service's load balancer is pending, the classic Operator publishes localhost:<nodePort>:
        # two problems at once, each reported on its own.
        ClusterSpec(
            name="kind-broker-localhost",
            meshery=MesherySetup(
                generation="classic",
                service_type="LoadBalancer",
                broker_address=broker_address(),
                published_external="localhost:31222",
                source_ranges=(ORIGIN,),
            ),
        ),
        ClusterSpec(name="ops-broker-open-to-world", meshery=_lb(broker_address(), source_ranges=("0.0.0.0/0",))),
        ClusterSpec(
            name="ops-broker-wrong-token",
            meshery=_lb(broker_address(), secret_token="stale-token-from-a-previous-install"),
        ),
        ClusterSpec(name="eks-no-node-watch", rules=_NO_NODES),
    ]


def forward_fleet(broker_address: Callable[[], str], filtered: str) -> list[ClusterSpec]:
    """Clusters whose Server uses Meshery's managed Broker port-forward (the fleet file turns it on for these
    only); ``filtered`` is an address whose 4222 drops the SYN."""
    specs = [
        ClusterSpec(name="fwd-clusterip-healthy", meshery=MesherySetup(broker_address=broker_address())),
        ClusterSpec(name="fwd-denied", meshery=_lb(broker_address())),
        ClusterSpec(name="fwd-kubelet-unreachable", meshery=_lb(broker_address(), kubelet="timeout")),
        ClusterSpec(name="fwd-nats-crashloop", meshery=_lb(broker_address(), nats_pod="crashloop", broker="absent")),
        ClusterSpec(name="fwd-endpoint-filtered", meshery=_lb(broker_address(), lb_ip=filtered)),
    ]
    for spec in specs:
        spec.auth = "exec"
        spec.rules = _SERVER_RULES if spec.name == "fwd-denied" else (*_SERVER_RULES, _PORT_FORWARD)
    return specs


def _as_meshery_server(spec: ClusterSpec) -> ClusterSpec:
    """A Broker-tour cluster reached as Meshery Server is: an exec plugin's token, the rights it needs."""
    if spec.meshery is not None and spec.meshery.generation is not None and spec.rules is None:
        spec.auth, spec.rules = "exec", (*_SERVER_RULES, _PORT_FORWARD)
    return spec


PROVIDERS = {"eks-no-node-watch": "eks"}


def _fleet_file(lab: LabFleet, out: Path, clouds: Sequence[Cloud] = ()) -> Path:
    doc = lab.fleet_document()
    doc["origin"] = {"cidrs": [ORIGIN]}
    doc["kubeconfig"] = [str(lab.kubeconfig_path)]
    cloud_entries = {c.spec.name: c.entry for c in clouds}
    # The tour's Servers connect to the published endpoint only; the fwd-* clusters' Servers use the forward.
    doc["defaults"] = {"broker_port_forward": False}
    for entry in doc["clusters"]:
        if entry["context"].startswith("fwd-"):
            entry["broker_port_forward"] = True
        if entry["context"] in PROVIDERS:
            entry["provider"] = PROVIDERS[entry["context"]]
        entry.update(cloud_entries.get(entry["context"], {}))
    path = out / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass(frozen=True)
class DemoLab:
    fleet_file: Path
    # Settings the run needs (Settings field names): the DNS server, short deadlines, cloud endpoints.
    settings: dict[str, Any]


@contextlib.contextmanager
def start(out: Path) -> Iterator[DemoLab]:
    """Start every lab of the demo; everything stops (and the environment comes back) on exit, also on errors."""
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # The cloud SDKs and moto allocate millions of objects while they load: collect less often meanwhile.
        stack.callback(gc.set_threshold, *gc.get_threshold())
        gc.set_threshold(100_000, 50, 100)
        click.echo("Starting the EKS, GKE and AKS labs (moto, GCP REST, ARM over HTTPS) on loopback ...", err=True)
        clouds = start_clouds(stack)
        filtered = stack.enter_context(make_broker("backlogged", allocate(NATS_PORT), NATS_PORT)).host
        specs = [
            *(_as_meshery_server(s) for s in demo_fleet(lambda: allocate(NATS_PORT))),
            *forward_fleet(lambda: allocate(NATS_PORT), filtered),
            *(_as_meshery_server(c.spec) for c in clouds),
        ]
        click.echo(f"Starting a lab fleet of {len(specs)} clusters (with real NATS Brokers) on loopback ...", err=True)
        click.echo(
            "  (4222 'filtered' here is a listener with a full accept queue: the kernel drops the SYN as a "
            "firewall would; the tests use nftables in a network namespace. The cloud clusters' Brokers are "
            "filtered so too, and their cloud checks name the rule that does it)",
            err=True,
        )
        lab = stack.enter_context(LabFleet(specs, out / "lab"))
        dns = stack.enter_context(LabDNS(zones=("lab.test", "amazonaws.com")))
        healthy = lab.clusters["ops-broker-healthy"].broker_address
        assert healthy is not None
        dns.add_cname(HEALTHY_LB, "a1b2c3-broker-4f2a.elb.eu-west-1.lab.test")
        dns.add_a("a1b2c3-broker-4f2a.elb.eu-west-1.lab.test", healthy)
        settings: dict[str, Any] = {}
        for c in clouds:
            for name, address in c.dns.items():
                dns.add_a(name, address)
            if c.after_fleet is not None:
                c.after_fleet(lab)
            settings.update(c.settings)
        # Short deadlines keep the tour quick; the hung plugin and the filtered ports still cost one each.
        settings.update(connect_timeout=1.0, exec_timeout=2.0, cluster_timeout=30.0, dns_server=dns.address)
        yield DemoLab(_fleet_file(lab, out, clouds), settings)
