"""The real Prometheus parts the metrics tests use: Debian's promtool and prometheus-pushgateway.

.ci/run installs both; a missing one fails the test (naming the apt package) rather than skipping it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (.ci/run does)")
    return path


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics`: parses the exposition and lints names, help and types."""
    return subprocess.run(
        [tool("promtool", "prometheus"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, timeout: float = 5.0) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return str(resp.read().decode("utf-8"))


@contextmanager
def _on_loopback(name: str, argv: Callable[[int], list[str]], ready_within: float) -> Iterator[str]:
    """A server binary started on a free loopback port (five tries), ready when ``/-/ready`` answers; yields its
    base URL and stops it on the way out."""
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + ready_within
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                fetch(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"{name} did not start on loopback")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def pushgateway() -> Iterator[str]:
    """A Pushgateway on loopback without persistence; yields its base URL, stops it on the way out."""
    binary = tool("prometheus-pushgateway", "prometheus-pushgateway")
    with _on_loopback(
        "prometheus-pushgateway",
        lambda port: [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"],
        15,
    ) as url:
        yield url


def free_port() -> int:
    return _free_port()


def query(base: str, promql: str) -> list[dict[str, object]]:
    """An instant query's result vector (each item: metric labels and [time, value])."""
    import json
    from urllib.parse import urlencode

    doc = json.loads(fetch(f"{base}/api/v1/query?{urlencode({'query': promql})}"))
    assert doc["status"] == "success", doc
    result: list[dict[str, object]] = doc["data"]["result"]
    return result


@contextmanager
def prometheus(targets: list[str], workdir: str, interval: str = "1s") -> Iterator[str]:
    """A real Prometheus (Debian `prometheus`) on loopback scraping ``targets`` every ``interval``, with its
    storage in ``workdir``; yields its base URL and stops it on the way out."""
    import os

    binary = tool("prometheus", "prometheus")
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  scrape_timeout: {interval}\n"
            "scrape_configs:\n"
            "  - job_name: meshery-preflight\n"
            "    static_configs:\n"
            f"      - targets: [{', '.join(repr(t) for t in targets)}]\n"
        )
    with _on_loopback(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        30,
    ) as url:
        yield url
