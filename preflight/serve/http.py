"""The HTTP side of `serve`: a small threaded server from the standard library, bounded in threads.

Endpoints: ``/metrics``, ``/probe``, ``/`` (latest HTML report), ``/report.json``, ``/healthz`` and
``/readyz``; anything else is 404. Everything served comes from redacted reports or metric families
of bounded labels: no endpoint can return a credential.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from preflight.serve.logs import Log
from preflight.serve.metrics import exposition, probe_registry
from preflight.serve.probe import BadRequest, Busy, ProbeFailed, Prober, UnknownContext, deadline_from
from preflight.serve.scheduler import Scheduler

MAX_HANDLERS = 32
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


class Server(ThreadingHTTPServer):
    """At most ``MAX_HANDLERS`` requests at once; one more is answered 503 at once, not queued."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: ServeApp, max_handlers: int = MAX_HANDLERS) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._slots = threading.BoundedSemaphore(max_handlers)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is not the service's problem; never a traceback on stderr


class ServeApp:
    """What the handler answers from: the scheduler's latest snapshot, the /metrics registry and the prober."""

    def __init__(self, scheduler: Scheduler, registry: CollectorRegistry, log: Log, margin: float) -> None:
        self.scheduler, self.registry, self.log, self.margin = scheduler, registry, log, margin
        self.prober = Prober(scheduler)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "meshery-preflight"
    sys_version = ""
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        pass

    def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        # A fleet's exposition is megabytes of repetitive text: Prometheus asks for gzip, and gets it.
        if len(body) > 4096 and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - the standard library's name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        app = self.server.app
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/metrics":
            snap = app.scheduler.snapshot
            body = exposition(app.registry, snap.metrics() if snap is not None else None)
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif path == "/probe":
            self._probe(app, parse_qs(parts.query))
        elif path == "/healthz":
            self._send(200, b"ok\n")
        elif path == "/readyz":
            ready = app.scheduler.health.ready
            self._send(200 if ready else 503, b"ready\n" if ready else b"no run has finished yet\n")
        elif path in ("/", "/report.json"):
            snap = app.scheduler.snapshot
            if snap is None:
                self._send(503, b"no run has finished yet\n")
            elif path == "/":
                self._send(200, snap.rendered("html"), "text/html; charset=utf-8")
            else:
                self._send(200, snap.rendered("json"), "application/json")
        else:
            self._send(404, b"not found\n")

    def _probe(self, app: ServeApp, query: dict[str, list[str]]) -> None:
        names = query.get("context") or []
        checks = query.get("checks") or []
        if len(names) != 1 or not names[0] or len(checks) > 1:
            app.scheduler.health.count_probe("bad_request")
            self._send(400, b"expected /probe?context=NAME[&checks=GLOB]\n")
            return
        cap = app.scheduler.base.cluster_timeout
        budget = deadline_from(self.headers.get(SCRAPE_TIMEOUT_HEADER), app.margin, cap)
        try:
            report, took, shared = app.prober.probe(names[0], checks[0] if checks else None, budget)
        except UnknownContext:
            app.scheduler.health.count_probe("unknown_context")
            self._send(404, b"unknown context\n")
            return
        except BadRequest as exc:
            app.scheduler.health.count_probe("bad_request")
            self._send(400, f"{exc}\n".encode())
            return
        except Busy:
            self._send(503, b"too many probes running\n")
            return
        except TimeoutError:
            app.scheduler.health.count_probe("timeout")
            self._send(504, b"probe did not finish in time\n")
            return
        except ProbeFailed as exc:
            app.scheduler.health.count_probe("crashed")
            app.log.event("probe", level="error", outcome="crashed", context=names[0], error=str(exc))
            self._send(500, f"{exc}\n".encode())
            return
        app.scheduler.health.count_probe("shared" if shared else "completed")
        self._send(200, generate_latest(probe_registry(report, took)), CONTENT_TYPE_LATEST)

    def _refuse(self) -> None:
        self._send(405, b"method not allowed\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815
