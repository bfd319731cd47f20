"""Address classes as terms.md defines them (not Python's `is_private`, which differs)."""

from __future__ import annotations

import ipaddress

_PRIVATE = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
]


def classify(address: str) -> str:
    """One of: loopback, link-local, private, public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if any(ip in net for net in _PRIVATE if net.version == ip.version):
        return "private"
    return "public"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def hostport(host: str, port: int | str | None) -> str:
    """host:port as clients write it: an IPv6 address in brackets ([2001:db8::2]:6443), so the port reads as one."""
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    return f"{shown}:{port}" if port not in (None, "") else shown
