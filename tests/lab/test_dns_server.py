"""The lab DNS server itself, checked with a plain DNS client (dnslib), not the code under test."""

from __future__ import annotations

import socket
import time

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from preflight_lab.dns_server import LabDNS


def ask(lab: LabDNS, name: str, qtype: str = "A", tcp: bool = False, timeout: float = 2.0) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(q.send(lab.host, lab.port, tcp=tcp, timeout=timeout))


def test_address_is_loopback_with_an_ephemeral_port() -> None:
    with LabDNS() as lab:
        host, _, port = lab.address.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) == lab.port > 0


def test_udp_and_tcp_answer_the_same() -> None:
    with LabDNS() as lab:
        lab.add_a("api.lab.test", "203.0.113.10")
        for tcp in (False, True):
            reply = ask(lab, "api.lab.test", tcp=tcp)
            assert reply.header.rcode == RCODE.NOERROR
            assert [str(rr.rdata) for rr in reply.rr] == ["203.0.113.10"]
        assert [q.protocol for q in lab.queries] == ["udp", "tcp"]


def test_cname_chain_carries_the_final_records() -> None:
    with LabDNS() as lab:
        lab.add_cname("a.lab.test", "b.lab.test").add_cname("b.lab.test", "c.lab.test")
        lab.add_aaaa("c.lab.test", "2001:db8::1")
        reply = ask(lab, "a.lab.test", "AAAA")
        assert [(str(rr.rname), QTYPE[rr.rtype]) for rr in reply.rr] == [
            ("a.lab.test.", "CNAME"),
            ("b.lab.test.", "CNAME"),
            ("c.lab.test.", "AAAA"),
        ]
        # Asking for the CNAME itself gets just the first hop.
        only = ask(lab, "a.lab.test", "CNAME")
        assert [str(rr.rdata) for rr in only.rr] == ["b.lab.test."]


def test_cname_loop_is_servfail_not_a_hang() -> None:
    with LabDNS() as lab:
        lab.add_cname("x.lab.test", "y.lab.test").add_cname("y.lab.test", "x.lab.test")
        assert ask(lab, "x.lab.test").header.rcode == RCODE.SERVFAIL


def test_unknown_names_nxdomain_in_zone_refused_outside() -> None:
    with LabDNS(zones=["lab.test"]) as lab:
        assert ask(lab, "nope.lab.test").header.rcode == RCODE.NXDOMAIN
        assert ask(lab, "example.com").header.rcode == RCODE.REFUSED
        lab.add_a("api.lab.test", "203.0.113.1")
        nodata = ask(lab, "api.lab.test", "AAAA")
        assert nodata.header.rcode == RCODE.NOERROR and nodata.rr == []


def test_never_answer_drops_the_query_and_logs_it() -> None:
    with LabDNS() as lab:
        lab.never_answer("hung.lab.test")
        with pytest.raises(socket.timeout):
            ask(lab, "hung.lab.test", timeout=0.2)
        assert [(q.name, q.answered, q.rcode) for q in lab.queries] == [("hung.lab.test", False, None)]


def test_never_answer_one_type_only() -> None:
    with LabDNS() as lab:
        lab.add_a("v4.lab.test", "203.0.113.2").never_answer("v4.lab.test", "AAAA")
        assert [str(rr.rdata) for rr in ask(lab, "v4.lab.test").rr] == ["203.0.113.2"]
        with pytest.raises(socket.timeout):
            ask(lab, "v4.lab.test", "AAAA", timeout=0.2)


def test_delay_and_fail_with() -> None:
    with LabDNS() as lab:
        lab.add_a("slow.lab.test", "203.0.113.3").delay("slow.lab.test", 0.2)
        t0 = time.monotonic()
        assert ask(lab, "slow.lab.test").rr
        assert time.monotonic() - t0 >= 0.18
        lab.fail_with("bad.lab.test", "SERVFAIL")
        assert ask(lab, "bad.lab.test").header.rcode == RCODE.SERVFAIL


def test_stop_releases_the_port_and_refuses_non_loopback() -> None:
    lab = LabDNS().start()
    port = lab.port
    lab.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # free again
    with pytest.raises(RuntimeError):
        _ = LabDNS().address
    with pytest.raises(ValueError):
        LabDNS(address="0.0.0.0")
