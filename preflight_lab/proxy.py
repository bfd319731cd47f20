"""A minimal HTTP CONNECT proxy on loopback, so tests can prove `proxy-url` and HTTPS_PROXY are used."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from socketserver import StreamRequestHandler, ThreadingTCPServer

from preflight_lab.addresses import require_loopback
from preflight_lab.serving import LabServer


class _Tunnel(StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").strip()
        while self.rfile.readline(4096) not in (b"\r\n", b"\n", b""):
            pass
        method, _, rest = line.partition(" ")
        target = rest.split(" ")[0]
        host, _, port = target.rpartition(":")
        self.server.log_connect(target)
        if method != "CONNECT" or not host:
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
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


class _ProxyServer(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Tunnel)
        self.connects: list[str] = []
        self._lock = threading.Lock()

    def log_connect(self, target: str) -> None:
        with self._lock:
            self.connects.append(target)


class LabProxy(LabServer):
    """Tunnels only to loopback addresses; records every CONNECT target."""

    thread_name = "lab-proxy"

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = require_loopback(host)
        self.port = 0
        self._server: _ProxyServer | None = None

    def _bind(self) -> list[socketserver.TCPServer]:
        self._server = _ProxyServer((self.host, self.port))
        self.port = self._server.server_address[1]
        return [self._server]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connects(self) -> list[str]:
        if self._server is None:
            return []
        with self._server._lock:
            return list(self._server.connects)
