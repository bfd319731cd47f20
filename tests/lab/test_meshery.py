"""The lab's Meshery: real kubernetes-client reads of the Operator's objects and real NATS brokers."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dnslib import DNSRecord
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from preflight_lab.addresses import POOL, allocate
from preflight_lab.broker import (
    NATS_PORT,
    AbsentBroker,
    NatsBroker,
    NotNatsBroker,
    SilentBroker,
    find_nats_server,
    make_broker,
)
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import (
    MesherySetup,
    add_dns_records,
    meshery_objects,
    published_endpoint,
)
from tests.lab.natswire import nats_handshake, nats_info, port_closed

LB_ADDRESS = allocate(NATS_PORT)
LB_HOSTNAME = "a1b2c3-meshery.elb.lab.test"
HOSTNAME_ADDRESS = allocate(NATS_PORT)
WHITELIST = ["pods.v1.", "services.v1."]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [
        ClusterSpec(
            "current-lb",
            meshery=MesherySetup(
                service_type="LoadBalancer",
                lb_ip=LB_ADDRESS,
                broker_address=LB_ADDRESS,
                source_ranges=["203.0.113.0/24"],
                annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
                meshsync_whitelist=WHITELIST,
            ),
        ),
        ClusterSpec(
            "current-hostname",
            meshery=MesherySetup(service_type="LoadBalancer", lb_hostname=LB_HOSTNAME, broker_address=HOSTNAME_ADDRESS),
        ),
        ClusterSpec("classic", meshery=MesherySetup(generation="classic", meshsync_blacklist=["events.v1."])),
        ClusterSpec("wrong-token", meshery=MesherySetup(secret_token="lab-nats-not-the-token-" + "0" * 32)),
        ClusterSpec("not-nats", meshery=MesherySetup(broker="not-nats")),
        ClusterSpec("silent", meshery=MesherySetup(broker="silent")),
        ClusterSpec("absent", meshery=MesherySetup(broker="absent")),
        ClusterSpec(
            "bare",
            nodes=2,
            meshery=MesherySetup(
                generation=None,
                extra_objects=40,
                node_external_ips=["198.51.100.7"],
                node_internal_ips=["10.0.1.7", "10.0.1.8", "10.0.1.9"],
                node_provider_id="aws:///eu-west-1a/i-0abc1234def567890",
                node_labels={"eks.amazonaws.com/nodegroup": "ng-1", "node.kubernetes.io/instance-type": "m5.large"},
            ),
        ),
        ClusterSpec("plain"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("meshery")) as lab:
        yield lab


def kube(fleet: LabFleet, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(fleet.kubeconfig_path), context=context)


def broker_cr(fleet: LabFleet, context: str, version: str = "v1alpha2") -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(kube(fleet, context)).get_namespaced_custom_object(
        "meshery.io", version, "meshery", "brokers", "meshery-broker"
    )
    return obj


# -- objects through the real client -----------------------------------------------------------------


def test_current_broker_cr(fleet: LabFleet) -> None:
    cr = broker_cr(fleet, "current-lb")
    assert (cr["apiVersion"], cr["kind"]) == ("meshery.io/v1alpha2", "Broker")
    assert cr["spec"]["service"] == {
        "type": "LoadBalancer",
        "loadBalancerSourceRanges": ["203.0.113.0/24"],
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
    }
    assert cr["status"]["endpoint"]["external"] == f"{LB_ADDRESS}:4222"
    assert [(c["type"], c["status"]) for c in cr["status"]["conditions"]] == [("Ready", "True")]
    with pytest.raises(ApiException) as err:  # a current Operator serves only v1alpha2
        broker_cr(fleet, "current-lb", "v1alpha1")
    assert err.value.status == 404
    assert broker_cr(fleet, "current-hostname")["status"]["endpoint"]["external"] == f"{LB_HOSTNAME}:4222"


def test_classic_broker_cr(fleet: LabFleet) -> None:
    cr = broker_cr(fleet, "classic", "v1alpha1")
    assert cr["apiVersion"] == "meshery.io/v1alpha1" and "conditions" not in cr["status"]
    svc = client.CoreV1Api(kube(fleet, "classic")).read_namespaced_service("meshery-broker", "meshery")
    assert svc.spec.type == "LoadBalancer" and svc.status.load_balancer.ingress is None
    assert [(p.name, p.port, p.node_port) for p in svc.spec.ports] == [("client", 4222, 31222)]
    api_host = fleet.clusters["classic"].address  # LB pending: the kubeconfig's API host + nodePort
    assert cr["status"]["endpoint"] == {"internal": f"{svc.spec.cluster_ip}:4222", "external": f"{api_host}:31222"}
    with pytest.raises(ApiException) as err:
        broker_cr(fleet, "classic", "v1alpha2")
    assert err.value.status == 404
    core = client.CoreV1Api(kube(fleet, "classic"))
    assert "meshery-nats-auth" not in {s.metadata.name for s in core.list_namespaced_secret("meshery").items}


def test_current_service_and_secret(fleet: LabFleet) -> None:
    core = client.CoreV1Api(kube(fleet, "current-lb"))
    svc = core.read_namespaced_service("meshery-nats", "meshery")
    assert svc.spec.type == "LoadBalancer"
    assert [(p.name, p.port, p.node_port) for p in svc.spec.ports] == [("nats", 4222, 31222), ("monitor", 8222, 31223)]
    assert svc.spec.load_balancer_source_ranges == ["203.0.113.0/24"]
    assert [i.ip for i in svc.status.load_balancer.ingress] == [LB_ADDRESS]
    assert svc.spec.cluster_ip.startswith("10.")
    cr = broker_cr(fleet, "current-lb")
    assert cr["status"]["endpoint"]["internal"] == f"{svc.spec.cluster_ip}:4222"
    secret = core.read_namespaced_secret("meshery-nats-auth", "meshery")
    token = fleet.clusters["current-lb"].broker_token
    assert token and base64.b64decode(secret.data["token"]).decode() == token
    lb_host = client.CoreV1Api(kube(fleet, "current-hostname")).read_namespaced_service("meshery-nats", "meshery")
    assert [i.hostname for i in lb_host.status.load_balancer.ingress] == [LB_HOSTNAME]


def test_wrong_token_secret(fleet: LabFleet) -> None:
    core = client.CoreV1Api(kube(fleet, "wrong-token"))
    held = base64.b64decode(core.read_namespaced_secret("meshery-nats-auth", "meshery").data["token"]).decode()
    cluster = fleet.clusters["wrong-token"]
    assert held.startswith("lab-nats-not-the-token") and held != cluster.broker_token
    assert cluster.broker_address and cluster.broker_port
    assert nats_handshake(cluster.broker_address, cluster.broker_port, held).startswith(b"-ERR")


def test_deployments_and_meshsync(fleet: LabFleet) -> None:
    c = kube(fleet, "current-lb")
    apps = client.AppsV1Api(c)
    operator = apps.read_namespaced_deployment("meshery-operator", "meshery")
    assert operator.spec.template.spec.containers[0].image == "meshery/meshery-operator:v1.0.3"
    assert (operator.status.ready_replicas, operator.status.replicas) == (1, 1)
    assert apps.read_namespaced_deployment("meshery-meshsync", "meshery").status.ready_replicas == 1
    classic_op = client.AppsV1Api(kube(fleet, "classic")).read_namespaced_deployment("meshery-operator", "meshery")
    assert classic_op.spec.template.spec.containers[0].image.endswith(":v0.8.2")
    ms = client.CustomObjectsApi(c).get_namespaced_custom_object(
        "meshery.io", "v1alpha1", "meshery", "meshsyncs", "meshery-meshsync"
    )
    assert ms["kind"] == "MeshSync" and ms["spec"]["watch-list"]["metadata"]["name"] == "meshery-meshsync-config"
    cm = client.CoreV1Api(c).read_namespaced_config_map("meshery-meshsync-config", "meshery")
    assert [e["Resource"] for e in json.loads(cm.data["whitelist"])] == WHITELIST and "blacklist" not in cm.data
    classic_cm = client.CoreV1Api(kube(fleet, "classic")).read_namespaced_config_map(
        "meshery-meshsync-config", "meshery"
    )
    assert json.loads(classic_cm.data["blacklist"])[0]["Resource"] == "events.v1."


def test_nothing_deployed_but_nodes_and_bulk(fleet: LabFleet) -> None:
    core = client.CoreV1Api(kube(fleet, "bare"))
    nodes = core.list_node().items
    assert len(nodes) == 3  # two seeded nodes plus one for the third internal IP
    first = nodes[0]
    addresses = {(a.type, a.address) for a in first.status.addresses}
    assert {("InternalIP", "10.0.1.7"), ("ExternalIP", "198.51.100.7")} <= addresses
    assert [a.address for a in nodes[2].status.addresses if a.type == "InternalIP"] == ["10.0.1.9"]
    assert first.spec.provider_id == "aws:///eu-west-1a/i-0abc1234def567890"
    assert first.metadata.labels["eks.amazonaws.com/nodegroup"] == "ng-1"
    assert first.status.node_info.kubelet_version  # the seeded node's details survive the decoration
    assert len(core.list_config_map_for_all_namespaces().items) == 20
    assert len(core.list_pod_for_all_namespaces().items) == 20
    with pytest.raises(ApiException):
        broker_cr(fleet, "bare")
    assert fleet.clusters["bare"].broker is None and fleet.clusters["bare"].broker_token is None


def test_fleet_file_and_secrets(fleet: LabFleet) -> None:
    doc = yaml.safe_load(fleet.fleet_path.read_text())
    modes = {c["context"]: c["meshsync_mode"] for c in doc["clusters"]}
    assert modes["current-lb"] == modes["classic"] == "operator"
    assert modes["bare"] == modes["plain"] == "embedded"
    planted = fleet.secrets()
    for name in ("current-lb", "wrong-token"):
        token = fleet.clusters[name].broker_token
        assert token and token in planted and base64.b64encode(token.encode()).decode() in planted
    assert fleet.clusters["classic"].broker_token is None
    assert len(planted) == len(set(planted))


# -- brokers on the wire -----------------------------------------------------------------------------


def test_current_broker_requires_the_token(fleet: LabFleet) -> None:
    cluster = fleet.clusters["current-lb"]
    assert (cluster.broker_address, cluster.broker_port) == (LB_ADDRESS, 4222)
    sock, info = nats_info(LB_ADDRESS, 4222)
    sock.close()
    assert info["auth_required"] is True and info["server_name"] == "meshery-nats-0"
    assert nats_handshake(LB_ADDRESS, 4222, cluster.broker_token) == b"PONG"
    assert nats_handshake(LB_ADDRESS, 4222, "lab-nats-wrong").startswith(b"-ERR 'Authorization Violation'")
    assert nats_handshake(LB_ADDRESS, 4222, None).startswith(b"-ERR")


def test_classic_broker_has_no_auth(fleet: LabFleet) -> None:
    cluster = fleet.clusters["classic"]
    assert cluster.broker_address and cluster.broker_port == 4222
    sock, info = nats_info(cluster.broker_address, cluster.broker_port)
    sock.close()
    assert not info.get("auth_required") and info["server_name"] == "meshery-broker-0"
    assert nats_handshake(cluster.broker_address, cluster.broker_port, None) == b"PONG"


def test_not_nats_answers_http(fleet: LabFleet) -> None:
    cluster = fleet.clusters["not-nats"]
    assert cluster.broker_address and cluster.broker_port
    with socket.create_connection((cluster.broker_address, cluster.broker_port), timeout=5) as sock:
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"INFO" not in data


def test_silent_says_nothing(fleet: LabFleet) -> None:
    cluster = fleet.clusters["silent"]
    assert cluster.broker_address and cluster.broker_port
    with socket.create_connection((cluster.broker_address, cluster.broker_port), timeout=5) as sock:
        sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            sock.recv(1)


def test_absent_refuses(fleet: LabFleet) -> None:
    cluster = fleet.clusters["absent"]
    assert cluster.broker_address and cluster.broker_port == 4222
    assert port_closed(cluster.broker_address, cluster.broker_port)


def test_lb_hostname_through_lab_dns(fleet: LabFleet) -> None:
    records = fleet.dns_records()
    assert records == {LB_HOSTNAME: HOSTNAME_ADDRESS}
    with LabDNS(zones=["lab.test"]) as dns:
        add_dns_records(dns, records)
        reply = DNSRecord.parse(DNSRecord.question(LB_HOSTNAME).send(dns.host, dns.port, timeout=2))
        address = str(reply.rr[0].rdata)
    assert address == HOSTNAME_ADDRESS
    assert nats_handshake(address, 4222, fleet.clusters["current-hostname"].broker_token) == b"PONG"


# -- the endpoint the Operator publishes -------------------------------------------------------------

API = allocate()  # only ever written into objects: nothing listens there
ENDPOINT_CASES: list[tuple[str, dict[str, Any], str | None, str]] = [
    # (case, setup, api host, expected external: "{cluster_ip}" stands for the Service's clusterIP)
    ("current ClusterIP", {}, API, "{cluster_ip}:4222"),
    ("current NodePort", {"service_type": "NodePort"}, API, f"{API}:31222"),
    ("current NodePort, own nodePort", {"service_type": "NodePort", "node_port": 30555}, API, f"{API}:30555"),
    ("current NodePort, no API host", {"service_type": "NodePort"}, None, "{cluster_ip}:4222"),
    ("current LB ip+hostname", {"service_type": "LoadBalancer", "lb_ip": "192.0.2.1", "lb_hostname": "x.lab"}, API,
     "192.0.2.1:4222"),
    ("current LB hostname", {"service_type": "LoadBalancer", "lb_hostname": "x.lab"}, API, "x.lab:4222"),
    ("current LB pending", {"service_type": "LoadBalancer"}, API, f"{API}:31222"),
    ("current LB pending, no API host", {"service_type": "LoadBalancer"}, None, "{cluster_ip}:4222"),
    ("current override", {"service_type": "LoadBalancer", "lb_ip": "192.0.2.1",
                          "external_endpoint_override": "nats.example.test:443"}, API, "nats.example.test:443"),
    ("current published pending", {"service_type": "LoadBalancer", "lb_ip": "192.0.2.1", "published_external": ""},
     API, ""),
    ("current published explicit", {"published_external": "10.1.2.3:4222"}, API, "10.1.2.3:4222"),
    ("current LB ip on ClusterIP", {"service_type": "ClusterIP", "lb_ip": "192.0.2.1"}, API, "{cluster_ip}:4222"),
    ("current broker port", {"service_type": "LoadBalancer", "lb_ip": "192.0.2.1", "broker_port": 14222}, API,
     "192.0.2.1:14222"),
    ("classic LB ip+hostname", {"generation": "classic", "lb_ip": "192.0.2.1", "lb_hostname": "x.lab"}, API,
     "x.lab:4222"),
    ("classic LB ip", {"generation": "classic", "lb_ip": "192.0.2.1"}, API, "192.0.2.1:4222"),
    ("classic LB pending", {"generation": "classic"}, API, f"{API}:31222"),
    ("classic LB pending, no API host", {"generation": "classic"}, None, "{cluster_ip}:4222"),
    ("classic ClusterIP", {"generation": "classic", "service_type": "ClusterIP"}, API, "{cluster_ip}:4222"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fields", "api_host", "expected"), ENDPOINT_CASES, ids=[c[0] for c in ENDPOINT_CASES])
def test_published_endpoint(case: str, fields: dict[str, Any], api_host: str | None, expected: str) -> None:
    objs = meshery_objects(MesherySetup(**fields), api_host)
    broker = next(o for o in objs if o["kind"] == "Broker")
    service = next(o for o in objs if o["kind"] == "Service")
    cluster_ip = service["spec"]["clusterIP"]
    assert broker["status"]["endpoint"]["external"] == expected.format(cluster_ip=cluster_ip)
    port = service["spec"]["ports"][0]["port"]
    assert broker["status"]["endpoint"]["internal"] == f"{cluster_ip}:{port}"
    want_version = "v1alpha1" if fields.get("generation") == "classic" else "v1alpha2"
    assert broker["apiVersion"] == f"meshery.io/{want_version}"


def test_published_endpoint_last_resorts() -> None:
    """Without a clusterIP or an API host: current falls back to a worker node, classic to localhost."""
    service = {
        "spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"name": "nats", "port": 4222, "nodePort": 31999}]},
        "status": {},
    }
    nodes = [
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}},
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"},
                                  {"type": "ExternalIP", "address": "198.51.100.6"}]}},
    ]  # fmt: skip
    assert published_endpoint("current", service, nodes) == "198.51.100.6:31999"
    assert published_endpoint("current", service, nodes[:1]) == "10.0.0.5:31999"
    assert published_endpoint("current", service, []) == ""
    classic = {**service, "spec": {**service["spec"], "ports": [{"name": "client", "port": 4222, "nodePort": 31999}]}}
    assert published_endpoint("classic", classic, nodes) == "localhost:31999"


def test_setup_validation() -> None:
    with pytest.raises(ValueError):
        MesherySetup(generation="ancient").resolved()
    with pytest.raises(ValueError):
        MesherySetup(service_type="ExternalName").resolved()
    with pytest.raises(ValueError):
        MesherySetup(broker="kafka").resolved()
    with pytest.raises(ValueError):
        MesherySetup(broker_address="10.0.0.1").resolved()
    with pytest.raises(ValueError):
        MesherySetup(generation="classic", token="t").resolved()
    current = MesherySetup().resolved()
    assert current.service_type == "ClusterIP" and current.token and current.secret_token == current.token
    assert current.resolved().token == current.token  # resolving twice keeps the token
    assert MesherySetup(generation="classic").resolved().service_type == "LoadBalancer"
    no_auth = MesherySetup(token="").resolved()
    assert no_auth.auth_token is None
    assert not [o for o in meshery_objects(no_auth, API) if o["kind"] == "Secret"]


# -- lifecycle ---------------------------------------------------------------------------------------


def test_brokers_stop_with_the_fleet(tmp_path: Path) -> None:
    specs = [ClusterSpec(f"c{i}", meshery=MesherySetup(broker=kind)) for i, kind in enumerate(["nats", "silent"])]
    lab = LabFleet(specs, tmp_path).start()
    brokers = [(c.broker_address, c.broker_port) for c in lab.clusters.values()]
    pid = lab.clusters["c0"].broker.pid  # type: ignore[union-attr]
    try:
        assert all(not port_closed(a, p) for a, p in brokers if a and p)
        assert (tmp_path / "brokers" / "cluster-0000-nats.log").is_file()
        conf = tmp_path / "brokers" / "cluster-0000-nats.conf"
        assert conf.stat().st_mode & 0o077 == 0
    finally:
        lab.stop()
    assert all(port_closed(a, p) for a, p in brokers if a and p)
    assert pid is not None and not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    lab.stop()  # twice is fine


def test_failed_start_stops_every_broker(tmp_path: Path) -> None:
    taken, second = allocate(NATS_PORT), allocate(NATS_PORT)
    specs = [
        ClusterSpec("first", meshery=MesherySetup(broker_address=taken)),
        ClusterSpec("second", meshery=MesherySetup(broker_address=second)),
        ClusterSpec("clash", meshery=MesherySetup(broker_address=taken)),  # same address and port
    ]
    lab = LabFleet(specs, tmp_path)
    with pytest.raises(RuntimeError, match="exited"):
        lab.start()
    assert port_closed(taken, 4222) and port_closed(second, 4222)
    for c in lab.clusters.values():
        assert c.broker is not None and not c.broker.running


def test_twenty_brokers_start_answer_and_stop(tmp_path: Path) -> None:
    specs = [ClusterSpec(f"b{i:02d}", meshery=MesherySetup()) for i in range(20)]
    lab = LabFleet(specs, tmp_path).start()
    try:
        endpoints = {(c.broker_address, c.broker_port) for c in lab.clusters.values()}
        assert len(endpoints) == 20 and {p for _, p in endpoints} == {4222}
        last = lab.clusters["b19"]
        assert last.broker_address and nats_handshake(last.broker_address, 4222, last.broker_token) == b"PONG"
    finally:
        lab.stop()
    assert all(port_closed(a, p) for a, p in endpoints if a and p)


def test_standalone_brokers_on_port_zero(tmp_path: Path) -> None:
    assert Path(find_nats_server()).name == "nats-server"
    host, other = allocate(), allocate()
    with NatsBroker(host, 0, token="lab-nats-zero", directory=tmp_path) as nats:
        assert nats.port > 0 and nats.address == f"{host}:{nats.port}"
        assert nats_handshake(nats.host, nats.port, "lab-nats-zero") == b"PONG"
        port = nats.port
    assert port_closed(host, port)
    for kind, cls in (("not-nats", NotNatsBroker), ("silent", SilentBroker), ("absent", AbsentBroker)):
        broker = make_broker(kind, other, 0)
        assert isinstance(broker, cls)
        with broker:
            assert broker.port > 0
            if kind == "absent":
                assert port_closed(broker.host, broker.port)
            else:
                socket.create_connection((broker.host, broker.port), timeout=2).close()
        assert port_closed(broker.host, broker.port)
    with pytest.raises(ValueError):
        make_broker("kafka", other)
    with pytest.raises(ValueError):
        make_broker("nats", "10.0.0.1")


def test_serve_with_brokers(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "preflight_lab",
        "serve",
        "--dir",
        str(tmp_path),
        "--clusters",
        "3",
        "--scenario-mix",
        "healthy=2,refused=1",
        "--with-brokers",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(30, proc.kill)
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
        fleet_doc = yaml.safe_load(Path(paths["FLEET"]).read_text())
        modes = {c["context"]: c["meshsync_mode"] for c in fleet_doc["clusters"]}
        assert modes == {"lab-001-healthy": "operator", "lab-002-refused": "embedded", "lab-003-healthy": "operator"}
        c = config.new_client_from_config(config_file=paths["KUBECONFIG"], context="lab-003-healthy")
        cr = client.CustomObjectsApi(c).get_namespaced_custom_object(
            "meshery.io", "v1alpha2", "meshery", "brokers", "meshery-broker"
        )
        host, port = cr["status"]["endpoint"]["external"].rsplit(":", 1)
        secret = client.CoreV1Api(c).read_namespaced_secret("meshery-nats-auth", "meshery")
        token = base64.b64decode(secret.data["token"])
        assert ipaddress.ip_address(host) in POOL and port == "4222"
        assert nats_handshake(host, int(port), token.decode()) == b"PONG"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert port_closed(host, int(port))
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
