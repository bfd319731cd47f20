"""SIGINT and SIGTERM for a whole `check` run.

CI cancels a job with SIGTERM, people with Ctrl-C; both must end the same way: plugin process groups
killed, every report written with what finished, exit 128+signal. The handler installed here only asks the
run's :class:`~preflight.engine.cancel.Cancellation` to stop; what a request does is the runner's to decide (see
preflight/engine/cancel.py): the first one interrupts start-up as :class:`Interrupted`, a second one exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from preflight.engine.cancel import Cancellation, Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM)
__all__ = ["HANDLED", "Guard", "Interrupted", "exit_now"]


class Guard:
    """The signal handlers of a `check` run, installed at its start: each signal asks ``cancel`` to stop."""

    def __init__(self, on_second: Callable[[int], None]) -> None:
        self.cancel = Cancellation(on_second)
        self._previous: dict[int, Any] = {}

    def install(self) -> Guard:
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.cancel.ask_to_stop(signum)


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
