"""A minimal HTTP CONNECT proxy on loopback, so tests can prove `proxy-url` and HTTPS_PROXY are used.

It can also fail as real proxies do: an ACL that forbids the destination (403), a proxy that wants
credentials (407), and an upstream it cannot reach (502, or any status it is told to answer). An echoing
proxy puts the whole request, Proxy-Authorization included, in its error page, written with bare LF line
ends as some hand-made error pages are: what a client quotes from such a page leaks the credential.
It resolves names from its own table (``hosts``), as a corporate proxy resolves internal names the client
cannot, so a test reaches a lab API server by a name its certificate covers without any system lookup.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
from collections.abc import Mapping
from socketserver import StreamRequestHandler, ThreadingTCPServer

from preflight_lab.addresses import require_loopback
from preflight_lab.serving import LabServer


class _Tunnel(StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").strip()
        headers: dict[str, str] = {}
        raw_head: list[str] = []
        while (raw := self.rfile.readline(4096)) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
            raw_head.append(raw.decode("latin-1").rstrip("\r\n"))
        method, _, rest = line.partition(" ")
        target = rest.split(" ")[0]
        host, _, port = target.rpartition(":")
        self.server.log_connect(target)
        if method != "CONNECT" or not host:
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        expected = self.server.credentials
        if expected is not None and headers.get("proxy-authorization") != _basic(*expected):
            self._refuse("407 Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="lab"', line, raw_head)
            return
        if self.server.answer is not None:
            self._refuse(self.server.answer, None, line, raw_head)
            return
        name = host.strip("[]")
        try:
            address = require_loopback(self.server.hosts.get(name.lower(), name))
            upstream = socket.create_connection((address, int(port)), timeout=5)
        except (OSError, ValueError):
            self._refuse("502 Bad Gateway", None, line, raw_head)
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            self._pump(self.connection, upstream)

    def _refuse(self, status: str, header: str | None, line: str, raw_head: list[str]) -> None:
        if not self.server.echo:
            extra = f"{header}\r\n" if header else ""
            self.wfile.write(f"HTTP/1.1 {status}\r\n{extra}\r\n".encode())
            return
        page = [f"<html><body><h1>{status}</h1><pre>", "Your request:", line, *raw_head, "</pre></body></html>"]
        body = "\n".join(page)
        head = [f"HTTP/1.0 {status}", *([header] if header else []), "Content-Type: text/html", "Connection: close"]
        self.wfile.write(("\n".join(head) + "\n\n" + body + "\n").encode("latin-1"))

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
    # A fleet's clusters ask at once: the default backlog of 5 drops SYNs, which reads as a filtered port.
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: LabProxy) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Tunnel)
        self.answer, self.credentials, self.echo = proxy.answer, proxy.credentials, proxy.echo
        self.hosts = {k.lower(): v for k, v in proxy.hosts.items()}
        self.connects: list[str] = []
        self._lock = threading.Lock()

    def log_connect(self, target: str) -> None:
        with self._lock:
            self.connects.append(target)


class LabProxy(LabServer):
    """Tunnels only to loopback addresses; records every CONNECT target.

    ``answer`` (e.g. ``"403 Forbidden"``) is the status line every CONNECT gets instead of a tunnel, as
    from a proxy whose ACL forbids it or that cannot reach upstream; ``credentials`` (user, password)
    makes it answer 407 to any CONNECT without them. A tunnel it cannot open answers 502. ``echo`` makes
    every refusal an error page quoting the request; ``hosts`` (name -> loopback address) is its resolver.
    """

    thread_name = "lab-proxy"

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        answer: str | None = None,
        credentials: tuple[str, str] | None = None,
        echo: bool = False,
        hosts: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.host = require_loopback(host)
        self.port = 0
        self.answer, self.credentials, self.echo = answer, credentials, echo
        self.hosts = {name: require_loopback(address) for name, address in (hosts or {}).items()}
        self._server: _ProxyServer | None = None

    def _bind(self) -> list[socketserver.TCPServer]:
        self._server = _ProxyServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        return [self._server]

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def connects(self) -> list[str]:
        if self._server is None:
            return []
        with self._server._lock:
            return list(self._server.connects)
