"""Cloud reads shared across forked workers: the parent answers them, so a describe happens once per run.

Why not read the cloud inventory before the fleet is split: what a check describes depends on what it found
in its cluster (the Broker's load balancer, the nodes' instances, the cluster's own project or subscription),
so no list made up front is complete, and reading whole accounts up front would cost the calls the cache
exists to save. Instead the parent keeps the run's :class:`CloudReads` and every worker asks it first:

- ``claim(key)``: the parent answers with the value when it has one; the first asker is told to fetch, and
  later askers wait until it sends the value back (``put``), which the parent keeps and hands to each of them.
  Sessions return a cloud failure as a value, so a 403 is shared like an answer. A fetch that raised anyway
  (a bug), a value that cannot be pickled, or a worker that died hands the claim to the next waiter.
- ``count`` / ``calls``: the run's API call counts, so ``*_api_calls`` evidence is run-wide.
- ``trip`` / ``tripped``: circuit breakers (Azure's "ARM unreachable") open for every worker at once.

Only the parent writes the run's CloudReads; a worker keeps what it learned in its own copy as well, so
it asks the parent once per key at most.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Hashable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from preflight.engine.runstate import CloudReads

T = TypeVar("T")
Reply = tuple[int, Any]  # (worker index, what to send it)


class ReadServer:
    """The parent's side: answers what workers ask of the run's cloud reads."""

    def __init__(self, reads: CloudReads) -> None:
        self.reads = reads
        self._fetching: dict[Hashable, int] = {}  # key -> the worker fetching it
        self._waiting: dict[Hashable, list[tuple[int, int]]] = {}  # key -> (worker, request id) waiting on it

    def handle(self, worker: int, request: tuple[Any, ...]) -> list[Reply]:
        """What to send to whom for one request: ``(rid, op, *args)``; rid None when no answer is wanted."""
        rid, op, *args = request
        if op == "claim":
            (key,) = args
            found, value = self.reads.cache.peek(key)
            if found:
                return [(worker, (rid, ("value", value)))]
            if key in self._fetching:
                self._waiting.setdefault(key, []).append((worker, rid))
                return []
            self._fetching[key] = worker
            return [(worker, (rid, ("fetch", None)))]
        if op == "put":
            key, value = args
            self.reads.cache.put(key, value)
            self._fetching.pop(key, None)
            return [(w, (r, ("value", value))) for w, r in self._waiting.pop(key, [])]
        if op == "abandon":
            (key,) = args
            return self._hand_on(key)
        if op == "count":
            self.reads.count(*args)
            return []
        if op == "calls":
            return [(worker, (rid, self.reads.calls(*args)))]
        if op == "trip":
            self.reads.trip(*args)
            return []
        if op == "tripped":
            return [(worker, (rid, self.reads.tripped(*args)))]
        raise ValueError(f"unknown request {op!r}")

    def lost(self, worker: int) -> list[Reply]:
        """A worker ended: what it was fetching goes to the next waiter, and nobody waits on its behalf."""
        for key, waiters in list(self._waiting.items()):
            self._waiting[key] = [(w, r) for w, r in waiters if w != worker]
        out: list[Reply] = []
        for key in [k for k, w in self._fetching.items() if w == worker]:
            out += self._hand_on(key)
        return out

    def _hand_on(self, key: Hashable) -> list[Reply]:
        self._fetching.pop(key, None)
        waiters = self._waiting.pop(key, [])
        if not waiters:
            return []
        (worker, rid), rest = waiters[0], waiters[1:]
        self._fetching[key] = worker
        if rest:
            self._waiting[key] = rest
        return [(worker, (rid, ("fetch", None)))]


class Channel:
    """A worker's line to its parent: ``progress`` messages, and requests answered by the parent's ReadServer.

    Any thread may use it: sends are serialised, and one reader thread hands each answer to its asker."""

    def __init__(self, up: Connection, down: Connection) -> None:
        self._up, self._down = up, down
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._answers: dict[int, queue.SimpleQueue[tuple[bool, Any]]] = {}
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def send(self, kind: str, payload: Any) -> None:
        with self._send_lock:
            self._up.send((kind, payload))

    def progress(self, name: str) -> None:
        self.send("progress", name)

    __call__ = progress

    def tell(self, op: str, *args: Any) -> None:
        self.send("ask", (None, op, *args))

    def ask(self, op: str, *args: Any) -> Any:
        """The parent's answer; :class:`ConnectionError` when the parent can no longer answer."""
        answer: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        with self._lock:
            rid = next(self._ids)
            self._answers[rid] = answer
            if self._reader is None:
                self._reader = threading.Thread(target=self._read, name="parent-answers", daemon=True)
                self._reader.start()
        self.send("ask", (rid, op, *args))
        ok, value = answer.get()
        if not ok:
            raise ConnectionError("the parent process no longer answers cloud reads")
        return value

    def _read(self) -> None:
        try:
            while True:
                rid, value = self._down.recv()
                with self._lock:
                    waiting = self._answers.pop(rid, None)
                if waiting is not None:
                    waiting.put((True, value))
        except (EOFError, OSError):
            with self._lock:
                waiting_all, self._answers = list(self._answers.values()), {}
            for waiting in waiting_all:
                waiting.put((False, None))


class WorkerCloudReads(CloudReads):
    """The run's CloudReads as a worker sees them: every question goes to the parent (see the module)."""

    def __init__(self, channel: Channel, local: CloudReads) -> None:
        super().__init__(local.cache)
        self.channel = channel

    def read(self, key: tuple[Hashable, ...], fetch: Callable[[], T]) -> T:
        return self.cache.get(key, lambda: self._shared(key, fetch))

    def _shared(self, key: tuple[Hashable, ...], fetch: Callable[[], T]) -> T:
        kind, value = self.channel.ask("claim", key)
        if kind == "value":
            return value
        try:
            value = fetch()
        except BaseException:
            self.channel.tell("abandon", key)
            raise
        try:
            self.channel.tell("put", key, value)
        except Exception:  # not picklable: the others fetch it themselves
            self.channel.tell("abandon", key)
        return value

    def count(self, call: str, n: int = 1) -> None:
        self.channel.tell("count", call, n)

    def calls(self, cloud: str) -> dict[str, int]:
        answer: dict[str, int] = self.channel.ask("calls", cloud)
        return answer

    def trip(self, breaker: str, why: str) -> None:
        self.channel.tell("trip", breaker, why)

    def tripped(self, breaker: str) -> str | None:
        answer: str | None = self.channel.ask("tripped", breaker)
        return answer
