"""Use the machine's other cores: run shares of a fleet in forked worker processes.

One process checks clusters with threads, and at fleet scale its own CPU (Python holds one core at a time)
becomes the bound. Workers are forked after planning, so they inherit the plan, the loaded modules and the
run's cancellation without re-importing anything; each sends back what its share produced (pickled, over a
pipe), and the parent carries on as if it had run them itself. While they run, the parent answers what
they ask of the run's shared state over a second pipe (a ``server``: see :mod:`preflight.engine.sharedreads`).

Signals: Ctrl-C reaches every process of the terminal's group, and each one stops the way a single
process would. A SIGTERM sent to the parent only is passed on to the workers as SIGUSR1 (a first signal
for them, however many the parent gets). A worker whose parent dies kills its plugins and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from preflight.engine.interrupt import exit_now
from preflight.engine.sharedreads import Channel

S = TypeVar("S")
R = TypeVar("R")

# A worker costs a fork and its share of copy-on-write pages: worth it once it has a few dozen clusters.
CLUSTERS_PER_WORKER = 32
_POLL_S = 0.1
# SIGUSR1: the parent's "stop and send what you have"; SIGUSR2: the parent died (PR_SET_PDEATHSIG).
STOP_SIGNAL = signal.SIGUSR1
ORPHAN_SIGNAL = signal.SIGUSR2
_PR_SET_PDEATHSIG = 1


CGROUP = Path("/sys/fs/cgroup")


def cpus(cgroup: Path = CGROUP) -> int:
    """The cores this process may use: its CPU affinity, and in a container its cgroup's CPU quota (a pod
    limited to one CPU on a 64-core node gets one worker, not 64)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    return usable if quota is None else min(usable, max(1, math.ceil(quota)))


def _cpu_quota(cgroup: Path) -> float | None:
    """CPUs the cgroup may use, or None without a limit: v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"),
    else v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: no limit)."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        pass
    for v1 in (cgroup / "cpu", cgroup / "cpu,cpuacct"):
        try:
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def count_for(requested: int, clusters: int) -> int:
    """``requested`` workers (0: one per core, each with at least CLUSTERS_PER_WORKER clusters)."""
    if requested > 0:
        return max(1, min(requested, clusters))
    return max(1, min(cpus(), clusters // CLUSTERS_PER_WORKER))


def can_fork() -> bool:
    """Forking a process with other threads can copy a lock some thread holds; such a caller runs in-process."""
    return hasattr(os, "fork") and threading.active_count() == 1


def share_size(total: int, count: int) -> int:
    return max(1, math.ceil(total / count))


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(ORPHAN_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:  # it died before the kernel was told to tell us
        os.kill(os.getpid(), ORPHAN_SIGNAL)


class Stoppable(Protocol):
    """Whether the run was asked to stop (a threading.Event, the run's Cancellation)."""

    def is_set(self) -> bool: ...


class Server(Protocol):
    """What the parent answers for its workers: replies as (worker index, message) pairs."""

    def handle(self, worker: int, request: Any) -> list[tuple[int, Any]]: ...

    def lost(self, worker: int) -> list[tuple[int, Any]]: ...


def _child(
    share: S,
    work: Callable[[S, Channel], R],
    conn: Channel,
    on_stop: Callable[[], None],
    on_orphaned: Callable[[], object],
    parent: int,
) -> int:
    def orphaned(signum: int, frame: Any) -> None:
        on_orphaned()
        exit_now(1)

    signal.signal(STOP_SIGNAL, lambda signum, frame: on_stop())
    signal.signal(ORPHAN_SIGNAL, orphaned)
    _die_with_parent(parent)
    try:
        result = work(share, conn)
        conn.send("done", result)
        return 0
    except BaseException as exc:  # the parent reports this share's clusters as not checked, with this cause
        with contextlib.suppress(BaseException):
            conn.send("failed", f"{type(exc).__name__}: {exc}")
        return 1


def fan_out(
    shares: Sequence[S],
    work: Callable[[S, Channel], R],
    *,
    progress: Callable[[str], None],
    stop: Stoppable | None,
    on_stop: Callable[[], None],
    on_orphaned: Callable[[], object],
    grace: float,
    limit: float,
    server: Server | None = None,
) -> list[R | str]:
    """``work(share, channel)`` in one forked process per share: per share its result, or a line saying
    why there is none (the worker raised, was killed, had not answered ``grace`` seconds after ``stop`` was
    set, or ``limit`` seconds after it started: the longest its share can take, so even a worker stuck for
    good costs the run a deadline, not forever). ``channel(name)`` reports progress; ``channel.ask`` and
    ``channel.tell`` reach ``server``. ``on_stop`` runs in a worker told to stop; ``on_orphaned`` in one
    whose parent died."""
    started = time.monotonic()
    workers: dict[Connection, tuple[int, int]] = {}
    answers: dict[int, Connection] = {}
    parent = os.getpid()
    for index, share in enumerate(shares):
        read_fd, write_fd = os.pipe()
        down_read, down_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            os.close(down_write)
            for conn in list(workers) + list(answers.values()):  # the earlier workers' lines are not this one's
                conn.close()
            channel = Channel(Connection(write_fd, readable=False), Connection(down_read, writable=False))
            code = 1
            try:
                code = _child(share, work, channel, on_stop, on_orphaned, parent)
            finally:
                exit_now(code)  # never back into the parent's code, its atexit hooks or its buffers
        os.close(write_fd)
        os.close(down_read)
        workers[Connection(read_fd, writable=False)] = (index, pid)
        answers[index] = Connection(down_write, readable=False)

    def answer(replies: Sequence[tuple[int, Any]]) -> None:
        for to, message in replies:
            if to in answers:
                with contextlib.suppress(OSError):
                    answers[to].send(message)

    outcomes: list[R | str] = [f"did not finish within its deadline of {limit:.0f}s"] * len(shares)
    pids = {pid: index for index, pid in workers.values()}
    give_up_at = started + limit
    stopping = False
    try:
        while workers:
            if stop is not None and stop.is_set() and not stopping:
                stopping = True
                give_up_at = min(give_up_at, time.monotonic() + grace)
                outcomes = [
                    o if not isinstance(o, str) else "did not answer in time after the run was interrupted"
                    for o in outcomes
                ]
                for _, pid in workers.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, STOP_SIGNAL)
            if time.monotonic() > give_up_at:
                break
            for ready in wait(list(workers), timeout=_POLL_S):
                conn = cast(Connection, ready)
                index, pid = workers[conn]
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    kind, payload = "silent", None
                if kind == "progress":
                    progress(payload)
                    continue
                if kind == "ask":
                    if server is not None:
                        answer(server.handle(index, payload))
                    continue
                conn.close()
                del workers[conn]
                answers.pop(index).close()
                if server is not None:
                    answer(server.lost(index))
                # Its pipe is closed: the worker is exiting, or already gone. Reaped now, not left a zombie.
                del pids[pid]
                status = _reap(pid)
                if kind == "done":
                    outcomes[index] = payload
                elif kind == "failed":
                    outcomes[index] = f"raised {payload}"
                else:
                    outcomes[index] = f"ended without a result ({_ended(status)})"
    finally:
        _end([pid for _, pid in workers.values()])
        for conn in workers:
            conn.close()
        for down in answers.values():
            down.close()
        for pid in pids:
            _reap(pid)
    return outcomes


def _reap(pid: int) -> int:
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(pid, 0)[1]
    return 0


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _end(pids: Sequence[int], patience: float = 1.0) -> None:
    """Workers that did not answer: let them kill their plugins (ORPHAN_SIGNAL), then kill what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, ORPHAN_SIGNAL)
    until = time.monotonic() + patience
    left = set(pids)
    while left and time.monotonic() < until:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            left.discard(pid)
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
