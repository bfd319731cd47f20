"""A real DNS server on loopback, with a zone configured from Python, for tests and the demo.

``LabDNS`` answers over UDP and TCP on one ephemeral port of 127.0.0.1 (or ::1), so code under test
resolves through its ordinary network path (``--dns-server 127.0.0.1:PORT``) without touching the
system resolver. It answers like a recursive resolver would for the names it holds:

* A, AAAA (and TXT) records; CNAMEs are followed within the lab, so an answer carries the whole CNAME chain
  plus the final A/AAAA records;
* NXDOMAIN for unknown names inside one of its zones, REFUSED for names outside every zone;
* a name can be made to never answer (the query is dropped: the client times out), to answer after a
  delay, or to answer with a chosen rcode such as SERVFAIL;
* every UDP answer can be forced to truncate, so a client must retry over TCP.

Every query is logged (:attr:`LabDNS.queries`), so a test can prove what was, or was not, asked.
"""

from __future__ import annotations

import ipaddress
import socketserver
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dnslib import AAAA, QTYPE, RCODE, RR, TXT, A, DNSError, DNSRecord
from dnslib import CNAME as CNAMERecord
from dnslib.server import DNSHandler, DNSServer

from preflight_lab.serving import LabServer

__all__ = ["LabDNS", "Query"]

_MAX_CHAIN = 16


def _norm(name: str) -> str:
    return str(name).strip().rstrip(".").lower()


@dataclass(frozen=True)
class Query:
    name: str  # without the trailing dot, lower case
    qtype: str  # "A", "AAAA", ...
    protocol: str  # "udp" | "tcp"
    client: tuple[str, int]
    answered: bool
    rcode: str | None  # None when the query was dropped


class _Quiet:
    """dnslib's logger interface; the lab keeps its own structured log instead of printing."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("log_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class _Drop(DNSError):
    """Raised by the resolver to send nothing at all (dnslib's handler swallows DNSError)."""


class _Resolver:
    def __init__(self, lab: LabDNS) -> None:
        self.lab = lab

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        qname = _norm(str(request.q.qname))
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        client = (str(handler.client_address[0]), int(handler.client_address[1]))
        protocol = str(getattr(handler, "protocol", "udp"))
        try:
            reply = self.lab._answer(request, qname, str(qtype))
            if protocol == "udp" and self.lab.truncate_udp:
                # What a server does when the answer does not fit: the question, TC set, no records.
                reply = request.reply()
                reply.header.tc = 1
        except _Drop:
            self.lab._log(Query(qname, str(qtype), protocol, client, False, None))
            if protocol == "tcp":  # hold the connection open, as a hung server would, until stop()
                self.lab.stopping.wait()
            raise
        self.lab._log(Query(qname, str(qtype), protocol, client, True, str(RCODE.get(reply.header.rcode))))
        return reply


class LabDNS(LabServer):
    """A DNS server for the lab. Configure records before or after :meth:`start`; both are safe."""

    def __init__(
        self,
        zones: Iterable[str] = ("lab.test",),
        address: str = "127.0.0.1",
        ttl: int = 60,
        truncate_udp: bool = False,
    ) -> None:
        super().__init__()
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"the lab DNS server listens on loopback only, not {address}")
        self.zones = [_norm(z) for z in zones]
        self.host = address
        self.ttl = ttl
        self.truncate_udp = truncate_udp
        self._a: dict[str, list[str]] = {}
        self._aaaa: dict[str, list[str]] = {}
        self._cname: dict[str, str] = {}
        self._txt: dict[str, list[str]] = {}
        self._silent: set[str] = set()
        self._silent_types: dict[str, set[str]] = {}
        self._delay: dict[str, float] = {}
        self._rcode: dict[str, str] = {}
        self._queries: list[Query] = []
        self._lock = threading.Lock()
        self._port: int | None = None

    # -- zone configuration -------------------------------------------------------------------

    def add_a(self, name: str, *addresses: str) -> LabDNS:
        for a in addresses:
            ipaddress.IPv4Address(a)
        with self._lock:
            self._a.setdefault(_norm(name), []).extend(addresses)
        return self

    def add_aaaa(self, name: str, *addresses: str) -> LabDNS:
        for a in addresses:
            ipaddress.IPv6Address(a)
        with self._lock:
            self._aaaa.setdefault(_norm(name), []).extend(addresses)
        return self

    def add_cname(self, name: str, target: str) -> LabDNS:
        with self._lock:
            self._cname[_norm(name)] = _norm(target)
        return self

    def add_txt(self, name: str, *texts: str) -> LabDNS:
        """A name that exists without any address: A/AAAA queries get NOERROR with no data."""
        with self._lock:
            self._txt.setdefault(_norm(name), []).extend(texts)
        return self

    def never_answer(self, name: str, *qtypes: str) -> LabDNS:
        """Drop queries for ``name`` (only of ``qtypes`` when given, e.g. "AAAA"): clients time out."""
        with self._lock:
            if qtypes:
                self._silent_types.setdefault(_norm(name), set()).update(q.upper() for q in qtypes)
            else:
                self._silent.add(_norm(name))
        return self

    def delay(self, name: str, seconds: float) -> LabDNS:
        """Answer queries for ``name`` only after ``seconds`` (each query is served on its own thread)."""
        with self._lock:
            self._delay[_norm(name)] = seconds
        return self

    def fail_with(self, name: str, rcode: str = "SERVFAIL") -> LabDNS:
        """Answer queries for ``name`` with this rcode (SERVFAIL, REFUSED, ...) and no records."""
        getattr(RCODE, rcode)  # validate the name early
        with self._lock:
            self._rcode[_norm(name)] = rcode
        return self

    # -- log ------------------------------------------------------------------------------------

    @property
    def queries(self) -> list[Query]:
        with self._lock:
            return list(self._queries)

    def queries_for(self, name: str) -> list[Query]:
        n = _norm(name)
        return [q for q in self.queries if q.name == n]

    def clear_log(self) -> None:
        with self._lock:
            self._queries.clear()

    def _log(self, q: Query) -> None:
        with self._lock:
            self._queries.append(q)

    # -- answering -------------------------------------------------------------------------------

    def _in_zone(self, name: str) -> bool:
        return any(name == z or name.endswith("." + z) for z in self.zones)

    def _cname_rr(self, name: str, target: str) -> RR:
        return RR(name + ".", QTYPE.CNAME, rdata=CNAMERecord(target + "."), ttl=self.ttl)

    def _answer(self, request: DNSRecord, qname: str, qtype: str) -> DNSRecord:
        with self._lock:
            a = {k: list(v) for k, v in self._a.items()}
            aaaa = {k: list(v) for k, v in self._aaaa.items()}
            cname = dict(self._cname)
            txt = {k: list(v) for k, v in self._txt.items()}
            silent = set(self._silent)
            silent_types = {k: set(v) for k, v in self._silent_types.items()}
            delay = self._delay.get(qname, 0.0)
            rcode = self._rcode.get(qname)
        if qname in silent or qtype in silent_types.get(qname, set()):
            raise _Drop(f"lab: dropping query for {qname} {qtype}")
        if delay:
            time.sleep(delay)
        reply = request.reply()
        if rcode:
            reply.header.rcode = getattr(RCODE, rcode)
            return reply
        current, hops = qname, 0
        if qtype == "CNAME":
            if qname in cname:
                reply.add_answer(self._cname_rr(qname, cname[qname]))
                return reply
        else:
            while current in cname:
                target = cname[current]
                reply.add_answer(self._cname_rr(current, target))
                current, hops = target, hops + 1
                if current in silent:
                    raise _Drop(f"lab: dropping query for {qname} (its chain reaches {current})")
                if hops >= _MAX_CHAIN:  # a loop, or an absurd chain
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
        rdatas: list[Any] = {
            "A": [A(x) for x in a.get(current, [])],
            "AAAA": [AAAA(x) for x in aaaa.get(current, [])],
            "TXT": [TXT(x) for x in txt.get(current, [])],
        }.get(qtype, [])
        for rdata in rdatas:
            reply.add_answer(RR(current + ".", getattr(QTYPE, qtype), rdata=rdata, ttl=self.ttl))
        exists = any(current in d for d in (a, aaaa, cname, txt))
        if exists:
            return reply  # NOERROR, possibly with no data of this type (NODATA)
        if self._in_zone(current):
            reply.header.rcode = RCODE.NXDOMAIN
        elif hops:
            reply.header.rcode = RCODE.SERVFAIL  # a CNAME leaving the lab: it cannot recurse
        else:
            reply.header.rcode = RCODE.REFUSED
        return reply

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the lab DNS server is not started")
        return self._port

    @property
    def address(self) -> str:
        """What --dns-server takes: "127.0.0.1:PORT" (or "[::1]:PORT")."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    thread_name = "lab-dns"

    def _bind(self) -> list[socketserver.TCPServer]:
        last: OSError | None = None
        for _ in range(20):
            udp = DNSServer(_Resolver(self), address=self.host, port=0, logger=_Quiet())
            port = int(udp.server.server_address[1])
            try:
                tcp = DNSServer(_Resolver(self), address=self.host, port=port, tcp=True, logger=_Quiet())
            except OSError as exc:  # the TCP side of that port is taken: try another port
                udp.server.server_close()
                last = exc
                continue
            self._port = port
            return [udp.server, tcp.server]
        raise OSError(f"lab DNS: no port free for both UDP and TCP: {last}")


def _selftest() -> None:  # pragma: no cover - a manual smoke test: python -m preflight_lab.dns_server
    with LabDNS() as lab:
        lab.add_a("api.lab.test", "203.0.113.10")
        q = DNSRecord.question("api.lab.test")
        print(DNSRecord.parse(q.send(lab.host, lab.port, timeout=2)))
        print(lab.address, lab.queries)


if __name__ == "__main__":  # pragma: no cover
    _selftest()
