"""Speak just enough NATS to tell a Broker from an imposter: read INFO, then CONNECT and PING.

Reads are bounded in time and size: a port that accepts but never speaks, or streams garbage,
must cost one deadline, not a hang or a memory spike.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

MAX_INFO_BYTES = 16 * 1024


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


def _read_line(sock: socket.socket, deadline: float, limit: int) -> bytes:
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError()
        sock.settimeout(remaining)
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise NotNats("oversized", f"sent {len(buf)} bytes without a line break: not a NATS INFO line")
    return buf


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
            line = _read_line(sock, deadline, MAX_INFO_BYTES)
        except TimeoutError:
            raise NotNats("silent", f"accepted the connection but said nothing within {timeout:g}s") from None
        return _parse_info(line)


def authenticate(address: str, port: int, token: str | None, timeout: float) -> str:
    """CONNECT (with the token) and PING; returns "PONG" or the server's -ERR text."""
    deadline = time.monotonic() + timeout
    with _connect(address, port, timeout) as sock:
        try:
            _parse_info(_read_line(sock, deadline, MAX_INFO_BYTES))
            opts: dict[str, Any] = {"verbose": False, "pedantic": False, "name": "meshery-preflight", "lang": "python"}
            if token:
                opts["auth_token"] = token
            sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
            while True:
                line = _read_line(sock, deadline, 4096).split(b"\n", 1)[0].decode(errors="replace").strip()
                if not line:
                    return "-ERR connection closed"
                if line.startswith(("PONG", "-ERR")):
                    return line
                # +OK, INFO updates or PINGs may arrive first.
                if line == "PING":
                    sock.sendall(b"PONG\r\n")
        except TimeoutError:
            return f"-ERR no PONG within {timeout:g}s"
