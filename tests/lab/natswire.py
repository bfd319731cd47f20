"""The few NATS protocol lines the lab tests speak to a Broker by hand, and a refused-port probe."""

from __future__ import annotations

import json
import socket
from typing import Any


def nats_info(address: str, port: int) -> tuple[socket.socket, dict[str, Any]]:
    sock = socket.create_connection((address, port), timeout=5)
    line = sock.makefile("rb").readline()
    assert line.startswith(b"INFO "), line
    info: dict[str, Any] = json.loads(line[5:])
    return sock, info


def nats_handshake(address: str, port: int, token: str | None) -> bytes:
    """CONNECT (with ``token``) + PING; the server's first answer line (+OK is off: verbose false)."""
    sock, _ = nats_info(address, port)
    with sock:
        connect: dict[str, Any] = {"verbose": False, "pedantic": False, "name": "lab-test", "lang": "python"}
        if token is not None:
            connect["auth_token"] = token
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        return sock.makefile("rb").readline().strip()


def port_closed(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
