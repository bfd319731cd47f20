"""apiconn against a scripted TLS server on loopback: keep-alive, a server that closed an idle connection, the
server URL's path prefix, bounded answers, and the words of each transport failure."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from preflight.engine import apiconn
from preflight.engine.apiconn import Endpoint, Pool, TransportError, tls_context
from preflight.engine.kube import parse_body
from preflight.engine.probes.proxy import Proxy
from preflight_lab.certs import create_ca, server_ssl_context

CA = create_ca("apiconn-test-ca")
SERVER = CA.issue_server_cert("api", ip_addresses=["127.0.0.1"])


def _answer(body: bytes, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


@dataclass
class Scripted:
    """A TLS server whose connections each run ``serve(conn, index)``; it records request lines per connection."""

    serve: Callable[[ssl.SSLSocket, int, Scripted], None]
    port: int = 0
    requests: list[list[str]] = field(default_factory=list)
    _sock: socket.socket | None = None

    def read_request(self, conn: ssl.SSLSocket, index: int) -> str | None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next((int(v) for k, _, v in (ln.partition(": ") for ln in lines) if k.lower() == "content-length"), 0)
        while len(rest) < length:
            rest += conn.recv(4096)
        self.requests[index].append(lines[0])
        return lines[0]


@contextlib.contextmanager
def scripted(serve: Callable[[ssl.SSLSocket, int, Scripted], None]) -> Iterator[Scripted]:
    server = Scripted(serve)
    ctx = server_ssl_context(SERVER)
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]
    stop = threading.Event()

    listener.settimeout(0.05)

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)
            index = len(server.requests)
            server.requests.append([])

            def run(raw: socket.socket = raw, index: int = index) -> None:
                with contextlib.suppress(OSError), ctx.wrap_socket(raw, server_side=True) as conn:
                    serve(conn, index, server)

            threading.Thread(target=run, daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def _endpoint(port: int, base: str = "", ca_pem: bytes = CA.cert_pem, token: str | None = "lab-token") -> Endpoint:
    return Endpoint(
        host="127.0.0.1",
        port=port,
        base_path=base.rstrip("/"),
        server_name="127.0.0.1",
        tls=tls_context(ca_pem, insecure=False),
        proxy=None,
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )


def test_requests_share_one_kept_alive_connection_and_carry_the_token_and_path_prefix(tmp_path: Path) -> None:
    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        while srv.read_request(conn, index) is not None:
            conn.sendall(_answer(b'{"ok": true}'))

    with scripted(serve) as srv:
        pool = Pool(_endpoint(srv.port, "/k8s/clusters/c-1/"), 2.0)
        for path in ("/version", "/api", "/apis"):
            status, body = pool.request("GET", path, None, {}, 2.0)
            assert (status, body) == (200, b'{"ok": true}')
        pool.close()
    assert srv.requests == [
        [
            "GET /k8s/clusters/c-1/version HTTP/1.1",
            "GET /k8s/clusters/c-1/api HTTP/1.1",
            "GET /k8s/clusters/c-1/apis HTTP/1.1",
        ]
    ]


def test_the_bearer_token_is_sent(tmp_path: Path) -> None:
    heads: list[bytes] = []

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        heads.append(buf)
        conn.sendall(_answer(b"{}", close=True))

    with scripted(serve) as srv:
        Pool(_endpoint(srv.port), 2.0).request("GET", "/version", None, {"Accept": "application/json"}, 2.0)
    assert b"\r\nAuthorization: Bearer lab-token\r\n" in heads[0]
    assert b"\r\nAccept: application/json\r\n" in heads[0]


def test_an_idle_connection_the_server_closed_is_replaced_once(tmp_path: Path) -> None:
    """A server closes a kept-alive connection after one answer (an idle timeout): the next request goes out again
    on a new connection instead of failing, as urllib3's pool did."""

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        if srv.read_request(conn, index) is not None:
            conn.sendall(_answer(b'{"n": %d}' % index))
        conn.shutdown(socket.SHUT_RDWR)

    with scripted(serve) as srv:
        pool = Pool(_endpoint(srv.port), 2.0)
        assert pool.request("GET", "/a", None, {}, 2.0) == (200, b'{"n": 0}')
        assert pool.request("GET", "/b", None, {}, 2.0) == (200, b'{"n": 1}')
    assert srv.requests == [["GET /a HTTP/1.1"], ["GET /b HTTP/1.1"]]


def test_a_server_that_never_answers_is_a_read_timeout(tmp_path: Path) -> None:
    release = threading.Event()

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        srv.read_request(conn, index)
        release.wait(5)

    with scripted(serve) as srv:
        with pytest.raises(TransportError) as err:
            Pool(_endpoint(srv.port), 2.0).request("GET", "/version", None, {}, 0.3)
        release.set()
    assert str(err.value) == f"no answer from 127.0.0.1:{srv.port} within 0.3s (read timeout)"


def test_refused_and_untrusted_say_where_and_why(tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(TransportError) as refused:
        Pool(_endpoint(port), 1.0).request("GET", "/", None, {}, 1.0)
    assert str(refused.value).startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert "Connection refused" in str(refused.value)

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        srv.read_request(conn, index)

    other = create_ca("someone-else")
    with scripted(serve) as srv:
        ep = _endpoint(srv.port, ca_pem=other.cert_pem)
        with pytest.raises(TransportError) as untrusted:
            Pool(ep, 1.0).request("GET", "/", None, {}, 1.0)
    assert str(untrusted.value).startswith(f"TLS with 127.0.0.1:{srv.port} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
    assert srv.requests == [[]]  # the handshake failed: no request was sent


def test_an_answer_over_the_bound_is_refused_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apiconn, "MAX_BODY", 1000)

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        if srv.read_request(conn, index) is not None:
            conn.sendall(_answer(b"x" * 5000))

    with scripted(serve) as srv, pytest.raises(TransportError) as err:
        Pool(_endpoint(srv.port), 2.0).request("GET", "/api/v1/nodes", None, {}, 2.0)
    assert "is larger than" in str(err.value)


def test_a_new_connection_resumes_the_tls_session_of_one_that_answered(tmp_path: Path) -> None:
    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        while srv.read_request(conn, index) is not None:
            conn.sendall(_answer(b"{}"))

    with scripted(serve) as srv:
        pool = Pool(_endpoint(srv.port), 2.0)
        first = pool.dial(2.0)
        assert not first.session_reused  # nothing to resume yet
        first.close()
        pool.request("GET", "/version", None, {}, 2.0)
        with pool.dial(2.0) as tunnel:
            assert tunnel.session_reused
        pool.close()


def test_answers_parse_as_json_or_stay_text() -> None:
    """orjson parses; what it refuses and json reads (NaN, invalid UTF-8 replaced) json reads; a page stays text."""
    assert parse_body(b"") is None
    assert parse_body(b'{"kind": "Status", "code": 403}') == {"kind": "Status", "code": 403}
    nan = parse_body(b'{"x": NaN}')["x"]
    assert nan != nan
    assert parse_body(b'{"s": "\xff"}') == {"s": "\ufffd"}
    assert parse_body(b"<html><title>502 Bad Gateway</title></html>") == "<html><title>502 Bad Gateway</title></html>"


def test_connections_do_not_wait_for_delayed_acks(tmp_path: Path) -> None:
    """TCP_NODELAY, as Go and urllib3 set it: a request written right after the handshake is not held back."""

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        srv.read_request(conn, index)

    with scripted(serve) as srv, Pool(_endpoint(srv.port), 2.0).dial(2.0) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_socks_proxy_is_never_bypassed(tmp_path: Path) -> None:
    """The tunnel speaks HTTP CONNECT only: a socks5:// proxy-url fails naming the proxy, and the API server,
    which would answer directly, sees no connection."""
    closed = socket.create_server(("127.0.0.1", 0))
    proxy_port = closed.getsockname()[1]
    closed.close()

    def serve(conn: ssl.SSLSocket, index: int, srv: Scripted) -> None:
        if srv.read_request(conn, index) is not None:
            conn.sendall(_answer(b"{}"))

    with scripted(serve) as srv:
        ep = dataclasses.replace(_endpoint(srv.port), proxy=Proxy.from_url(f"socks5://127.0.0.1:{proxy_port}"))
        with pytest.raises(TransportError) as err:
            Pool(ep, 1.0).request("GET", "/version", None, {}, 1.0)
    assert f"proxy 127.0.0.1:{proxy_port} is unreachable" in str(err.value)
    assert srv.requests == []
