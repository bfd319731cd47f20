"""The lab API server's pods/portforward, spoken to by the real `kubernetes` client (kubernetes.stream.portforward,
unmodified, WebSocket) and by a SPDY/3.1 upgrade with client-go's streams (the probe's codec): a tunnel to a real
nats-server either way, RBAC, the kubelet and proxy knobs, and a request log that counts the connects as tunnels,
not writes."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.stream import portforward

from preflight.engine.probes import spdy
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from preflight_lab.rbac import Rule

SPECS = [
    ClusterSpec(name="ok", meshery=MesherySetup(broker_address=allocate(NATS_PORT))),
    ClusterSpec(name="absent", meshery=MesherySetup(broker_address=allocate(NATS_PORT), broker="absent")),
    ClusterSpec(
        name="reader", rules=(Rule(verbs=("get", "list")),), meshery=MesherySetup(broker_address=allocate(NATS_PORT))
    ),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("pf-lab")) as fleet:
        yield fleet


def core(lab: LabFleet, context: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(lab.kubeconfig_path), context=context))


def forward(api: client.CoreV1Api):
    return portforward(api.connect_get_namespaced_pod_portforward, "meshery-nats-0", "meshery", ports=str(NATS_PORT))


def test_the_clients_websocket_port_forward_reaches_the_pods_nats_server(lab: LabFleet) -> None:
    api = core(lab, "ok")
    pods = api.list_namespaced_pod("meshery", label_selector="app.kubernetes.io/name=nats").items
    assert [p.metadata.name for p in pods] == ["meshery-nats-0"]
    assert pods[0].status.phase == "Running" and pods[0].status.container_statuses[0].ready
    pf = forward(api)
    sock = pf.socket(NATS_PORT)
    sock.settimeout(5)
    try:
        line = b""
        while not line.endswith(b"\r\n"):  # all of it: a socket closed with unread data resets the relay
            line += sock.recv(4096)
        assert line.startswith(b"INFO {")
        assert pf.error(NATS_PORT) is None
    finally:
        pf.close()
    connects = [r for r in lab.clusters["ok"].server.requests() if r.path.endswith("/portforward")]
    assert [(r.method, r.status) for r in connects] == [("GET", 101)]
    assert lab.mutating_requests() == {}


def test_nothing_listening_in_the_pod_is_said_on_the_error_channel(lab: LabFleet) -> None:
    pf = forward(core(lab, "absent"))
    sock = pf.socket(NATS_PORT)
    sock.settimeout(5)
    try:
        assert sock.recv(10) == b""
        assert "connect: connection refused" in (pf.error(NATS_PORT) or "")
    finally:
        pf.close()


def _upgrade(lab: LabFleet, name: str, pod: str = "meshery-nats-0") -> tuple[ssl.SSLSocket, str, bytes]:
    """The SPDY/3.1 upgrade Meshery's client sends: the open connection, the answer's head and what followed it."""
    cluster = lab.clusters[name]
    assert lab.ca is not None and cluster.server is not None
    ctx = ssl.create_default_context(cadata=lab.ca.cert_pem.decode())
    raw = socket.create_connection((cluster.address, cluster.port), timeout=5)
    tls = ctx.wrap_socket(raw, server_hostname=cluster.address)
    tls.sendall(
        (
            f"POST /api/v1/namespaces/meshery/pods/{pod}/portforward HTTP/1.1\r\nHost: x\r\n"
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n"
            f"Authorization: Bearer {cluster.token}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return tls, head.decode(), rest


def _spdy(lab: LabFleet, name: str, pod: str = "meshery-nats-0") -> tuple[str, bytes]:
    """An upgrade the lab refuses: its head and body."""
    tls, head, body = _upgrade(lab, name, pod)
    with tls:
        while chunk := tls.recv(4096):
            body += chunk
    return head, body


def _tunnel(lab: LabFleet, name: str) -> tuple[ssl.SSLSocket, spdy.PortStream]:
    tls, head, rest = _upgrade(lab, name)
    assert head.startswith("HTTP/1.1 101 Switching Protocols"), head
    assert "X-Stream-Protocol-Version: portforward.k8s.io" in head
    stream = spdy.PortStream(tls, rest, 5.0)
    stream.open(NATS_PORT, time.monotonic() + 5)
    return tls, stream


def test_the_spdy_port_forward_relays_to_the_pods_nats_server(lab: LabFleet) -> None:
    server = lab.clusters["ok"].server
    assert server is not None
    before = len(server.requests())
    tls, stream = _tunnel(lab, "ok")
    with tls:
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = stream.recv(4096)
            assert chunk, line
            line += chunk
        assert line.startswith(b"INFO {")
        stream.sendall(b"PING\r\n")  # before CONNECT with the token: the Broker answers, then hangs up
        answer = b""
        while chunk := stream.recv(4096):
            answer += chunk
        assert answer == b"-ERR 'Authorization Violation'\r\n"
        assert stream.error() is None
        stream.close()
    connects = [r for r in server.requests()[before:] if r.path.endswith("/portforward")]
    assert [(r.method, r.status) for r in connects] == [("POST", 101)]
    assert lab.mutating_requests() == {}


def test_nothing_listening_in_the_pod_is_the_kubelets_error_on_the_error_stream(lab: LabFleet) -> None:
    tls, stream = _tunnel(lab, "absent")
    with tls:
        assert stream.recv(10) == b""
        error = stream.error() or ""
    assert error.startswith(f"error forwarding port {NATS_PORT} to pod ")
    assert error.endswith(f"dial tcp6 [::1]:{NATS_PORT}: connect: connection refused")


def test_rbac_refuses_the_upgrade_without_create_pods_portforward(lab: LabFleet) -> None:
    # (kubernetes.stream.portforward itself turns this answer into an AttributeError: the tool opens the WebSocket
    # itself and hands it to the client's PortForward, see preflight.engine.probes.portforward.)
    head, body = _spdy(lab, "reader")
    status = json.loads(body)
    assert head.startswith("HTTP/1.1 403") and status["reason"] == "Forbidden"
    assert 'cannot create resource "pods/portforward" in API group "" in the namespace "meshery"' in status["message"]


def test_a_missing_pod_is_404(lab: LabFleet) -> None:
    head, body = _spdy(lab, "ok", pod="meshery-nats-9")
    assert head.startswith("HTTP/1.1 404") and json.loads(body)["reason"] == "NotFound"


@pytest.mark.parametrize("state, why", [("timeout", "i/o timeout"), ("refused", "connect: connection refused")])
def test_an_unreachable_kubelet_is_a_500_status_as_from_kube_apiserver(lab: LabFleet, state: str, why: str) -> None:
    server = lab.clusters["ok"].server
    assert server is not None
    server.kubelet = state
    try:
        head, body = _spdy(lab, "ok")
    finally:
        server.kubelet = "reachable"
    status = json.loads(body)
    assert head.startswith("HTTP/1.1 500") and status["kind"] == "Status" and status["code"] == 500
    assert status["message"].startswith("error dialing backend: dial tcp ") and status["message"].endswith(
        f":10250: {why}"
    )


@pytest.mark.parametrize("code", [400, 426, 502])
def test_a_proxy_that_strips_the_upgrade_answers_its_own_status(lab: LabFleet, code: int) -> None:
    server = lab.clusters["ok"].server
    assert server is not None
    server.upgrade_stripped_by = code
    try:
        head, _body = _spdy(lab, "ok")
    finally:
        server.upgrade_stripped_by = None
    assert head.startswith(f"HTTP/1.1 {code}")


def test_pod_states_are_what_a_kubelet_reports(tmp_path: Path) -> None:
    specs = [
        ClusterSpec(name=s, meshery=MesherySetup(broker_address=allocate(NATS_PORT), nats_pod=s))
        for s in ("crashloop", "imagepull", "missing")
    ]
    with LabFleet(specs, tmp_path) as fleet:
        crash = core(fleet, "crashloop").read_namespaced_pod("meshery-nats-0", "meshery").status
        assert crash.phase == "Running" and crash.container_statuses[0].restart_count == 7
        assert crash.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
        pull = core(fleet, "imagepull").read_namespaced_pod("meshery-nats-0", "meshery").status
        assert pull.phase == "Pending" and pull.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
        assert (
            core(fleet, "missing").list_namespaced_pod("meshery", label_selector="app.kubernetes.io/name=nats").items
            == []
        )
