"""Processes seen through /proc, for tests that prove nothing is left running (plugins, workers)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process but this one (zombies, already dead, left out)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError, IndexError):
                continue
            if state != "Z":
                out[int(entry.name)] = (int(ppid), cmdline)
    return out


def children(pid: int) -> list[int]:
    return [p for p, (ppid, _) in processes().items() if ppid == pid]


def running(needle: str, parent: int | None = None) -> list[int]:
    """Live processes whose command line holds ``needle`` (and, given ``parent``, that it started)."""
    return [p for p, (ppid, cmd) in processes().items() if needle in cmd and (parent is None or ppid == parent)]
