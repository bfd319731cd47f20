"""What a lab cluster holds when Meshery's Operator is (or is not) installed in it.

A :class:`MesherySetup` describes the Meshery components of one cluster: which Operator generation
(``current``: Operator v1.0+, Broker ``meshery.io/v1alpha2`` fronted by Service ``meshery-nats`` with
token auth; ``classic``: Operator <= 0.8, Broker ``meshery.io/v1alpha1`` fronted by the LoadBalancer
Service ``meshery-broker``, no auth), how the broker Service is exposed, what the Operator published
in the Broker's status, what listens at the broker's address, MeshSync, node facts and bulk.

:func:`meshery_objects` turns a setup into the Kubernetes objects a real cluster would hold, and
:func:`install_meshery` also registers the CRDs in a :class:`~preflight_lab.apiserver.FakeKubeAPI`.
Like the rest of the lab this encodes what a cluster contains, never what a check should conclude:
the published endpoint is computed the way the real Operator of that generation computes it
(:func:`published_endpoint`), right or wrong for the reader.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import ipaddress
import json
import secrets as _secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from preflight_lab.addresses import allocate, require_loopback
from preflight_lab.apiserver import FakeKubeAPI
from preflight_lab.broker import BROKER_KINDS, NATS_PORT
from preflight_lab.store import ResourceType

__all__ = [
    "AUTH_SECRET",
    "BROKER_NAME",
    "BROKER_TLS",
    "BROKER_V1ALPHA1",
    "BROKER_V1ALPHA2",
    "GENERATIONS",
    "MESHSYNC_CONFIGMAP",
    "MESHSYNC_NAME",
    "MESHSYNC_V1ALPHA1",
    "MONITOR_PORT",
    "SERVICE_TYPES",
    "NATS_POD_STATES",
    "MesherySetup",
    "nats_pod_name",
    "add_dns_records",
    "broker_resource_type",
    "dns_records",
    "install_meshery",
    "meshery_objects",
    "meshery_resources",
    "new_broker_token",
    "published_endpoint",
]

GENERATIONS = ("current", "classic")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# The NATS pod of the Broker's StatefulSet: running and ready, crash-looping, unable to pull its image, or absent.
NATS_POD_STATES = ("running", "crashloop", "imagepull", "missing")
# What the Broker's serving certificate is, when its nats-server requires TLS.
BROKER_TLS = ("cluster-ca", "other-ca", "wrong-name", "expired")

BROKER_NAME = "meshery-broker"
AUTH_SECRET = "meshery-nats-auth"
MESHSYNC_NAME = "meshery-meshsync"
MESHSYNC_CONFIGMAP = "meshery-meshsync-config"
OPERATOR_DEPLOYMENT = "meshery-operator"
MESHSYNC_DEPLOYMENT = "meshery-meshsync"
MONITOR_PORT = 8222

BROKER_V1ALPHA2 = ResourceType("meshery.io", "v1alpha2", "Broker", "brokers")
BROKER_V1ALPHA1 = ResourceType("meshery.io", "v1alpha1", "Broker", "brokers")
MESHSYNC_V1ALPHA1 = ResourceType("meshery.io", "v1alpha1", "MeshSync", "meshsyncs")

# Per generation: the broker Service, the name of its client port, the Operator's default version
# and the default Service type.
_SERVICE_NAME = {"current": "meshery-nats", "classic": "meshery-broker"}
_PORT_NAME = {"current": "nats", "classic": "client"}
_DEFAULT_OPERATOR_VERSION = {"current": "v1.0.3", "classic": "v0.8.2"}
_DEFAULT_SERVICE_TYPE = {"current": "ClusterIP", "classic": "LoadBalancer"}
_NATS_IMAGE = {"current": "nats:2.10.22-alpine", "classic": "nats:2.1.9-alpine3.12"}
# The labels the official NATS chart (release "meshery") puts on the pods its StatefulSet and Service select.
_NATS_CHART_SELECTOR = {
    "app.kubernetes.io/name": "nats",
    "app.kubernetes.io/instance": "meshery",
    "app.kubernetes.io/component": "nats",
}
_EVENTS = ["ADDED", "MODIFIED", "DELETED"]
_TIMESTAMP = "2024-09-02T08:15:00Z"


def new_broker_token() -> str:
    """A NATS token long and random enough that finding it in a report can only mean a leak."""
    return "lab-nats-" + _secrets.token_hex(24)


@dataclass
class MesherySetup:
    """The Meshery components of one lab cluster. Call :meth:`resolved` for concrete values.

    ``generation=None`` means nothing of Meshery is deployed (the node and bulk knobs still apply).
    ``service_type`` defaults to ClusterIP (current) or LoadBalancer (classic). ``node_port`` is the
    nodePort of the client port when the Service is NodePort or LoadBalancer (``None``: none
    allocated). ``lb_ip``/``lb_hostname`` fill ``status.loadBalancer.ingress`` of a LoadBalancer
    Service (neither: the LB is still pending). ``source_ranges`` go on the Service and, for current,
    into the Broker's ``spec.service.loadBalancerSourceRanges`` unless ``broker_spec_source_ranges``
    says otherwise. ``published_external`` overrides what the Operator published (``""``: pending).

    ``broker`` is what listens at ``broker_address:broker_port`` (see
    :data:`~preflight_lab.broker.BROKER_KINDS`); ``broker_address=None`` lets the fleet pick one.
    ``token`` is what the broker requires (current only; ``None``: generate one, ``""``: no auth and no
    Secret); ``secret_token`` is what the ``meshery-nats-auth`` Secret holds (default: ``token``).
    ``broker_tls`` makes a real broker require TLS with a certificate from the cluster's CA for its
    names (``cluster-ca``), from another CA (``other-ca``), for another name (``wrong-name``), or
    expired (``expired``); ``None``: plain NATS.
    ``meshsync_whitelist``/``meshsync_blacklist`` are lists of resources (a string ``"pods.v1."``
    becomes ``{"Resource": ..., "Events": [...]}``) or ``None`` for no such key. ``extra_objects``
    adds that many ConfigMaps and Pods. ``node_*`` decorate the cluster's nodes (node *i* gets the
    *i*-th IP; more IPs than nodes add nodes).
    """

    generation: str | None = "current"
    namespace: str = "meshery"
    operator_ready: bool = True
    operator_version: str | None = None
    service_type: str | None = None
    lb_hostname: str | None = None
    lb_ip: str | None = None
    node_port: int | None = 31222
    source_ranges: Sequence[str] = ()
    broker_spec_source_ranges: Sequence[str] | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    external_endpoint_override: str | None = None
    published_external: str | None = None
    broker_ready: bool = True
    broker: str = "nats"
    broker_address: str | None = None
    broker_port: int = NATS_PORT
    token: str | None = None
    secret_token: str | None = None
    broker_tls: str | None = None
    meshsync_present: bool = True
    meshsync_ready: bool = True
    meshsync_whitelist: Sequence[Any] | None = None
    meshsync_blacklist: Sequence[Any] | None = None
    # The MeshSync resource names its watch-list ConfigMap instead of embedding it.
    meshsync_watch_list_by_name: bool = False
    extra_objects: int = 0
    node_external_ips: Sequence[str] = ()
    node_internal_ips: Sequence[str] = ()
    node_provider_id: str | None = None
    node_labels: Mapping[str, str] = field(default_factory=dict)
    # The Broker's NATS pod (NATS_POD_STATES), whether the API server reaches the node's kubelet (reachable,
    # timeout, refused), and the status a proxy in front of the API answers an Upgrade with (400, 426, 502).
    nats_pod: str = "running"
    kubelet: str = "reachable"
    upgrade_stripped_by: int | None = None

    def resolved(self) -> MesherySetup:
        """A validated copy with every default filled in; the token is generated here (once)."""
        gen = self.generation
        if gen is not None and gen not in GENERATIONS:
            raise ValueError(f"unknown generation {gen!r}; choose from {', '.join(GENERATIONS)} or None")
        service_type = self.service_type or (_DEFAULT_SERVICE_TYPE[gen] if gen else "ClusterIP")
        if service_type not in SERVICE_TYPES:
            raise ValueError(f"unknown service type {service_type!r}; choose from {', '.join(SERVICE_TYPES)}")
        if self.broker not in BROKER_KINDS:
            raise ValueError(f"unknown broker {self.broker!r}; choose from {', '.join(BROKER_KINDS)}")
        if not 0 <= self.broker_port <= 65535:
            raise ValueError(f"bad broker port {self.broker_port}")
        if self.broker_tls is not None and (self.broker_tls not in BROKER_TLS or self.broker != "nats"):
            raise ValueError(f"broker_tls is one of {', '.join(BROKER_TLS)}, for a real (nats) broker")
        if self.node_port is not None and not 1 <= self.node_port <= 65535:
            raise ValueError(f"bad node port {self.node_port}")
        if self.broker_address is not None:
            require_loopback(self.broker_address)
        if self.nats_pod not in NATS_POD_STATES:
            raise ValueError(f"unknown nats_pod {self.nats_pod!r}; choose from {', '.join(NATS_POD_STATES)}")
        if self.kubelet not in ("reachable", "timeout", "refused"):
            raise ValueError(f"unknown kubelet {self.kubelet!r}; choose from reachable, timeout, refused")
        if self.upgrade_stripped_by not in (None, 400, 426, 502):
            raise ValueError("upgrade_stripped_by is 400, 426, 502 or None")
        if self.extra_objects < 0:
            raise ValueError("extra_objects cannot be negative")
        token, secret_token = self.token, self.secret_token
        if gen == "classic":
            if token or secret_token:
                raise ValueError("the classic broker has no auth: leave token and secret_token unset")
            if self.external_endpoint_override:
                raise ValueError("externalEndpointOverride is a current-generation Broker field")
            token = secret_token = None
        elif gen == "current":
            token = new_broker_token() if token is None else token
            secret_token = token if secret_token is None else secret_token
        return dataclasses.replace(
            self,
            operator_version=self.operator_version or (_DEFAULT_OPERATOR_VERSION[gen] if gen else None),
            service_type=service_type,
            token=token,
            secret_token=secret_token,
            source_ranges=tuple(self.source_ranges),
            broker_spec_source_ranges=(
                tuple(self.broker_spec_source_ranges) if self.broker_spec_source_ranges is not None else None
            ),
            annotations=dict(self.annotations),
            node_external_ips=tuple(self.node_external_ips),
            node_internal_ips=tuple(self.node_internal_ips),
            node_labels=dict(self.node_labels),
        )

    @property
    def deployed(self) -> bool:
        return self.generation is not None

    @property
    def auth_token(self) -> str | None:
        """The token the broker requires, or None (classic, nothing deployed, or ``token=""``)."""
        return (self.token or None) if self.generation == "current" else None

    @property
    def service_name(self) -> str | None:
        return _SERVICE_NAME[self.generation] if self.generation else None

    @property
    def port_name(self) -> str | None:
        return _PORT_NAME[self.generation] if self.generation else None


# --------------------------------------------------------------------------------------------------
# The Operator's view


def broker_resource_type(generation: str) -> ResourceType:
    """The Broker kind a generation's Operator serves (only that one version)."""
    return BROKER_V1ALPHA2 if generation == "current" else BROKER_V1ALPHA1


def meshery_resources(setup: MesherySetup) -> list[ResourceType]:
    """The CRDs the Operator of ``setup.generation`` installs (none when nothing is deployed)."""
    if setup.generation is None:
        return []
    return [broker_resource_type(setup.generation), MESHSYNC_V1ALPHA1]


def _host_port(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _client_port(generation: str, service: Mapping[str, Any]) -> Mapping[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    for port in ports:
        if port.get("name") == _PORT_NAME[generation]:
            return dict(port)
    return dict(ports[0]) if ports else {}


def _node_ip(nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """A worker node's address: the first ExternalIP of any node, else the first InternalIP."""
    for kind in ("ExternalIP", "InternalIP"):
        for node in nodes:
            for addr in (node.get("status") or {}).get("addresses") or []:
                if addr.get("type") == kind and addr.get("address"):
                    return str(addr["address"])
    return None


def published_endpoint(
    generation: str,
    service: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]] = (),
    api_host: str | None = None,
    override: str | None = None,
) -> str:
    """``status.endpoint.external`` as the Operator of ``generation`` publishes it for ``service``.

    current: externalEndpointOverride > LB IP > LB hostname > API host + nodePort > clusterIP + port >
    worker node IP + nodePort. classic: LB hostname > LB IP > API host + nodePort > clusterIP + port >
    ``localhost:<nodePort>``. LB entries use the Service port; ``""`` when nothing applies.
    """
    if generation not in GENERATIONS:
        raise ValueError(f"unknown generation {generation!r}")
    port = _client_port(generation, service)
    svc_port, node_port = port.get("port"), port.get("nodePort")
    ingress = (((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]
    lb_ip, lb_host = ingress.get("ip"), ingress.get("hostname")
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    if cluster_ip in ("", "None"):
        cluster_ip = None
    lb_ip_ep = _host_port(lb_ip, svc_port) if lb_ip and svc_port else None
    lb_host_ep = _host_port(lb_host, svc_port) if lb_host and svc_port else None
    api_ep = _host_port(api_host, node_port) if api_host and node_port else None
    cluster_ep = _host_port(cluster_ip, svc_port) if cluster_ip and svc_port else None
    if generation == "current":
        node_ip = _node_ip(nodes)
        node_ep = _host_port(node_ip, node_port) if node_ip and node_port else None
        candidates = [override or None, lb_ip_ep, lb_host_ep, api_ep, cluster_ep, node_ep]
    else:
        local_ep = f"localhost:{node_port}" if node_port else None
        candidates = [lb_host_ep, lb_ip_ep, api_ep, cluster_ep, local_ep]
    return next((c for c in candidates if c), "")


# --------------------------------------------------------------------------------------------------
# Objects


def _cluster_ip(namespace: str, name: str) -> str:
    """A stable, plausible service IP in 10.96.0.0/12 (never .0, .1 or .255)."""
    h = int.from_bytes(hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:4], "big")
    return f"10.{96 + h % 16}.{(h >> 8) % 256}.{2 + (h >> 16) % 252}"


def _labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "meshery",
        "app.kubernetes.io/managed-by": "meshery-operator",
    }


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": _TIMESTAMP,
    }


def _workload_status(ready: bool, kind: str) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1, "replicas": 1}
    if kind == "Deployment":
        status["updatedReplicas"] = 1
        if ready:
            status.update(readyReplicas=1, availableReplicas=1)
            status["conditions"] = [
                _condition("Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability.")
            ]
        else:
            status["unavailableReplicas"] = 1
            status["conditions"] = [
                _condition(
                    "Available", False, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
                )
            ]
    else:
        status.update(currentReplicas=1, updatedReplicas=1, availableReplicas=1 if ready else 0)
        if ready:
            status["readyReplicas"] = 1
    return status


def _workload(
    kind: str, name: str, namespace: str, component: str, containers: list[dict[str, Any]], ready: bool
) -> dict[str, Any]:
    labels = _labels(name, component)
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "generation": 1},
        "spec": spec,
        "status": _workload_status(ready, kind),
    }


def _broker_selector(setup: MesherySetup) -> dict[str, str]:
    """What the broker's Service and StatefulSet select: the official NATS chart's labels (current), or classic's."""
    if setup.generation == "current":
        return dict(_NATS_CHART_SELECTOR)
    return {"app.kubernetes.io/name": _SERVICE_NAME["classic"]}


def _broker_workload(setup: MesherySetup, node: str, host_ip: str | None = None) -> list[dict[str, Any]]:
    """The broker's StatefulSet and its one pod (``<name>-0``), Running and ready unless ``broker_ready`` is off.

    The current generation's are the official NATS chart's (containers nats and reloader, the chart's labels);
    a pod that is not ready is crash-looping, the commonest way a NATS pod is not ready. ``nats_pod`` says more:
    crash-looping, unable to pull its image (Pending), or missing (the StatefulSet without its pod).
    """
    gen = setup.generation
    assert gen is not None
    name, ns = _SERVICE_NAME[gen], setup.namespace
    containers: list[dict[str, Any]] = [
        {"name": "nats", "image": _NATS_IMAGE[gen], "ports": [{"name": "nats", "containerPort": NATS_PORT}]}
    ]
    if gen == "current":
        containers.append({"name": "reloader", "image": "natsio/nats-server-config-reloader:0.16.0"})
    sts = _workload("StatefulSet", name, ns, "broker", containers, setup.broker_ready)
    selector = _broker_selector(setup)
    pod_labels = {**sts["spec"]["template"]["metadata"]["labels"], **selector}
    sts["spec"]["selector"] = {"matchLabels": selector}
    sts["spec"]["template"]["metadata"]["labels"] = pod_labels
    pod_name = f"{name}-0"
    statuses = []
    for c in containers:
        digest = hashlib.sha256(c["image"].encode()).hexdigest()
        st: dict[str, Any] = {"name": c["name"], "image": c["image"], "imageID": f"{c['image']}@sha256:{digest}"}
        st.update(ready=True, restartCount=0)
        st["state"] = {"running": {"startedAt": _TIMESTAMP}}
        if (not setup.broker_ready or setup.nats_pod == "crashloop") and c["name"] == "nats":
            st.update(ready=False, restartCount=7)
            st["state"] = {
                "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}
            }
            st["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": _TIMESTAMP}}
        if setup.nats_pod == "imagepull":
            st.update(ready=False, restartCount=0, imageID="")
            st["state"] = {
                "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{c["image"]}"'}
            }
        statuses.append(st)
    if setup.nats_pod == "missing":
        return [sts]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": ns,
            "labels": {**pod_labels, "statefulset.kubernetes.io/pod-name": pod_name},
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{pod_name}")),
        },
        "spec": {"containers": copy.deepcopy(containers), "nodeName": node},
        "status": {
            "phase": "Pending" if setup.nats_pod == "imagepull" else "Running",
            "hostIP": host_ip or "10.0.1.23",
            "conditions": [_condition("Ready", setup.broker_ready and setup.nats_pod == "running", "", "")],
            "containerStatuses": statuses,
        },
    }
    return [sts, pod]


def _broker_service(setup: MesherySetup, port: int) -> dict[str, Any]:
    gen = setup.generation
    assert gen is not None and setup.service_type is not None
    name = _SERVICE_NAME[gen]
    exposed = setup.service_type in ("NodePort", "LoadBalancer")
    client: dict[str, Any] = {"name": _PORT_NAME[gen], "port": port, "protocol": "TCP", "targetPort": NATS_PORT}
    ports = [client]
    if exposed and setup.node_port is not None:
        client["nodePort"] = setup.node_port
    if gen == "current":
        monitor: dict[str, Any] = {
            "name": "monitor",
            "port": MONITOR_PORT,
            "protocol": "TCP",
            "targetPort": MONITOR_PORT,
        }
        if exposed and setup.node_port is not None:
            monitor["nodePort"] = setup.node_port + 1 if setup.node_port < 32767 else setup.node_port - 1
        ports.append(monitor)
    cluster_ip = _cluster_ip(setup.namespace, name)
    spec: dict[str, Any] = {
        "type": setup.service_type,
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
        "sessionAffinity": "None",
        "selector": _broker_selector(setup),
        "ports": ports,
    }
    if exposed:
        spec["externalTrafficPolicy"] = "Cluster"
    if setup.service_type == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = setup.node_port is not None
    if setup.source_ranges:
        spec["loadBalancerSourceRanges"] = list(setup.source_ranges)
    ingress: dict[str, Any] = {}
    if setup.service_type == "LoadBalancer":
        if setup.lb_ip:
            ingress.update(ip=setup.lb_ip, ipMode="VIP")
        if setup.lb_hostname:
            ingress["hostname"] = setup.lb_hostname
    meta: dict[str, Any] = {"name": name, "namespace": setup.namespace, "labels": _labels(name, "broker")}
    if setup.annotations:
        meta["annotations"] = dict(setup.annotations)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [ingress]} if ingress else {}},
    }


def _broker_cr(
    setup: MesherySetup, service: Mapping[str, Any], nodes: list[dict[str, Any]], api_host: str | None
) -> dict[str, Any]:
    gen = setup.generation
    assert gen is not None
    port = _client_port(gen, service)
    internal = _host_port(str(service["spec"]["clusterIP"]), port["port"])
    if setup.published_external is not None:
        external = setup.published_external
    else:
        external = published_endpoint(gen, service, nodes, api_host, setup.external_endpoint_override)
    status: dict[str, Any] = {"endpoint": {"internal": internal, "external": external}}
    spec: dict[str, Any] = {"size": 1}
    if gen == "current":
        svc: dict[str, Any] = {"type": setup.service_type}
        ranges = setup.source_ranges if setup.broker_spec_source_ranges is None else setup.broker_spec_source_ranges
        if ranges:
            svc["loadBalancerSourceRanges"] = list(ranges)
        if setup.annotations:
            svc["annotations"] = dict(setup.annotations)
        if setup.external_endpoint_override:
            svc["externalEndpointOverride"] = setup.external_endpoint_override
        spec["service"] = svc
        if setup.broker_ready:
            cond = _condition("Ready", True, "BrokerReady", "NATS is ready to accept connections")
        else:
            cond = _condition(
                "Ready", False, "BrokerNotReady", f"waiting for statefulset {_SERVICE_NAME[gen]} to be ready"
            )
        status["conditions"] = [cond]
    return {
        "apiVersion": broker_resource_type(gen).api_version,
        "kind": "Broker",
        "metadata": {"name": BROKER_NAME, "namespace": setup.namespace, "generation": 1},
        "spec": spec,
        "status": status,
    }


def nats_pod_name(setup: MesherySetup) -> str | None:
    """The Broker StatefulSet's first pod, when the setup has one."""
    if setup.generation is None or setup.nats_pod == "missing":
        return None
    return f"{_SERVICE_NAME[setup.generation]}-0"


def _watch_entries(items: Sequence[Any]) -> str:
    entries = [{"Resource": i, "Events": list(_EVENTS)} if isinstance(i, str) else i for i in items]
    return json.dumps(entries, separators=(",", ":"))


def _meshsync(setup: MesherySetup, internal: str) -> list[dict[str, Any]]:
    data: dict[str, str] = {}
    if setup.meshsync_whitelist is not None:
        data["whitelist"] = _watch_entries(setup.meshsync_whitelist)
    if setup.meshsync_blacklist is not None:
        data["blacklist"] = _watch_entries(setup.meshsync_blacklist)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MESHSYNC_CONFIGMAP, "namespace": setup.namespace},
        "data": data,
    }
    status: dict[str, Any] = {}
    if setup.meshsync_ready:
        status["publishing-to"] = internal
    cr = {
        "apiVersion": MESHSYNC_V1ALPHA1.api_version,
        "kind": "MeshSync",
        "metadata": {"name": MESHSYNC_NAME, "namespace": setup.namespace, "generation": 1},
        "spec": {
            "size": 1,
            "version": setup.operator_version,
            "broker": {"native": {"name": BROKER_NAME, "namespace": setup.namespace}},
            "watch-list": MESHSYNC_CONFIGMAP if setup.meshsync_watch_list_by_name else copy.deepcopy(config_map),
        },
        "status": status,
    }
    deployment = _workload(
        "Deployment",
        MESHSYNC_DEPLOYMENT,
        setup.namespace,
        "meshsync",
        [{"name": "meshsync", "image": f"meshery/meshsync:{setup.operator_version}"}],
        setup.meshsync_ready,
    )
    return [config_map, cr, deployment]


def _minimal_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": allocate()}, {"type": "Hostname", "address": name}],
            "conditions": [_condition("Ready", True, "KubeletReady", "kubelet is posting ready status")],
        },
    }


def _nodes(setup: MesherySetup, nodes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cluster's nodes with the setup's addresses, providerID and labels applied."""
    base = [copy.deepcopy(dict(n)) for n in nodes] or [_minimal_node("lab-node-1")]
    count = max(len(base), len(setup.node_internal_ips), len(setup.node_external_ips))
    while len(base) < count:
        extra = copy.deepcopy(base[-1])
        name = f"{base[0]['metadata']['name'].rsplit('-', 1)[0]}-{len(base) + 1}"
        extra["metadata"] = {**extra["metadata"], "name": name}
        extra["metadata"]["labels"] = {**(extra["metadata"].get("labels") or {}), "kubernetes.io/hostname": name}
        extra["metadata"].pop("uid", None)
        extra["metadata"].pop("resourceVersion", None)
        base.append(extra)
    for i, node in enumerate(base):
        meta, status = node.setdefault("metadata", {}), node.setdefault("status", {})
        addresses = [a for a in status.get("addresses") or [] if a.get("type") not in ("InternalIP", "ExternalIP")]
        old_internal = [a for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
        internal = setup.node_internal_ips[i] if i < len(setup.node_internal_ips) else None
        new = [{"type": "InternalIP", "address": internal}] if internal else old_internal
        if i < len(setup.node_external_ips):
            new.append({"type": "ExternalIP", "address": setup.node_external_ips[i]})
        status["addresses"] = [*new, *addresses]
        if setup.node_provider_id:
            node.setdefault("spec", {})["providerID"] = setup.node_provider_id
        if setup.node_labels:
            meta["labels"] = {**(meta.get("labels") or {}), **setup.node_labels}
    return base


def _extra(count: int) -> list[dict[str, Any]]:
    """Bulk: alternating ConfigMaps and running Pods over eight namespaces, like a busy cluster."""
    objs: list[dict[str, Any]] = []
    namespaces = sorted({f"load-{(i // 2) % 8}" for i in range(count)})
    for ns in namespaces:
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}})
    for i in range(count):
        ns = f"load-{(i // 2) % 8}"
        if i % 2 == 0:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"app-config-{i:06d}", "namespace": ns},
                    "data": {"app.properties": f"replica={i}\nlog.level=info\n"},
                }
            )
        else:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"app-{i:06d}", "namespace": ns, "labels": {"app": f"app-{i % 50}"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.lab/app:1.4.2"}]},
                    "status": {"phase": "Running", "podIP": f"10.244.{(i >> 8) % 256}.{i % 256}"},
                }
            )
    return objs


def meshery_objects(
    setup: MesherySetup,
    api_host: str | None,
    broker_port: int | None = None,
    *,
    nodes: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Everything a cluster with ``setup`` holds: Meshery objects, decorated ``nodes`` and bulk.

    ``api_host`` is the host of the cluster's API server as the kubeconfig names it (the Operator
    publishes "API host + nodePort" in some cases). ``broker_port`` is the port the broker really
    listens on (default ``setup.broker_port``), which is the Service's client port: the lab's load
    balancer forwards LB IP:port to the broker unchanged. Pass the cluster's Node objects as
    ``nodes`` to have them decorated (same names); without them one node is made up.

    An unresolved setup is resolved here, which generates a token nobody else knows: resolve first
    (:meth:`MesherySetup.resolved`) when a broker is running with it.
    """
    setup = setup.resolved()
    port = broker_port if broker_port else setup.broker_port
    objs: list[dict[str, Any]] = []
    node_objs = _nodes(setup, nodes)
    gen = setup.generation
    if gen is not None:
        ns = setup.namespace
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "status": {"phase": "Active"},
            }
        )
        objs.append(
            _workload(
                "Deployment",
                OPERATOR_DEPLOYMENT,
                ns,
                "operator",
                [
                    {"name": "manager", "image": f"meshery/meshery-operator:{setup.operator_version}"},
                    {"name": "kube-rbac-proxy", "image": "gcr.io/kubebuilder/kube-rbac-proxy:v0.5.0"},
                ],
                setup.operator_ready,
            )
        )
        objs += _broker_workload(setup, node_objs[0]["metadata"]["name"], _node_ip(node_objs))
        service = _broker_service(setup, port)
        objs.append(service)
        if gen == "current" and setup.secret_token:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": AUTH_SECRET, "namespace": ns, "labels": _labels(AUTH_SECRET, "broker")},
                    "type": "Opaque",
                    "data": {"token": base64.b64encode(setup.secret_token.encode()).decode()},
                }
            )
        broker = _broker_cr(setup, service, node_objs, api_host)
        objs.append(broker)
        if setup.meshsync_present:
            objs += _meshsync(setup, broker["status"]["endpoint"]["internal"])
    objs += node_objs
    objs += _extra(setup.extra_objects)
    return objs


def install_meshery(
    server: FakeKubeAPI, setup: MesherySetup, api_host: str | None = None, broker_port: int | None = None
) -> list[dict[str, Any]]:
    """Register the setup's CRDs in ``server`` and store its objects (decorating the nodes it holds).

    ``api_host`` defaults to the server's own host. Returns the stored objects.
    """
    setup = setup.resolved()
    for rt in meshery_resources(setup):
        server.register_resource(rt)
    node_rt = server.resources.by_kind("v1", "Node")
    nodes = server.store.list(node_rt) if node_rt is not None else []
    host = api_host if api_host is not None else server.host
    return [server.store.put(obj) for obj in meshery_objects(setup, host, broker_port, nodes=nodes)]


# --------------------------------------------------------------------------------------------------
# DNS


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def dns_records(setup: MesherySetup, broker_address: str | None = None) -> dict[str, str]:
    """Name -> address records that make the setup's names reach its broker in the lab.

    The LB hostname (and the host of ``externalEndpointOverride`` when it is a name) map to
    ``broker_address`` (default ``setup.broker_address``). Load them into a LabDNS with
    :func:`add_dns_records`. Empty when there is no name or no address.
    """
    address = broker_address or setup.broker_address
    if not address or setup.generation is None:
        return {}
    names: list[str] = []
    if setup.lb_hostname and (setup.service_type or _DEFAULT_SERVICE_TYPE[setup.generation]) == "LoadBalancer":
        names.append(setup.lb_hostname)
    if setup.external_endpoint_override:
        host = setup.external_endpoint_override.rsplit(":", 1)[0].strip("[]")
        if host and not _is_ip(host) and host != "localhost":
            names.append(host)
    return {name.rstrip(".").lower(): address for name in names}


class _AddsA(Protocol):
    def add_a(self, name: str, *addresses: str) -> Any: ...


def add_dns_records(dns: _AddsA, records: Mapping[str, str]) -> None:
    """Load ``records`` (e.g. from :func:`dns_records`) into a LabDNS as A records."""
    for name, address in records.items():
        dns.add_a(name, address)


def behind_load_balancer(address: str, source_ranges: Sequence[str] = (), **overrides: Any) -> MesherySetup:
    """A current-generation Broker behind a LoadBalancer whose IP is where its nats-server listens."""
    opts: dict[str, Any] = {
        "service_type": "LoadBalancer",
        "lb_ip": address,
        "broker_address": address,
        "source_ranges": tuple(source_ranges),
    }
    opts.update(overrides)
    return MesherySetup(**opts)
