"""Where Meshery Server runs on a workstation, and what loopback means from there (`--server-vantage`).

Not a check. `mesheryctl system start` runs the Server in a Docker container by default: inside it, 127.0.0.1,
localhost and ::1 are the container itself. A kubeconfig for kind, minikube or k3d that names
`https://127.0.0.1:<port>` works from the host and reaches nothing from the Server; so does a Broker endpoint on
loopback. The tool runs on the host, so it judges these addresses from the container's side instead of dialing.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, fail
from preflight.engine.probes import addresses, tls
from preflight.engine.targets import ClusterTarget

VANTAGES = ("host", "docker")
DOCKER_HOST = "host.docker.internal"
# Names an API server certificate of kind, minikube or k3d covers, in the order worth suggesting.
_PREFERRED_NAMES = ("kubernetes", "localhost")


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (bracketed or not)."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def in_container(ctx: ClusterContext) -> bool:
    return ctx.settings.server_vantage == "docker" and not ctx.target.in_cluster


def loopback_means(ctx: ClusterContext) -> str:
    """What a loopback address is for the Server, in words for a message."""
    if in_container(ctx):
        return "the Server's own container (--server-vantage docker), not this machine"
    return "this machine, not the cluster"


def _local_kind(t: ClusterTarget) -> str | None:
    """kind, minikube or k3d, from the names their tools give the kubeconfig's entries."""
    for name in (t.cluster_name or "", t.name):
        if name.startswith("kind-"):
            return "kind"
        if name == "minikube" or name.startswith("minikube"):
            return "minikube"
        if name.startswith("k3d-"):
            return "k3d"
    return None


def _network_fix(t: ClusterTarget) -> str:
    """How to give the Server the cluster's address on the Docker network, per local tool."""
    name = (t.cluster_name or t.name).split("-", 1)[-1]
    kind = _local_kind(t)
    if kind == "kind":
        return (
            f"or use the cluster's address on the Docker network: kind get kubeconfig --internal --name {name} "
            "(server https://<name>-control-plane:6443), with the Server's container joined to that network "
            "(docker network connect kind <meshery container>)"
        )
    if kind == "minikube":
        return (
            "or use the cluster's address on the Docker network: server https://<minikube ip>:8443 (minikube ip), "
            "with the Server's container joined to it (docker network connect minikube <meshery container>)"
        )
    if kind == "k3d":
        return (
            f"or use the cluster's address on the Docker network: server https://k3d-{name}-server-0:6443, with "
            f"the Server's container joined to it (docker network connect k3d-{name} <meshery container>)"
        )
    return (
        "or use the cluster's address on the Docker network the cluster's containers share (kind get kubeconfig "
        "--internal for kind), with the Server's container joined to that network"
    )


def _cert_names(ctx: ClusterContext, address: str, port: int) -> list[str]:
    """The DNS names the API server's certificate covers, read from here (where loopback is the host)."""
    t = ctx.target
    seen = tls.inspect(address, port, t.tls_server_name or t.host or address, t.ca_pem, ctx.settings.connect_timeout)
    return [n for n in seen.sans if not n.startswith("*") and not _is_ip(n)]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _server_name(names: list[str]) -> str | None:
    for preferred in _PREFERRED_NAMES:
        if preferred in names:
            return preferred
    return names[0] if names else None


def unreachable_api(ctx: ClusterContext, host: str, port: int) -> Finding | None:
    """A fail when the Server, in a container, would dial its own loopback for this API server; else None."""
    if not in_container(ctx) or not is_loopback(host):
        return None
    t = ctx.target
    address = "127.0.0.1" if host.rstrip(".").lower() == "localhost" else host.strip("[]")
    names = _cert_names(ctx, address, port)
    server_name = t.tls_server_name or _server_name(names)
    suggested = f"https://{DOCKER_HOST}:{port}"
    evidence: dict[str, Any] = {
        "vantage": "docker",
        "server": t.server,
        "loopback": addresses.hostport(host, port),
        "suggested_server": suggested,
        "tls_server_name": server_name,
        "certificate_names": names,
        "local_cluster": _local_kind(t),
    }
    named = server_name or "<a DNS name the API server's certificate covers>"
    fix = (
        f"In the kubeconfig Meshery Server uses, set server: {suggested} and tls-server-name: {named} (the "
        f"certificate covers {', '.join(names) or 'names other than ' + DOCKER_HOST}, not {DOCKER_HOST}); on Linux "
        f"start the Server's container with --add-host={DOCKER_HOST}:host-gateway and have the API server listen "
        f"beyond 127.0.0.1; {_network_fix(t)}."
    )
    return fail(
        f"Meshery Server runs in a Docker container (--server-vantage docker): the kubeconfig's server "
        f"{t.server} is loopback, which there is the container itself, not this machine: the Server cannot reach "
        "this API server",
        remediation=fix,
        **evidence,
    )
