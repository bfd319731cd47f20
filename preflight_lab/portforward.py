"""``pods/portforward`` as kube-apiserver serves it: a WebSocket tunnel to a pod's port, or a SPDY upgrade.

The WebSocket side speaks the channel protocol the Kubernetes clients use (``v4.channel.k8s.io``): every
binary frame starts with a channel byte (``2*i`` data, ``2*i+1`` error for the *i*-th port), and the
server's first frame on each channel carries the port number (2 bytes, little-endian). Data is relayed to
the address the lab says the pod's port really is (a real nats-server); when nothing listens there, the
port's error channel says so in the kubelet's words. A SPDY/3.1 upgrade (what Meshery's Go client and
older kubectl send) is answered with ``101 Switching Protocols`` and then closed: the lab does not speak SPDY.

Only the framing is written here; what a request may do (authentication, RBAC, the pod, the knobs) is
decided by :mod:`preflight_lab.apiserver`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
from collections.abc import Mapping
from typing import BinaryIO

__all__ = ["SPDY_PROTOCOL", "STREAM_PROTOCOL", "WS_PROTOCOL", "accept_key", "relay_websocket", "refused_text"]

WS_PROTOCOL = "v4.channel.k8s.io"
SPDY_PROTOCOL = "SPDY/3.1"
STREAM_PROTOCOL = "portforward.k8s.io"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_FRAME = 4 * 1024 * 1024
_CONNECT_TIMEOUT_S = 2.0


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip().encode() + _GUID).digest()).decode()


def refused_text(port: int, pod_uid: str) -> str:
    """What the kubelet writes on a port's error channel when nothing listens on it in the pod."""
    netns = f"/var/run/netns/cni-{pod_uid[:8]}"
    return (
        f"an error occurred forwarding {port} -> {port}: error forwarding port {port} to pod {pod_uid}, uid : "
        f'failed to execute portforward in network namespace "{netns}": failed to connect to localhost:{port} '
        f'inside namespace "{pod_uid}", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused '
        f"IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
    )


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: final, unmasked."""
    head = bytes((0x80 | opcode,))
    n = len(payload)
    if n < 126:
        return head + bytes((n,)) + payload
    if n < 1 << 16:
        return head + bytes((126,)) + struct.pack("!H", n) + payload
    return head + bytes((127,)) + struct.pack("!Q", n) + payload


def _read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


def _read_frame(rfile: BinaryIO) -> tuple[int, bytes]:
    """One client frame (masked, as RFC 6455 requires of clients); fragments are returned as they come."""
    b0, b1 = _read_exact(rfile, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(rfile, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(rfile, 8))[0]
    if n > _MAX_FRAME:
        raise EOFError
    mask = _read_exact(rfile, 4) if b1 & 0x80 else b""
    payload = _read_exact(rfile, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


class _Writer:
    """Frames from two threads (the pod's side and the control answers) never interleave."""

    def __init__(self, wfile: BinaryIO) -> None:
        self._wfile = wfile
        self._lock = threading.Lock()

    def send(self, opcode: int, payload: bytes) -> None:
        with self._lock:
            self._wfile.write(_frame(opcode, payload))
            self._wfile.flush()


def relay_websocket(
    rfile: BinaryIO,
    wfile: BinaryIO,
    conn: socket.socket,
    ports: list[int],
    targets: Mapping[int, tuple[str, int]],
    pod_uid: str,
) -> None:
    """After the 101: announce each port on its two channels, then relay until either side closes.

    ``targets`` maps a pod port to where it really listens; a port without one (or whose target refuses)
    gets the kubelet's error on its error channel and a close, as a pod where nothing listens does.
    """
    out = _Writer(wfile)
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        out.send(_OP_BINARY, bytes((2 * i,)) + prefix)
        out.send(_OP_BINARY, bytes((2 * i + 1,)) + prefix)
    upstream: dict[int, socket.socket] = {}
    try:
        for i, port in enumerate(ports):
            target = targets.get(port)
            try:
                if target is None:
                    raise ConnectionRefusedError
                upstream[i] = socket.create_connection(target, timeout=_CONNECT_TIMEOUT_S)
                upstream[i].settimeout(None)
            except OSError:
                out.send(_OP_BINARY, bytes((2 * i + 1,)) + refused_text(port, pod_uid).encode())
                out.send(_OP_CLOSE, struct.pack("!H", 1000))
                return
        for i, sock in upstream.items():
            threading.Thread(target=_pump, args=(sock, out, i, conn), name="lab-portforward-pump", daemon=True).start()
        _from_client(rfile, out, upstream)
    finally:
        for sock in upstream.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pump(sock: socket.socket, out: _Writer, index: int, conn: socket.socket) -> None:
    """The pod's bytes to the client, on the port's data channel; the pod hanging up ends the tunnel."""
    channel = bytes((2 * index,))
    try:
        while chunk := sock.recv(65536):
            out.send(_OP_BINARY, channel + chunk)
        out.send(_OP_CLOSE, struct.pack("!H", 1000))
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RD)


def _from_client(rfile: BinaryIO, out: _Writer, upstream: Mapping[int, socket.socket]) -> None:
    while True:
        try:
            opcode, payload = _read_frame(rfile)
        except (EOFError, OSError, ValueError):
            return
        if opcode == _OP_CLOSE:
            with contextlib.suppress(OSError, ValueError):
                out.send(_OP_CLOSE, payload[:2])
            return
        if opcode == _OP_PING:
            out.send(_OP_PONG, payload)
        elif opcode in (_OP_BINARY, _OP_CONT, _OP_TEXT) and payload:
            sock = upstream.get(payload[0] // 2)
            if sock is not None and payload[0] % 2 == 0 and len(payload) > 1:
                try:
                    sock.sendall(payload[1:])
                except OSError:
                    return
