"""A port-forward to a pod through the cluster's API server, as Meshery Server opens one to its Broker.

Two ways in, both read-only in effect (a tunnel, no object changes): the WebSocket port-forward of the
Kubernetes Python client (its ``PortForward`` channel protocol over a WebSocket we open with our deadline,
TLS and credentials from the client's configuration), and the SPDY/3.1 upgrade Meshery's Go client sends,
where the ``101 Switching Protocols`` answer is all we need. An answer other than the upgrade is classified
(:data:`CAUSES`) so each failure can name its own fix. A tunnel is always closed, and its relay thread gone,
before :func:`tunnel` returns.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from preflight.engine.kube import KubeAPI
from preflight.engine.probes.proxy import Proxy
from preflight.engine.probes.proxy import tunnel as proxy_tunnel

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

WS_PROTOCOLS = "v4.channel.k8s.io"
SPDY = "SPDY/3.1"
STREAM_PROTOCOL = "portforward.k8s.io"
_MAX_HEAD = 16384
_CLOSE_WAIT_S = 3.5  # the client's websocket close waits up to 3 s for the server's close frame


class TunnelError(Exception):
    """The tunnel did not open (or broke); ``cause`` is one of :data:`CAUSES`."""

    def __init__(self, cause: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Upgrade:
    """What the API server (or a proxy before it) answered an upgrade request with."""

    status: int
    protocol: str  # the Upgrade header of the answer
    body: str


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


def _ssl_context(conf: Any) -> ssl.SSLContext:
    """The client's TLS settings (CA, client certificate, verification) as an SSLContext."""
    ctx = ssl.create_default_context(cafile=conf.ssl_ca_cert) if conf.ssl_ca_cert else ssl.create_default_context()
    if not conf.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif conf.assert_hostname is False:
        ctx.check_hostname = False
    if conf.cert_file:
        ctx.load_cert_chain(conf.cert_file, conf.key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _auth_headers(api: KubeAPI) -> dict[str, str]:
    client = api.client()
    headers: dict[str, str] = {}
    client.update_params_for_auth(headers, [], ["BearerToken"])
    return {k.lower(): v for k, v in headers.items()}


def _target(api: KubeAPI) -> tuple[str, int, str, Any]:
    conf = api.client().configuration
    parts = urlsplit(conf.host)
    host = parts.hostname or ""
    return host, parts.port or 443, conf.tls_server_name or host, conf


def _dial(api: KubeAPI, timeout: float) -> tuple[ssl.SSLSocket, Any]:
    """TLS to the API server as the client reaches it: through the context's HTTP proxy (CONNECT) when it has one."""
    host, port, server_name, conf = _target(api)
    proxy_url = api.target.proxy_url
    if proxy_url and Proxy.from_url(proxy_url).scheme in ("http", "https"):
        raw = proxy_tunnel(Proxy.from_url(proxy_url), host, port, timeout)
    else:
        raw = socket.create_connection((host, port), timeout=timeout)
    try:
        raw.settimeout(timeout)
        tls = _ssl_context(conf).wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise
    return tls, conf


def spdy_upgrade(api: KubeAPI, namespace: str, pod: str, port: int, timeout: float) -> Upgrade:
    """Send the SPDY/3.1 upgrade Meshery's client sends and read the answer's head (and a short body); then close.

    Raises :class:`TunnelError` (NO_ANSWER) when no HTTP answer comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        sock, conf = _dial(api, timeout)
    except (OSError, ssl.SSLError) as exc:
        raise TunnelError(NO_ANSWER, f"no connection to the API server: {exc}") from None
    with sock:
        host = urlsplit(conf.host).netloc
        lines = [
            f"POST {_path(namespace, pod, port)} HTTP/1.1",
            f"Host: {host}",
            "Connection: Upgrade",
            f"Upgrade: {SPDY}",
            f"X-Stream-Protocol-Version: {STREAM_PROTOCOL}",
            "Content-Length: 0",
            "User-Agent: meshery-preflight",
            *(f"{k.title()}: {v}" for k, v in _auth_headers(api).items()),
        ]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head, rest = _read_head(sock, deadline)
        except (OSError, TimeoutError) as exc:
            raise TunnelError(NO_ANSWER, f"no answer to the SPDY upgrade within {timeout:g}s ({exc})") from None
        status, headers = _parse_head(head)
        body = rest
        length = int(headers.get("content-length", "0") or 0) if status != 101 else 0
        with contextlib.suppress(OSError, TimeoutError):
            while len(body) < min(length, 4096) and time.monotonic() < deadline:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
        return Upgrade(status, headers.get("upgrade", ""), body.decode(errors="replace"))


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


@contextlib.contextmanager
def tunnel(api: KubeAPI, namespace: str, pod: str, port: int, timeout: float) -> Iterator[Any]:
    """A WebSocket port-forward to ``pod:port``: yields a socket-like end of the tunnel.

    The WebSocket is opened with ``timeout`` for the connect and the handshake; the Kubernetes client's
    ``PortForward`` relays the channels. On exit (also on error) the tunnel is closed and its relay
    thread has ended, or the connection was cut so that it ends. Raises :class:`TunnelError`.
    """
    import websocket
    from kubernetes.stream.ws_client import PortForward

    host, api_port, _server_name, _conf = _target(api)
    try:
        sock, _conf = _dial(api, timeout)
    except (OSError, ssl.SSLError) as exc:
        raise TunnelError(NO_ANSWER, f"no connection to the API server: {exc}") from None
    ws = websocket.WebSocket(skip_utf8_validation=True)
    headers = [f"{k}: {v}" for k, v in _auth_headers(api).items()]
    url = f"wss://{host if ':' not in host else f'[{host}]'}:{api_port}{_path(namespace, pod, port)}"
    try:
        ws.connect(url, socket=sock, header=headers, subprotocols=[WS_PROTOCOLS], timeout=timeout)
    except websocket.WebSocketBadStatusException as exc:
        sock.close()
        body = exc.resp_body.decode(errors="replace") if isinstance(exc.resp_body, bytes) else str(exc.resp_body or "")
        raise classify(exc.status_code, body) from None
    except (websocket.WebSocketException, OSError) as exc:
        sock.close()
        raise TunnelError(NO_ANSWER, f"no WebSocket upgrade within {timeout:g}s: {exc}") from None
    ws.settimeout(timeout)
    forward = PortForward(ws, [port])
    end = forward.socket(port)
    try:
        yield _End(end, forward, port)
    finally:
        _close(ws, end)


class _End:
    """The tunnel's local end, with the port's error channel."""

    def __init__(self, sock: Any, forward: Any, port: int) -> None:
        self.sock = sock
        self._forward = forward
        self._port = port

    def error(self) -> str | None:
        text = self._forward.error(self._port)
        return " ".join(str(text).split()) if text else None


def _close(ws: Any, end: Any) -> None:
    """End our side (the relay then closes the WebSocket and returns); cut the connection if it lingers."""
    with contextlib.suppress(OSError):
        end.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + _CLOSE_WAIT_S
    while ws.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    if ws.connected and ws.sock is not None:
        with contextlib.suppress(OSError):
            ws.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 1.0
        while ws.connected and time.monotonic() < deadline:
            time.sleep(0.01)
    with contextlib.suppress(OSError):
        end.close()
