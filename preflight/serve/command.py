"""Wiring of `meshery-preflight serve`: plan once (bad input exits 2), then serve until SIGTERM/SIGINT.

On a signal the current run stops as `check` stops (the runner polls the guard), the listener closes,
plugin process groups are killed, and the process exits 0: being told to stop is a clean stop.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import NoReturn

from preflight import app
from preflight.engine.cancel import Cancellation, Interrupted
from preflight.engine.errors import ConfigError
from preflight.engine.plan import Request
from preflight.engine.settings import Settings
from preflight.serve.http import ServeApp, Server
from preflight.serve.logs import Log
from preflight.serve.metrics import server_registry
from preflight.serve.scheduler import Scheduler
from preflight.serve.ttlcache import TtlOnce

# How long the shutdown waits for the current run to notice the signal before leaving anyway.
SHUTDOWN_GRACE_S = 10.0
# How often the main thread looks for a stop request (the signal handler only records it once runs poll).
POLL_S = 0.1


@dataclass(frozen=True)
class Options:
    listen: tuple[str, int]
    interval: float
    jitter: float
    cloud_cache_ttl: float
    log_format: str
    probe_margin: float
    fail_on: str = "fail"


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6]:PORT`` or ``:PORT`` (every interface); ValueError otherwise."""
    value = text.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [IPV6]:PORT")
        port = rest[1:]
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{text!r} is not ADDR:PORT")
    if not (port.isdigit() and 0 <= int(port) <= 65535):
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return host or "0.0.0.0", int(port)


def serve(
    request: Request,
    settings: Settings,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    options: Options,
    cancel: Cancellation,
) -> NoReturn:
    """Raises ConfigError (exit 2 in the CLI) for input that does not plan or a listener that cannot bind."""
    log = Log(options.log_format)
    registry = app.load_registry()
    cache = TtlOnce(options.cloud_cache_ttl)
    scheduler = Scheduler(
        request,
        settings,
        include=include,
        exclude=exclude,
        interval=options.interval,
        jitter=options.jitter,
        cache=cache,
        cancel=cancel,
        log=log,
        registry=registry,
        fail_on=options.fail_on,
    )
    scheduler.plan(first=True)
    metrics = server_registry(scheduler.latest, scheduler.health, options.interval)
    try:
        server = Server(options.listen, ServeApp(scheduler, metrics, log, options.probe_margin))
    except OSError as exc:
        host, port = options.listen
        raise ConfigError(f"--listen {host}:{port}: cannot listen: {exc.strerror or exc}") from None
    host, port = str(server.server_address[0]), int(server.server_address[1])
    log.event(
        "listening",
        address=f"{host}:{port}",
        clusters=len(scheduler.prepared.plan.contexts) if scheduler.prepared else 0,
        interval_s=options.interval,
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True).start()
    runs = threading.Thread(target=scheduler.loop, name="scheduler", daemon=True)
    runs.start()
    try:
        while not cancel.is_set():
            time.sleep(POLL_S)
    except Interrupted:  # a signal before the first run made the cancellation polled: the same stop
        pass
    scheduler.stopping.set()
    log.event("stopping", signal=cancel.name)
    runs.join(SHUTDOWN_GRACE_S)
    server.shutdown()
    server.server_close()
    from preflight.engine.execcred import kill_running

    kill_running()
    log.event("stopped")
    # Probe threads may still be inside their deadlines; do not wait for them on the way out.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
