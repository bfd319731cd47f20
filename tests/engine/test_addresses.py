"""Address classes as ../shared/reference/terms.md defines them (not Python's is_private)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.engine.probes.addresses import classify, is_ip


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "10.255.255.254",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.0.1",
        "192.168.255.254",
        "100.64.0.1",
        "100.127.255.254",
        "fc00::1",
        "fd12:3456:789a::1",
    ],
)
def test_private(address: str) -> None:
    assert classify(address) == "private"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.255.254", "127.1.2.3", "::1"])
def test_loopback(address: str) -> None:
    assert classify(address) == "loopback"


@pytest.mark.parametrize("address", ["169.254.0.1", "169.254.169.254", "fe80::1", "febf::1", "fe80::1%eth0"])
def test_link_local(address: str) -> None:
    assert classify(address) == "link-local"


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.10",  # TEST-NET-1: Python calls it private; terms.md calls it public
        "198.51.100.7",
        "203.0.113.99",
        "8.8.8.8",
        "1.1.1.1",
        "2001:db8::1",  # IPv6 documentation: public by terms.md
        "2606:4700:4700::1111",
        # Just outside each private range.
        "11.0.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.169.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "fe00::1",
    ],
)
def test_public(address: str) -> None:
    assert classify(address) == "public"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("::ffff:100.64.0.9", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.1.1", "link-local"),
        ("::ffff:203.0.113.5", "public"),
        ("::ffff:8.8.8.8", "public"),
    ],
)
def test_ipv4_mapped_ipv6_is_classified_as_its_ipv4(address: str, expected: str) -> None:
    assert classify(address) == expected


def test_documentation_ranges_differ_from_python_is_private() -> None:
    # The reason classify exists: this would be "private" with ipaddress.is_private.
    assert ipaddress.ip_address("192.0.2.10").is_private
    assert classify("192.0.2.10") == "public"


def test_not_an_address_raises() -> None:
    with pytest.raises(ValueError):
        classify("api.example.com")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.1", True), ("::1", True), ("[2001:db8::1]", True), ("api.lab.test", False), ("", False)],
)
def test_is_ip(text: str, expected: bool) -> None:
    assert is_ip(text) is expected


_PRIVATE_NETS = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
]


def _expected(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An independent restatement of terms.md, by network membership only."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in ipaddress.ip_network("127.0.0.0/8") or ip == ipaddress.ip_address("::1"):
        return "loopback"
    if ip in ipaddress.ip_network("169.254.0.0/16") or ip in ipaddress.ip_network("fe80::/10"):
        return "link-local"
    if any(ip.version == n.version and ip in n for n in _PRIVATE_NETS):
        return "private"
    return "public"


@settings(database=None)
@given(st.ip_addresses())
def test_classify_matches_terms_for_any_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert classify(str(ip)) == _expected(ip)


@settings(database=None)
@given(st.ip_addresses(v=4))
def test_ipv4_mapped_form_agrees(ip: ipaddress.IPv4Address) -> None:
    assert classify(f"::ffff:{ip}") == classify(str(ip))
