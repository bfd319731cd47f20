"""Speak just enough NATS to tell a Broker from an imposter: read INFO, then CONNECT and PING.

Reads are bounded in time and size: a port that accepts but never speaks, or streams garbage,
must cost one deadline, not a hang or a memory spike. A Broker whose INFO says ``tls_required``
gets what NATS clients do: the plain INFO, then a verified TLS handshake, then CONNECT and PING.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

MAX_INFO_BYTES = 16 * 1024
MAX_REPLY_BYTES = 4096

# OpenSSL verify codes, grouped by the fix each needs.
_UNKNOWN_CA = {2, 18, 19, 20, 21, 27}  # no trusted issuer: unknown CA, self-signed, incomplete chain
_EXPIRED = {10}
_NOT_YET_VALID = {9}
_NAME_MISMATCH = {62, 64}  # hostname, IP address


class NotNats(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # silent | closed | not-nats | oversized


@dataclass(frozen=True)
class NatsInfo:
    version: str | None
    auth_required: bool
    tls_required: bool
    server_id: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class TrustSource:
    """Where the Broker's certificate may chain to: CA certificates (PEM), or None for the system store."""

    label: str
    ca_pem: bytes | None = field(default=None, repr=False)


SYSTEM_STORE = TrustSource("this machine's system trust store")


@dataclass(frozen=True)
class TlsPlan:
    """The name to verify (and send as SNI unless it is an address), and the trust sources in order."""

    server_name: str
    sources: tuple[TrustSource, ...] = (SYSTEM_STORE,)


@dataclass(frozen=True)
class PeerCert:
    """What a certificate says about itself: enough to name the fix, never its body."""

    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def from_der(cls, der: bytes) -> PeerCert:
        from cryptography import x509  # lazily: list-checks and explain import the probes

        cert = x509.load_der_x509_certificate(der)
        names: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
            names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        return cls(
            cert.subject.rfc4514_string(),
            cert.issuer.rfc4514_string(),
            tuple(names),
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )


@dataclass(frozen=True)
class TlsSession:
    version: str | None
    server_name: str
    trusted_by: str
    cert: PeerCert | None


class TlsFailure(Exception):
    """The upgrade to TLS failed; ``cause`` picks the fix.

    unknown-ca | name-mismatch | expired | not-yet-valid | untrusted (another verify error) |
    client-cert-required | handshake (no TLS session at all).
    """

    def __init__(self, cause: str, detail: str, server_name: str, tried: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.server_name = server_name
        self.tried = tried
        self.cert: PeerCert | None = None


@dataclass(frozen=True)
class AuthOutcome:
    answer: str  # "PONG" or the server's -ERR text
    tls: TlsSession | None = None


class _Lines:
    """Line reader over a socket that keeps what follows a line for the next read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self, deadline: float, limit: int) -> bytes:
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(4096)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk
            if len(self.buf) > limit:
                raise NotNats("oversized", f"sent {len(self.buf)} bytes without a line break: not a NATS INFO line")
        out, _, self.buf = self.buf.partition(b"\n")
        return out + b"\n"


def _connect(address: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def _parse_info(line: bytes) -> NatsInfo:
    text = line.split(b"\n", 1)[0].decode(errors="replace").strip()
    if not text:
        raise NotNats("closed", "accepted the connection and closed it without a word")
    if not text.startswith("INFO "):
        shown = text[:60].encode("unicode_escape").decode()
        raise NotNats("not-nats", f"answered {shown!r} instead of a NATS INFO line")
    try:
        data = json.loads(text[5:])
    except ValueError:
        raise NotNats("not-nats", "sent an INFO line whose JSON does not parse") from None
    if not isinstance(data, dict):
        raise NotNats("not-nats", "sent an INFO line that is not a JSON object")
    return NatsInfo(
        version=data.get("version"),
        auth_required=bool(data.get("auth_required")),
        tls_required=bool(data.get("tls_required")),
        server_id=data.get("server_id"),
        raw=data,
    )


def read_info(address: str, port: int, timeout: float) -> NatsInfo:
    deadline = time.monotonic() + timeout
    with _connect(address, port, timeout) as sock:
        try:
            line = _Lines(sock).line(deadline, MAX_INFO_BYTES)
        except TimeoutError:
            raise NotNats("silent", f"accepted the connection but said nothing within {timeout:g}s") from None
        return _parse_info(line)


def handshake(sock: Any, token: str | None, timeout: float) -> tuple[NatsInfo, AuthOutcome]:
    """INFO, then CONNECT (with the token) and PING, over a connection opened elsewhere (a port-forward's
    tunnel): the endpoint path's handshake, on another transport. A Broker that requires TLS is left there:
    its INFO says so and the answer is an -ERR naming it. Raises :class:`NotNats`."""
    deadline = time.monotonic() + timeout
    lines = _Lines(sock)
    try:
        info = _parse_info(lines.line(deadline, MAX_INFO_BYTES))
    except TimeoutError:
        raise NotNats("silent", f"said nothing within {timeout:g}s") from None
    if info.tls_required:
        return info, AuthOutcome("-ERR the Broker requires TLS (not tested through the port-forward)")
    return info, AuthOutcome(_connect_ping(lines, token, deadline, timeout))


def _connect_ping(lines: _Lines, token: str | None, deadline: float, timeout: float) -> str:
    opts: dict[str, Any] = {"verbose": False, "pedantic": False, "name": "meshery-preflight", "lang": "python"}
    if token:
        opts["auth_token"] = token
    lines.sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
    try:
        while True:
            line = lines.line(deadline, MAX_REPLY_BYTES).decode(errors="replace").strip()
            if not line:
                return "-ERR connection closed"
            if line.startswith(("PONG", "-ERR")):
                return line
            # +OK, INFO updates or PINGs may arrive first.
            if line == "PING":
                lines.sock.sendall(b"PONG\r\n")
    except TimeoutError:
        return f"-ERR no PONG within {timeout:g}s"


def _sni(name: str) -> str:
    """The name as ssl wants it: an IPv6 literal without brackets (an address is matched, never sent as SNI)."""
    return name.strip("[]")


def _context(source: TrustSource) -> ssl.SSLContext:
    """Verification on, always: certificate chain and host name."""
    if source.ca_pem:
        return ssl.create_default_context(cadata=source.ca_pem.decode(errors="replace"))
    return ssl.create_default_context()


def _cause(exc: ssl.SSLCertVerificationError) -> str:
    code = exc.verify_code
    if code in _UNKNOWN_CA:
        return "unknown-ca"
    if code in _NAME_MISMATCH:
        return "name-mismatch"
    if code in _EXPIRED:
        return "expired"
    if code in _NOT_YET_VALID:
        return "not-yet-valid"
    return "untrusted"


def _ssl_cause(exc: ssl.SSLError) -> str:
    return "client-cert-required" if "CERTIFICATE_REQUIRED" in str(exc.reason or exc) else "handshake"


def _upgrade(
    raw: socket.socket, lines: _Lines, plan: TlsPlan, context: ssl.SSLContext, trusted_by: str, deadline: float
) -> tuple[ssl.SSLSocket, TlsSession]:
    """TLS on the connection that sent the plain INFO, as NATS clients do; bounded by the same deadline."""
    tls = context.wrap_socket(raw, server_hostname=_sni(plan.server_name), do_handshake_on_connect=False)
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError()
        tls.settimeout(remaining)
        tls.do_handshake()
        der = tls.getpeercert(binary_form=True)
    except BaseException:
        tls.close()
        raise
    lines.sock, lines.buf = tls, b""
    return tls, TlsSession(tls.version(), plan.server_name, trusted_by, PeerCert.from_der(der) if der else None)


def _over_tls(
    raw: socket.socket,
    lines: _Lines,
    plan: TlsPlan,
    source: TrustSource,
    token: str | None,
    deadline: float,
    timeout: float,
    tried: list[str],
) -> AuthOutcome:
    """One attempt with one trust source, recorded in ``tried``; raises :class:`TlsFailure`."""
    name = plan.server_name
    try:
        context = _context(source)
    except (ssl.SSLError, ValueError) as exc:
        tried.append(f"{source.label}, whose certificates do not load,")
        raise TlsFailure("unknown-ca", f"{source.label}: {exc}", name, tuple(tried)) from None
    tried.append(source.label)
    try:
        tls_sock, session = _upgrade(raw, lines, plan, context, source.label, deadline)
        with tls_sock:
            return AuthOutcome(_connect_ping(lines, token, deadline, timeout), session)
    except ssl.SSLCertVerificationError as exc:
        raise TlsFailure(_cause(exc), exc.verify_message or str(exc), name, tuple(tried)) from None
    except ssl.SSLError as exc:
        raise TlsFailure(_ssl_cause(exc), str(exc.reason or exc), name, tuple(tried)) from None
    except TimeoutError:
        raise TlsFailure("handshake", f"no TLS handshake within {timeout:g}s", name, tuple(tried)) from None


def _peek_certificate(address: str, port: int, server_name: str, timeout: float) -> PeerCert | None:
    """The certificate a failed verification rejected, for evidence only: no CONNECT, no token, closed at once."""
    deadline = time.monotonic() + timeout
    look = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    look.check_hostname = False
    look.verify_mode = ssl.CERT_NONE  # read, never trusted: nothing is sent over this connection
    try:
        with _connect(address, port, timeout) as raw:
            _parse_info(_Lines(raw).line(deadline, MAX_INFO_BYTES))
            with look.wrap_socket(raw, server_hostname=_sni(server_name), do_handshake_on_connect=False) as tls:
                tls.settimeout(max(deadline - time.monotonic(), 0.001))
                tls.do_handshake()
                der = tls.getpeercert(binary_form=True)
                return PeerCert.from_der(der) if der else None
    except (OSError, ValueError, NotNats):
        return None


def exchange(address: str, port: int, token: str | None, timeout: float, tls: TlsPlan | None = None) -> AuthOutcome:
    """CONNECT (with the token) and PING, over verified TLS when the INFO requires it.

    Each connection (INFO, handshake, PONG) has ``timeout`` as its deadline. Trust sources are tried
    in order, a new connection each, only while the chain's issuer is unknown; any other verify
    error is the answer. Raises :class:`TlsFailure`, carrying the rejected certificate's facts.
    """
    plan = tls or TlsPlan(address)
    pending = list(plan.sources) or [SYSTEM_STORE]
    tried: list[str] = []
    while True:
        source = pending.pop(0)
        deadline = time.monotonic() + timeout
        with _connect(address, port, timeout) as raw:
            lines = _Lines(raw)
            try:
                info = _parse_info(lines.line(deadline, MAX_INFO_BYTES))
            except TimeoutError:
                return AuthOutcome(f"-ERR no INFO within {timeout:g}s")
            if not info.tls_required:
                return AuthOutcome(_connect_ping(lines, token, deadline, timeout))
            try:
                return _over_tls(raw, lines, plan, source, token, deadline, timeout, tried)
            except TlsFailure as exc:
                failure = exc
        if failure.cause == "unknown-ca" and pending:
            continue
        if failure.cause not in ("handshake", "client-cert-required"):
            failure.cert = _peek_certificate(address, port, plan.server_name, timeout)
        raise failure


def authenticate(address: str, port: int, token: str | None, timeout: float, tls: TlsPlan | None = None) -> str:
    """CONNECT (with the token) and PING; returns "PONG" or the server's -ERR text."""
    return exchange(address, port, token, timeout, tls).answer
