"""kube-api.dns (and TLS name checks) through --dns-server, answered by a real DNS server on loopback.

Only checks that resolve through our own resolver run here: the kubernetes client resolves through
the system, so API requests by name are tested inside a network namespace (test_kube_api_netns)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.runlab import result, run

CHECKS = ["kubeconfig.context", "kube-api.dns", "kube-api.tcp", "kube-api.tls"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("dns")
    specs = [ClusterSpec(name=n) for n in ("direct", "via-cname", "missing", "wrong-name", "silent")]
    with LabFleet(specs, tmp / "lab") as lab, LabDNS(zones=("lab.local", "lab.test")) as dns:
        c = lab.clusters
        dns.add_a(c["direct"].dns_name, c["direct"].address)
        dns.add_cname("api.via-cname.lab.test", "elb-123.lab.test")
        dns.add_cname("elb-123.lab.test", c["via-cname"].dns_name)
        dns.add_a(c["via-cname"].dns_name, c["via-cname"].address)
        dns.add_a("api.wrong-name.lab.test", c["wrong-name"].address)
        dns.never_answer("api.silent.lab.test")
        servers = {
            "direct": f"https://{c['direct'].dns_name}:{c['direct'].port}",
            "via-cname": f"https://api.via-cname.lab.test:{c['via-cname'].port}",
            "missing": "https://api.gone.lab.test:6443",
            "wrong-name": f"https://api.wrong-name.lab.test:{c['wrong-name'].port}",
            "silent": "https://api.silent.lab.test:6443",
        }
        kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
        for entry in kc["clusters"]:
            entry["cluster"]["server"] = servers[entry["name"]]
        path = tmp / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(kc))
        report = run(kubeconfig=[str(path)], include=CHECKS, dns_server=dns.address, connect_timeout=1.0)
        yield report, dns


def test_a_record_resolves_and_connects(world) -> None:
    report, _ = world
    dns = result(report, "direct", "kube-api.dns")
    assert dns.status.value == "pass"
    assert dns.evidence["addresses"][0]["class"] == "loopback"
    assert result(report, "direct", "kube-api.tls").status.value == "pass"


def test_cname_chain_is_followed_and_shown(world) -> None:
    report, _ = world
    dns = result(report, "via-cname", "kube-api.dns")
    assert dns.status.value == "pass"
    assert dns.evidence["cnames"][:1] == ["elb-123.lab.test"]
    assert result(report, "via-cname", "kube-api.tcp").status.value == "pass"


def test_nxdomain_fails_and_stops_the_chain(world) -> None:
    report, _ = world
    dns = result(report, "missing", "kube-api.dns")
    assert dns.status.value == "fail" and dns.evidence["failure"] == "nxdomain"
    assert result(report, "missing", "kube-api.tcp").status.value == "skip"


def test_silent_resolver_fails_in_time(world) -> None:
    report, _ = world
    dns = result(report, "silent", "kube-api.dns")
    assert dns.status.value == "fail" and dns.evidence["failure"] == "timeout"


def test_certificate_that_does_not_cover_the_name_fails(world) -> None:
    report, _ = world
    tls = result(report, "wrong-name", "kube-api.tls")
    assert tls.status.value == "fail"
    assert "does not cover 'api.wrong-name.lab.test'" in tls.message


def test_every_lookup_went_to_the_lab_server(world) -> None:
    _, dns = world
    asked = {q.name.rstrip(".") for q in dns.queries}
    assert {"cluster-0000.lab.local", "api.via-cname.lab.test", "api.gone.lab.test"} <= asked
