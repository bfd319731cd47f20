"""Connections to a cluster's API server as its client reaches it, kept alive for the cluster's checks.

Requests go over this module's connections, not the kubernetes client's REST and urllib3 stack, which cost two
to three times the CPU per request (issue 21's fleet benchmark). The port-forward opens its upgrade over the same
:func:`dial`, so a request and a tunnel reach the API server the same way: direct, or through the context's HTTP
proxy with CONNECT, TLS with the context's server name.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preflight.engine.probes.addresses import hostport
from preflight.engine.probes.proxy import Proxy
from preflight.engine.probes.proxy import tunnel as proxy_tunnel

# An answer larger than this is refused rather than read into memory: a node list of a 5000-node cluster is
# about 60 MB without paging; a hostile or broken server must not exhaust the run's memory.
MAX_BODY = 256 << 20
_MAX_IDLE = 8  # checks ask several access reviews at once; fewer idle connections would re-handshake TLS
# A kept-alive connection the server closed meanwhile fails the next request at once, with one of these, before
# any answer: the request is sent again on a new connection, as urllib3's pool did.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class TransportError(Exception):
    """The request never got an HTTP answer: TLS failure, timeout, refused, proxy error."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one API server: its address, TLS settings, proxy and credential header."""

    host: str
    port: int
    base_path: str  # the server URL's path (a Rancher-style proxy: /k8s/clusters/c-x), "" for most
    server_name: str  # what TLS sends as SNI and checks the certificate against
    tls: ssl.SSLContext = field(repr=False)
    proxy: Proxy | None
    headers: Mapping[str, str] = field(repr=False)  # Authorization, when the context has a bearer token

    @property
    def netloc(self) -> str:
        return hostport(self.host, self.port)


def tls_context(
    ca_pem: bytes | None, insecure: bool, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> ssl.SSLContext:
    """The context's TLS as its client sets it up: the kubeconfig's CA (else the system's trust store), no
    verification with insecure-skip-tls-verify, the client certificate when there is one. ssl loads a key only
    from a file: it lives in a private directory just long enough to be read. Raises ssl.SSLError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_pem:
        ctx.load_verify_locations(cadata=ca_pem.decode(errors="replace"))
    else:
        ctx.load_default_certs()
    if cert_pem and key_pem:
        with tempfile.TemporaryDirectory(prefix="mpf-tls-") as tmp:
            cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            cert.write_bytes(cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(key_pem)
            ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def dial(ep: Endpoint, timeout: float, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    """TLS to the API server, through the context's proxy (HTTP CONNECT) when it has one, within ``timeout``
    for the connect and again for the handshake; ``session`` resumes an earlier connection's TLS session (the
    server may decline). Raises OSError (ProxyError, ssl.SSLError, TimeoutError...)."""
    if ep.proxy is not None:
        # A socks5:// proxy gets HTTP CONNECT too and fails saying so (kube-api.tls names it), never bypassed.
        raw = proxy_tunnel(ep.proxy, ep.host, ep.port, timeout)
    else:
        raw = socket.create_connection((ep.host, ep.port), timeout=timeout)
    try:
        # As Go's net package and urllib3 do: without it, a request written right after the handshake waits for
        # the server's delayed ACK of our last handshake record (Nagle), 40 ms per new connection on Linux.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(timeout)
        return ep.tls.wrap_socket(raw, server_hostname=ep.server_name, session=session)
    except BaseException:
        raw.close()
        raise


def _why(ep: Endpoint, exc: BaseException, connect_timeout: float, read_timeout: float, connected: bool) -> str:
    """A transport failure in the words an operator acts on: where it failed and what the system said."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {ep.netloc} failed: {text}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        if connected:
            return f"no answer from {ep.netloc} within {read_timeout:g}s (read timeout)"
        return f"no connection to {ep.netloc} within {connect_timeout:g}s (connect timeout)"
    if not connected:
        return f"cannot connect to {ep.netloc}: {text}"
    return f"the connection to {ep.netloc} broke: {text}"


class _Connection(http.client.HTTPConnection):
    """http.client's HTTP/1.1 (keep-alive, chunked answers) over :func:`dial`'s socket."""

    default_port = 443

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool.endpoint.host, pool.endpoint.port, timeout=pool.connect_timeout)
        self.pool = pool

    def connect(self) -> None:
        self.sock = self.pool.dial(self.timeout if self.timeout is not None else 10.0)


class Pool:
    """One cluster's kept-alive connections: a request takes an idle one or opens one; at most eight wait idle.

    A new connection resumes the TLS session of one that already answered: the server skips its signature and
    we the chain's verification (about a third of a handshake's CPU on each side)."""

    def __init__(self, ep: Endpoint, connect_timeout: float) -> None:
        self.endpoint = ep
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._session: ssl.SSLSession | None = None

    def dial(self, timeout: float) -> ssl.SSLSocket:
        """A new connection to the API server, as this pool's are made (for a tunnel of one's own, too)."""
        return dial(self.endpoint, timeout, self._session)

    def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str], read_timeout: float
    ) -> tuple[int, bytes]:
        """Status and body of one request. Raises :class:`TransportError` when no complete answer came."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                return self._exchange(conn, method, path, body, headers, read_timeout)
            except _Stale:
                pass
        return self._exchange(_Connection(self), method, path, body, headers, read_timeout)

    def _exchange(
        self,
        conn: _Connection,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        read_timeout: float,
    ) -> tuple[int, bytes]:
        reused = conn.sock is not None
        ep = self.endpoint
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(read_timeout)
            conn.request(method, ep.base_path + path, body=body, headers={**ep.headers, **headers})
            resp = conn.getresponse()
            data = resp.read(MAX_BODY + 1)
        except _STALE as exc:
            conn.close()
            if reused:
                raise _Stale from None
            raise TransportError(_why(ep, exc, self.connect_timeout, read_timeout, True)) from None
        except (OSError, http.client.HTTPException) as exc:
            connected = conn.sock is not None
            conn.close()
            raise TransportError(_why(ep, exc, self.connect_timeout, read_timeout, connected)) from None
        if len(data) > MAX_BODY:
            conn.close()
            raise TransportError(f"the answer from {ep.netloc} is larger than {MAX_BODY:,} bytes: not read")
        if self._session is None and isinstance(conn.sock, ssl.SSLSocket):
            self._session = conn.sock.session  # once: the getter costs a tenth of a millisecond
        if resp.will_close:
            conn.close()
        else:
            with self._lock:
                if self._closed or len(self._idle) >= _MAX_IDLE:
                    conn.close()
                else:
                    self._idle.append(conn)
        return resp.status, data

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.close()


class _Stale(Exception):
    """A kept-alive connection the server had closed: try once more on a new one."""
