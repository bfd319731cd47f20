"""`check`'s report options end to end: -v, --fail-on reaching every renderer, the HTML file, and a real
terminal (a pty) whose width no console line exceeds. The clusters are real kubeconfig contexts whose API
port on loopback refuses connections: a failure with checks waiting on it, and a static-token warning; the two
share one server, which the fleet checks fail."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import yaml
from lxml import etree

from preflight.reports._common import is_pasteable

CLI = [sys.executable, "-m", "preflight.cli"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    port = _closed_port()
    names = ["refused-a", "refused-b-with-a-long-context-name-that-a-narrow-terminal-cannot-fit"]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": f"https://127.0.0.1:{port}"}} for n in names],
        "users": [{"name": n, "user": {"token": f"lab-token-{i}"}} for i, n in enumerate(names)],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in names],
        "current-context": names[0],
    }
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    return {**base, "NO_COLOR": "1", **extra}


def _check(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*CLI, "check", "--kubeconfig", str(kubeconfig), "--connect-timeout", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())


def test_default_view_folds_and_verbose_lists_everything(kubeconfig: Path) -> None:
    default = _check(kubeconfig)
    assert default.returncode == 1, default.stderr
    lines = default.stdout.splitlines()
    assert sum(line.startswith("cluster refused-") for line in lines) == 2
    assert not any(line.lstrip().startswith("✔ pass") for line in lines)
    assert sum("checks wait on kube-api.tcp" in line for line in lines) == 2
    assert lines[-1] == "exit 1: 3 failures at or above --fail-on fail"
    verbose = _check(kubeconfig, "-v")
    assert verbose.returncode == 1
    assert sum(line.lstrip().startswith("✔ pass") for line in verbose.stdout.splitlines()) >= 4
    assert verbose.stdout.count("Fix kube-api.tcp first") >= 20
    assert len(verbose.stdout.splitlines()) > 2 * len(lines)


def test_fail_on_warn_reaches_the_console_junit_and_html(kubeconfig: Path, tmp_path: Path) -> None:
    proc = _check(
        kubeconfig,
        "--fail-on",
        "warn",
        "-o",
        "console",
        "-o",
        f"junit={tmp_path / 'j.xml'}",
        "-o",
        f"html={tmp_path}/r.html",
    )
    assert proc.returncode == 1
    assert re.fullmatch(r"exit 1: 3 failures, \d+ warnings? at or above --fail-on warn", proc.stdout.splitlines()[-1])
    root = etree.parse(str(tmp_path / "j.xml")).getroot()
    warned = root.xpath("//testcase[starts-with(@name, 'kubeconfig.credential: ')]")
    assert len(warned) == 2 and all(case.find("failure") is not None for case in warned)
    page = (tmp_path / "r.html").read_text()
    assert "at or above --fail-on warn" in page and page.count('<tr class="cluster"') == 2
    assert "lab-token-" not in page and "lab-token-" not in proc.stdout


@pytest.mark.parametrize("columns", [60, 100])
def test_no_console_line_is_wider_than_a_real_terminal(kubeconfig: Path, columns: int) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    cmd = [*CLI, "check", "--kubeconfig", str(kubeconfig), "--connect-timeout", "1"]
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE, env=_env(COLUMNS=str(columns)))
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 1
    assert proc.stderr is not None
    proc.stderr.close()
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    lines = text.splitlines()
    assert any(line.startswith("cluster refused-b-with-a-long") for line in lines)
    assert lines[-1].startswith("exit 1: 3 failures")
    # Docs links stay whole (a cut link opens nothing); every other line fits.
    assert max(len(line) for line in lines if not is_pasteable(line)) <= columns
