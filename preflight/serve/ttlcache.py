"""Cloud describes that outlive a run: cached across runs and probes for a while.

A run's cloud reads go through ``RunState.cloud`` (preflight/engine/runstate.py), whose cache `check` makes fresh
per run. `serve` hands every run and probe one :class:`TtlOnce` instead (``RunState(cloud_cache=...)``), so a
describe made by one run answers the next ones until it is ``ttl`` seconds old, and a fleet's scrapes never
hammer the cloud APIs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from preflight.engine.once import Once

T = TypeVar("T")
DEFAULT_TTL_S = 600.0


class TtlOnce(Once):
    """:class:`~preflight.engine.once.Once` whose values expire ``ttl`` seconds after they were computed (or put):
    an expired key is computed afresh by the next asker, once, as any missing key is."""

    def __init__(self, ttl: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.ttl, self._clock = ttl, clock
        self._born: dict[Hashable, float] = {}
        self._ttl_lock = threading.Lock()
        self.computed = 0  # values computed (cache misses) since start

    def _expire(self, key: Hashable) -> None:
        with self._ttl_lock:
            born = self._born.get(key)
            if born is None or self._clock() - born < self.ttl:
                return
            del self._born[key]
        with self._lock:
            self._values.pop(key, None)

    def _stamp(self, key: Hashable) -> None:
        with self._ttl_lock:
            self._born[key] = self._clock()
            self.computed += 1

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        self._expire(key)

        def stamped() -> T:
            value = compute()
            self._stamp(key)
            return value

        return super().get(key, stamped)

    def peek(self, key: Hashable) -> tuple[bool, Any]:
        self._expire(key)
        return super().peek(key)

    def put(self, key: Hashable, value: Any) -> None:
        self._expire(key)
        known, _ = super().peek(key)
        super().put(key, value)
        if not known:
            self._stamp(key)
