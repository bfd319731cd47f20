"""proxy-url and HTTPS_PROXY/NO_PROXY: the API is reached through the proxy, and the report says so."""

from __future__ import annotations

import base64
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


def _by_name(lab: LabFleet, tmp: Path) -> Path:
    """The lab's kubeconfig with every server named (cluster-NNNN.lab.local, which its certificate covers):
    Go never proxies a loopback address, so an environment proxy is only ever used for a name. Only the lab
    proxy resolves these names (from its own table), as a corporate proxy resolves internal ones."""
    kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
    for c in kc["clusters"]:
        cluster = lab.clusters[c["name"]]
        c["cluster"]["server"] = f"https://{cluster.dns_name}:{cluster.port}"
    path = tmp / "by-name.yaml"
    path.write_text(yaml.safe_dump(kc))
    return path


def _names(lab: LabFleet) -> dict[str, str]:
    return {c.dns_name: c.address for c in lab.clusters.values()}


def test_https_proxy_environment_and_no_proxy(lab: LabFleet, tmp_path: Path) -> None:
    with LabProxy(hosts=_names(lab)) as proxy:
        direct = lab.clusters["direct"]
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": direct.dns_name}
        rep = run(kubeconfig=[str(_by_name(lab, tmp_path))], contexts=["proxied"], env=env)
        proxied = lab.clusters["proxied"]
        assert f"{proxied.dns_name}:{proxied.port}" in proxy.connects
    assert result(rep, "proxied", "kube-api.auth").status.value == "pass"
    assert result(rep, "proxied", "kube-api.dns").evidence["proxy_source"] == "HTTPS_PROXY"
    # NO_PROXY sends the other around the proxy: it is not checked here, since only the proxy knows its name.
    assert result(rep, "proxied", "kube-api.dns").evidence["host"] == "127.0.0.1"


def test_loopback_api_is_never_sent_through_the_environment_proxy(tmp_path: Path) -> None:
    """A kind or minikube cluster on 127.0.0.1 (or localhost) behind a corporate HTTPS_PROXY: Go's client goes
    straight to it, whatever NO_PROXY says, so every check passes even with a proxy that is down."""
    specs = [ClusterSpec(name="kind", address="127.0.0.1"), ClusterSpec(name="minikube", address="127.0.0.1")]
    with LabFleet(specs, tmp_path / "lab") as kind, LabProxy() as proxy:
        kc = yaml.safe_load(Path(kind.kubeconfig_path).read_text())
        minikube = next(c["cluster"] for c in kc["clusters"] if c["name"] == "minikube")
        minikube["server"] = f"https://localhost:{kind.clusters['minikube'].port}"
        minikube["tls-server-name"] = kind.clusters["minikube"].dns_name
        path = tmp_path / "kind.yaml"
        path.write_text(yaml.safe_dump(kc))
        for env in ({"HTTPS_PROXY": "http://127.0.0.1:9"}, {"https_proxy": proxy.url, "NO_PROXY": "other.test"}):
            rep = run(kubeconfig=[str(path)], env=env)
            for name in ("kind", "minikube"):
                for check_id in ("kube-api.tcp", "kube-api.tls", "kube-api.auth"):
                    r = result(rep, name, check_id)
                    assert r.status.value == "pass", (env, name, check_id, r.message)
                    assert "proxy" not in r.evidence, (name, check_id)
        assert proxy.connects == []


def test_dead_proxy_is_named(lab: LabFleet, tmp_path: Path) -> None:
    path = _with_proxy_url(lab, "http://127.0.0.1:9", tmp_path)
    rep = run(kubeconfig=[str(path)], contexts=["proxied"])
    tcp = result(rep, "proxied", "kube-api.tcp")
    assert tcp.status.value == "fail" and "(the proxy 127.0.0.1:9)" in tcp.message


# -- why a proxy did not open the tunnel: each cause its own fix -------------------------------------


def _api(lab: LabFleet) -> str:
    c = lab.clusters["proxied"]
    return f"{c.address}:{c.port}"


def test_proxy_acl_403_names_the_acl_not_the_ca(lab: LabFleet, tmp_path: Path) -> None:
    with LabProxy(answer="403 Forbidden") as proxy:
        path = _with_proxy_url(lab, proxy.url, tmp_path)
        rep = run(kubeconfig=[str(path)], contexts=["proxied"], include=["kube-api.tls"])
    tls = result(rep, "proxied", "kube-api.tls")
    endpoint = proxy.url.removeprefix("http://")
    assert tls.status.value == "fail"
    assert f"proxy {endpoint} refused the tunnel to {_api(lab)}: HTTP/1.1 403 Forbidden" in tls.message
    assert f"The proxy {endpoint} forbids CONNECT to {_api(lab)}" in tls.remediation
    assert f"acl SSL_ports port {lab.clusters['proxied'].port}" in tls.remediation
    assert "remove proxy-url from cluster 'proxied'" in tls.remediation
    assert "certificate-authority-data" not in tls.remediation
    assert tls.evidence["proxy_status"] == 403 and tls.evidence["proxy_failure"] == "acl"
    assert tls.evidence["proxy"] == proxy.url and tls.evidence["proxy_source"] == "proxy-url"


def test_proxy_that_cannot_reach_the_api_502(tmp_path: Path) -> None:
    """The proxy is up; the API behind it is not (a real 502 from the lab proxy's failed upstream connect)."""
    with LabFleet([ClusterSpec(name="down", scenario="refused")], tmp_path / "lab") as lab:
        down = lab.clusters["down"]
        with LabProxy(hosts=_names(lab)) as proxy:
            env = {"HTTPS_PROXY": proxy.url}
            rep = run(kubeconfig=[str(_by_name(lab, tmp_path))], env=env, include=["kube-api.tls"])
            api = f"{down.dns_name}:{down.port}"
            assert api in proxy.connects
        # Reached directly by address (as NO_PROXY would send its name), the API is refused.
        bypass = run(kubeconfig=[str(lab.kubeconfig_path)], env={**env, "no_proxy": down.address})
    direct = result(bypass, "down", "kube-api.tcp")
    assert direct.status.value == "fail" and direct.message.startswith(f"{down.address}:{down.port} is refused")
    tls = result(rep, "down", "kube-api.tls")
    endpoint = proxy.url.removeprefix("http://")
    assert tls.status.value == "fail" and "HTTP/1.1 502 Bad Gateway" in tls.message
    assert tls.evidence["proxy_failure"] == "upstream" and tls.evidence["proxy_source"] == "HTTPS_PROXY"
    fix = tls.remediation
    assert f"The proxy {endpoint} took the request but cannot reach the API {api} itself (502)" in fix
    assert f'export NO_PROXY="$NO_PROXY,{down.dns_name}"' in fix
    assert f"curl -sv -o /dev/null --proxy {proxy.url} https://{api}/version" in fix


def test_proxy_authentication_407_and_credentials_in_the_url(lab: LabFleet, tmp_path: Path) -> None:
    password = "proxy-pass-" + "9f3c7e1a2b"
    path = str(_by_name(lab, tmp_path))
    with LabProxy(credentials=("meshery", password), hosts=_names(lab)) as proxy:
        bare = run(kubeconfig=[path], contexts=["proxied"], env={"https_proxy": proxy.url})
        with_creds = proxy.url.replace("http://", f"http://meshery:{password}@")
        authed = run(kubeconfig=[path], contexts=["proxied"], env={"HTTPS_PROXY": with_creds})
    tls = result(bare, "proxied", "kube-api.tls")
    endpoint = proxy.url.removeprefix("http://")
    assert tls.status.value == "fail" and "407 Proxy Authentication Required" in tls.message
    assert tls.evidence["proxy_failure"] == "auth"
    named = lab.clusters["proxied"]
    assert f"before it tunnels to {named.dns_name}:{named.port}" in tls.remediation
    assert f"user and password, then @, in front of {endpoint} in the https_proxy" in tls.remediation
    # With the credentials in the proxy URL, both the probe and the kubernetes client get through.
    assert result(authed, "proxied", "kube-api.tls").status.value == "pass"
    assert result(authed, "proxied", "kube-api.auth").status.value == "pass"
    for r in authed.all_results:
        assert password not in repr(r), r.check_id


def test_unreachable_proxy_fix_names_the_proxy_and_the_api(lab: LabFleet, tmp_path: Path) -> None:
    path = _with_proxy_url(lab, "http://127.0.0.1:9", tmp_path)
    rep = run(kubeconfig=[str(path)], contexts=["proxied"], include=["kube-api.tcp"])
    tcp = result(rep, "proxied", "kube-api.tcp")
    assert tcp.status.value == "fail"
    assert tcp.remediation.startswith(
        "Nothing accepts connections at the proxy 127.0.0.1:9 (proxy-url of cluster 'proxied' in the kubeconfig)"
    )
    assert f"reaches the API {_api(lab)} without a proxy, remove proxy-url from cluster 'proxied'" in tcp.remediation


def test_proxy_url_pointing_at_something_that_is_not_a_proxy(lab: LabFleet, tmp_path: Path) -> None:
    """proxy-url names another API server (TLS, not HTTP CONNECT): it closes on the CONNECT line."""
    other = lab.clusters["direct"]
    path = _with_proxy_url(lab, f"http://{other.address}:{other.port}", tmp_path)
    rep = run(kubeconfig=[str(path)], contexts=["proxied"], include=["kube-api.tls"])
    tls = result(rep, "proxied", "kube-api.tls")
    assert tls.status.value == "fail" and tls.evidence["proxy_failure"] == "no-answer", tls.message
    # A reset or a close, depending on when the TLS server gives up on the CONNECT line.
    assert "no answer to CONNECT" in tls.message or "instead of an HTTP CONNECT answer" in tls.message
    assert tls.remediation.startswith(f"{other.address}:{other.port} does not answer as an HTTP CONNECT proxy")
    assert f"nothing reaches {_api(lab)} through it" in tls.remediation


# -- a proxy that quotes the request in its error page --------------------------------------------------


def _credential_forms(user: str, password: str) -> dict[str, str]:
    pair = f"{user}:{password}"
    basic = base64.b64encode(pair.encode()).decode()
    return {"password": password, "user:password": pair, "base64": basic, "header": f"Basic {basic}"}


@pytest.mark.parametrize("answer", [None, "403 Forbidden", "502 Bad Gateway"])
def test_echoing_proxy_never_gets_the_credential_into_a_result(
    lab: LabFleet, tmp_path: Path, answer: str | None
) -> None:
    """The tool builds Proxy-Authorization itself; a proxy that echoes it back (407 for a wrong password, or
    any refusal) must not get the Basic value, nor any other form of user:password, into a result."""
    password = "Echo-Pass-" + "5e1d0c"
    sent = "meshery", password + ("-wrong" if answer is None else "")
    with LabProxy(credentials=("meshery", password), answer=answer, echo=True) as proxy:
        url = proxy.url.replace("http://", f"http://{sent[0]}:{sent[1]}@")
        rep = run(kubeconfig=[str(_with_proxy_url(lab, url, tmp_path))], contexts=["proxied"])
    tls = result(rep, "proxied", "kube-api.tls")
    status = answer or "407 Proxy Authentication Required"
    assert tls.status.value == "fail" and f"HTTP/1.0 {status}" in tls.message, tls.message
    assert "Your request" not in tls.message and "<html>" not in tls.message
    for r in rep.all_results:
        text = repr(r)
        for form, value in _credential_forms(*sent).items():
            assert value not in text, f"{form} leaked into {r.check_id}: {text}"
