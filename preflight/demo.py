"""`meshery-preflight demo`: a local lab fleet with the classic failures, checked by the real `check` path."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import yaml

from preflight.lab.apiserver import Rule
from preflight.lab.dns_server import LabDNS
from preflight.lab.fleet import ClusterSpec, LabFleet
from preflight.lab.meshery import MesherySetup
from preflight.plan import Request
from preflight.settings import Settings

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


def _broker(address: str, **kw: object) -> MesherySetup:
    opts: dict[str, object] = {
        "service_type": "LoadBalancer",
        "lb_ip": address,
        "broker_address": address,
        "source_ranges": (ORIGIN,),
    }
    opts.update(kw)
    return MesherySetup(**opts)  # type: ignore[arg-type]


# Context names say what each lab cluster gets wrong, so the report reads as a tour.
DEMO_FLEET = (
    ClusterSpec(name="prod-eu", scenario="healthy"),
    ClusterSpec(name="prod-us-exec", scenario="exec-ok"),
    ClusterSpec(name="staging-client-cert", scenario="client-cert"),
    ClusterSpec(name="edge-api-refused", scenario="refused"),
    ClusterSpec(name="dr-wrong-ca", scenario="wrong-ca"),
    ClusterSpec(name="dev-expired-token", scenario="expired-token"),
    ClusterSpec(name="ci-hung-exec-plugin", scenario="hung-exec"),
    ClusterSpec(name="lab-insecure-tls", scenario="insecure"),
    ClusterSpec(
        name="ops-broker-healthy", meshery=_broker("127.70.0.1", lb_ip=None, lb_hostname="a1b2c3-broker.elb.lab.test")
    ),
    ClusterSpec(
        name="ops-broker-lb-gone", meshery=_broker("127.70.0.2", lb_ip=None, lb_hostname="deleted-broker.elb.lab.test")
    ),
    ClusterSpec(name="ops-broker-4222-filtered", meshery=_broker("127.70.0.3", broker="backlogged")),
    ClusterSpec(
        name="kind-broker-localhost",
        meshery=MesherySetup(
            generation="classic",
            service_type="NodePort",
            broker_address="127.70.0.4",
            published_external="localhost:31222",
        ),
    ),
    ClusterSpec(name="ops-broker-open-to-world", meshery=_broker("127.70.0.5", source_ranges=("0.0.0.0/0",))),
    ClusterSpec(
        name="ops-broker-wrong-token", meshery=_broker("127.70.0.6", secret_token="stale-token-from-a-previous-install")
    ),
    ClusterSpec(name="eks-no-node-watch", rules=_NO_NODES),
)
PROVIDERS = {"eks-no-node-watch": "eks"}


def _fleet_file(lab: LabFleet, out: Path) -> Path:
    doc = lab.fleet_document()
    doc["origin"] = {"cidrs": [ORIGIN]}
    doc["kubeconfig"] = [str(lab.kubeconfig_path)]
    for entry in doc["clusters"]:
        if entry["context"] in PROVIDERS:
            entry["provider"] = PROVIDERS[entry["context"]]
    path = out / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_demo(directory: str) -> None:
    from preflight.cli import execute

    out = Path(directory).resolve()
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"Starting a lab fleet of {len(DEMO_FLEET)} clusters (with real NATS Brokers) on loopback ...", err=True)
    click.echo(
        "  (4222 'filtered' here is a listener with a full accept queue: the kernel drops the SYN as a "
        "firewall would; the tests use nftables in a network namespace)",
        err=True,
    )
    t0 = time.monotonic()
    with LabFleet(list(DEMO_FLEET), out / "lab") as lab, LabDNS(zones=("lab.test",)) as dns:
        dns.add_cname("a1b2c3-broker.elb.lab.test", "a1b2c3-broker-4f2a.elb.eu-west-1.lab.test")
        dns.add_a("a1b2c3-broker-4f2a.elb.eu-west-1.lab.test", "127.70.0.1")
        # Short deadlines keep the tour quick; the hung plugin and the filtered port still cost one each.
        settings = Settings(connect_timeout=1.0, exec_timeout=2.0, cluster_timeout=30.0, dns_server=dns.address)
        request = Request(fleet=str(_fleet_file(lab, out)))
        outputs = [("console", None), ("json", str(out / "report.json")), ("junit", str(out / "junit.xml"))]
        report = execute(request, settings, outputs)
    s = report.summary
    click.echo(
        f"\nDemo done in {time.monotonic() - t0:.1f}s: {len(report.clusters)} clusters, "
        f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail, {s['error']} error. "
        f"Reports: {out / 'report.json'}, {out / 'junit.xml'}",
        err=True,
    )
    sys.exit(0)
