"""One rule model for AWS security groups and NACLs, GCP firewall rules and Azure NSG rules, and one
evaluator that answers "may origin X reach port P on target T" with each provider's own semantics.

The origin is split into pieces at every rule boundary; each piece then gets exactly the decision the
cloud would make for any address in it, so the verdict is exact (allowed / blocked / partially) and
names the rule that decided each piece.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# How a provider combines rules.
UNION = "union"  # AWS security groups: allow-only, any matching rule allows
FIRST_MATCH = "first-match"  # AWS NACLs, Azure NSGs: lowest number first, first match decides
PRIORITY = "priority"  # GCP: lowest priority number wins, deny beats allow at equal priority

WORLD = ("0.0.0.0/0", "::/0")
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Rule:
    provider: str  # aws-sg | aws-nacl | gcp | azure
    name: str  # what a user finds in the console: sg id + index, NACL rule number, rule name
    action: str  # allow | deny
    sources: tuple[str, ...]  # CIDRs the rule matches (for egress rules: destinations)
    ports: tuple[tuple[int, int], ...] = ()  # inclusive ranges; empty means every port
    protocol: str = "all"  # tcp | udp | icmp | all
    priority: int = 0
    direction: str = "ingress"
    # GCP target tags / service accounts; None applies to every instance.
    targets: frozenset[str] | None = None
    # Where a user changes it: "sg-0abc (eks-nodes)", "firewall default-allow-broker", "nsg aks-agentpool-nsg".
    container: str = ""

    def covers_port(self, port: int, protocol: str) -> bool:
        if self.protocol not in ("all", protocol):
            return False
        return not self.ports or any(lo <= port <= hi for lo, hi in self.ports)

    def covers_ports(self, lo: int, hi: int, protocol: str) -> bool:
        if self.protocol not in ("all", protocol):
            return False
        return not self.ports or any(a <= lo and hi <= b for a, b in self.ports)

    def applies_to(self, target: frozenset[str] | None) -> bool:
        return self.targets is None or (target is not None and bool(self.targets & target))

    @property
    def world_open(self) -> bool:
        return self.action == "allow" and any(s in WORLD for s in self.sources)

    def label(self) -> str:
        return f"{self.container}: {self.name}" if self.container else self.name


@dataclass
class Verdict:
    state: str  # allowed | blocked | partial
    allowed: list[str] = field(default_factory=list)  # pieces of the origin that get through
    blocked: list[str] = field(default_factory=list)
    deciding: list[str] = field(default_factory=list)  # rule labels that decided, in order of first use
    world_open: list[str] = field(default_factory=list)  # allow rules for this port from 0.0.0.0/0 or ::/0

    def as_evidence(self) -> dict[str, object]:
        return {
            "verdict": self.state,
            "allowed": self.allowed,
            "blocked": self.blocked,
            "deciding_rules": self.deciding,
            "world_open_rules": self.world_open,
        }


def networks(cidrs: Iterable[str]) -> list[Net]:
    """The CIDRs that parse (host bits allowed); anything else is not an address range and is left out."""
    out: list[Net] = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            continue
    return out


def inside(origin: Sequence[str], cidrs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split origin CIDRs into those inside one of `cidrs` and those not (an unparsable origin is outside)."""
    nets = networks(cidrs)
    ins: list[str] = []
    outs: list[str] = []
    for o in origin:
        parsed = networks([o])
        hit = bool(parsed) and any(
            parsed[0].version == n.version and parsed[0].subnet_of(n)  # type: ignore[arg-type]
            for n in nets
        )
        (ins if hit else outs).append(o)
    return ins, outs


def port_ranges(specs: Iterable[str]) -> list[tuple[int, int]]:
    """ "4222" / "30000-32767" specs as inclusive ranges; specs that do not parse are left out."""
    out: list[tuple[int, int]] = []
    for spec in specs:
        lo, _, hi = str(spec).strip().partition("-")
        try:
            out.append((int(lo), int(hi or lo)))
        except ValueError:
            continue
    return out


def _pieces(origin: Net, boundaries: Sequence[Net]) -> list[tuple[int, int]]:
    """Split the origin's integer range at every boundary of a rule network that overlaps it."""
    lo, hi = int(origin.network_address), int(origin.broadcast_address)
    cuts = {lo, hi + 1}
    for n in boundaries:
        if n.version != origin.version:
            continue
        a, b = int(n.network_address), int(n.broadcast_address)
        if b < lo or a > hi:
            continue
        cuts.add(max(a, lo))
        cuts.add(min(b, hi) + 1)
    points = sorted(cuts)
    return [(points[i], points[i + 1] - 1) for i in range(len(points) - 1)]


def _matches(rule: Rule, lo: int, version: int) -> bool:
    """A piece never straddles a rule boundary, so testing its first address decides for all of it."""
    for n in networks(rule.sources):
        if n.version == version and int(n.network_address) <= lo <= int(n.broadcast_address):
            return True
    return False


def _decide(rules: Sequence[Rule], semantics: str, lo: int, version: int) -> tuple[bool, Rule | None]:
    hits = [r for r in rules if _matches(r, lo, version)]
    if semantics == UNION:
        allow = next((r for r in hits if r.action == "allow"), None)
        return allow is not None, allow
    if semantics == FIRST_MATCH:
        first = min(hits, key=lambda r: r.priority, default=None)
        return (first is not None and first.action == "allow"), first
    if semantics == PRIORITY:
        if not hits:
            return False, None
        best = min(r.priority for r in hits)
        top = [r for r in hits if r.priority == best]
        deny = next((r for r in top if r.action == "deny"), None)
        return (deny is None), (deny or top[0])
    raise ValueError(f"unknown semantics {semantics!r}")


def _to_cidrs(ranges: list[tuple[int, int]], version: int) -> list[str]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:  # adjacent, or overlapping when origin CIDRs overlap
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    out: list[str] = []
    for lo, hi in merged:
        out.extend(str(n) for n in ipaddress.summarize_address_range(cls(lo), cls(hi)))
    return out


def evaluate(
    rules: Sequence[Rule],
    origin: Sequence[str],
    port: int,
    *,
    semantics: str,
    protocol: str = "tcp",
    target: frozenset[str] | None = None,
    port_range: tuple[int, int] | None = None,
    direction: str = "ingress",
) -> Verdict:
    """May every address of `origin` reach `port` (or every port of `port_range`) on `target`?

    Rules of another direction, protocol or port, or not applying to the target, are ignored; what is
    left is combined with `semantics`. No matching rule means blocked (every provider's implied deny).
    With `port_range` the range is split at every rule's port boundaries and an address gets through
    only if every sub-range does: a deny of part of the range counts, and so do allows that only
    together cover it.
    """
    candidates = [r for r in rules if r.direction == direction and r.applies_to(target)]
    if port_range:
        first, last = port_range
        cuts = {first, last + 1}
        for r in candidates:
            for a, b in r.ports:
                if a <= last and b >= first:
                    cuts.update((max(a, first), min(b, last) + 1))
        probes = sorted(cuts)[:-1]  # one port per sub-range with the same rules
    else:
        probes = [port]
    per_port = [[r for r in candidates if r.covers_port(p, protocol)] for p in probes]
    relevant = [r for r in candidates if any(r.covers_port(p, protocol) for p in probes)]
    verdict = Verdict(state="blocked")
    verdict.world_open = sorted({r.label() for r in relevant if r.world_open})
    boundaries = [n for r in relevant for n in networks(r.sources)]
    allowed: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    blocked: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    for net in networks(origin):
        for lo, hi in _pieces(net, boundaries):
            decisions = [_decide(rs, semantics, lo, net.version) for rs in per_port]
            failed = next(((ok, rule) for ok, rule in decisions if not ok), None)
            ok = failed is None
            (allowed if ok else blocked)[net.version].append((lo, hi))
            for _, rule in decisions if failed is None else [failed]:
                if rule is not None and rule.label() not in verdict.deciding:
                    verdict.deciding.append(rule.label())
    for v in (4, 6):
        verdict.allowed += _to_cidrs(allowed[v], v)
        verdict.blocked += _to_cidrs(blocked[v], v)
    if verdict.allowed and not verdict.blocked:
        verdict.state = "allowed"
    elif verdict.allowed:
        verdict.state = "partial"
    return verdict


def describe(verdict: Verdict, what: str) -> str:
    """One line an SRE can act on."""
    if verdict.state == "allowed":
        return f"{what} allowed by {', '.join(verdict.deciding)}"
    if verdict.state == "partial":
        return (
            f"{what} only partly allowed: {', '.join(verdict.allowed)} get through, "
            f"{', '.join(verdict.blocked)} blocked"
            + (f" (by {', '.join(verdict.deciding)})" if verdict.deciding else "")
        )
    by = f" by {', '.join(verdict.deciding)}" if verdict.deciding else " (no rule allows it: implied deny)"
    return f"{what} blocked{by}"
