"""Run-wide shared state that outlives a run: cloud describes cached across runs and probes for a while.

A run keeps what every cluster shares (cloud describe results, account sessions) in ``Settings.shared``;
`check` starts each run with an empty dict. `serve` hands every run and probe one :class:`TtlShared`
instead, so a describe made by one run answers the next ones until it is ``ttl`` seconds old, and a
fleet's scrapes never hammer the cloud APIs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

DEFAULT_TTL_S = 600.0


class TtlShared(dict[str, Any]):
    """A ``Settings.shared`` whose entries (each a whole cache: one CallCache per API) expire ``ttl``
    seconds after they were made; an expired entry is gone, so the next run fetches afresh."""

    def __init__(self, ttl: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.ttl, self._clock = ttl, clock
        self._born: dict[str, float] = {}
        self._lock = threading.RLock()
        # Fetches (API calls) of caches that expired: with the live ones, every call ever made.
        self._retired_calls = 0

    def _expire(self, key: str) -> None:
        born = self._born.get(key)
        if born is not None and self._clock() - born >= self.ttl:
            self._retired_calls += int(getattr(super().get(key), "calls", 0) or 0)
            super().pop(key, None)
            del self._born[key]

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            self._expire(key)
            return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            if isinstance(key, str):
                self._expire(key)
            return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            self._expire(key)
            return super().get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            if not super().__contains__(key):
                self._born[key] = self._clock()
            super().__setitem__(key, value)

    def setdefault(self, key: str, default: Any = None) -> Any:
        with self._lock:
            self._expire(key)
            if not super().__contains__(key):
                self[key] = default
            return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(super().keys()))

    def api_calls(self) -> int:
        """Cloud API calls made through the caches so far (their fetches), expired caches included."""
        with self._lock:
            live = sum(int(getattr(v, "calls", 0) or 0) for v in super().values())
            return self._retired_calls + live
