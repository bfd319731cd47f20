"""Resolve names with a deadline, through the system resolver or the server --dns-server names."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from preflight.engine.probes.addresses import is_ip


class DnsFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # nxdomain | no-answer | timeout | error


@dataclass(frozen=True)
class Resolution:
    name: str
    addresses: list[str]
    cnames: list[str] = field(default_factory=list)
    resolver: str = "system"


def parse_server(spec: str) -> tuple[str, int]:
    """ADDR, ADDR:PORT, [V6]:PORT."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, 53


def resolve(name: str, timeout: float, server: str | None = None) -> Resolution:
    if is_ip(name):
        return Resolution(name, [name.strip("[]")], resolver="literal")
    if name.lower().rstrip(".") == "localhost" or name.lower().rstrip(".").endswith(".localhost"):
        # RFC 6761: always loopback, never asked of a DNS server.
        return Resolution(name, ["127.0.0.1"], resolver="localhost")
    if server:
        return _resolve_with(name, timeout, server)
    return _resolve_system(name, timeout)


def _resolve_system(name: str, timeout: float) -> Resolution:
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["infos"] = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            box["exc"] = exc

    t = threading.Thread(target=work, daemon=True, name=f"dns:{name}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise DnsFailure("timeout", f"no answer for {name} within {timeout:g}s")
    exc = box.get("exc")
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise DnsFailure("nxdomain", f"{name} does not resolve ({exc.strerror})")
        raise DnsFailure("error", f"cannot resolve {name}: {exc.strerror}")
    infos = box.get("infos") or []
    addrs: list[str] = []
    for info in infos:  # type: ignore[attr-defined]
        a = str(info[4][0])
        if a not in addrs:
            addrs.append(a)
    return Resolution(name, addrs)


def _resolve_with(name: str, timeout: float, server: str) -> Resolution:
    import dns.exception
    import dns.resolver

    host, port = parse_server(server)
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [host]
    r.port = port
    r.timeout = timeout
    # One deadline for both queries: `timeout` bounds the whole resolution, not each record type.
    deadline = time.monotonic() + timeout
    addrs: list[str] = []
    cnames: list[str] = []
    nx = 0
    for rdtype in ("A", "AAAA"):
        r.lifetime = max(deadline - time.monotonic(), 0.001)
        try:
            ans = r.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            nx += 1
            continue
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.Timeout:
            if addrs:  # A answered, AAAA was dropped (some middleboxes do): keep the answer
                break
            raise DnsFailure("timeout", f"{server} did not answer for {name} within {timeout:g}s") from None
        except dns.exception.DNSException as exc:
            raise DnsFailure("error", f"{server} could not resolve {name}: {exc}") from None
        for rrset in ans.response.answer:
            if rrset.rdtype == dns.rdatatype.CNAME:
                for rd in rrset:
                    target = str(rd.target).rstrip(".")
                    if target not in cnames:
                        cnames.append(target)
        addrs.extend(str(rd.address) for rd in ans if str(rd.address) not in addrs)
    if not addrs:
        if nx:
            raise DnsFailure("nxdomain", f"{name} does not exist (NXDOMAIN from {server})")
        raise DnsFailure("no-answer", f"{name} has no A or AAAA record at {server}")
    return Resolution(name, addrs, cnames, resolver=server)
