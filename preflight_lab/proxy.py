"""A minimal HTTP CONNECT proxy on loopback, so tests can prove `proxy-url` and HTTPS_PROXY are used.

It can also fail as real proxies do: an ACL that forbids the destination (403), a proxy that wants
credentials (407), and an upstream it cannot reach (502, or any status it is told to answer).
"""

from __future__ import annotations

import base64
import select
import socket
import threading
from socketserver import StreamRequestHandler, ThreadingTCPServer

from preflight_lab.apiserver import require_loopback


class _Tunnel(StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").strip()
        headers: dict[str, str] = {}
        while (raw := self.rfile.readline(4096)) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        method, _, rest = line.partition(" ")
        target = rest.split(" ")[0]
        host, _, port = target.rpartition(":")
        self.server.log_connect(target)
        if method != "CONNECT" or not host:
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        expected = self.server.credentials
        if expected is not None and headers.get("proxy-authorization") != _basic(*expected):
            self.wfile.write(
                b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="lab"\r\n\r\n'
            )
            return
        if self.server.answer is not None:
            self.wfile.write(f"HTTP/1.1 {self.server.answer}\r\n\r\n".encode())
            return
        try:
            require_loopback(host.strip("[]"))
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        except (OSError, ValueError):
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            self._pump(self.connection, upstream)

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        socks = [a, b]
        while True:
            ready, _, _ = select.select(socks, [], [], 10)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _ProxyServer(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], answer: str | None, credentials: tuple[str, str] | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Tunnel)
        self.answer = answer
        self.credentials = credentials
        self.connects: list[str] = []
        self._lock = threading.Lock()

    def log_connect(self, target: str) -> None:
        with self._lock:
            self.connects.append(target)


class LabProxy:
    """Tunnels only to loopback addresses; records every CONNECT target.

    ``answer`` (e.g. ``"403 Forbidden"``) is the status line every CONNECT gets instead of a tunnel, as
    from a proxy whose ACL forbids it or that cannot reach upstream; ``credentials`` (user, password)
    makes it answer 407 to any CONNECT without them. A tunnel it cannot open answers 502.
    """

    def __init__(
        self, host: str = "127.0.0.1", *, answer: str | None = None, credentials: tuple[str, str] | None = None
    ) -> None:
        self._server = _ProxyServer((require_loopback(host), 0), answer, credentials)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def connects(self) -> list[str]:
        with self._server._lock:
            return list(self._server.connects)

    def __enter__(self) -> LabProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="lab-proxy")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
