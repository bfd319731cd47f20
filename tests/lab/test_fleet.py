"""LabFleet: every scenario reaches the real ``kubernetes`` client the way it would in the field."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from preflight_lab.certs import utcnow
from preflight_lab.fleet import (
    SCENARIOS,
    ClusterSpec,
    LabFleet,
    parse_mix,
    specs_from_mix,
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [ClusterSpec(name, name) for name in SCENARIOS]
    now = utcnow()
    specs += [
        ClusterSpec(
            "expired-server-cert",
            server_cert_not_before=now - dt.timedelta(days=90),
            server_cert_not_after=now - dt.timedelta(days=1),
        ),
        ClusterSpec("expiring-server-cert", server_cert_not_after=now + dt.timedelta(days=5)),
        ClusterSpec(
            "arn:aws:eks:us-east-1:123456789012:cluster/slow-cert",
            "slow",
            auth="client-cert",
            latency_ms=120,
            namespace="meshery",
        ),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("fleet")) as lab:
        yield lab


def kube(fleet: LabFleet, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(fleet.kubeconfig_path), context=context)


def kubeconfig(fleet: LabFleet) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(fleet.kubeconfig_path.read_text())
    return doc


def entry(doc: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    key = section[:-1]
    found: dict[str, Any] = next(e[key] for e in doc[section] if e["name"] == name)
    return found


def ssar(c: client.ApiClient, verb: str, resource: str) -> bool:
    spec = client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource)
    )
    review = client.AuthorizationV1Api(c).create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec))
    return bool(review.status.allowed)


# -- files -------------------------------------------------------------------------------------------


def test_kubeconfig_shape(fleet: LabFleet) -> None:
    doc = kubeconfig(fleet)
    names = [s.name for s in fleet.specs]
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert doc["current-context"] == "healthy"
    assert [c["name"] for c in doc["contexts"]] == names
    assert [c["name"] for c in doc["clusters"]] == names
    assert [u["name"] for u in doc["users"]] == [f"{n}-user" for n in names]
    assert entry(doc, "contexts", names[-1]) == {
        "cluster": names[-1],
        "user": f"{names[-1]}-user",
        "namespace": "meshery",
    }
    assert stat.S_IMODE(fleet.kubeconfig_path.stat().st_mode) == 0o600
    for name, cluster in fleet.clusters.items():
        server = entry(doc, "clusters", name)["server"]
        assert server == f"https://{cluster.address}:{cluster.port}"
        assert ipaddress.ip_address(cluster.address) in ipaddress.ip_network("127.0.0.0/8")
    assert len({c.address for c in fleet.clusters.values()}) == len(fleet.clusters)

    ca = fleet.ca.cert_b64  # type: ignore[union-attr]
    assert entry(doc, "clusters", "healthy") == {
        "server": fleet.clusters["healthy"].url,
        "certificate-authority-data": ca,
    }
    assert entry(doc, "clusters", "insecure") == {
        "server": fleet.clusters["insecure"].url,
        "insecure-skip-tls-verify": True,
    }
    wrong = entry(doc, "clusters", "wrong-ca")["certificate-authority-data"]
    assert wrong not in (ca, None)
    assert set(entry(doc, "users", "healthy-user")) == {"token"}
    assert set(entry(doc, "users", "client-cert-user")) == {"client-certificate-data", "client-key-data"}
    assert entry(doc, "users", "expired-token-user")["token"] == fleet.clusters["expired-token"].token


def test_fleet_file(fleet: LabFleet) -> None:
    doc = yaml.safe_load(fleet.fleet_path.read_text())
    assert doc == {
        "version": 1,
        "kubeconfig": ["kubeconfig.yaml"],
        "origin": {"cidrs": ["127.0.0.0/8"]},
        "clusters": [{"context": s.name, "meshsync_mode": "embedded"} for s in fleet.specs],
        "mutes": [],
    }
    assert (fleet.fleet_path.parent / doc["kubeconfig"][0]).resolve() == fleet.kubeconfig_path


def test_exec_plugins(fleet: LabFleet) -> None:
    doc = kubeconfig(fleet)
    for name in ("exec-ok", "hung-exec"):
        plugin = entry(doc, "users", f"{name}-user")["exec"]
        script = fleet.clusters[name].exec_script
        assert script is not None and script.is_file()
        assert plugin["apiVersion"] == "client.authentication.k8s.io/v1"
        assert plugin["command"] == "/bin/sh" and plugin["args"] == [str(script)]
        assert plugin["interactiveMode"] == "Never"
    ok = subprocess.run(plugin_cmd(fleet, "exec-ok"), capture_output=True, text=True, timeout=30, check=True)
    credential = json.loads(ok.stdout)
    assert credential["kind"] == "ExecCredential"
    assert credential["status"]["token"] == fleet.clusters["exec-ok"].token
    # Never run the hung plugin: it sleeps an hour. Its script is enough.
    assert "sleep 3600" in fleet.clusters["hung-exec"].exec_script.read_text()  # type: ignore[union-attr]


def plugin_cmd(fleet: LabFleet, name: str) -> list[str]:
    plugin = entry(kubeconfig(fleet), "users", f"{name}-user")["exec"]
    return [plugin["command"], *plugin["args"]]


# -- scenarios through the real client ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["healthy", "client-cert", "exec-ok"])
def test_working_auth_methods(fleet: LabFleet, name: str) -> None:
    c = kube(fleet, name)
    assert client.VersionApi(c).get_code().git_version == "v1.30.4-eks-a737599"
    nodes = client.CoreV1Api(c).list_node().items
    assert len(nodes) == 1 and nodes[0].status.node_info.kubelet_version == "v1.30.4-eks-a737599"
    assert ssar(c, "list", "nodes")
    who = client.AuthenticationV1Api(c).create_self_subject_review(client.V1SelfSubjectReview()).status.user_info
    assert who.username == fleet.clusters[name].identity.username  # type: ignore[union-attr]
    assert "system:authenticated" in who.groups
    assert {"default", "kube-system"} <= {n.metadata.name for n in client.CoreV1Api(c).list_namespace().items}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_verify_still_works(fleet: LabFleet) -> None:
    assert client.VersionApi(kube(fleet, "insecure")).get_code().major == "1"


def test_refused(fleet: LabFleet) -> None:
    cluster = fleet.clusters["refused"]
    assert cluster.server is None and cluster.port > 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((cluster.address, cluster.port), timeout=2)


@pytest.mark.parametrize("name", ["wrong-ca", "expired-server-cert"])
def test_tls_verification_failures(fleet: LabFleet, name: str) -> None:
    with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
        client.VersionApi(kube(fleet, name)).get_code(_request_timeout=5)
    assert isinstance(err.value.reason, urllib3.exceptions.SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value.reason)
    if name == "expired-server-cert":
        assert "expired" in str(err.value.reason)
    server = fleet.clusters[name].server
    assert server is not None and server.handshake_failures > 0 and server.requests() == []


def test_server_cert_expiring_soon(fleet: LabFleet) -> None:
    cluster = fleet.clusters["expiring-server-cert"]
    assert client.VersionApi(kube(fleet, cluster.name)).get_code().major == "1"
    pem = ssl.get_server_certificate((cluster.address, cluster.port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert dt.timedelta(days=4) < cert.not_valid_after_utc - utcnow() <= dt.timedelta(days=5)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(cluster.address) in sans.get_values_for_type(x509.IPAddress)
    assert cluster.dns_name in sans.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("name", ["expired-token", "expired-client-cert"])
def test_rejected_credentials_get_401(fleet: LabFleet, name: str) -> None:
    with pytest.raises(ApiException) as err:
        client.VersionApi(kube(fleet, name)).get_code()
    assert err.value.status == 401
    assert json.loads(err.value.body)["reason"] == "Unauthorized"


def test_expired_client_cert_is_expired(fleet: LabFleet) -> None:
    cert = fleet.clusters["expired-client-cert"].client_cert
    assert cert is not None and cert.certificate.not_valid_after_utc < utcnow()


def test_forbidden(fleet: LabFleet) -> None:
    c = kube(fleet, "forbidden")
    assert client.VersionApi(c).get_code().major == "1"
    assert "apps" in {g.name for g in client.ApisApi(c).get_api_versions().groups}
    assert not ssar(c, "list", "nodes")
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(c).list_node()
    assert err.value.status == 403


def test_slow(fleet: LabFleet) -> None:
    c = kube(fleet, "slow")
    start = time.monotonic()
    client.VersionApi(c).get_code()
    assert time.monotonic() - start >= 0.3


def test_old_version_has_no_selfsubjectreview(fleet: LabFleet) -> None:
    c = kube(fleet, "old-version")
    info = client.VersionApi(c).get_code()
    assert (info.git_version, info.minor) == ("v1.21.0", "21")
    with pytest.raises(ApiException) as err:
        client.AuthenticationV1Api(c).create_self_subject_review(client.V1SelfSubjectReview())
    assert err.value.status == 404


def test_combined_overrides(fleet: LabFleet) -> None:
    name = "arn:aws:eks:us-east-1:123456789012:cluster/slow-cert"
    cluster = fleet.clusters[name]
    assert (cluster.resolved.auth, cluster.resolved.latency_ms) == ("client-cert", 120.0)
    start = time.monotonic()
    assert client.VersionApi(kube(fleet, name)).get_code().major == "1"
    assert time.monotonic() - start >= 0.12


# -- what the lab planted ----------------------------------------------------------------------------


def test_secrets_cover_every_planted_credential(fleet: LabFleet) -> None:
    planted = fleet.secrets()
    for name in ("healthy", "exec-ok", "hung-exec", "expired-token", "forbidden"):
        token = fleet.clusters[name].token
        assert token is not None and token.startswith("lab-") and len(token) >= 52 and token in planted
    cert = fleet.clusters["client-cert"].client_cert
    assert cert is not None
    assert cert.key_pem.decode() in planted and cert.key_b64 in planted and cert.cert_b64 in planted
    kubeconfig_text = fleet.kubeconfig_path.read_text()
    assert all(s in kubeconfig_text for s in (cert.key_b64, cert.cert_b64))
    assert not any(fleet.ca.cert_b64 in s for s in planted)  # type: ignore[union-attr]
    assert len(planted) == len(set(planted))


def test_reads_and_reviews_are_not_mutations(fleet: LabFleet) -> None:
    c = kube(fleet, "healthy")
    client.CoreV1Api(c).list_node()
    ssar(c, "create", "pods")
    assert fleet.mutating_requests() == {}
    with pytest.raises(ApiException):
        client.CoreV1Api(c).delete_namespace("default")
    assert [(r.method, r.status) for r in fleet.mutating_requests()["healthy"]] == [("DELETE", 405)]
    fleet.clusters["healthy"].server.clear_requests()  # type: ignore[union-attr]


# -- building fleets ---------------------------------------------------------------------------------


def test_spec_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ClusterSpec("x", "no-such-scenario").resolve()
    with pytest.raises(ValueError):
        ClusterSpec("x", auth="password").resolve()
    with pytest.raises(ValueError):
        LabFleet([ClusterSpec("a"), ClusterSpec("a")], tmp_path)
    with pytest.raises(ValueError):
        LabFleet([ClusterSpec("a", address="10.0.0.1")], tmp_path).start()
    resolved = ClusterSpec("x", "forbidden", version="v1.29.0", selfsubjectreview=False).resolve()
    assert resolved.rules == () and resolved.version == "v1.29.0" and not resolved.selfsubjectreview


def test_mix() -> None:
    assert parse_mix("healthy=8, refused=1,hung-exec") == {"healthy": 8, "refused": 1, "hung-exec": 1}
    with pytest.raises(ValueError):
        parse_mix("healthy=1,bogus=2")
    specs = specs_from_mix(20, {"healthy": 8, "refused": 1, "hung-exec": 1})
    assert specs[0].scenario == "healthy" and specs[0].name == "lab-001-healthy"
    assert [s.scenario for s in specs].count("refused") == 2
    assert len({s.name for s in specs}) == 20


def test_two_hundred_clusters_start_serve_and_stop(tmp_path: Path) -> None:
    """How fast the lab starts and stops is the bench's to measure (bench/fleet.py prints it), never asserted here."""
    specs = specs_from_mix(200, {"healthy": 8, "refused": 1, "client-cert": 1})
    lab = LabFleet(specs, tmp_path).start()
    try:
        ports = {(c.address, c.port) for c in lab.clusters.values()}
        assert len(ports) == 200
        last = lab.specs[-1].name
        assert client.VersionApi(kube(lab, last)).get_code().major == "1" or lab.clusters[last].server is None
    finally:
        lab.stop()
    healthy = lab.clusters[lab.specs[0].name]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((healthy.address, healthy.port), timeout=2)


def test_serve_command(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "preflight_lab",
        "serve",
        "--dir",
        str(tmp_path),
        "--clusters",
        "4",
        "--scenario-mix",
        "healthy=3,refused=1",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    watchdog = threading.Timer(30, proc.kill)  # a hung lab must fail the test, not hang it
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line.strip())
            if lines[-1] == "READY":
                break
        assert "READY" in lines, lines
        paths = dict(line.split("=", 1) for line in lines if "=" in line)
        assert Path(paths["KUBECONFIG"]) == tmp_path / "kubeconfig.yaml"
        assert Path(paths["FLEET"]) == tmp_path / "fleet.yaml"
        contexts = [c["name"] for c in yaml.safe_load(Path(paths["KUBECONFIG"]).read_text())["contexts"]]
        assert contexts == ["lab-001-healthy", "lab-002-healthy", "lab-003-refused", "lab-004-healthy"]
        c = config.new_client_from_config(config_file=paths["KUBECONFIG"], context="lab-001-healthy")
        assert client.VersionApi(c).get_code().major == "1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
