"""The SPDY/3.1 codec of the port-forward probe, against a peer scripted on the other end of a real socket pair:
the frames client-go sends, replies, PINGs, the error stream, resets, and frames too large to read."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import pytest

from preflight.engine.probes import spdy

PORT = 4222


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.settimeout(2)
    with ours, peer:
        yield ours, peer


def reply(stream: int, flags: int = 0) -> bytes:
    block = zlib.compressobj()
    payload = struct.pack("!I", stream) + block.compress(struct.pack("!I", 0)) + block.flush(zlib.Z_SYNC_FLUSH)
    return spdy.control(spdy.SYN_REPLY, flags, payload)


def frames(raw: bytes) -> list[spdy.Frame]:
    out = []
    while raw:
        got = spdy.parse(raw)
        assert got is not None, "a truncated frame"
        frame, used = got
        out.append(frame)
        raw = raw[used:]
    return out


def drain(peer: socket.socket) -> bytes:
    peer.settimeout(0.2)
    raw = b""
    try:
        while chunk := peer.recv(65536):
            raw += chunk
    except TimeoutError:
        pass
    return raw


def names(block: bytes) -> dict[str, str]:
    (count,) = struct.unpack_from("!I", block)
    out, at = {}, 4
    for _ in range(count):
        (n,) = struct.unpack_from("!I", block, at)
        name = block[at + 4 : at + 4 + n].decode()
        at += 4 + n
        (n,) = struct.unpack_from("!I", block, at)
        out[name] = block[at + 4 : at + 4 + n].decode()
        at += 4 + n
    return out


def opened(ours: socket.socket, peer: socket.socket) -> spdy.PortStream:
    peer.sendall(reply(spdy.ERROR_STREAM) + reply(spdy.DATA_STREAM))
    stream = spdy.PortStream(ours, b"", 2.0)
    stream.open(PORT, deadline=time.monotonic() + 5)
    return stream


def test_frames_round_trip_and_header_blocks_inflate_without_a_dictionary() -> None:
    comp = spdy.Compressor()
    raw = spdy.syn_stream(comp, 1, {"streamType": "error", "port": "4222"}) + spdy.syn_stream(comp, 3, {"a": "b"})
    raw += spdy.data(3, spdy.FLAG_FIN, b"PING\r\n") + spdy.ping(2) + spdy.goaway(7)
    syn1, syn3, data, ping, goaway = frames(raw)
    inflate = zlib.decompressobj()  # one stream per direction, each block ends on a sync flush: readable at once
    assert (syn1.kind, syn1.stream) == (spdy.SYN_STREAM, 1)
    assert names(inflate.decompress(syn1.payload[10:])) == {"streamtype": "error", "port": "4222"}
    assert names(inflate.decompress(syn3.payload[10:])) == {"a": "b"}
    assert zlib.decompressobj().decompress(syn1.payload[10:12]) == b""  # no FDICT: no preset dictionary wanted
    assert (data.kind, data.stream, data.fin, data.payload) == (0, 3, True, b"PING\r\n")
    assert (ping.kind, ping.payload) == (spdy.PING, struct.pack("!I", 2))
    assert (goaway.kind, goaway.payload) == (spdy.GOAWAY, struct.pack("!II", 7, 0))
    first = len(spdy.syn_stream(spdy.Compressor(), 1, {"streamType": "error", "port": "4222"}))
    assert spdy.parse(raw[:7]) is None and spdy.parse(raw[: first - 1]) is None  # a frame is read whole or not


def test_a_frame_announcing_16_mib_is_refused_from_its_head() -> None:
    head = struct.pack("!II", 3, 0xFFFFFF)
    with pytest.raises(spdy.ProtocolError, match="16777215 bytes"):
        spdy.parse(head)
    with pytest.raises(spdy.ProtocolError):
        spdy.parse(spdy.control(spdy.SETTINGS, 0, b"\0" * (spdy.MAX_FRAME + 1)))
    with pytest.raises(spdy.ProtocolError, match="SPDY/2"):
        spdy.parse(struct.pack("!HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")


def test_open_sends_client_gos_streams_and_waits_for_both_replies(pair) -> None:
    ours, peer = pair
    opened(ours, peer)
    syn_error, fin, syn_data = frames(drain(peer))
    inflate = zlib.decompressobj()
    assert (syn_error.kind, syn_error.stream) == (spdy.SYN_STREAM, 1)
    assert names(inflate.decompress(syn_error.payload[10:])) == {
        "streamtype": "error",
        "port": "4222",
        "requestid": "0",
    }
    assert (fin.kind, fin.stream, fin.fin, fin.payload) == (0, 1, True, b"")  # client-go half-closes it at once
    assert (syn_data.kind, syn_data.stream) == (spdy.SYN_STREAM, 3)
    assert names(inflate.decompress(syn_data.payload[10:])) == {"streamtype": "data", "port": "4222", "requestid": "0"}


def test_the_data_stream_is_a_socket_and_the_peers_pings_are_answered_on_the_callers_thread(pair) -> None:
    ours, peer = pair
    stream = opened(ours, peer)
    drain(peer)
    peer.sendall(spdy.control(spdy.SETTINGS, 0, struct.pack("!I", 0)) + spdy.ping(2) + spdy.data(3, 0, b"INFO {}\r\n"))
    peer.sendall(spdy.control(spdy.WINDOW_UPDATE, 0, struct.pack("!II", 3, 1024)))
    stream.settimeout(2)
    assert stream.recv(4) == b"INFO"
    assert stream.recv(100) == b" {}\r\n"
    stream.sendall(b"CONNECT {}\r\n" + b"x" * 40000)
    sent = frames(drain(peer))
    assert sent[0].kind == spdy.PING and sent[0].payload == struct.pack("!I", 2)
    assert {f.stream for f in sent[1:]} == {3} and b"".join(f.payload for f in sent[1:]).startswith(b"CONNECT {}")
    assert sum(len(f.payload) for f in sent[1:]) == 12 + 40000 and len(sent) > 2  # chunked
    peer.sendall(spdy.ping(1))  # an odd id answers a ping of ours (we send none): not echoed
    peer.sendall(spdy.data(3, spdy.FLAG_FIN, b""))
    assert stream.recv(10) == b""
    stream.close()
    fin, goaway = frames(drain(peer))
    assert (fin.stream, fin.fin) == (3, True) and goaway.kind == spdy.GOAWAY


def test_nothing_listening_is_the_error_streams_text_after_the_data_stream_ends(pair) -> None:
    ours, peer = pair
    stream = opened(ours, peer)
    text = (
        b"error forwarding port 4222 to pod meshery-nats-0, uid : dial tcp4 127.0.0.1:4222: connect: connection refused"
    )
    peer.sendall(spdy.data(3, spdy.FLAG_FIN, b"") + spdy.data(1, 0, text[:30]))
    stream.settimeout(2)
    assert stream.recv(100) == b""
    peer.sendall(spdy.data(1, spdy.FLAG_FIN, text[30:]))  # after the data stream ended: waited for
    assert stream.error() == text.decode()


def test_a_silent_data_stream_times_out_and_has_no_error_text(pair) -> None:
    ours, peer = pair
    stream = opened(ours, peer)
    stream.settimeout(0.05)
    with pytest.raises(TimeoutError):
        stream.recv(10)
    peer.sendall(spdy.data(3, 0, b"late"))
    assert stream.error() is None  # the data stream goes on: nothing to wait for
    stream.settimeout(2)
    assert stream.recv(10) == b"late"


def test_an_oversized_frame_fails_the_read_without_reading_it(pair) -> None:
    ours, peer = pair
    stream = opened(ours, peer)
    peer.sendall(struct.pack("!II", 3, 0xFFFFFF) + b"x" * 1024)
    stream.settimeout(2)
    with pytest.raises(spdy.ProtocolError):
        stream.recv(10)


def test_a_reset_data_stream_fails_reads_and_writes(pair) -> None:
    ours, peer = pair
    stream = opened(ours, peer)
    peer.sendall(spdy.control(spdy.RST_STREAM, 0, struct.pack("!II", 3, 5)))
    stream.settimeout(2)
    with pytest.raises(ConnectionResetError, match="status 5"):
        stream.recv(10)
    with pytest.raises(BrokenPipeError):
        stream.sendall(b"x")


@pytest.mark.parametrize(
    "answer, error",
    [
        (spdy.control(spdy.RST_STREAM, 0, struct.pack("!II", 1, 3)), "reset stream 1 \\(status 3\\)"),
        (spdy.goaway(0, 1), "ended the SPDY connection"),
        (b"", "ended the SPDY connection"),
    ],
)
def test_streams_the_peer_does_not_accept_fail_the_open(pair, answer: bytes, error: str) -> None:
    ours, peer = pair
    peer.sendall(reply(1) + answer)
    if not answer:
        peer.shutdown(socket.SHUT_WR)
    with pytest.raises(OSError, match=error):
        spdy.PortStream(ours, b"", 2.0).open(PORT, deadline=time.monotonic() + 5)


def test_a_peer_that_never_replies_is_bounded_by_the_deadline(pair) -> None:
    ours, _peer = pair
    with pytest.raises(TimeoutError):
        spdy.PortStream(ours, b"", 2.0).open(PORT, deadline=time.monotonic() + 0.05)


def test_frames_that_came_with_the_upgrade_answer_are_read_first(pair) -> None:
    ours, _peer = pair
    stream = spdy.PortStream(ours, reply(1) + reply(3) + spdy.data(3, 0, b"INFO"), 2.0)
    stream.open(PORT, deadline=time.monotonic() + 5)
    assert stream.recv(10) == b"INFO"


def test_data_sent_far_ahead_of_the_reads_is_refused_not_buffered(pair) -> None:
    ours, peer = pair
    chunk = spdy.data(3, 0, b"x" * (spdy.MAX_FRAME - 8))

    def flood() -> None:  # 2 MiB of data frames before the replies, where nothing reads them
        with contextlib.suppress(OSError):
            for _ in range(8):
                peer.sendall(chunk)

    writer = threading.Thread(target=flood)
    writer.start()
    try:
        with pytest.raises(spdy.ProtocolError, match="ahead of our reads"):
            spdy.PortStream(ours, b"", 2.0).open(PORT, deadline=time.monotonic() + 5)
    finally:
        ours.shutdown(socket.SHUT_RDWR)
        writer.join(5)
    assert not writer.is_alive()
