"""A fake Kubernetes API server that speaks enough of the real wire protocol for real clients.

Preflight checks must be exercised against something that behaves like a cluster (TLS, bearer and
client-certificate auth, RBAC, discovery, Status bodies) without a cluster. ``FakeKubeAPI`` is a
real HTTPS server on a loopback address, so the code under test runs its ordinary network path.
It never mutates anything: any write is logged and refused with 405, and the request log lets a
test prove the tool under test never tried one.

This module is the HTTP side (TLS, authentication, routing, review answers, Status bodies); it asks
:mod:`preflight_lab.rbac` what a user may do, serves :mod:`preflight_lab.store`'s objects and filters
lists with :mod:`preflight_lab.kube_selectors`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import re
import socket
import socketserver
import ssl
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from preflight_lab.addresses import require_loopback
from preflight_lab.certs import CertKeyPair, server_ssl_context
from preflight_lab.kube_selectors import field_selector_matches, label_selector_matches
from preflight_lab.portforward import (
    SPDY_PROTOCOL,
    STREAM_PROTOCOL,
    WS_PROTOCOL,
    accept_key,
    relay_spdy,
    relay_websocket,
)
from preflight_lab.rbac import ANONYMOUS, CLUSTER_ADMIN, RBAC, Identity, ResourceAttributes, Rule
from preflight_lab.realistic import AGGREGATED_DISCOVERY, RealisticProfile
from preflight_lab.serving import LabServer, quiet_bind
from preflight_lab.store import ObjectStore, ResourceRegistry, ResourceType

__all__ = [
    "DEFAULT_VERSION",
    "REVIEW_RESOURCES",
    "FakeKubeAPI",
    "RequestRecord",
    "is_portforward_request",
    "is_review_request",
    "status_body",
    "version_info",
    # Moved to rbac, store and kube_selectors; still importable from here so existing imports keep working.
    "CLUSTER_ADMIN",
    "RBAC",
    "Identity",
    "ObjectStore",
    "ResourceAttributes",
    "ResourceRegistry",
    "ResourceType",
    "Rule",
    "field_selector_matches",
    "label_selector_matches",
]

DEFAULT_VERSION = "v1.30.4-eks-a737599"

# Creating these asks the server a question; it changes nothing in the cluster.
REVIEW_RESOURCES: frozenset[str] = frozenset(
    {
        "selfsubjectaccessreviews",
        "selfsubjectreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "tokenreviews",
    }
)
_REVIEW_GROUPS = ("authentication.k8s.io", "authorization.k8s.io")
_READ_METHODS = frozenset({"GET", "HEAD"})

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify the client chain but not its dates, so an expired client
# certificate reaches the authenticator and gets a 401, as from kube-apiserver, not a TLS alert.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000
_HANDSHAKE_TIMEOUT_S = 10.0
_IDLE_TIMEOUT_S = 120.0
_MAX_BODY = 3 * 1024 * 1024


# --------------------------------------------------------------------------------------------------
# Wire helpers


def version_info(git_version: str = DEFAULT_VERSION, **overrides: str) -> dict[str, str]:
    """The ``/version`` document. EKS-style builds (``-eks-``) report their minor with a ``+``."""
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)(.*)$", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("", "")
    if m and "-eks-" in m.group(4):
        minor += "+"
    go = "go1.16.15" if m and int(minor.rstrip("+")) <= 21 else "go1.22.5"
    info = {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": hashlib.sha1(git_version.encode()).hexdigest(),
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T07:26:38Z",
        "goVersion": go,
        "compiler": "gc",
        "platform": "linux/amd64",
    }
    info.update(overrides)
    return info


def status_body(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``Status`` failure document, the body of every kube-apiserver error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = dict(details)
    return body


def is_review_request(method: str, path: str) -> bool:
    """A POST that asks a question (access, identity or token review) rather than changing state."""
    if method != "POST":
        return False
    parts = [p for p in path.split("/") if p]
    return len(parts) >= 4 and parts[0] == "apis" and parts[1] in _REVIEW_GROUPS and parts[-1] in REVIEW_RESOURCES


_PORTFORWARD_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/portforward/?$")
# What a proxy in front of the API server answers when it strips or refuses the Upgrade (upgrade_stripped_by).
_PROXY_ANSWERS = {
    400: ("Bad Request", "<html><head><title>400 Bad Request</title></head><body>400 Bad Request</body></html>"),
    426: ("Upgrade Required", "upgrade required"),
    502: ("Bad Gateway", "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"),
}
KUBELET_STATES = ("reachable", "timeout", "refused")


def is_portforward_request(method: str, path: str) -> bool:
    """A connect to a pod's port (GET for WebSocket, POST for SPDY): a tunnel, not a change to any object."""
    return method in ("GET", "POST") and _PORTFORWARD_PATH.match(path) is not None


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered. ``path`` excludes the query string."""

    method: str
    path: str
    username: str | None
    status: int
    query: str = ""

    @property
    def mutating(self) -> bool:
        return (
            self.method not in _READ_METHODS
            and not is_review_request(self.method, self.path)
            and not is_portforward_request(self.method, self.path)
        )


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, doc: Mapping[str, Any]) -> _Response:
    return _Response(status, json.dumps(doc, separators=(",", ":")).encode())


def _failure(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> _Response:
    return _json(code, status_body(code, reason, message, details))


_UNAUTHORIZED_DOC = status_body(401, "Unauthorized", "Unauthorized")
_NOT_FOUND_TEXT = _Response(404, b"404 page not found\n", "text/plain; charset=utf-8")


def _not_found_resource() -> _Response:
    return _failure(404, "NotFound", "the server could not find the requested resource", {})


@dataclass(frozen=True)
class _PeerCert:
    identity: Identity
    not_before: _dt.datetime
    not_after: _dt.datetime

    @classmethod
    def parse(cls, der: bytes) -> _PeerCert | None:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cns:
            return None
        orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        identity = Identity(str(cns[0].value), tuple(str(o.value) for o in orgs))
        return cls(identity, cert.not_valid_before_utc, cert.not_valid_after_utc)

    def valid_now(self) -> bool:
        return self.not_before <= _dt.datetime.now(_dt.timezone.utc) <= self.not_after


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


class _LabHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does the TLS handshake in the worker thread, not the accept loop.

    Doing it on accept (the usual wrap-the-listener recipe) would let one slow or broken client stall
    every other connection, which would make latency measurements against the lab meaningless.
    """

    daemon_threads = True
    block_on_close = False  # stop() drops connections itself; never wait on a client's idle keep-alive
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], api: FakeKubeAPI, context: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        self.ssl_context = context
        self._conns: set[ssl.SSLSocket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        quiet_bind(self)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw = cast(socket.socket, request)
        raw.settimeout(_HANDSHAKE_TIMEOUT_S)
        try:
            tls = self.ssl_context.wrap_socket(raw, server_side=True)
        except (OSError, ValueError):
            # Failed handshakes (wrong CA, unknown client CA, port scans) are the client's story to tell.
            self.api._count_handshake_failure()
            raw.close()
            return
        with self._conns_lock:
            self._conns.add(tls)
        try:
            _Handler(tls, client_address, self)
        except OSError:
            pass
        finally:
            with self._conns_lock:
                self._conns.discard(tls)
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients hanging up mid-request are normal in tests and benchmarks."""

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT_S
    # Headers and body leave as separate writes; with Nagle on, the client's delayed ACK adds ~40 ms
    # to every response and the latency check would measure the lab, not the path.
    disable_nagle_algorithm = True
    server: _LabHTTPServer
    peer_cert: _PeerCert | None

    def setup(self) -> None:
        super().setup()
        der = cast(ssl.SSLSocket, self.request).getpeercert(binary_form=True)
        self.peer_cert = _PeerCert.parse(der) if der else None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        """Silence the default stderr access log; the API keeps its own structured log."""

    def send_response(self, code: int, message: str | None = None) -> None:
        # No Server header: kube-apiserver sends none, and tools should not learn it is a lab.
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        api = self.server.api
        split = urlsplit(self.path)
        path = split.path or "/"
        if is_portforward_request(self.command, path):
            self._portforward(path, split.query)
            return
        body = self._read_body()
        if body is None:
            self.close_connection = True
            resp, username = _failure(413, "RequestEntityTooLarge", "request entity too large"), None
        else:
            resp, username = api._dispatch(
                self.command,
                path,
                split.query,
                self.headers.get("Authorization"),
                body,
                self.peer_cert,
                accept=self.headers.get("Accept") or "",
            )
        api._record(RequestRecord(self.command, path, username, resp.status, split.query))
        api._delay()
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        profile = api.profile
        chunked = profile is not None and len(resp.body) > profile.chunk_after
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for name, value in {**(profile.headers() if profile else {}), **resp.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(resp.body), resp.body))
        else:
            self.wfile.write(resp.body)

    def _answer(self, resp: _Response, extra: Mapping[str, str] | None = None) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(resp.body)

    def _portforward(self, path: str, query: str) -> None:
        """Answer a port-forward connect: an error as the API server (or a proxy before it) sends one, or the
        101 and then the tunnel (WebSocket or SPDY/3.1)."""
        api = self.server.api
        self.close_connection = True
        upgrade = self.headers.get("Upgrade", "").strip().lower()
        decision, username, target = api._portforward_decision(
            path, query, self.headers.get("Authorization"), self.peer_cert, upgrade
        )
        if decision is not None:
            api._record(RequestRecord(self.command, path, username, decision.status, query))
            self._answer(decision)
            return
        api._record(RequestRecord(self.command, path, username, 101, query))
        assert target is not None
        if upgrade == "websocket":
            offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept_key(self.headers.get("Sec-WebSocket-Key", "")))
            if WS_PROTOCOL in offered:
                self.send_header("Sec-WebSocket-Protocol", WS_PROTOCOL)
            self.end_headers()
            self.wfile.flush()
            ports, targets, uid = target
            self.request.settimeout(None)
            relay_websocket(self.rfile, self.wfile, self.request, ports, targets, uid)  # type: ignore[arg-type]
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", SPDY_PROTOCOL)
        self.send_header("X-Stream-Protocol-Version", STREAM_PROTOCOL)
        self.end_headers()
        self.wfile.flush()
        _ports, targets, uid = target
        self.request.settimeout(None)
        relay_spdy(self.rfile, self.wfile, targets, uid)  # type: ignore[arg-type]

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve


# --------------------------------------------------------------------------------------------------
# The server


class FakeKubeAPI(LabServer):
    """A loopback HTTPS Kubernetes API server with real TLS, authn, RBAC, discovery and REST reads.

    Knobs (``latency_ms``, ``selfsubjectreview``, ``tokens``, ``rbac``, ``store``) may be changed
    while it runs. ``start()``/``stop()`` or ``with FakeKubeAPI(...) as api:``; ``port`` is the
    bound port once started.
    """

    def __init__(
        self,
        server_cert: CertKeyPair,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_ca_pem: bytes | None = None,
        tokens: Mapping[str, Identity] | None = None,
        rbac: RBAC | None = None,
        version: str = DEFAULT_VERSION,
        version_overrides: Mapping[str, str] | None = None,
        latency_ms: float = 0.0,
        selfsubjectreview: bool = True,
        allow_anonymous: bool = False,
        resources: Iterable[ResourceType] = (),
        objects: Iterable[Mapping[str, Any]] = (),
        profile: RealisticProfile | None = None,
    ) -> None:
        """``profile``: answer discovery, paged lists and headers as heavily as a real cluster (the bench's lab)."""
        super().__init__()
        self.profile = profile
        require_loopback(host)
        self.server_cert = server_cert
        self.host = host
        self.port = port
        self.client_ca_pem = client_ca_pem
        self.tokens: dict[str, Identity] = dict(tokens or {})
        self.rbac = rbac if rbac is not None else RBAC()
        self.version = version
        self.version_overrides = dict(version_overrides or {})
        self.latency_ms = latency_ms
        self.selfsubjectreview = selfsubjectreview
        self.allow_anonymous = allow_anonymous
        self.resources = ResourceRegistry()
        self.store = ObjectStore(self.resources)
        self.handshake_failures = 0
        # pods/portforward: where each pod's ports really listen ((namespace, pod) -> {port: (host, port)}),
        # whether the control plane reaches the node's kubelet (KUBELET_STATES), and the status a proxy in front
        # of the API answers an Upgrade with (400, 426, 502; None: no such proxy).
        self.pod_ports: dict[tuple[str, str], dict[int, tuple[str, int]]] = {}
        self.kubelet = "reachable"
        self.upgrade_stripped_by: int | None = None
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._httpd: _LabHTTPServer | None = None
        self.thread_name = f"lab-apiserver-{host}"
        for rt in resources:
            self.register_resource(rt)
        for obj in objects:
            self.store.put(obj)

    # -- configuration -------------------------------------------------------------------------

    def add_token(self, token: str, identity: Identity) -> None:
        self.tokens[token] = identity

    def register_resource(self, rt: ResourceType) -> None:
        """Serve a kind; custom kinds also get their CustomResourceDefinition object, as on a cluster."""
        self.resources.register(rt)
        if not rt.custom:
            return
        self.store.put(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{rt.plural}.{rt.group}"},
                "spec": {
                    "group": rt.group,
                    "names": {
                        "kind": rt.kind,
                        "listKind": f"{rt.kind}List",
                        "plural": rt.plural,
                        "singular": rt.singular,
                        **({"shortNames": list(rt.short_names)} if rt.short_names else {}),
                    },
                    "scope": "Namespaced" if rt.namespaced else "Cluster",
                    "versions": [{"name": rt.version, "served": True, "storage": True}],
                },
                "status": {"conditions": [{"type": "Established", "status": "True"}]},
            }
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    # -- request log -------------------------------------------------------------------------------

    def requests(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def mutating_requests(self) -> list[RequestRecord]:
        """Requests other than reads and access/identity reviews: the tool must send none."""
        return [r for r in self.requests() if r.mutating]

    def _record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._log.append(record)

    def _count_handshake_failure(self) -> None:
        with self._log_lock:
            self.handshake_failures += 1

    def _delay(self) -> None:
        if self.latency_ms > 0:
            self.stopping.wait(self.latency_ms / 1000.0)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = server_ssl_context(self.server_cert)
        # Go clients (kubectl, Meshery Server) offer h2 first; this server speaks HTTP/1.1 only.
        ctx.set_alpn_protocols(["http/1.1"])
        if self.client_ca_pem:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cadata=self.client_ca_pem.decode())
            ctx.verify_flags = ctx.verify_flags | _X509_V_FLAG_NO_CHECK_TIME
        return ctx

    def _bind(self) -> list[socketserver.TCPServer]:
        self._httpd = _LabHTTPServer((self.host, self.port), self, self._ssl_context())
        self.port = self._httpd.server_address[1]
        return [self._httpd]

    def _stopped(self) -> None:
        """Open keep-alive connections are dropped too: stop() returns in milliseconds."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.close_connections()

    def __repr__(self) -> str:
        return f"FakeKubeAPI({self.url}, version={self.version!r}, running={self.running})"

    # -- authentication ----------------------------------------------------------------------------

    def _authenticate(self, authorization: str | None, peer: _PeerCert | None) -> Identity | None:
        """Union authenticator in kube-apiserver's order: x509 first, then bearer tokens.

        Credentials that were offered and failed mean 401 (None); offering nothing means
        anonymous when ``allow_anonymous`` is on.
        """
        if peer is not None and peer.valid_now():
            return peer.identity
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return self.tokens.get(token.strip())
            return None
        if peer is not None:
            return None
        return ANONYMOUS if self.allow_anonymous else None

    # -- dispatch ----------------------------------------------------------------------------------

    def _dispatch(
        self,
        method: str,
        path: str,
        query: str,
        authorization: str | None,
        body: bytes,
        peer: _PeerCert | None,
        accept: str = "",
    ) -> tuple[_Response, str | None]:
        identity = self._authenticate(authorization, peer)
        username = identity.username if identity else None
        if method not in _READ_METHODS and not is_review_request(method, path):
            return _failure(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            ), username
        if identity is None:
            return _json(401, _UNAUTHORIZED_DOC), None
        try:
            if method == "POST":
                return self._review(identity, path, body), username
            return self._read(identity, path, parse_qs(query), accept), username
        except Exception as exc:  # a lab bug must surface as a 500, not a dropped connection
            return _failure(500, "InternalError", f"Internal error occurred: {exc!r}"), username

    def _portforward_decision(
        self, path: str, query: str, authorization: str | None, peer: _PeerCert | None, upgrade: str
    ) -> tuple[_Response | None, str | None, tuple[list[int], dict[int, tuple[str, int]], str] | None]:
        """The answer to a port-forward connect that is not a tunnel (None when it is), the user, and the tunnel's
        ports, their real addresses and the pod's uid."""
        if self.upgrade_stripped_by is not None:
            reason, text = _PROXY_ANSWERS.get(self.upgrade_stripped_by, ("Bad Gateway", "bad gateway"))
            return _Response(self.upgrade_stripped_by, text.encode(), "text/html"), None, None
        identity = self._authenticate(authorization, peer)
        if identity is None:
            return _json(401, _UNAUTHORIZED_DOC), None, None
        m = _PORTFORWARD_PATH.match(path)
        assert m is not None
        namespace, name = m.group(1), m.group(2)
        attrs = ResourceAttributes("create", "pods", "", namespace, name, "portforward")
        if not self.rbac.allows(identity, attrs):
            return self._forbidden(identity, attrs), identity.username, None
        rt = self.resources.by_kind("v1", "Pod")
        pod = self.store.get(rt, name, namespace) if rt is not None else None
        if pod is None:
            return (
                _failure(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}),
                (identity.username),
                None,
            )
        if upgrade not in ("websocket", SPDY_PROTOCOL.lower()):
            return _failure(400, "BadRequest", "Upgrade request required"), identity.username, None
        if self.kubelet != "reachable":
            node_ip = str((pod.get("status") or {}).get("hostIP") or "10.0.1.23")
            why = "i/o timeout" if self.kubelet == "timeout" else "connect: connection refused"
            message = f"error dialing backend: dial tcp {node_ip}:10250: {why}"
            return _failure(500, "InternalError", message), identity.username, None
        ports = [int(p) for v in parse_qs(query).get("ports", []) for p in v.split(",") if p.strip().isdigit()]
        if not ports and upgrade == "websocket":  # SPDY clients name their ports in stream headers instead
            return _failure(400, "BadRequest", 'query parameter "port" is required'), identity.username, None
        uid = str((pod.get("metadata") or {}).get("uid") or uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}"))
        return None, identity.username, (ports, dict(self.pod_ports.get((namespace, name), {})), uid)

    def _forbidden_path(self, identity: Identity, verb: str, path: str) -> _Response:
        return _failure(403, "Forbidden", f'forbidden: User "{identity.username}" cannot {verb} path "{path}"', {})

    def _forbidden(self, identity: Identity, attrs: ResourceAttributes) -> _Response:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        what = f'{attrs.resource} "{attrs.name}"' if attrs.name else attrs.resource
        where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        message = (
            f'{what} is forbidden: User "{identity.username}" cannot {attrs.verb} resource "{resource}" '
            f'in API group "{attrs.group}" {where}'
        )
        details: dict[str, Any] = {"group": attrs.group, "kind": attrs.resource}
        if attrs.name:
            details["name"] = attrs.name
        return _failure(403, "Forbidden", message, details)

    def _read(self, identity: Identity, path: str, query: dict[str, list[str]], accept: str = "") -> _Response:
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            if not self.rbac.allows_path(identity, "get", path):
                return self._forbidden_path(identity, "get", path)
            if path.rstrip("/") == "/version":
                return _json(200, version_info(self.version, **self.version_overrides))
            if path in ("/healthz", "/livez", "/readyz"):
                return _Response(200, b"ok", "text/plain; charset=utf-8")
            return _NOT_FOUND_TEXT
        if parts[0] == "api":
            prefix, group, rest = 2, "", parts[1:]
        else:
            prefix, group, rest = 3, (parts[1] if len(parts) > 1 else ""), parts[2:]
        if len(parts) < prefix:  # /api, /apis, /apis/<group>: discovery
            if not self.rbac.allows_path(identity, "get", path):
                return self._forbidden_path(identity, "get", path)
            return self._discovery(parts, accept)
        version = rest[0]
        if len(parts) == prefix:
            if not self.rbac.allows_path(identity, "get", path):
                return self._forbidden_path(identity, "get", path)
            return self._resource_list(group, version)
        return self._rest_read(identity, group, version, parts[prefix:], query)

    # -- discovery ---------------------------------------------------------------------------------

    def _served(self, rt: ResourceType) -> bool:
        return self.selfsubjectreview or not (rt.group == "authentication.k8s.io" and rt.plural == "selfsubjectreviews")

    def _group_doc(self, group: str, versions: Sequence[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _discovery(self, parts: Sequence[str], accept: str = "") -> _Response:
        if self.profile is not None:
            doc = self.profile.discovery(parts, self.resources, f"{self.host}:{self.port}", accept)
            if doc is None:
                return _not_found_resource()
            resp = _json(200, doc)
            if doc["kind"] == "APIGroupDiscoveryList":
                resp.content_type = AGGREGATED_DISCOVERY
            return resp
        if parts == ["api"]:
            return _json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                    ],
                },
            )
        groups = self.resources.group_versions()
        if parts == ["apis"]:
            docs = [self._group_doc(g, vs) for g, vs in groups.items()]
            return _json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": docs})
        if len(parts) == 2 and parts[1] in groups:
            return _json(200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(parts[1], groups[parts[1]])})
        return _not_found_resource()

    def _resource_list(self, group: str, version: str) -> _Response:
        if self.profile is not None:
            doc = self.profile.resource_list(group, version, self.resources)
            return _not_found_resource() if doc is None else _json(200, doc)
        types = [rt for rt in self.resources.all() if rt.group == group and rt.version == version and self._served(rt)]
        if not types:
            return _not_found_resource()
        group_version = f"{group}/{version}" if group else version
        return _json(
            200,
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": [rt.discovery() for rt in types],
            },
        )

    # -- REST reads --------------------------------------------------------------------------------

    def _rest_read(
        self, identity: Identity, group: str, version: str, parts: Sequence[str], query: dict[str, list[str]]
    ) -> _Response:
        namespace = ""
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        plural, name, sub = parts[0], "", ""
        if len(parts) >= 2:
            name = parts[1]
        if len(parts) == 3:
            sub = parts[2]
        if len(parts) > 3:
            return _not_found_resource()
        rt = self.resources.by_plural(group, version, plural)
        if rt is None or not self._served(rt) or (namespace and not rt.namespaced):
            return _not_found_resource()
        if rt.namespaced and name and not namespace:
            return _not_found_resource()  # /api/v1/pods/<name> does not exist
        watch = query.get("watch", [""])[0] in ("1", "true")
        verb = "watch" if watch else ("get" if name else "list")
        attrs = ResourceAttributes(verb, plural, group, namespace, name, sub)
        if not self.rbac.allows(identity, attrs):
            return self._forbidden(identity, attrs)
        if verb not in rt.verbs or watch or (sub and sub != "status"):
            return _failure(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )
        if name:
            obj = self.store.get(rt, name, namespace)
            if obj is None:
                details: dict[str, Any] = {"name": name, "kind": plural}
                if group:
                    details["group"] = group
                return _failure(404, "NotFound", f'{plural}{"." + group if group else ""} "{name}" not found', details)
            return _json(200, obj)
        try:
            items = self.store.list(rt, namespace if rt.namespaced and namespace else None)
            if labels := query.get("labelSelector", [""])[0]:
                items = [o for o in items if label_selector_matches(labels, o["metadata"].get("labels") or {})]
            if fields := query.get("fieldSelector", [""])[0]:
                items = [o for o in items if field_selector_matches(fields, o)]
        except ValueError as exc:
            return _failure(400, "BadRequest", str(exc))
        if not rt.custom:
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        list_meta: dict[str, Any] = {"resourceVersion": self.store.resource_version}
        if self.profile is not None and (limit := query.get("limit", [""])[0]):
            items, more = self.profile.page(items, limit, list_meta["resourceVersion"])
            list_meta.update(more)
        return _json(
            200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": list_meta, "items": items}
        )

    # -- reviews -----------------------------------------------------------------------------------

    def _review(self, identity: Identity, path: str, body: bytes) -> _Response:
        parts = [p for p in path.split("/") if p]
        group, version, plural = parts[1], parts[2], parts[-1]
        namespace = parts[4] if len(parts) == 6 and parts[3] == "namespaces" else ""
        rt = self.resources.by_plural(group, version, plural)
        if rt is None or not self._served(rt) or len(parts) not in (4, 6) or rt.namespaced != bool(namespace):
            return _not_found_resource()
        attrs = ResourceAttributes("create", plural, group, namespace)
        if not self.rbac.allows(identity, attrs):
            return self._forbidden(identity, attrs)
        try:
            doc = json.loads(body or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("body is not an object")
        except ValueError as exc:
            return _failure(400, "BadRequest", f"the body of the request was in an unknown format: {exc}")
        spec = doc.get("spec") or {}
        reply: dict[str, Any] = {
            "kind": rt.kind,
            "apiVersion": rt.api_version,
            "metadata": {"creationTimestamp": None, **({"namespace": namespace} if namespace else {})},
        }
        if plural == "selfsubjectreviews":
            reply["status"] = {"userInfo": self._user_info(identity)}
        elif plural == "tokenreviews":
            found = self.tokens.get(str(spec.get("token", "")))
            reply["spec"] = spec
            reply["status"] = {"authenticated": True, "user": self._user_info(found)} if found else {}
        elif plural == "selfsubjectrulesreviews":
            reply["spec"] = spec
            reply["status"] = self._rules_status(identity, str(spec.get("namespace") or ""))
        else:
            subject = identity
            if plural != "selfsubjectaccessreviews":
                subject = Identity(str(spec.get("user", "")), tuple(spec.get("groups") or ()), str(spec.get("uid", "")))
            status = self._access_status(subject, spec, namespace)
            if isinstance(status, _Response):
                return status
            reply["spec"] = spec
            reply["status"] = status
        return _json(201, reply)

    @staticmethod
    def _user_info(identity: Identity) -> dict[str, Any]:
        info: dict[str, Any] = {"username": identity.username, "groups": list(identity.effective_groups)}
        if identity.uid:
            info["uid"] = identity.uid
        return info

    def _access_status(self, subject: Identity, spec: Mapping[str, Any], namespace: str) -> dict[str, Any] | _Response:
        res, non_res = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if bool(res) == bool(non_res) or not isinstance(res or non_res, Mapping):
            return _failure(
                422,
                "Invalid",
                "spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes "
                "or resourceAttributes must be specified",
            )
        if isinstance(res, Mapping):
            attrs = ResourceAttributes(
                verb=str(res.get("verb", "")),
                resource=str(res.get("resource", "")),
                group=str(res.get("group", "")),
                namespace=namespace or str(res.get("namespace", "")),
                name=str(res.get("name", "")),
                subresource=str(res.get("subresource", "")),
            )
            allowed = self.rbac.allows(subject, attrs)
        else:
            non = cast(Mapping[str, Any], non_res)
            allowed = self.rbac.allows_path(subject, str(non.get("verb", "")), str(non.get("path", "")))
        if not allowed:
            return {"allowed": False}
        if self.rbac.is_superuser(subject):
            return {"allowed": True}
        return {"allowed": True, "reason": f'RBAC: allowed by lab rules bound to User "{subject.username}"'}

    def _rules_status(self, identity: Identity, namespace: str) -> dict[str, Any]:
        resource_rules: list[dict[str, Any]] = []
        non_resource_rules: list[dict[str, Any]] = []
        for rule in self.rbac.rules_for(identity):
            if not rule.applies_in(namespace):
                continue
            if rule.non_resource_urls:
                non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
            else:
                entry: dict[str, Any] = {
                    "verbs": list(rule.verbs),
                    "apiGroups": list(rule.api_groups),
                    "resources": list(rule.resources),
                }
                if rule.resource_names:
                    entry["resourceNames"] = list(rule.resource_names)
                resource_rules.append(entry)
        return {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}
