"""Typed, named facts one check establishes for others (the address that answered, the Broker's INFO...).

A :class:`Fact` names its producer, so the registry can prove before any run that every check reading
it runs after the check that writes it (its ``depends_on`` closure), and a reader gets a clear
:class:`MissingFact` instead of a ``KeyError`` when the producer did not get that far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A fact's key: ``name`` as it is stored, ``producer`` the id of the one check that sets it."""

    name: str
    producer: str
    # Read by fleet checks: kept per cluster in reports (JSON values only), so `merge` can rerun them.
    fleet: bool = False

    def __str__(self) -> str:
        return f"{self.name} (from {self.producer})"


class MissingFact(LookupError):
    """A check read a fact its producer did not set (it did not pass, or did not run)."""

    def __init__(self, fact: Fact[Any]) -> None:
        super().__init__(f"fact {fact.name} was not set: {fact.producer} did not establish it")
        self.fact = fact
