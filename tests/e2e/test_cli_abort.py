"""Ctrl-C mid-run: every report is still written, marked aborted, with what finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree

from preflight_lab.fleet import ClusterSpec, LabFleet


def test_interrupted_run_writes_every_report(tmp_path: Path) -> None:
    specs = [ClusterSpec(name="quick"), ClusterSpec(name="stuck", scenario="hung-exec")]
    with LabFleet(specs, tmp_path / "lab") as lab:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "preflight.cli",
                "check",
                "--kubeconfig",
                str(lab.kubeconfig_path),
                "--exec-timeout",
                "60",
                "--checks",
                "kube*",
                "-o",
                f"json={tmp_path / 'r.json'}",
                "-o",
                f"junit={tmp_path / 'j.xml'}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        # Wait until the quick cluster has been checked (its API saw the latency probe), then interrupt.
        quick = lab.clusters["quick"].server
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(r.path == "/version" for r in quick.requests()) < 6:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["aborted"].startswith("interrupted: 1 of 2")
    finished = {c["name"]: len(c["results"]) for c in doc["clusters"]}
    assert finished["quick"] > 0 and finished["stuck"] == 0
    xml = etree.parse(str(tmp_path / "j.xml"))
    assert xml.xpath("//property[@name='aborted']/@value")[0].startswith("interrupted")
    # The hung plugin's process group was killed on the way out, not left as an orphan.
    script = str(lab.clusters["stuck"].exec_script)
    assert not _running(script), "the hung exec plugin is still running"


def _running(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in cmdline:
                found.append(int(entry.name))
    return found
