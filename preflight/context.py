"""What a probe receives: its cluster, the run's settings, and facts earlier checks established."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from preflight.kube import KubeAPI
from preflight.model import Result
from preflight.redact import Redactor
from preflight.settings import Settings
from preflight.targets import ClusterTarget

T = TypeVar("T")


@dataclass
class ClusterContext:
    target: ClusterTarget
    settings: Settings
    # Shared between checks of one cluster, e.g. the addresses kube-api.dns resolved.
    facts: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)
    deadline: float = float("inf")
    redactor: Redactor | None = None
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
                self._api = KubeAPI(self.target, self.settings.connect_timeout, self.settings.exec_timeout)
            return self._api

    def add_secret(self, secret: str) -> None:
        """A secret a probe read from the cluster: scrubbed from every result from now on."""
        if self.redactor is not None:
            self.redactor.add([secret])

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute a cluster fact once, for every check that reads it (Broker, Services, nodes...)."""
        if key not in self.facts:
            self.facts[key] = compute()
        return self.facts[key]

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


@dataclass
class FleetContext:
    clusters: list[ClusterContext]
    settings: Settings
