"""The run's one cancellation object: whether the run should stop, why, and how a stop request is delivered.

Others *ask* (:meth:`Cancellation.ask_to_stop`): the signal handler the CLI installs (preflight/engine/interrupt.py),
and in a worker the runner when its parent says stop. Only the runner *writes* what the request does: it
turns raising off while clusters run (:meth:`poll_from_now`: an exception at an arbitrary point of the wait
could leave a lock held), and it decides what a second request does in a worker
(:meth:`second_request_does`). tests/engine/test_cancel.py checks that no other module calls these.

A first request, while raising is on (start-up), interrupts the main thread as :class:`Interrupted`; after
that it is polled for. A second request runs the second-request action (exit at once).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt, so the runner's abort path treats SIGTERM exactly like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Cancellation:
    def __init__(self, on_second: Callable[[int], None]) -> None:
        self.started = time.monotonic()
        self._signum: int | None = None
        self._requested = threading.Event()
        self._raising = True
        self._on_second = on_second

    # -- asking (the signal handler, a worker's parent) ----------------------------------------------

    def ask_to_stop(self, signum: int) -> None:
        """Ask the run to stop because of ``signum``; a second ask runs the second-request action."""
        if self._signum is not None:
            self._on_second(self.exit_code)
            return
        self._signum = signum
        self._requested.set()
        if self._raising:
            raise Interrupted(signum)

    # -- reading ---------------------------------------------------------------------------------------

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._requested.is_set()

    @property
    def signum(self) -> int | None:
        return self._signum

    @property
    def exit_code(self) -> int:
        return 128 + (self._signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self._signum or signal.SIGINT).name

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- the runner's writes ---------------------------------------------------------------------------

    def poll_from_now(self) -> None:
        """From here a request is recorded and polled for, never raised: the clusters' results must be kept."""
        self._raising = False

    @contextlib.contextmanager
    def second_request_does(self, action: Callable[[int], None]) -> Iterator[None]:
        """While the block runs (and in the workers it forks), a second request runs ``action``."""
        before, self._on_second = self._on_second, action
        try:
            yield
        finally:
            self._on_second = before
