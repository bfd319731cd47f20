"""The check registry: checks declare themselves with :func:`check`; the runner asks for an order.

The registry knows nothing of which checks exist: ``checks/`` imports it, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from preflight.engine.facts import Fact
from preflight.engine.model import Check, Probe, Scope, Severity
from preflight.engine.permissions import Permission


class RegistryError(Exception):
    pass


class Registry:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, chk: Check) -> Check:
        if chk.id in self._checks:
            raise RegistryError(f"check id {chk.id!r} is declared twice")
        self._checks[chk.id] = chk
        return chk

    def get(self, check_id: str) -> Check:
        try:
            return self._checks[check_id]
        except KeyError:
            raise RegistryError(f"unknown check id {check_id!r}") from None

    def __contains__(self, check_id: object) -> bool:
        return check_id in self._checks

    def all(self) -> list[Check]:
        return list(self._checks.values())

    def select(self, patterns: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[Check]:
        """Checks whose ids match any include glob (all when none) and no exclude glob."""
        inc, exc = list(patterns), list(exclude)
        return [
            c
            for c in self._checks.values()
            if (not inc or any(fnmatchcase(c.id, p) for p in inc)) and not any(fnmatchcase(c.id, p) for p in exc)
        ]

    def closure(self, checks: Iterable[Check]) -> set[str]:
        """The ids of ``checks`` and of every check they depend on, transitively."""
        wanted: set[str] = set()
        stack = [c.id for c in checks]
        while stack:
            cid = stack.pop()
            if cid not in wanted:
                wanted.add(cid)
                stack.extend(self.get(cid).depends_on)
        return wanted

    def with_dependencies(self, checks: Iterable[Check]) -> list[Check]:
        """``checks`` plus every check they depend on, transitively, in registration order."""
        wanted = self.closure(checks)
        return [c for c in self._checks.values() if c.id in wanted]

    def ordered(self, checks: Iterable[Check], scope: Scope) -> list[Check]:
        """Topological order (declaration order among equals); dependencies outside the set are ignored."""
        wanted = {c.id: c for c in checks if c.scope == scope}
        order: list[Check] = []
        state: dict[str, int] = {}

        def visit(cid: str, path: tuple[str, ...]) -> None:
            if state.get(cid) == 2:
                return
            if state.get(cid) == 1:
                raise RegistryError("dependency cycle: " + " -> ".join((*path, cid)))
            state[cid] = 1
            for dep in (*wanted[cid].depends_on, *wanted[cid].after):
                if dep in wanted:
                    visit(dep, (*path, cid))
            state[cid] = 2
            order.append(wanted[cid])

        for cid in wanted:
            visit(cid, ())
        return order

    def validate(self) -> None:
        for c in self._checks.values():
            for dep in (*c.depends_on, *c.after):
                if dep not in self._checks:
                    raise RegistryError(f"check {c.id!r} depends on unknown check {dep!r}")
            if set(c.depends_on) & set(c.after):
                raise RegistryError(f"check {c.id!r} lists {sorted(set(c.depends_on) & set(c.after))} twice")
        for c in self._checks.values():
            for fact in c.reads:
                if fact.producer not in self._checks:
                    raise RegistryError(
                        f"check {c.id!r} reads {fact.name}, produced by unknown check {fact.producer!r}"
                    )
                if fact.producer not in self.closure([c]):
                    raise RegistryError(
                        f"check {c.id!r} reads {fact.name}, but its producer {fact.producer!r} is neither the check "
                        "nor among its dependencies"
                    )
        for scope in Scope:
            self.ordered(self._checks.values(), scope)


REGISTRY = Registry()


def check(
    *,
    id: str,
    title: str,
    category: str,
    severity: Severity,
    remediation: str,
    docs_anchor: str | None = None,
    depends_on: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
    permissions: tuple[Permission, ...] = (),
    reads: tuple[Fact[Any], ...] = (),
    prepare: Callable[[Sequence[Any]], None] | None = None,
    scope: Scope = Scope.CLUSTER,
    timeout_factor: float = 2.0,
    meshery_code: str | None = None,
    meshery_codes: tuple[str, ...] = (),
    registry: Registry | None = None,
) -> Callable[[Probe], Probe]:
    """Declare a check. The probe's docstring is its description in ``explain``.

    ``depends_on``: checks whose data this one needs (it is skipped until they pass); ``after``: checks it is
    reported after but does not need (it runs whatever they found). ``meshery_code``: the Meshery diagnostic a
    fail is (``meshery_codes``: others its findings may name).
    """

    def decorate(probe: Probe) -> Probe:
        (registry or REGISTRY).add(
            Check(
                id=id,
                title=title,
                category=category,
                severity=severity,
                scope=scope,
                probe=probe,
                remediation=remediation,
                docs_anchor=docs_anchor or id.replace(".", "-"),
                depends_on=depends_on,
                after=after,
                permissions=permissions,
                reads=reads,
                prepare=prepare,
                description=" ".join((probe.__doc__ or "").split()),
                timeout_factor=timeout_factor,
                meshery_code=meshery_code,
                meshery_codes=meshery_codes,
            )
        )
        return probe

    return decorate
