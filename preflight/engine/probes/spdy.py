"""Just enough SPDY/3.1 to be client-go's port-forward client, read on the caller's thread.

After the API server's ``101 Switching Protocols``, client-go (Meshery's port forwarder, ``spdy.RoundTripperFor``
with ``portforward.NewOnAddresses``) opens two streams per port: an error stream it half-closes at once, and a
data stream; both name the port and a request id in their headers. This module does the same over a connected
socket, and exposes the data stream as a socket-like object (``sendall``, ``recv``, ``settimeout``) so a protocol
handshake runs through it unchanged. No thread: every frame is read when the caller reads, with the caller's
timeout, and PINGs are answered then.

Header blocks are zlib-compressed, one stream per direction with a sync flush after each block. Ours are
compressed without SPDY's preset dictionary (a zlib stream without FDICT, which Go's zlib reader, and so
spdystream, accepts); the peer's are never decoded, since only frame types and stream ids matter here.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
_STREAMED = (SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE)  # control frames naming a stream
_ID = 0x7FFFFFFF
_HEAD = 8
MAX_FRAME = 1 << 18  # far above what a port-forward sends in one frame (Go copies in 32 KiB), far below 16 MiB
_MAX_ERROR = 4096
_MAX_UNREAD = 1 << 20  # data the peer sent ahead of our reads (only while opening can more than a frame wait)
_CHUNK = 16384
REFUSED_STREAM = 3  # RST_STREAM status
ERROR_STREAM, DATA_STREAM = 1, 3  # client-initiated streams are odd, in the order opened


class ProtocolError(OSError):
    """The peer sent what SPDY/3.1 does not allow, or more than we read in one frame."""


@dataclass(frozen=True)
class Frame:
    """One frame: a control frame has a ``kind`` (SYN_STREAM...), a data frame ``kind`` 0."""

    kind: int
    stream: int  # the stream a data frame or a stream's control frame is on; 0 for the connection's
    flags: int
    payload: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data(stream: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!II", stream & _ID, (flags << 24) | len(payload)) + payload


def header_block(headers: Mapping[str, str]) -> bytes:
    """A name/value block, uncompressed: a count, then each length-prefixed name and value (names lower case)."""
    out = [struct.pack("!I", len(headers))]
    for name, value in headers.items():
        for part in (name.lower().encode(), value.encode()):
            out.append(struct.pack("!I", len(part)) + part)
    return b"".join(out)


class Compressor:
    """This direction's header compression: one zlib stream for the connection, no preset dictionary."""

    def __init__(self) -> None:
        self._z = zlib.compressobj()

    def block(self, headers: Mapping[str, str]) -> bytes:
        return self._z.compress(header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


def syn_stream(comp: Compressor, stream: int, headers: Mapping[str, str], flags: int = 0) -> bytes:
    return control(SYN_STREAM, flags, struct.pack("!IIBB", stream & _ID, 0, 0, 0) + comp.block(headers))


def ping(ident: int) -> bytes:
    return control(PING, 0, struct.pack("!I", ident))


def goaway(last_stream: int, status: int = 0) -> bytes:
    return control(GOAWAY, 0, struct.pack("!II", last_stream & _ID, status))


def parse(buf: bytes | bytearray, limit: int = MAX_FRAME) -> tuple[Frame, int] | None:
    """The first frame in ``buf`` and the bytes it took; None until all of it is there.

    A frame announcing more than ``limit`` bytes is refused from its head, before any of it is read."""
    if len(buf) < _HEAD:
        return None
    word, flags_len = struct.unpack_from("!II", buf)
    flags, length = flags_len >> 24, flags_len & 0xFFFFFF
    if length > limit:
        raise ProtocolError(f"a SPDY frame of {length} bytes (we read at most {limit})")
    if len(buf) < _HEAD + length:
        return None
    payload = bytes(buf[_HEAD : _HEAD + length])
    if not word & 0x80000000:
        return Frame(0, word & _ID, flags, payload), _HEAD + length
    version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
    if version != VERSION:
        raise ProtocolError(f"a SPDY/{version} frame on a SPDY/3.1 connection")
    stream = 0
    if kind in _STREAMED:
        if length < 4:
            raise ProtocolError(f"a SPDY control frame (type {kind}) too short to name its stream")
        stream = struct.unpack_from("!I", payload)[0] & _ID
    return Frame(kind, stream, flags, payload), _HEAD + length


class PortStream:
    """A port's data stream over one SPDY connection, used like a socket; the port's error stream beside it.

    ``recv`` returns ``b""`` once the peer ended the data stream (or the connection), as a socket does."""

    def __init__(self, sock: socket.socket, buffered: bytes, timeout: float) -> None:
        self._sock = sock
        self._in = bytearray(buffered)
        self._data = bytearray()
        self._timeout: float | None = timeout
        self._error = bytearray()
        self._replied: set[int] = set()
        self._reset: dict[int, int] = {}
        self.data_done = self.error_done = self.closed = False
        self.goaway = False

    # -- opening ---------------------------------------------------------------------------------

    def open(self, port: int, deadline: float) -> None:
        """client-go's streams for one port: the error stream (half-closed at once), then the data stream, and
        both replies. Raises OSError (ProtocolError, TimeoutError) when they are not both accepted by
        ``deadline``; the error stream's text, if any came, is then in :meth:`error_text`."""
        comp = Compressor()
        headers = {"port": str(port), "requestid": "0"}
        self._send(
            syn_stream(comp, ERROR_STREAM, {"streamtype": "error", **headers})
            + data(ERROR_STREAM, FLAG_FIN, b"")
            + syn_stream(comp, DATA_STREAM, {"streamtype": "data", **headers})
        )
        while not {ERROR_STREAM, DATA_STREAM} <= self._replied:
            for stream in (ERROR_STREAM, DATA_STREAM):
                if stream in self._reset:
                    raise ProtocolError(f"the peer reset stream {stream} (status {self._reset[stream]})")
            if self.goaway or self.closed:
                raise ConnectionError("the peer ended the SPDY connection before accepting the port's streams")
            self._next(deadline)

    # -- the socket face -------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def sendall(self, payload: bytes) -> None:
        if DATA_STREAM in self._reset or self.closed:
            raise BrokenPipeError("the port's data stream is closed")
        view = memoryview(payload)
        self._send(b"".join(data(DATA_STREAM, 0, bytes(view[i : i + _CHUNK])) for i in range(0, len(view), _CHUNK)))

    def recv(self, n: int) -> bytes:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while not self._data:
            if DATA_STREAM in self._reset:
                raise ConnectionResetError(f"the peer reset the port's data stream (status {self._reset[DATA_STREAM]})")
            if self.data_done or self.closed:
                return b""
            self._next(deadline)
        out = bytes(self._data[:n])
        del self._data[:n]
        return out

    def error_text(self) -> str | None:
        text = " ".join(self._error.decode(errors="replace").split())
        return text or None

    def error(self) -> str | None:
        """The port's error stream: what came on it, waiting (within the timeout) for its end only when the data
        stream has ended (that is when the kubelet says why)."""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while self.data_done and not (self.error_done or self.closed or ERROR_STREAM in self._reset):
            try:
                self._next(deadline)
            except OSError:
                break
        return self.error_text()

    def close(self) -> None:
        """End our side as client-go does (FIN on the data stream, GOAWAY); the caller closes the socket."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self._send(data(DATA_STREAM, FLAG_FIN, b"") + goaway(0))
        self.closed = True

    # -- frames ----------------------------------------------------------------------------------

    def _send(self, raw: bytes) -> None:
        self._sock.settimeout(self._timeout)
        self._sock.sendall(raw)

    def _next(self, deadline: float | None) -> None:
        """Read and handle one frame; raises TimeoutError at ``deadline`` (None: none), marks EOF as closed."""
        while (got := parse(self._in)) is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("timed out")
            self._sock.settimeout(remaining)
            chunk = self._sock.recv(65536)
            if not chunk:
                self.closed = True
                return
            self._in += chunk
        frame, used = got
        del self._in[:used]
        self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if frame.kind == 0:
            if frame.stream == DATA_STREAM:
                if len(self._data) + len(frame.payload) > _MAX_UNREAD:
                    raise ProtocolError(f"the peer sent more than {_MAX_UNREAD} bytes ahead of our reads")
                self._data += frame.payload
                self.data_done = self.data_done or frame.fin
            elif frame.stream == ERROR_STREAM:
                self._error += frame.payload[: max(_MAX_ERROR - len(self._error), 0)]
                self.error_done = self.error_done or frame.fin
            return
        if frame.kind in (SYN_REPLY, HEADERS):
            if frame.kind == SYN_REPLY:
                self._replied.add(frame.stream)
            if frame.fin:
                self._fin(frame.stream)
        elif frame.kind == RST_STREAM and len(frame.payload) >= 8:
            self._reset[frame.stream] = struct.unpack_from("!I", frame.payload, 4)[0]
        elif frame.kind == PING and len(frame.payload) == 4:
            if struct.unpack("!I", frame.payload)[0] % 2 == 0:  # the peer's (even ids); an odd one answers ours
                self._send(control(PING, 0, frame.payload))
        elif frame.kind == GOAWAY:
            self.goaway = True
        elif frame.kind == SYN_STREAM:  # a stream the server opens: nothing of port-forward's
            self._send(control(RST_STREAM, 0, struct.pack("!II", frame.stream, REFUSED_STREAM)))
        # SETTINGS and WINDOW_UPDATE change nothing for the few bytes a handshake sends.

    def _fin(self, stream: int) -> None:
        if stream == DATA_STREAM:
            self.data_done = True
        elif stream == ERROR_STREAM:
            self.error_done = True
