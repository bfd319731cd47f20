"""The real Prometheus parts the metrics tests use: Debian's promtool and prometheus-pushgateway.

.ci/run installs both; a missing one fails the test (naming the apt package) rather than skipping it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
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
def pushgateway() -> Iterator[str]:
    """A Pushgateway on loopback without persistence; yields its base URL, stops it on the way out."""
    binary = tool("prometheus-pushgateway", "prometheus-pushgateway")
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                fetch(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        pytest.fail("prometheus-pushgateway did not start on loopback")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                fetch(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        pytest.fail("prometheus did not start on loopback")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
