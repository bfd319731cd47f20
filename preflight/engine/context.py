"""What a probe receives: its cluster, the run's settings and state, and facts earlier checks established."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from preflight.engine.facts import Fact, MissingFact
from preflight.engine.fingerprint import FingerprintKey
from preflight.engine.kube import KubeAPI
from preflight.engine.model import CredentialRef, FleetMember, Result
from preflight.engine.once import Once
from preflight.engine.runstate import RunState
from preflight.engine.settings import Settings
from preflight.engine.targets import ClusterTarget, normalized_server

T = TypeVar("T")


@dataclass
class ClusterContext:
    target: ClusterTarget
    settings: Settings
    # The run's changing state (cloud reads, redactor, fingerprint key): the runner hands every cluster its run's.
    state: RunState = field(default_factory=RunState)
    # Typed facts checks establish for later ones (set_fact / fact), and cached cluster reads (memo).
    _facts: dict[str, Any] = field(default_factory=dict)
    _memo: Once = field(default_factory=Once)
    _fleet_facts: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)
    deadline: float = float("inf")
    _api: KubeAPI | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.target.name

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def api(self) -> KubeAPI:
        with self._lock:
            if self._api is None:
                self._api = KubeAPI(
                    self.target, self.settings.connect_timeout, self.settings.exec_timeout, self.add_secrets
                )
            return self._api

    def add_secret(self, secret: str) -> None:
        """A secret a probe read from the cluster: scrubbed from every result from now on."""
        self.add_secrets([secret])

    def add_secrets(self, secrets: list[str]) -> None:
        self.state.redactor.add(secrets)

    def set_fact(self, fact: Fact[T], value: T) -> None:
        with self._lock:
            self._facts[fact.name] = value
            if fact.fleet:
                self._fleet_facts[fact.name] = value

    def member(self, key: FingerprintKey) -> FleetMember:
        """This cluster as the fleet checks see it, its credential fingerprinted with ``key``."""
        t = self.target
        fp = t.credential.fingerprint(key)
        with self._lock:
            facts = dict(self._fleet_facts)
        return FleetMember(
            name=self.name,
            server=normalized_server(t.server) if t.server else "",
            mode=t.mode or self.settings.default_mode,
            default_mode=self.settings.default_mode,
            credential=CredentialRef(t.credential.kind, fp, key.id) if fp else None,
            facts=facts,
        )

    def fact(self, fact: Fact[T]) -> T:
        """The value ``fact.producer`` set; :class:`MissingFact` when it did not."""
        with self._lock:
            if fact.name not in self._facts:
                raise MissingFact(fact)
            value: T = self._facts[fact.name]
            return value

    def get_fact(self, fact: Fact[T]) -> T | None:
        """The value, or None when the producer did not set it (did not run, or did not pass)."""
        with self._lock:
            value: T | None = self._facts.get(fact.name)
            return value

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute a cluster read once, for every check and thread that asks (Broker, Services, nodes, connects):
        two candidates on one address cost one connect. A computation that raises is not remembered."""
        return self._memo.get(key, compute)

    def close(self) -> None:
        """The cluster is done: its connections close and its cached reads go (a node list parses to a few
        hundred KB; a fleet's contexts live until the report is written). Results and facts stay."""
        if self._api is not None:
            self._api.close()
        self._memo = Once()  # a probe that overran keeps the old cache; nothing else reads it any more


@dataclass
class FleetContext:
    """What a fleet check receives: one record per cluster, from a live run or from merged reports alike."""

    members: list[FleetMember]
    settings: Settings

    def facts(self, fact: Fact[T]) -> dict[str, T]:
        """Each cluster's value of a fleet fact (``Fact.fleet``), by cluster name, for the clusters that set it."""
        out: dict[str, T] = {}
        for m in self.members:
            value = m.fact(fact)
            if value is not None:
                out[m.name] = value
        return out
