"""Loopback addresses for lab servers that no other lab on this machine is using at the same time.

Two test suites, two pytest-xdist workers or a demo next to a test run each start lab servers, and a
Broker must listen on 4222 (Meshery's port), so every Broker needs a loopback address of its own. Each
process takes a /24 block of 127.128.0.0/9 chosen at random and holds an exclusive ``flock`` on a file
named after it (in the system temporary directory) for its lifetime: another process skips a block
that is held, and the kernel drops the lock when the process exits, however it exits. Within a block
addresses are handed out once each (no TIME_WAIT left from an earlier server), and one is only handed
out after binding it (to the port it will serve, when the caller says) proved it free, which also
skips an address a process outside this scheme occupies. A block that runs out is followed by another.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import random
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LoopbackAllocator", "allocate", "default_allocator", "require_loopback"]

# 127.0.0.0/9 holds 127.0.0.1 and 127.0.0.53 (systemd-resolved): the lab stays in the upper half.
POOL = ipaddress.IPv4Network("127.128.0.0/9")
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_BLOCK_PREFIX = 24
_MAX_BUSY = 256  # consecutive occupied addresses before giving up: something holds the port on every address


def require_loopback(address: str) -> str:
    """The lab's traffic stays on this machine: only 127.0.0.0/8 addresses (and ::1) are accepted."""
    try:
        ip = ipaddress.ip_address(address)
        ok = ip in LOOPBACK if ip.version == 4 else ip == ipaddress.IPv6Address("::1")
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"lab servers only use 127.0.0.0/8 addresses or ::1, not {address!r}")
    return address


def _lock_dir() -> Path:
    """A directory every user can make lock files in (like /tmp itself: sticky, world-writable)."""
    path = Path(tempfile.gettempdir()) / "preflight-lab-loopback"
    try:
        path.mkdir(mode=0o1777)
        path.chmod(0o1777)  # the mode above is filtered by the umask
    except FileExistsError:
        pass
    return path


def _random_blocks(rng: random.Random) -> Iterator[ipaddress.IPv4Network]:
    count = 2 ** (_BLOCK_PREFIX - POOL.prefixlen)
    start = int(POOL.network_address)
    step = 2 ** (32 - _BLOCK_PREFIX)
    for i in rng.sample(range(count), count):
        yield ipaddress.IPv4Network((start + i * step, _BLOCK_PREFIX))


def _proves_free(address: str, port: int) -> bool:
    """Bind without SO_REUSEADDR: fails on any listener, bound socket or TIME_WAIT at ``address:port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            return False
        raise
    finally:
        sock.close()
    return True


class LoopbackAllocator:
    """Hands out loopback addresses from blocks this process holds; thread-safe.

    ``blocks`` yields candidate blocks (default: every /24 of :data:`POOL` in random order); tests pass
    their own to know where the allocator will look.
    """

    def __init__(
        self,
        blocks: Iterator[ipaddress.IPv4Network] | None = None,
        lock_dir: Path | None = None,
    ) -> None:
        self._candidates = blocks if blocks is not None else _random_blocks(random.SystemRandom())
        self._lock_dir = lock_dir
        self._lock = threading.Lock()
        self._held: list[tuple[ipaddress.IPv4Network, int]] = []
        self._next: Iterator[ipaddress.IPv4Address] = iter(())

    @property
    def blocks(self) -> list[ipaddress.IPv4Network]:
        """The blocks this allocator holds, oldest first."""
        return [block for block, _ in self._held]

    def allocate(self, port: int | None = None) -> str:
        """A loopback address nothing else uses; with ``port``, binding ``address:port`` just succeeded."""
        with self._lock:
            busy = 0
            while True:
                address = str(self._next_address())
                if port is None or _proves_free(address, port):
                    return address
                busy += 1
                if busy >= _MAX_BUSY:
                    raise OSError(
                        errno.EADDRINUSE,
                        f"no free loopback address for port {port} after {busy} tries "
                        f"(does something listen on 0.0.0.0:{port}?)",
                    )

    def many(self, count: int, port: int | None = None) -> list[str]:
        return [self.allocate(port) for _ in range(count)]

    def _next_address(self) -> ipaddress.IPv4Address:
        for address in self._next:
            return address
        block = self._take_block()
        self._next = (a for a in block.hosts() if a.packed[-1] != 255)
        return next(self._next)

    def _take_block(self) -> ipaddress.IPv4Network:
        directory = self._lock_dir or _lock_dir()
        for block in self._candidates:
            fd = _open_lock(directory / f"{block.network_address}.lock")
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._held.append((block, fd))
            return block
        raise OSError(errno.EADDRINUSE, "every loopback block of the lab is held by another process")

    def close(self) -> None:
        """Release every block (the process exiting does the same)."""
        with self._lock:
            held, self._held = self._held, []
            self._next = iter(())
        for _, fd in held:
            os.close(fd)


def _open_lock(path: Path) -> int | None:
    """Open (or create) a lock file; None when another user's file cannot be opened here."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    except PermissionError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError:  # created meanwhile by another process
        return _open_lock(path)
    except PermissionError:
        return None
    os.fchmod(fd, 0o444)  # the umask may have narrowed it
    return fd


_default: LoopbackAllocator | None = None
_default_lock = threading.Lock()


def default_allocator() -> LoopbackAllocator:
    """The process's allocator; a forked child gets its own (the parent's blocks stay the parent's)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LoopbackAllocator()
        return _default


def _forget_after_fork() -> None:
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def allocate(port: int | None = None) -> str:
    """An address from the process's allocator (see :meth:`LoopbackAllocator.allocate`)."""
    return default_allocator().allocate(port)
