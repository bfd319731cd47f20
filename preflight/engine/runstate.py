"""Everything that changes during one run, in one object the runner creates and hands down explicitly.

Settings is configuration and frozen; what a run accumulates lives here: the cloud reads (describe results,
the API calls counted, circuit breakers such as Azure's "ARM unreachable"), the redactor's secrets, and
the credential fingerprint key in use. A check reaches it as ``ctx.state``.

``RunState(cloud_cache=...)`` is the hook for a caller that keeps cloud describes across runs (a
long-lived server): the cache it passes is used instead of a fresh one; calls and breakers stay per run.
In forked workers the same interface is answered by the parent (see :mod:`preflight.engine.sharedreads`), so a
describe happens once per run whatever the worker count.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import TypeVar

from preflight.engine.fingerprint import FingerprintKey, random_key
from preflight.engine.once import Once
from preflight.engine.redact import Redactor

T = TypeVar("T")


class CloudReads:
    """The run's cloud reads, shared by every cluster: each key fetched once (a failure is a value the
    sessions return, so it is remembered too), API calls counted by ``"cloud:operation"``, and breakers."""

    def __init__(self, cache: Once | None = None) -> None:
        self.cache = cache if cache is not None else Once()
        self._resources = Once()  # this process's SDK sessions and clients: never shared, never cached across runs
        self._calls: Counter[str] = Counter()
        self._breakers: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, key: tuple[Hashable, ...], fetch: Callable[[], T]) -> T:
        """``fetch()`` once per run (or per the caller's cache) for ``key``, whichever cluster asks first."""
        return self.cache.get(key, fetch)

    def resource(self, key: tuple[Hashable, ...], make: Callable[[], T]) -> T:
        """An object of this process (an SDK session, client or credential), made once per run."""
        return self._resources.get(key, make)

    def count(self, call: str, n: int = 1) -> None:
        """``n`` requests sent for ``call`` (``"aws:ec2.DescribeSubnets"``)."""
        with self._lock:
            self._calls[call] += n

    def calls(self, cloud: str) -> dict[str, int]:
        """Requests the run sent to ``cloud`` so far, by operation (a copy, sorted, fit for evidence)."""
        prefix = f"{cloud}:"
        with self._lock:
            return {k.removeprefix(prefix): n for k, n in sorted(self._calls.items()) if k.startswith(prefix)}

    def trip(self, breaker: str, why: str) -> None:
        """Open a breaker for the rest of the run (the first reason stays)."""
        with self._lock:
            self._breakers.setdefault(breaker, why)

    def tripped(self, breaker: str) -> str | None:
        """Why ``breaker`` is open, or None."""
        with self._lock:
            return self._breakers.get(breaker)


class RunState:
    """One run's changing state, created by the runner (or by a caller that wants to supply parts of it).

    ``cloud_cache``: a long-lived cache of cloud describes to use instead of a fresh one per run.
    ``fingerprint_key``: the key credential fingerprints are made with (--fingerprint-key-file), else random.
    """

    def __init__(
        self,
        *,
        cloud_cache: Once | None = None,
        fingerprint_key: FingerprintKey | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.cloud = CloudReads(cloud_cache)
        self.redactor = redactor if redactor is not None else Redactor()
        self.fingerprint_key = fingerprint_key if fingerprint_key is not None else random_key()
