"""``pods/portforward`` as kube-apiserver serves it: a tunnel to a pod's port over WebSocket or SPDY/3.1.

The WebSocket side speaks the channel protocol the Kubernetes clients use (``v4.channel.k8s.io``): every
binary frame starts with a channel byte (``2*i`` data, ``2*i+1`` error for the *i*-th port), and the
server's first frame on each channel carries the port number (2 bytes, little-endian). Data is relayed to
the address the lab says the pod's port really is (a real nats-server); when nothing listens there, the
port's error channel says so in the kubelet's words.

The SPDY/3.1 side (what Meshery's Go client and older kubectl send) is the kubelet's half of client-go's
port-forward: the client opens an error stream and a data stream per port (headers ``streamtype``, ``port``,
``requestid``), each is answered with a SYN_REPLY, and once both of a request id are there the data stream is
relayed to the pod's real port; when nothing listens, the kubelet's error goes on the error stream and both
streams end. Header blocks are zlib streams read and written without SPDY's preset dictionary (what the tool
sends; a client compressing with the dictionary is not understood here).

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
import zlib
from collections.abc import Mapping
from typing import BinaryIO

__all__ = [
    "SPDY_PROTOCOL",
    "STREAM_PROTOCOL",
    "WS_PROTOCOL",
    "accept_key",
    "forward_error",
    "refused_text",
    "relay_spdy",
    "relay_websocket",
    "NODE_SOURCE",
    "dial_pod",
]

WS_PROTOCOL = "v4.channel.k8s.io"
SPDY_PROTOCOL = "SPDY/3.1"
STREAM_PROTOCOL = "portforward.k8s.io"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_FRAME = 4 * 1024 * 1024
_CONNECT_TIMEOUT_S = 2.0
# Where the lab's kubelet dials pods from: a node's traffic to its own pods, which never passes a load balancer.
# A test (or the benchmark) that filters a Broker's published address:4222 exempts this source, as a Service's
# loadBalancerSourceRanges or a security group in front of the load balancer would leave the port-forward alone.
NODE_SOURCE = "127.0.99.10"


def dial_pod(target: tuple[str, int]) -> socket.socket:
    """The kubelet's connection to a port in the pod: from :data:`NODE_SOURCE` (IPv4 pods)."""
    source = (NODE_SOURCE, 0) if ":" not in target[0] else None
    return socket.create_connection(target, timeout=_CONNECT_TIMEOUT_S, source_address=source)


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip().encode() + _GUID).digest()).decode()


def refused_text(port: int, pod_uid: str) -> str:
    """What a port's WebSocket error channel says when nothing listens on it in the pod."""
    return f"an error occurred forwarding {port} -> {port}: {forward_error(port, pod_uid)}"


def forward_error(port: int, pod_uid: str) -> str:
    """The kubelet's error when nothing listens on ``port`` in the pod (``error forwarding port ...``)."""
    netns = f"/var/run/netns/cni-{pod_uid[:8]}"
    return (
        f"error forwarding port {port} to pod {pod_uid}, uid : "
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
                upstream[i] = dial_pod(target)
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


# -- SPDY/3.1 ----------------------------------------------------------------------------------------

_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _PING, _GOAWAY = 1, 2, 3, 6, 7
_FIN = 0x01
_ID = 0x7FFFFFFF


class _SpdyWriter:
    """Frames from the pumps and the reader never interleave; header blocks share one zlib stream."""

    def __init__(self, wfile: BinaryIO) -> None:
        self._wfile = wfile
        self._lock = threading.Lock()
        self._zlib = zlib.compressobj()

    def _write(self, raw: bytes) -> None:
        with self._lock:
            self._wfile.write(raw)
            self._wfile.flush()

    def control(self, kind: int, payload: bytes, flags: int = 0) -> None:
        self._write(struct.pack("!HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload)

    def data(self, stream: int, payload: bytes, flags: int = 0) -> None:
        self._write(struct.pack("!II", stream, (flags << 24) | len(payload)) + payload)

    def reply(self, stream: int) -> None:
        with self._lock:  # the compressor's state and the frame order must agree
            block = self._zlib.compress(struct.pack("!I", 0)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
            payload = struct.pack("!I", stream) + block
            self._wfile.write(struct.pack("!HHI", 0x8003, _SYN_REPLY, len(payload)) + payload)
            self._wfile.flush()


def _spdy_frame(rfile: BinaryIO) -> tuple[bool, int, int, bytes]:
    """One frame: whether it is a control frame, its type (control) or stream (data), flags and payload."""
    word, flags_len = struct.unpack("!II", _read_exact(rfile, 8))
    n = flags_len & 0xFFFFFF
    if n > _MAX_FRAME:
        raise EOFError
    payload = _read_exact(rfile, n)
    if word & 0x80000000:
        return True, word & 0xFFFF, flags_len >> 24, payload
    return False, word & _ID, flags_len >> 24, payload


def _headers(block: bytes) -> dict[str, str]:
    (count,) = struct.unpack_from("!I", block)
    out, at = {}, 4
    for _ in range(count):
        pair = []
        for _part in range(2):
            (n,) = struct.unpack_from("!I", block, at)
            pair.append(block[at + 4 : at + 4 + n].decode(errors="replace"))
            at += 4 + n
        out[pair[0].lower()] = pair[1]
    return out


def relay_spdy(rfile: BinaryIO, wfile: BinaryIO, targets: Mapping[int, tuple[str, int]], pod_uid: str) -> None:
    """After the 101: answer the client's streams and relay each port's data stream until the client hangs up.

    ``targets`` maps a pod port to where it really listens; a port without one (or whose target refuses) gets
    the kubelet's error on its error stream and both streams ended, as a pod where nothing listens does."""
    out = _SpdyWriter(wfile)
    inflate = zlib.decompressobj()
    pairs: dict[str, dict[str, int]] = {}
    upstream: dict[int, socket.socket] = {}
    try:
        while True:
            try:
                is_control, kind, flags, payload = _spdy_frame(rfile)
            except (EOFError, OSError, ValueError, struct.error):
                return
            if not is_control:
                sock = upstream.get(kind)
                with contextlib.suppress(OSError):
                    if sock is not None and payload:
                        sock.sendall(payload)
                    if sock is not None and flags & _FIN:
                        sock.shutdown(socket.SHUT_WR)
            elif kind == _SYN_STREAM and len(payload) >= 10:
                stream = struct.unpack_from("!I", payload)[0] & _ID
                try:
                    headers = _headers(inflate.decompress(payload[10:]))
                except (zlib.error, struct.error):
                    return
                out.reply(stream)
                pair = pairs.setdefault(headers.get("requestid", ""), {})
                pair[headers.get("streamtype", "")] = stream
                if "error" in pair and "data" in pair and "port" not in pair:
                    pair["port"] = int(headers.get("port", "0") or 0) if headers.get("port", "").isdigit() else 0
                    _open(out, pair, targets, pod_uid, upstream)
            elif kind == _PING:
                out.control(_PING, payload)
            elif kind == _RST_STREAM and len(payload) >= 4:
                sock = upstream.pop(struct.unpack_from("!I", payload)[0] & _ID, None)
                if sock is not None:
                    _hang_up(sock)
            # GOAWAY: no new streams come; the client hangs up next. SETTINGS, WINDOW_UPDATE: nothing to do.
    finally:
        for sock in upstream.values():
            _hang_up(sock)


def _open(
    out: _SpdyWriter,
    pair: Mapping[str, int],
    targets: Mapping[int, tuple[str, int]],
    pod_uid: str,
    upstream: dict[int, socket.socket],
) -> None:
    port, error, data = pair["port"], pair["error"], pair["data"]
    target = targets.get(port)
    try:
        if target is None:
            raise ConnectionRefusedError
        sock = dial_pod(target)
        sock.settimeout(None)
    except OSError:
        out.data(error, forward_error(port, pod_uid).encode())
        out.data(error, b"", _FIN)
        out.data(data, b"", _FIN)
        return
    upstream[data] = sock
    threading.Thread(target=_spdy_pump, args=(sock, out, data, error), name="lab-portforward-pump", daemon=True).start()


def _spdy_pump(sock: socket.socket, out: _SpdyWriter, data: int, error: int) -> None:
    """The pod's bytes to the client on the data stream; the pod hanging up ends both of the port's streams."""
    try:
        while chunk := sock.recv(32768):
            out.data(data, chunk)
        out.data(data, b"", _FIN)
        out.data(error, b"", _FIN)
    except (OSError, ValueError):
        pass


def _hang_up(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
