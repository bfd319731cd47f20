"""Broker reachability from the Server's position, for real, inside a network namespace the test makes:
4222 filtered by nftables, a Broker behind a missing route, an internal load balancer seen from a public
origin, and a remote cluster that publishes localhost."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer
from tests.netlab import NetNS, require_netns

ORIGIN = "203.0.113.0/24"  # a public origin: the Server egresses from the internet side
A = {n: allocate(NATS_PORT) for n in range(1, 7)}


def lb(address: str, **kw: object) -> MesherySetup:
    kw.setdefault("source_ranges", (ORIGIN,))
    return behind_load_balancer(address, **kw)


SPECS = [
    ClusterSpec(name="b-open", meshery=lb(A[1])),
    ClusterSpec(name="b-filtered", meshery=lb(A[2])),
    ClusterSpec(name="b-unreachable", meshery=lb(A[3], lb_ip="198.51.100.20")),
    ClusterSpec(
        name="b-internal",
        meshery=lb(
            A[4],
            lb_ip=None,
            lb_hostname="internal-b4.elb.lab.test",
            annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
        ),
    ),
    ClusterSpec(name="b-remote-localhost", meshery=lb(A[5], published_external="localhost:31222")),
    # Classic Operator, load balancer pending: it publishes localhost:<nodePort>, which for a remote cluster
    # sends the Server to its own machine.
    ClusterSpec(
        name="b-remote-pending",
        meshery=MesherySetup(
            generation="classic",
            service_type="LoadBalancer",
            broker_address=A[6],
            published_external="localhost:31222",
        ),
    ),
]
REMOTE = ("b-remote-localhost", "b-remote-pending")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    require_netns()
    tmp = tmp_path_factory.mktemp("broker-netns")
    with NetNS() as ns:
        lab = ns.call(lambda: LabFleet(SPECS, tmp / "lab").start())
        dns = ns.call(lambda: LabDNS(zones=("lab.test", "lab.local")).start())
        try:
            dns.add_a("internal-b4.elb.lab.test", "10.20.0.5")
            ns.drop_tcp(A[2], 4222)
            ns.ip("route", "add", "unreachable", "198.51.100.0/24")
            remotes = [lab.clusters[name] for name in REMOTE]
            # --dns-server answers the toolkit's own look-ups; the kubernetes client reads the namespace's hosts.
            for remote in remotes:
                dns.add_a(remote.dns_name, remote.address)
            etc = Path(f"/etc/netns/{ns.name}")
            etc.mkdir(parents=True, exist_ok=True)
            hosts = "".join(f"{r.address} {r.dns_name}\n" for r in remotes)
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
            (etc / "resolv.conf").write_text("nameserver 127.0.0.53\noptions timeout:1 attempts:1\n")
            kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
            for c in kc["clusters"]:
                if c["name"] in REMOTE:
                    remote = lab.clusters[c["name"]]
                    c["cluster"]["server"] = f"https://{remote.dns_name}:{remote.port}"
            (tmp / "kubeconfig.yaml").write_text(yaml.safe_dump(kc))
            fleet = yaml.safe_load(Path(lab.fleet_path).read_text())
            fleet["kubeconfig"] = [str(tmp / "kubeconfig.yaml")]
            (tmp / "fleet.yaml").write_text(yaml.safe_dump(fleet))
            out = tmp / "report.json"
            env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
            proc = ns.exec(
                sys.executable,
                "-m",
                "preflight.cli",
                "check",
                "--fleet",
                str(tmp / "fleet.yaml"),
                "--dns-server",
                dns.address,
                "--origin",
                ORIGIN,
                "--connect-timeout",
                "1",
                "--checks",
                "kube-api.*",
                "--checks",
                "meshery.*",
                "--checks",
                "broker.*",
                "-o",
                f"json={out}",
                env=env,
            )
            assert proc.returncode == 1, proc.stderr
            doc = json.loads(out.read_text())
            yield {c["name"]: {r["check_id"]: r for r in c["results"]} for c in doc["clusters"]}
        finally:
            ns.call(dns.stop)
            ns.call(lab.stop)


def test_reachable_broker_passes_from_a_public_origin(report) -> None:
    assert report["b-open"]["broker.auth"]["status"] == "pass"
    assert report["b-open"]["broker.exposure"]["status"] == "pass"


def test_filtered_4222_names_security_groups_and_source_ranges(report) -> None:
    tcp = report["b-filtered"]["broker.tcp"]
    assert tcp["status"] == "fail" and tcp["evidence"]["state"] == "filtered"
    assert "security group" in tcp["remediation"] and "loadBalancerSourceRanges" in tcp["remediation"]
    cands = report["b-filtered"]["broker.endpoint"]["evidence"]["candidates"]
    assert {"kind": "lb-ip", "endpoint": f"{A[2]}:4222", "answers": "filtered"} in cands


def test_missing_route_names_peering_and_vpn(report) -> None:
    tcp = report["b-unreachable"]["broker.tcp"]
    assert tcp["status"] == "fail" and tcp["evidence"]["state"] == "unreachable"
    assert "peering" in tcp["remediation"] and "VPN" in tcp["remediation"]


def test_internal_load_balancer_from_a_public_origin_fails_dns(report) -> None:
    d = report["b-internal"]["broker.dns"]
    assert d["status"] == "fail" and "internal load balancer" in d["message"]
    assert d["evidence"]["addresses"] == [{"address": "10.20.0.5", "class": "private"}]
    exposure = report["b-internal"]["broker.exposure"]
    assert "aws: service.beta.kubernetes.io/aws-load-balancer-scheme=internal" in exposure["evidence"]["internal_lb"]


def test_remote_cluster_publishing_localhost_fails(report) -> None:
    ep = report["b-remote-localhost"]["broker.endpoint"]
    assert ep["status"] == "fail" and "localhost:31222 is loopback" in ep["message"]
    # Loopback candidates of a remote cluster mean this machine: never probed, and never suggested.
    lb_ip = next(c for c in ep["evidence"]["candidates"] if c["kind"] == "lb-ip")
    assert lb_ip["answers"].startswith("not probed (loopback")
    assert report["b-remote-localhost"]["broker.tcp"]["status"] == "skip"


def test_remote_cluster_with_pending_lb_still_says_the_server_is_sent_to_localhost(report) -> None:
    service = report["b-remote-pending"]["broker.service"]
    assert service["status"] == "fail" and "load balancer pending" in service["message"]
    ep = report["b-remote-pending"]["broker.endpoint"]
    assert ep["status"] == "fail" and "localhost:31222 is loopback" in ep["message"], ep
    assert ep["evidence"]["independent_of"] == ["broker.service"]
    assert "separate problem from broker.service (fail)" in ep["message"]


def test_right_endpoint_that_does_not_answer_is_not_an_all_clear(report) -> None:
    ep = report["b-filtered"]["broker.endpoint"]
    assert ep["status"] == "fail", ep
    assert "the right endpoint by the Operator's rules, but it does not answer from here (filtered)" in ep["message"]
    assert "security group" in ep["remediation"]
    # The hops after it still run and agree on the same address.
    assert report["b-filtered"]["broker.dns"]["status"] == "pass"
    tcp = report["b-filtered"]["broker.tcp"]
    assert tcp["status"] == "fail" and tcp["evidence"]["state"] == "filtered"
    assert report["b-open"]["broker.endpoint"]["status"] == "pass"
