"""Compute a value once per key, for every thread that asks: the one compute-once cache of the tool.

A cluster's reads (ClusterContext.memo) and the run's cloud describes (runstate.CloudReads) both use it.
Concurrent askers of one key wait for the first one's computation (one lock per key), so two checks
asking at once cost one request. A computation that raises is not remembered: a caller that wants a
failure remembered returns it as a value (the cloud sessions do, so 200 clusters never retry a 403).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING: Any = object()


class Once:
    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``key``, computed by ``compute`` if no thread has yet."""
        with self._lock:
            value = self._values.get(key, _MISSING)
            if value is not _MISSING:
                return value
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                value = self._values.get(key, _MISSING)
            if value is not _MISSING:
                return value
            value = compute()
            with self._lock:
                self._values[key] = value
            return value

    def peek(self, key: Hashable) -> tuple[bool, Any]:
        """(True, value) when ``key`` was computed, else (False, None); never computes."""
        with self._lock:
            value = self._values.get(key, _MISSING)
        return (False, None) if value is _MISSING else (True, value)

    def put(self, key: Hashable, value: Any) -> None:
        """Remember a value computed elsewhere (another process) unless one is already known."""
        with self._lock:
            self._values.setdefault(key, value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
