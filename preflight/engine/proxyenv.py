"""Which environment proxy Meshery Server's Go client would use for a URL: Go's rules, not Python's.

client-go takes its proxy from ``golang.org/x/net/http/httpproxy`` (via net/http's ProxyFromEnvironment),
whose rules differ from urllib's and curl's. A preflight that picks another proxy than the Server would
fail clusters the Server reaches, or pass clusters it cannot, so every path that picks a proxy asks here:

- ``HTTPS_PROXY`` serves https URLs and ``HTTP_PROXY`` http URLs; each upper-case name is read first and
  the lower-case one only when the upper-case one is unset or empty (so is ``NO_PROXY``). A value without
  an http/https/socks5 scheme is read as ``http://VALUE``.
- ``localhost`` (exactly that name) and loopback addresses (127.0.0.0/8, ::1) never go through a proxy.
- ``NO_PROXY`` is a comma-separated list, case-insensitive, blanks around entries ignored: ``*`` turns the
  proxy off; ``10.0.0.0/8`` matches IP hosts in that range; ``10.1.2.3`` or ``[fd00::1]:6443`` an IP host
  (on that port only when one is given); ``foo.com`` foo.com and its subdomains, ``.foo.com`` and
  ``*.foo.com`` only its subdomains, ``foo.com:6443`` on that port only. Entries that are none of these
  are ignored; a domain entry is compared as text with IP hosts too.
- With ``REQUEST_METHOD`` set (a CGI environment), Go refuses ``HTTP_PROXY`` for http URLs: the request fails.

A kubeconfig cluster's ``proxy-url`` is not decided here: client-go sends every request of that cluster
through it, loopback included.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PROXY_SCHEMES = ("http", "https", "socks5")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_NAMES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD")

# Why no proxy is used for a host the environment would otherwise proxy.
LOOPBACK = "loopback"  # localhost or a loopback address: Go never proxies them
NO_PROXY = "no-proxy"  # an entry of NO_PROXY matched


class CgiRefusal(Exception):
    """Go refuses HTTP_PROXY when REQUEST_METHOD is set (golang.org/s/cgihttpproxy): the request fails."""


@dataclass(frozen=True)
class _IpEntry:
    ip: IP
    port: str


@dataclass(frozen=True)
class _DomainEntry:
    suffix: str  # always starts with "."
    port: str
    bare: bool  # the entry had no leading dot: the domain itself matches too


@dataclass(frozen=True)
class ProxyEnvironment:
    """The proxy variables as Go reads them; ``*_var`` name the variable each value came from."""

    https: str = ""
    https_var: str | None = None
    http: str = ""
    http_var: str | None = None
    no_proxy: str = ""
    no_proxy_var: str | None = None
    cgi: bool = False
    _every: bool = field(default=False, repr=False)
    _networks: tuple[Network, ...] = field(default=(), repr=False)
    _ips: tuple[_IpEntry, ...] = field(default=(), repr=False)
    _domains: tuple[_DomainEntry, ...] = field(default=(), repr=False)

    def proxy_for(self, scheme: str, host: str, port: int | None = None) -> tuple[str | None, str | None]:
        """The proxy URL Go would use for ``scheme://host:port`` and the variable it came from; without a
        proxy, the NO_PROXY variable's name when an entry of it matched, else None. CgiRefusal when Go fails
        the request instead."""
        url, var = (self.https, self.https_var) if scheme == "https" else (self.http, self.http_var)
        if scheme not in _DEFAULT_PORTS or not url:
            return None, None
        if scheme == "http" and self.cgi:
            raise CgiRefusal(
                f"REQUEST_METHOD is set (a CGI environment), where Go refuses {var} for http URLs "
                "(golang.org/s/cgihttpproxy): the request fails"
            )
        why = self.bypass(host, port or _DEFAULT_PORTS[scheme])
        if why == LOOPBACK:
            return None, None
        if why == NO_PROXY:
            return None, self.no_proxy_var
        return with_scheme(url), var

    def bypass(self, host: str, port: int) -> str | None:
        """LOOPBACK or NO_PROXY when Go sends requests for host:port around the proxy; None when it does not."""
        host = _idna(host.strip("[]"))
        if host == "localhost":
            return LOOPBACK
        ip = parse_ip(host)
        if ip is not None and ip.is_loopback:
            return LOOPBACK
        host, port_text = host.strip().lower(), str(port)
        if self._every:
            return NO_PROXY
        if ip is not None:
            if any(ip.version == net.version and ip in net for net in self._networks):
                return NO_PROXY
            if any(e.ip == ip and e.port in ("", port_text) for e in self._ips):
                return NO_PROXY
        for d in self._domains:
            if (host.endswith(d.suffix) or (d.bare and host == d.suffix[1:])) and d.port in ("", port_text):
                return NO_PROXY
        return None


def from_environment(env: Mapping[str, str]) -> ProxyEnvironment:
    """The proxy settings Go's ``httpproxy.FromEnvironment`` would read from ``env``."""
    return _parse(tuple(env.get(name, "") for name in _NAMES))


@lru_cache(maxsize=8)
def _parse(values: tuple[str, ...]) -> ProxyEnvironment:
    """Cached: every context of a fleet asks, and the environment is the same for all of them."""
    by_name = dict(zip(_NAMES, values, strict=True))
    https, https_var = _first(by_name, "HTTPS_PROXY", "https_proxy")
    http, http_var = _first(by_name, "HTTP_PROXY", "http_proxy")
    no_proxy, no_proxy_var = _first(by_name, "NO_PROXY", "no_proxy")
    every, networks, ips, domains = _entries(no_proxy)
    return ProxyEnvironment(
        https,
        https_var,
        http,
        http_var,
        no_proxy,
        no_proxy_var,
        bool(by_name["REQUEST_METHOD"]),
        every,
        tuple(networks),
        tuple(ips),
        tuple(domains),
    )


def _first(values: Mapping[str, str], *names: str) -> tuple[str, str | None]:
    for name in names:
        if values[name]:
            return values[name], name
    return "", None


def _entries(no_proxy: str) -> tuple[bool, list[Network], list[_IpEntry], list[_DomainEntry]]:
    networks: list[Network] = []
    ips: list[_IpEntry] = []
    domains: list[_DomainEntry] = []
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, [], [], []
        net = _cidr(entry)
        if net is not None:
            networks.append(net)
            continue
        split = split_host_port(entry)
        host, port = split if split is not None else (entry, "")
        if split is not None:
            if not host:
                continue
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
        ip = parse_ip(host)
        if ip is not None:
            ips.append(_IpEntry(ip, port))
            continue
        if not host:
            continue
        if host.startswith("*."):
            host = host[1:]
        bare = not host.startswith(".")
        domains.append(_DomainEntry(_idna("." + host if bare else host), port, bare))
    return False, networks, ips, domains


def _cidr(entry: str) -> Network | None:
    """An ADDRESS/BITS entry, as Go's net.ParseCIDR reads it (a bare address or a netmask form is not one)."""
    address, slash, bits = entry.partition("/")
    if not slash or not bits.isascii() or not bits.isdigit() or parse_ip(address) is None:
        return None
    try:
        return ipaddress.ip_network(f"{address}/{int(bits)}", strict=False)
    except ValueError:
        return None


def parse_ip(text: str) -> IP | None:
    """An IP address as Go's net.ParseIP reads one: no zone, and an IPv4-mapped IPv6 address is its IPv4."""
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def split_host_port(text: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: ``host:port`` or ``[host]:port`` (brackets removed); None when it errs."""
    colon = text.rfind(":")
    if colon < 0:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 != colon:
            return None
        host, rest_from = text[1:end], end + 1
        if "[" in text[1:] or "]" in text[rest_from:]:
            return None
    else:
        host = text[:colon]
        if ":" in host or "[" in text or "]" in text:
            return None
    return host, text[colon + 1 :]


def with_scheme(url: str) -> str:
    """A proxy variable's value as Go reads it: ``host:port`` without a scheme is ``http://host:port``."""
    # A URL with another scheme stays as it is, to be refused: Go's fallback would read it as a host named
    # after the scheme, which never works.
    return url if _SCHEME.match(url) else f"http://{url}"


def _idna(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
