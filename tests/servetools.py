"""Start `meshery-preflight serve` as users do (a subprocess on loopback) and read its endpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tests.promtools import free_port

CLI = [sys.executable, "-m", "preflight.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    env.update(extra)
    return env


def get(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET, error statuses included."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    port: int

    def stop(self, timeout: float = 30.0) -> tuple[int, str]:
        """SIGTERM, then (exit code, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


@contextmanager
def serving(args: Sequence[str], *, ready: bool = True, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`serve ARGS --listen 127.0.0.1:FREE`; waits for /healthz (and /readyz when ``ready``); killed on the way out."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--listen", f"127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or clean_env(),
    )
    served = Served(proc, f"http://127.0.0.1:{port}", port)
    try:
        deadline = time.monotonic() + 90
        want = "/readyz" if ready else "/healthz"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if get(served.url + want, timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"serve never answered {want}")
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
