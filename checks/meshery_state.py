"""What Meshery has in a cluster, read once per cluster and shared by the meshery/broker/rbac checks.

Not a check: the reads every Meshery check needs (Broker, its Service, Deployments, MeshSync, nodes),
memoised on the cluster context so a fleet of 200 costs each read once per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preflight.checks import vantage
from preflight.checks.vantage import is_loopback
from preflight.engine.context import ClusterContext
from preflight.engine.permissions import Permission, reads

GROUP = "meshery.io"
BROKER_NAME = "meshery-broker"
BROKER_VERSIONS = ("v1alpha2", "v1alpha1")
MESHSYNC_NAME = "meshery-meshsync"
OPERATOR_DEPLOYMENT = "meshery-operator"
MESHSYNC_DEPLOYMENT = "meshery-meshsync"
TOKEN_SECRET = "meshery-nats-auth"
NATS_PORT = 4222
# Service name, port name, generation
SERVICES = (("meshery-nats", "nats", "current"), ("meshery-broker", "client", "classic"))
# The Broker's StatefulSet per generation (current: the official NATS chart's, whose first pod is meshery-nats-0).
STATEFULSETS = {"current": "meshery-nats", "classic": "meshery-broker"}


# What the shared reads below need; every check that may be the first to make one declares it.
READ_BROKER: tuple[Permission, ...] = (
    reads("brokers", GROUP, meshery_namespace=True),
    reads("services", meshery_namespace=True),
)
READ_DEPLOYMENTS: tuple[Permission, ...] = (reads("deployments", "apps", meshery_namespace=True),)
READ_BROKER_WORKLOAD: tuple[Permission, ...] = (reads("statefulsets", "apps", meshery_namespace=True),)
READ_MESHSYNC: tuple[Permission, ...] = (reads("meshsyncs", GROUP, meshery_namespace=True),)
READ_NODES: tuple[Permission, ...] = (reads("nodes", verbs=("list",)),)


class ReadError(Exception):
    """A read the checks need was refused or failed; the message names the permission."""


def _get(ctx: ClusterContext, path: str, what: str) -> dict[str, Any] | None:
    resp = ctx.api().get(path)
    if resp.status == 404:
        return None
    if resp.status in (401, 403):
        raise ReadError(f"cannot read {what}: {resp.status} {resp.reason}")
    if not resp.ok or not isinstance(resp.body, dict):
        raise ReadError(f"reading {what} answered {resp.status}: {resp.reason}")
    return resp.body


def ns(ctx: ClusterContext) -> str:
    return ctx.settings.meshery_namespace


def effective_mode(ctx: ClusterContext) -> str:
    """Fleet file > flags/environment > default, as Meshery Server decides it."""
    return ctx.target.mode or ctx.settings.default_mode


def remote_server(ctx: ClusterContext) -> bool:
    """Out of cluster unless we run in it: then ClusterIP endpoints are fine."""
    return not ctx.target.in_cluster


def local_cluster(ctx: ClusterContext) -> bool:
    """The API is on this machine's loopback (kind, minikube, k3d) and the Server runs on this machine, not in a
    container: loopback endpoints are reachable."""
    return is_loopback(ctx.target.host or "") and not vantage.in_container(ctx)


def deployment(ctx: ClusterContext, name: str) -> dict[str, Any] | None:
    path = f"/apis/apps/v1/namespaces/{ns(ctx)}/deployments/{name}"
    return ctx.memo(f"deployment:{name}", lambda: _get(ctx, path, f"deployment {ns(ctx)}/{name}"))


def deployment_ready(dep: dict[str, Any]) -> tuple[bool, str]:
    status = dep.get("status") or {}
    want = int((dep.get("spec") or {}).get("replicas", 1) or 0)
    ready = int(status.get("readyReplicas") or 0)
    return ready >= max(want, 1), f"{ready}/{want} replicas ready"


def image_version(dep: dict[str, Any]) -> str | None:
    containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    for c in containers:
        image = str(c.get("image") or "")
        if ":" in image.rsplit("/", 1)[-1]:
            return image.rsplit(":", 1)[1]
    return None


@dataclass
class BrokerState:
    resource: dict[str, Any] | None = None
    version: str | None = None
    service: dict[str, Any] | None = None
    service_name: str | None = None
    port_name: str | None = None
    generation: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def spec_service(self) -> dict[str, Any]:
        return ((self.resource or {}).get("spec") or {}).get("service") or {}

    @property
    def published_external(self) -> str:
        return str((((self.resource or {}).get("status") or {}).get("endpoint") or {}).get("external") or "")

    @property
    def published_internal(self) -> str:
        return str((((self.resource or {}).get("status") or {}).get("endpoint") or {}).get("internal") or "")

    @property
    def port(self) -> dict[str, Any]:
        ports = ((self.service or {}).get("spec") or {}).get("ports") or []
        named = [p for p in ports if p.get("name") == self.port_name]
        by_number = [p for p in ports if p.get("port") == NATS_PORT]
        return (named or by_number or ports or [{}])[0]


@dataclass(frozen=True)
class BrokerWorkload:
    """The StatefulSet that runs the Broker's NATS pods, and its first pod's name (what `kubectl logs` wants)."""

    name: str
    generation: str
    ready: bool
    detail: str

    @property
    def first_pod(self) -> str:
        return f"{self.name}-0"


def broker_workload(ctx: ClusterContext) -> BrokerWorkload | None:
    """The Broker's StatefulSet, of the generation its Service or resource shows (else either), or None."""

    def read() -> BrokerWorkload | None:
        known = broker(ctx).generation
        order = [known] if known else list(STATEFULSETS)
        for generation in order:
            name = STATEFULSETS[generation]
            path = f"/apis/apps/v1/namespaces/{ns(ctx)}/statefulsets/{name}"
            sts = _get(ctx, path, f"statefulset {ns(ctx)}/{name}")
            if sts is not None:
                ready, detail = deployment_ready(sts)
                return BrokerWorkload(name, generation, ready, detail)
        return None

    return ctx.memo("meshery:broker-workload", read)


def broker(ctx: ClusterContext) -> BrokerState:
    def read() -> BrokerState:
        st = BrokerState()
        for version in BROKER_VERSIONS:
            path = f"/apis/{GROUP}/{version}/namespaces/{ns(ctx)}/brokers/{BROKER_NAME}"
            try:
                obj = _get(ctx, path, f"brokers.{GROUP}/{BROKER_NAME}")
            except ReadError as exc:
                st.problems.append(str(exc))
                continue
            if obj is not None:
                st.resource, st.version = obj, version
                break
        for name, port_name, generation in SERVICES:
            svc = _get(ctx, f"/api/v1/namespaces/{ns(ctx)}/services/{name}", f"service {ns(ctx)}/{name}")
            if svc is not None:
                st.service, st.service_name, st.port_name, st.generation = svc, name, port_name, generation
                break
        if st.generation is None and st.version is not None:
            st.generation = "current" if st.version == "v1alpha2" else "classic"
        return st

    return ctx.memo("meshery:broker", read)


def meshsync(ctx: ClusterContext) -> dict[str, Any] | None:
    path = f"/apis/{GROUP}/v1alpha1/namespaces/{ns(ctx)}/meshsyncs/{MESHSYNC_NAME}"
    return ctx.memo("meshery:meshsync", lambda: _get(ctx, path, f"meshsyncs.{GROUP}/{MESHSYNC_NAME}"))


def nodes(ctx: ClusterContext) -> list[dict[str, Any]] | None:
    """The nodes, or None when the credential may not list them."""

    def read() -> list[dict[str, Any]] | None:
        try:
            body = _get(ctx, "/api/v1/nodes", "nodes")
        except ReadError:
            return None
        return list((body or {}).get("items") or [])

    return ctx.memo("meshery:nodes", read)


def deployed(ctx: ClusterContext) -> dict[str, bool]:
    """Which of Meshery's in-cluster components exist (operator mode's footprint)."""

    def read() -> dict[str, bool]:
        return {
            "operator": deployment(ctx, OPERATOR_DEPLOYMENT) is not None,
            "meshsync": deployment(ctx, MESHSYNC_DEPLOYMENT) is not None,
            "broker": broker(ctx).resource is not None or broker(ctx).service is not None,
        }

    return ctx.memo("meshery:deployed", read)


def split_endpoint(endpoint: str) -> tuple[str, int | None]:
    """host:port, [v6]:port, or a bare host."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = endpoint.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return endpoint, None
