"""TCP classification against real paths: an nftables drop, a closed port, a missing route."""

from __future__ import annotations

import socket

import pytest

from preflight.engine.probes import tcp
from tests.netlab import NetNS, require_netns


@pytest.fixture(scope="module")
def ns():
    require_netns()
    with NetNS() as n:
        n.add_address("203.0.113.10/32")
        n.ip("route", "add", "unreachable", "198.51.100.0/24")
        n.ip("route", "add", "prohibit", "192.0.2.0/24")
        n.drop_tcp("203.0.113.10", 6443)
        yield n


def _listen(address: str) -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind((address, 0))
    s.listen()
    return s, s.getsockname()[1]


def test_open_port_is_open(ns: NetNS) -> None:
    def probe() -> tcp.TcpOutcome:
        srv, port = _listen("203.0.113.10")
        try:
            return tcp.connect("203.0.113.10", port, 2.0)
        finally:
            srv.close()

    out = ns.call(probe)
    assert out.state == tcp.OPEN


def test_dropped_syn_is_filtered(ns: NetNS) -> None:
    out = ns.call(tcp.connect, "203.0.113.10", 6443, 0.5)
    assert out.state == tcp.FILTERED
    assert out.elapsed_ms >= 400


def test_closed_port_is_refused(ns: NetNS) -> None:
    out = ns.call(tcp.connect, "203.0.113.10", 6444, 2.0)
    assert out.state == tcp.REFUSED


def test_missing_route_is_unreachable(ns: NetNS) -> None:
    out = ns.call(tcp.connect, "198.51.100.7", 6443, 2.0)
    assert out.state == tcp.UNREACHABLE
    assert "EHOSTUNREACH" in out.detail or "ENETUNREACH" in out.detail


def test_prohibited_route_is_unreachable(ns: NetNS) -> None:
    out = ns.call(tcp.connect, "192.0.2.9", 6443, 2.0)
    assert out.state == tcp.UNREACHABLE
