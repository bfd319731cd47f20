"""preflight.engine.probes.dns against a real DNS server on loopback (never the system resolver)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from preflight.engine.probes.dns import DnsFailure, parse_server, resolve
from preflight_lab.dns_server import LabDNS


@pytest.fixture()
def lab() -> Iterator[LabDNS]:
    with LabDNS(zones=["lab.test"]) as server:
        yield server


def test_a_records(lab: LabDNS) -> None:
    lab.add_a("api.lab.test", "203.0.113.10", "203.0.113.11")
    res = resolve("api.lab.test", 2.0, server=lab.address)
    assert sorted(res.addresses) == ["203.0.113.10", "203.0.113.11"]
    assert res.cnames == []
    assert res.resolver == lab.address
    assert res.name == "api.lab.test"
    # Both families were asked, and asked of the lab.
    assert {q.qtype for q in lab.queries_for("api.lab.test")} == {"A", "AAAA"}


def test_aaaa_only(lab: LabDNS) -> None:
    lab.add_aaaa("v6.lab.test", "2001:db8::10")
    res = resolve("v6.lab.test", 2.0, server=lab.address)
    assert res.addresses == ["2001:db8::10"]


def test_dual_stack_lists_ipv4_then_ipv6(lab: LabDNS) -> None:
    lab.add_a("dual.lab.test", "198.51.100.7").add_aaaa("dual.lab.test", "2001:db8::7")
    res = resolve("dual.lab.test", 2.0, server=lab.address)
    assert res.addresses == ["198.51.100.7", "2001:db8::7"]


def test_trailing_dot_and_case_are_accepted(lab: LabDNS) -> None:
    lab.add_a("api.lab.test", "203.0.113.10")
    assert resolve("API.Lab.Test.", 2.0, server=lab.address).addresses == ["203.0.113.10"]


def test_cname_chain_is_reported_as_evidence(lab: LabDNS) -> None:
    # www -> lb -> api, like an EKS endpoint behind a corporate alias.
    lab.add_cname("www.lab.test", "lb.lab.test")
    lab.add_cname("lb.lab.test", "api.lab.test")
    lab.add_a("api.lab.test", "203.0.113.20")
    lab.add_aaaa("api.lab.test", "2001:db8::20")
    res = resolve("www.lab.test", 2.0, server=lab.address)
    assert res.cnames == ["lb.lab.test", "api.lab.test"]
    assert res.addresses == ["203.0.113.20", "2001:db8::20"]
    assert res.name == "www.lab.test"


def test_nxdomain(lab: LabDNS) -> None:
    with pytest.raises(DnsFailure) as info:
        resolve("missing.lab.test", 2.0, server=lab.address)
    assert info.value.kind == "nxdomain"
    assert "missing.lab.test" in str(info.value)
    assert [q.rcode for q in lab.queries_for("missing.lab.test")][:1] == ["NXDOMAIN"]


def test_cname_to_a_missing_name_is_nxdomain(lab: LabDNS) -> None:
    lab.add_cname("alias.lab.test", "gone.lab.test")
    with pytest.raises(DnsFailure) as info:
        resolve("alias.lab.test", 2.0, server=lab.address)
    assert info.value.kind == "nxdomain"


def test_name_without_addresses_is_no_answer(lab: LabDNS) -> None:
    lab.add_txt("txt-only.lab.test", "v=spf1 -all")
    with pytest.raises(DnsFailure) as info:
        resolve("txt-only.lab.test", 2.0, server=lab.address)
    assert info.value.kind == "no-answer"


def test_servfail_is_an_error(lab: LabDNS) -> None:
    lab.fail_with("broken.lab.test", "SERVFAIL")
    with pytest.raises(DnsFailure) as info:
        resolve("broken.lab.test", 2.0, server=lab.address)
    assert info.value.kind == "error"


def test_no_answer_within_timeout(lab: LabDNS) -> None:
    lab.never_answer("hung.lab.test")
    timeout = 0.3
    t0 = time.monotonic()
    with pytest.raises(DnsFailure) as info:
        resolve("hung.lab.test", timeout, server=lab.address)
    elapsed = time.monotonic() - t0
    assert info.value.kind == "timeout"
    assert elapsed >= timeout * 0.9  # it did wait for the server...
    assert elapsed < 10  # ...and gave up instead of hanging
    sent = lab.queries_for("hung.lab.test")
    assert sent and not any(q.answered for q in sent)


def test_dropped_aaaa_keeps_the_a_answer_within_one_deadline(lab: LabDNS) -> None:
    # Some middleboxes drop AAAA queries. The (slow) IPv4 answer is still an answer, and the whole
    # resolution must fit in one timeout, not one per record type.
    timeout, slow = 1.0, 0.8
    lab.add_a("v4only.lab.test", "203.0.113.30").delay("v4only.lab.test", slow)
    lab.never_answer("v4only.lab.test", "AAAA")
    t0 = time.monotonic()
    res = resolve("v4only.lab.test", timeout, server=lab.address)
    elapsed = time.monotonic() - t0
    assert res.addresses == ["203.0.113.30"]
    assert [q.qtype for q in lab.queries_for("v4only.lab.test")] == ["A", "AAAA"]
    assert elapsed < slow + timeout - 0.3  # the AAAA query got what was left, not a fresh timeout


def test_tcp_fallback_when_udp_is_truncated() -> None:
    with LabDNS(truncate_udp=True) as lab:
        lab.add_a("big.lab.test", *[f"203.0.113.{i}" for i in range(1, 40)])
        res = resolve("big.lab.test", 2.0, server=lab.address)
        assert len(res.addresses) == 39
        protocols = {q.protocol for q in lab.queries_for("big.lab.test")}
        assert protocols == {"udp", "tcp"}


def test_ipv6_loopback_server() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with LabDNS(address="::1") as lab:
        lab.add_a("api.lab.test", "203.0.113.40")
        assert lab.address.startswith("[::1]:")
        assert resolve("api.lab.test", 2.0, server=lab.address).addresses == ["203.0.113.40"]


@pytest.mark.parametrize("literal", ["203.0.113.5", "10.1.2.3", "2001:db8::5", "[2001:db8::5]"])
def test_ip_literal_is_not_resolved(lab: LabDNS, literal: str) -> None:
    res = resolve(literal, 2.0, server=lab.address)
    assert res.resolver == "literal"
    assert res.addresses == [literal.strip("[]")]
    assert lab.queries == []


def test_ip_literal_without_a_server_never_asks_the_system() -> None:
    res = resolve("198.51.100.9", 0.5)
    assert (res.resolver, res.addresses) == ("literal", ["198.51.100.9"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
        ("2001:db8::53", ("2001:db8::53", 53)),
    ],
)
def test_parse_server(spec: str, expected: tuple[str, int]) -> None:
    assert parse_server(spec) == expected
