"""proxy-url and HTTPS_PROXY/NO_PROXY: the API is reached through the proxy, and the report says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.proxy import LabProxy
from tests.runlab import result, run


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet([ClusterSpec(name="proxied"), ClusterSpec(name="direct")], tmp_path_factory.mktemp("p")) as f:
        yield f


def _with_proxy_url(lab: LabFleet, proxy: str, tmp: Path) -> Path:
    kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
    for c in kc["clusters"]:
        if c["name"] == "proxied":
            c["cluster"]["proxy-url"] = proxy
    path = tmp / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(kc))
    return path


def test_proxy_url_carries_every_api_request(lab: LabFleet, tmp_path: Path) -> None:
    with LabProxy() as proxy:
        path = _with_proxy_url(lab, proxy.url, tmp_path)
        rep = run(kubeconfig=[str(path)])
        target = lab.clusters["proxied"]
        assert f"{target.address}:{target.port}" in proxy.connects
        direct = lab.clusters["direct"]
        assert f"{direct.address}:{direct.port}" not in proxy.connects
    dns = result(rep, "proxied", "kube-api.dns")
    assert dns.status.value == "pass" and dns.evidence["proxy"] == proxy.url
    tcp = result(rep, "proxied", "kube-api.tcp")
    assert tcp.status.value == "pass" and "the proxy" in tcp.message
    assert result(rep, "proxied", "kube-api.auth").status.value == "pass"
    assert result(rep, "direct", "kube-api.dns").status.value == "pass"


def test_https_proxy_environment_and_no_proxy(lab: LabFleet) -> None:
    with LabProxy() as proxy:
        direct = lab.clusters["direct"]
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": direct.address}
        rep = run(kubeconfig=[str(lab.kubeconfig_path)], env=env)
        proxied = lab.clusters["proxied"]
        assert f"{proxied.address}:{proxied.port}" in proxy.connects
        assert not any(c.startswith(direct.address + ":") for c in proxy.connects)
    assert result(rep, "proxied", "kube-api.auth").status.value == "pass"
    assert result(rep, "direct", "kube-api.auth").status.value == "pass"


def test_dead_proxy_is_named(lab: LabFleet, tmp_path: Path) -> None:
    path = _with_proxy_url(lab, "http://127.0.0.1:9", tmp_path)
    rep = run(kubeconfig=[str(path)], contexts=["proxied"])
    tcp = result(rep, "proxied", "kube-api.tcp")
    assert tcp.status.value == "fail" and "(the proxy 127.0.0.1:9)" in tcp.message
