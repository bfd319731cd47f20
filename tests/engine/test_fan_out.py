"""workers.fan_out on its own, in a fresh single-threaded process (forking a test runner's threads is unsafe)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, os, sys, time
from preflight.engine import workers

def work(share, report):
    report(share)
    if share == "stuck":
        time.sleep(3600)  # a worker stuck for good, e.g. on a lock copied by fork
    if share == "raises":
        raise RuntimeError("boom")
    return share.upper()

seen = []
outs = workers.fan_out(
    ["quick", "stuck", "raises"], work, progress=seen.append, stop=None,
    on_stop=lambda: None, on_orphaned=lambda: None, grace=1.0, limit=2.0,
)
sys.path.insert(0, os.getcwd())
from tests.processes import children
print(json.dumps({"outs": outs, "seen": sorted(seen), "left": children(os.getpid())}))
"""


def test_every_share_gets_a_result_or_its_cause_and_a_stuck_worker_its_deadline() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["outs"] == [
        "QUICK",
        "did not finish within its deadline of 2s",
        "raised RuntimeError: boom",
    ]
    assert got["seen"] == ["quick", "raises", "stuck"]
    assert got["left"] == []  # the stuck worker was ended and reaped, not left behind
