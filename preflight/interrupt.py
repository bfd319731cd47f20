"""SIGINT and SIGTERM for a whole `check` run.

CI cancels a job with SIGTERM, people with Ctrl-C; both must end the same way: plugin process groups
killed, every report written with what finished, exit 128+signal. The first signal interrupts the main
thread (start-up or the runner's wait) as :class:`Interrupted`; a second one exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt, so the runner's abort path treats SIGTERM exactly like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Guard:
    """Installed at the start of `check`; ``raising`` is turned off while reports are written."""

    def __init__(self, on_second: Callable[[int], None]) -> None:
        self.signum: int | None = None
        self.started = time.monotonic()
        self.raising = True
        # Set by the first signal. While the runner waits on clusters it turns `raising` off and polls this
        # instead: an exception raised at an arbitrary point of the wait could leave a lock held and hang.
        self.event = threading.Event()
        self.on_second = on_second
        self._previous: dict[int, Any] = {}

    def install(self) -> Guard:
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self.on_second(self.exit_code)
            return
        self.signum = signum
        self.event.set()
        if self.raising:
            raise Interrupted(signum)


def exit_now(code: int, line: str = "") -> NoReturn:
    """The one way this tool leaves a process at once: without waiting for probe threads still inside their
    deadlines, and (in a forked worker) never back into the parent's code, atexit hooks or buffers.
    ``line``, if any, is the last word on stderr; the CLI's buffers are flushed only then."""
    if line:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
