"""The CLI inside a network namespace the test makes: an API filtered by nftables, one behind a
missing route, one reached by host name through the namespace's own /etc/hosts."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.netlab import NetNS, require_netns

CONNECT_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    require_netns()
    tmp = tmp_path_factory.mktemp("netns-lab")
    specs = [ClusterSpec(name=n) for n in ("reachable", "filtered", "unreachable", "by-name")]
    specs += [ClusterSpec(name=f"filler-{i}") for i in range(6)]
    with NetNS() as ns:
        lab = ns.call(lambda: LabFleet(specs, tmp / "lab").start())
        try:
            filtered = lab.clusters["filtered"]
            ns.drop_tcp(filtered.address, filtered.port)
            ns.ip("route", "add", "unreachable", "198.51.100.0/24")
            by_name = lab.clusters["by-name"]
            etc = Path(f"/etc/netns/{ns.name}")
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n{by_name.address} {by_name.dns_name}\n")
            # No reachable resolver in the namespace: nothing can leak to a real DNS server.
            (etc / "resolv.conf").write_text("nameserver 127.0.0.53\noptions timeout:1 attempts:1\n")
            kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
            for c in kc["clusters"]:
                if c["name"] == "unreachable":
                    c["cluster"]["server"] = "https://198.51.100.7:6443"
                if c["name"] == "by-name":
                    c["cluster"]["server"] = f"https://{by_name.dns_name}:{by_name.port}"
            path = tmp / "kubeconfig.yaml"
            path.write_text(yaml.safe_dump(kc))
            yield ns, lab, path, tmp
        finally:
            ns.call(lab.stop)


@pytest.fixture(scope="module")
def report(world):
    ns, _lab, kubeconfig, tmp = world
    out = tmp / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    t0 = time.monotonic()
    proc = ns.exec(
        sys.executable,
        "-m",
        "preflight.cli",
        "check",
        "--kubeconfig",
        str(kubeconfig),
        "--connect-timeout",
        str(CONNECT_TIMEOUT),
        "-o",
        f"json={out}",
        env=env,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text())
    by = {c["name"]: {r["check_id"]: r for r in c["results"]} for c in doc["clusters"]}
    return by, elapsed


def test_dropped_syn_is_reported_filtered_with_firewall_fix(report) -> None:
    by, _ = report
    tcp = by["filtered"]["kube-api.tcp"]
    assert tcp["status"] == "fail" and tcp["evidence"]["state"] == "filtered"
    assert "security group" in tcp["remediation"] and "authorized networks" in tcp["remediation"]
    assert by["filtered"]["kube-api.auth"]["status"] == "skip"


def test_missing_route_is_reported_unreachable_with_peering_fix(report) -> None:
    by, _ = report
    tcp = by["unreachable"]["kube-api.tcp"]
    assert tcp["status"] == "fail" and tcp["evidence"]["state"] == "unreachable"
    assert "peering" in tcp["remediation"] and "VPN" in tcp["remediation"]
    dns = by["unreachable"]["kube-api.dns"]["evidence"]
    assert dns["addresses"] == [{"address": "198.51.100.7", "class": "public"}]


def test_host_name_server_resolves_and_authenticates(report) -> None:
    by, _ = report
    assert by["by-name"]["kube-api.dns"]["status"] == "pass"
    assert by["by-name"]["kube-api.tls"]["status"] == "pass"
    assert by["by-name"]["kube-api.auth"]["status"] == "pass"


def test_the_other_clusters_are_unaffected_and_not_delayed(report) -> None:
    by, elapsed = report
    healthy = ["reachable"] + [f"filler-{i}" for i in range(6)]
    assert all(by[n]["kube-api.auth"]["status"] == "pass" for n in healthy)
    # The filtered cluster costs one connect timeout, in parallel with the rest: not one per cluster.
    assert max(by[n]["kube-api.tcp"]["duration_s"] for n in healthy) < CONNECT_TIMEOUT
    assert by["filtered"]["kube-api.tcp"]["duration_s"] >= CONNECT_TIMEOUT * 0.9
    assert elapsed < 60
