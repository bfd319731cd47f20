"""Describe results fetched once per run, per account and region, and shared by every cluster.

Cloud APIs are rate-limited and slow; a fleet of 200 EKS clusters in one account must not describe the
same security groups 200 times. The cache lives in the run's Settings.shared, so each run starts clean.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_LOCK = threading.Lock()


class CallCache:
    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self.calls = 0

    def get(self, key: Hashable, fetch: Callable[[], T]) -> T:
        """Fetch once per key; concurrent callers for the same key wait for the first."""
        with self._guard:
            if key in self._values:
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._values:
                    return self._values[key]
            value = fetch()
            with self._guard:
                self.calls += 1
                self._values[key] = value
            return value


def run_cache(shared: dict[str, Any], name: str) -> CallCache:
    with _LOCK:
        cache = shared.get(f"cloud-cache:{name}")
        if cache is None:
            cache = shared[f"cloud-cache:{name}"] = CallCache()
        return cache
