"""A port-forward to a pod through the cluster's API server, as Meshery Server opens one to its Broker.

One upgrade, as Meshery's Go client sends it (client-go's SPDY round tripper: ``Upgrade: SPDY/3.1``,
``X-Stream-Protocol-Version: portforward.k8s.io``), on a TLS connection made with our deadline and the client's
TLS settings, credentials and proxy; then the port's error and data streams (:mod:`.spdy`), read on the caller's
thread. Read-only in effect (a tunnel, no object changes). An answer other than the upgrade is classified
(:data:`CAUSES`) so each failure can name its own fix. The connection is always closed before :func:`forward`
returns.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from preflight.engine.apiconn import Endpoint
from preflight.engine.kube import KubeAPI
from preflight.engine.probes import spdy

# Why a tunnel did not open.
FORBIDDEN = "forbidden"  # 403: RBAC refused create pods/portforward
UNAUTHORIZED = "unauthorized"  # 401
POD_GONE = "pod-gone"  # 404: the pod does not exist (any more)
KUBELET = "kubelet-unreachable"  # 500 error dialing backend ... :10250: the control plane cannot reach the kubelet
UPGRADE = "upgrade-refused"  # 400/426/502 from something between us and the API server (or the API server)
NOTHING_LISTENS = "nothing-listens"  # the port's error channel: no process listens on the port in the pod
NO_ANSWER = "no-answer"  # no HTTP answer at all (timeout, TLS, refused)
OTHER = "other"
CAUSES = (FORBIDDEN, UNAUTHORIZED, POD_GONE, KUBELET, UPGRADE, NOTHING_LISTENS, NO_ANSWER, OTHER)

SPDY = "SPDY/3.1"
STREAM_PROTOCOL = "portforward.k8s.io"
_MAX_HEAD = 16384
_MAX_BODY = 4096


class TunnelError(Exception):
    """The tunnel did not open (or broke); ``cause`` is one of :data:`CAUSES`."""

    def __init__(self, cause: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.status = status


def _path(namespace: str, pod: str, port: int) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/portforward?ports={port}"


def classify(status: int, body: str) -> TunnelError:
    """An upgrade's failure answer, by its status and the Status message kube-apiserver puts in the body."""
    message = body
    with contextlib.suppress(ValueError, AttributeError):
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("kind") == "Status":
            message = str(doc.get("message") or body)
    message = " ".join(message.split())[:300]
    if status == 403:
        return TunnelError(FORBIDDEN, message, status)
    if status == 401:
        return TunnelError(UNAUTHORIZED, message, status)
    if status == 404:
        return TunnelError(POD_GONE, message, status)
    if "error dialing backend" in message or ":10250" in message:
        return TunnelError(KUBELET, message, status)
    if status in (400, 426, 502, 503):
        return TunnelError(UPGRADE, message or f"HTTP {status}", status)
    return TunnelError(OTHER, message or f"HTTP {status}", status)


# kube-apiserver's words when it cannot open the connection to the kubelet: "error dialing backend: dial tcp
# 10.0.1.23:10250: i/o timeout" (Go's net.Dial error; IPv6 addresses are bracketed).
_DIAL = re.compile(r"dial tcp (?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>\d+): (?P<why>[^;]*)")
_DIAL_HOW = (("i/o timeout", "timeout"), ("connection refused", "refused"), ("no route to host", "no-route"))


@dataclass(frozen=True)
class KubeletDial:
    """The dial the API server could not make: the node's address and port, and how it failed."""

    node_ip: str
    port: int
    how: str  # timeout (something drops the SYN) | refused (the node answered: nothing listens) | no-route | other

    def as_evidence(self) -> dict[str, Any]:
        return {"node_ip": self.node_ip, "kubelet_port": self.port, "kubelet_dial": self.how}


def kubelet_dial(detail: str) -> KubeletDial | None:
    """The node address and failure an `error dialing backend` message names; None when it names none."""
    m = _DIAL.search(detail)
    if m is None:
        return None
    why = m.group("why").lower()
    how = next((short for words, short in _DIAL_HOW if words in why), "other")
    return KubeletDial(m.group("v4") or m.group("v6"), int(m.group("port")), how)


@contextlib.contextmanager
def forward(api: KubeAPI, namespace: str, pod: str, port: int, timeout: float) -> Iterator[spdy.PortStream]:
    """A SPDY/3.1 port-forward to ``pod:port``: yields the port's data stream, used like a socket.

    The connect, TLS, upgrade and both streams' replies share one ``timeout``; the stream's reads then take the
    caller's. On exit (also on error) the connection is closed. Raises :class:`TunnelError`."""
    deadline = time.monotonic() + timeout
    endpoint = api.endpoint()
    try:
        sock = api.dial(timeout)
    except (OSError, ssl.SSLError) as exc:
        raise TunnelError(NO_ANSWER, f"no connection to the API server: {exc}") from None
    with sock:
        rest = _upgrade(endpoint, sock, endpoint.base_path + _path(namespace, pod, port), deadline, timeout)
        stream = spdy.PortStream(sock, rest, timeout)
        try:
            stream.open(port, deadline)
        except OSError as exc:
            text = stream.error_text()
            if text:
                raise TunnelError(NOTHING_LISTENS, text) from None
            raise TunnelError(
                OTHER,
                f"the API server accepted the {SPDY} upgrade but not the port's streams within {timeout:g}s: "
                f"{exc or type(exc).__name__}",
            ) from None
        try:
            yield stream
        finally:
            stream.close()


def _upgrade(endpoint: Endpoint, sock: ssl.SSLSocket, path: str, deadline: float, timeout: float) -> bytes:
    """Send the upgrade Meshery's client sends; on ``101`` return what followed the head (the first frames),
    else raise the answer's :func:`classify`."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {endpoint.netloc}",
        "Connection: Upgrade",
        f"Upgrade: {SPDY}",
        f"X-Stream-Protocol-Version: {STREAM_PROTOCOL}",
        "Content-Length: 0",
        "User-Agent: meshery-preflight",
        *(f"{k}: {v}" for k, v in endpoint.headers.items()),
    ]
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head, rest = _read_head(sock, deadline)
    except (OSError, TimeoutError) as exc:
        raise TunnelError(NO_ANSWER, f"no answer to the {SPDY} upgrade within {timeout:g}s ({exc})") from None
    status, headers = _parse_head(head)
    if status == 101:
        return rest
    body = rest
    length = int(headers.get("content-length", "0") or 0) if headers.get("content-length", "").isdigit() else 0
    with contextlib.suppress(OSError, TimeoutError):
        while len(body) < min(length, _MAX_BODY) and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    raise classify(status, body[:_MAX_BODY].decode(errors="replace"))


def _read_head(sock: ssl.SSLSocket, deadline: float) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed before an answer")
        buf += chunk
        if len(buf) > _MAX_HEAD:
            raise OSError("oversized answer head")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode(errors="replace").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers
