"""HTTP CONNECT tunnels, and why a proxy did not open one (its ACL, its authentication, its own reach)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from preflight.engine.probes.addresses import hostport
from preflight.engine.redact import REDACTED, basic_credential, credential_forms

# Why a proxy did not open the tunnel.
UNREACHABLE = "unreachable"  # no TCP connection to the proxy itself
ACL = "acl"  # 403: the proxy's rules forbid this destination or port
AUTH = "auth"  # 407: the proxy wants credentials (or rejected the ones given)
UPSTREAM = "upstream"  # 502/503/504: the proxy could not reach the API itself
REFUSED = "refused"  # any other status
NO_ANSWER = "no-answer"  # closed or silent instead of an HTTP answer: not an HTTP proxy

_BY_STATUS = {403: ACL, 407: AUTH, 502: UPSTREAM, 503: UPSTREAM, 504: UPSTREAM}
_MAX_HEAD = 8192
# Of a proxy's answer only the status line is shown, and only this much of it: some proxies echo the request,
# Proxy-Authorization included, in their error page (some with bare LF line ends, which a CRLF split misses).
_MAX_STATUS_LINE = 80


@dataclass(frozen=True)
class Proxy:
    """A proxy URL split into what a tunnel needs; `label` never carries the password (the user name stays)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        scheme = parts.scheme or "http"
        port = parts.port or (443 if scheme == "https" else 1080 if scheme.startswith("socks") else 80)
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(scheme, parts.hostname or "", port, user, password)

    @property
    def endpoint(self) -> str:
        return hostport(self.host, self.port)

    @property
    def authorization(self) -> str | None:
        """The Proxy-Authorization value Go's client (and so kubectl and Meshery) sends for the URL's user."""
        if self.username is None:
            return None
        return f"Basic {basic_credential(self.username, self.password or '')}"

    def secrets(self) -> list[str]:
        """Every form of the URL's credential the tool derives, to register with the redactor."""
        return credential_forms(self.username, self.password) if self.password else []

    @property
    def label(self) -> str:
        if not self.username:
            return f"{self.scheme}://{self.endpoint}"
        secret = f":{REDACTED}" if self.password else ""
        return f"{self.scheme}://{self.username}{secret}@{self.endpoint}"


class ProxyError(OSError):
    """The proxy did not open the tunnel; `kind` says why, `status` is its HTTP status when it answered."""

    def __init__(self, proxy: Proxy, target: str, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.proxy, self.target, self.kind, self.status, self.detail = proxy, target, kind, status, detail

    def __str__(self) -> str:
        if self.kind == UNREACHABLE:
            return f"proxy {self.proxy.endpoint} is unreachable: {self.detail}"
        return f"proxy {self.proxy.endpoint} refused the tunnel to {self.target}: {self.detail}"


def status_line(answer: bytes) -> str:
    """The first line of a peer's answer, printable and bounded: never its headers or body."""
    first = re.split(rb"[\r\n]", answer, maxsplit=1)[0].decode("latin-1").strip()
    shown = "".join(c if c.isprintable() else "?" for c in first)
    return shown if len(shown) <= _MAX_STATUS_LINE else shown[: _MAX_STATUS_LINE - 1] + "…"


def _status(line: str) -> int | None:
    parts = line.split(" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith("HTTP/") and parts[1].isdigit() else None


def tunnel(proxy: Proxy, address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to address:port through the proxy's CONNECT, as Go's and kubectl's clients open it."""
    target = hostport(address, port)
    try:
        raw = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except OSError as exc:
        raise ProxyError(proxy, target, UNREACHABLE, exc.strerror or str(exc) or type(exc).__name__) from None
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if proxy.authorization is not None:
        head += f"Proxy-Authorization: {proxy.authorization}\r\n"
    answer = b""
    try:
        raw.sendall((head + "\r\n").encode())
        while b"\n\r\n" not in answer and b"\n\n" not in answer and len(answer) < _MAX_HEAD:
            chunk = raw.recv(1024)
            if not chunk:
                break
            answer += chunk
    except OSError as exc:
        raw.close()
        raise ProxyError(proxy, target, NO_ANSWER, f"no answer to CONNECT ({exc.strerror or exc})") from None
    line = status_line(answer)
    status = _status(line)
    if status == 200:
        return raw
    raw.close()
    if status is None:
        what = f"answered {line[:40]!r}" if line else "closed the connection"
        raise ProxyError(proxy, target, NO_ANSWER, f"{what} instead of an HTTP CONNECT answer")
    raise ProxyError(proxy, target, _BY_STATUS.get(status, REFUSED), line, status)
