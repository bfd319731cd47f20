"""An API server on ::1: every host:port is written [v6]:port, and fix commands quote it for the shell.

The lab serves real TLS on the IPv6 loopback with a certificate for the ::1 IP SAN; the kubernetes client,
the TCP and TLS probes and the lab's CONNECT proxy (also on ::1) all talk to it for real.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from preflight.engine.probes.addresses import hostport
from preflight.reports import writer
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.proxy import LabProxy
from tests.runlab import result, run

# "::1:6443" or "::1 6443"-style ambiguity: an IPv6 address followed by a port without brackets.
UNBRACKETED = re.compile(r"(?<![\[\w:])::1:\d+")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet([ClusterSpec(name="v6", address="::1")], tmp_path_factory.mktemp("v6")) as fleet:
        yield fleet


def test_the_whole_path_over_ipv6_prints_brackets(lab: LabFleet) -> None:
    port = lab.clusters["v6"].port
    rep = run(kubeconfig=[str(lab.kubeconfig_path)], include=["kube-api.*"])
    for check_id in ("kube-api.dns", "kube-api.tcp", "kube-api.tls", "kube-api.auth"):
        assert result(rep, "v6", check_id).status.value == "pass", result(rep, "v6", check_id).message
    tcp = result(rep, "v6", "kube-api.tcp")
    assert tcp.message.startswith(f"[::1]:{port} open in ")
    for fmt in ("console", "json", "junit"):
        text = writer.render(fmt, rep)
        assert fmt == "junit" or f"[::1]:{port}" in text  # JUnit prints no message for a pass
        assert not UNBRACKETED.search(text), (fmt, UNBRACKETED.search(text))


def test_refused_ipv6_port(tmp_path: Path) -> None:
    with LabFleet([ClusterSpec(name="v6-down", address="::1", scenario="refused")], tmp_path) as lab:
        port = lab.clusters["v6-down"].port
        rep = run(kubeconfig=[str(lab.kubeconfig_path)], include=["kube-api.tcp"])
    tcp = result(rep, "v6-down", "kube-api.tcp")
    assert tcp.status.value == "fail" and tcp.message.startswith(f"[::1]:{port} is refused")


def test_proxy_fix_commands_quote_ipv6_for_the_shell(lab: LabFleet, tmp_path: Path) -> None:
    """A proxy on ::1 that cannot reach the API: the fix's curl command survives the shell unchanged."""
    port = lab.clusters["v6"].port
    kc = yaml.safe_load(lab.kubeconfig_path.read_text())
    with LabProxy("::1", answer="502 Bad Gateway") as proxy:
        kc["clusters"][0]["cluster"]["proxy-url"] = proxy.url
        path = tmp_path / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(kc))
        rep = run(kubeconfig=[str(path)], include=["kube-api.tls"])
        assert f"[::1]:{port}" in proxy.connects
    assert proxy.url.startswith("http://[::1]:")
    tls = result(rep, "v6", "kube-api.tls")
    assert tls.status.value == "fail" and tls.evidence["proxy_failure"] == "upstream"
    assert f"the proxy {proxy.url.removeprefix('http://')} took the request" in tls.remediation.lower()
    assert f"cannot reach the API [::1]:{port} itself (502)" in tls.remediation
    command = tls.remediation.split("Test with: ", 1)[1]
    assert command == f"curl -sv -o /dev/null --proxy '{proxy.url}' 'https://[::1]:{port}/version'"
    assert shlex.split(command)[-3:] == ["--proxy", proxy.url, f"https://[::1]:{port}/version"]
    assert not UNBRACKETED.search(tls.message + tls.remediation)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("2001:db8::2", 6443, "[2001:db8::2]:6443"),
        ("[2001:db8::2]", 6443, "[2001:db8::2]:6443"),
        ("10.0.0.1", 443, "10.0.0.1:443"),
        ("api.example.test", "4222", "api.example.test:4222"),
        ("fe80::1%eth0", 6443, "[fe80::1%eth0]:6443"),
        ("::1", None, "[::1]"),
    ],
)
def test_hostport(host: str, port: int | str | None, expected: str) -> None:
    assert hostport(host, port) == expected
