"""Start/stop for the lab's servers: each ``socketserver`` server is served by one daemon thread.

``serve_forever`` polls for ``shutdown()`` (0.5 s by default), so stopping 200 lab API servers one
by one would take minutes; here every loop also waits on a wake-up socket, so ``stop()`` returns as
soon as the loops have seen it. :class:`LabServer` is the lifecycle every lab server shares:
``start()``/``stop()`` (idempotent) and ``with``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
from types import TracebackType
from typing import TypeVar

__all__ = ["LabServer", "ServerThread", "Startable", "quiet_bind"]

_S = TypeVar("_S", bound="Startable")
_L = TypeVar("_L", bound="LabServer")


class ServerThread:
    """Runs ``server``'s request handling on a daemon thread until :meth:`stop`."""

    def __init__(self, server: socketserver.TCPServer, name: str) -> None:
        self.server = server
        server.timeout = 0.0  # handle_request never blocks: the loop below has already seen the socket ready
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.server.fileno(), selectors.EVENT_READ)
            sel.register(self._wake[0], selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake[0]:
                        return
                self.server.handle_request()

    def wake(self) -> None:
        """Ask the loop to end without waiting for it (many servers stop together this way)."""
        with contextlib.suppress(OSError):
            self._wake[1].send(b"x")

    def stop(self) -> None:
        """End the loop, then release the port."""
        self.wake()
        self._thread.join(timeout=5)
        self.server.server_close()
        for s in self._wake:
            s.close()


def quiet_bind(server: socketserver.TCPServer) -> None:
    """``server_bind`` for HTTP servers without HTTPServer's ``getfqdn()`` (a reverse lookup of seconds)."""
    socketserver.TCPServer.server_bind(server)
    host, port = server.server_address[:2]
    server.server_name = str(host)  # type: ignore[attr-defined]
    server.server_port = int(port)  # type: ignore[attr-defined]


class Startable:
    """``with x:`` for everything in the lab that has ``start()`` (returning itself) and ``stop()``."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LabServer(Startable):
    """The lifecycle of a lab server made of one or more ``socketserver`` servers.

    Subclasses implement :meth:`_bind` (make and bind the servers, set ``self.port``) and may extend
    :meth:`_stopped` (cleanup once the servers are closed). ``self.stopping`` is set from the start of
    :meth:`stop`, so a handler waiting on it (an injected latency) ends at once.
    """

    thread_name = "lab-server"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: list[ServerThread] = []

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def _bind(self) -> list[socketserver.TCPServer]:
        raise NotImplementedError

    def _stopped(self) -> None:
        """Called by every stop() once the servers are closed (also after a failed start): idempotent."""

    def start(self: _L) -> _L:
        if self._threads:
            return self
        self.stopping.clear()
        self._threads = [ServerThread(s, f"{self.thread_name}-{i}") for i, s in enumerate(self._bind())]
        return self

    def stop(self) -> None:
        """Stop serving, release every port and clean up; safe to call twice and before start."""
        threads, self._threads = self._threads, []
        self.stopping.set()
        for t in threads:
            t.wake()
        for t in threads:
            t.stop()
        self._stopped()
