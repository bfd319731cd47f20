#!/usr/bin/env python3
"""Start-up benchmark: metadata commands and planning at fleet scale.

Prints, for `--help`, `list-checks` and `explain ID`, the median wall time and peak RSS of the process
(reaped with wait4, so the figures are the command's own), and which heavy SDKs each one imported; then
the time and peak traced memory of planning (kubeconfig merge, targets, fleet file) for a kubeconfig of N
contexts, in-process. Nothing is asserted: these machines are shared; read the figures.

Run: ``.venv/bin/python bench/startup.py [--runs 5] [--contexts 2000]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TOOL = [sys.executable, "-m", "preflight.cli"]
HEAVY = ("kubernetes", "boto3", "botocore", "google.cloud", "azure")
COMMANDS = {"--help": ["--help"], "list-checks": ["list-checks"], "explain": ["explain", "kube-api.tcp"]}


def measure(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one run of the command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return wall, usage.ru_maxrss


def heavy_imports(args: list[str]) -> list[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['meshery-preflight', *{args!r}]\n"
        "try:\n    runpy.run_module('preflight.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY:' + ','.join(sorted({{m.split('.')[0] for m in sys.modules if m.startswith({HEAVY!r})}})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("HEAVY:"))
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


def kubeconfig(n: int, path: Path, port: int = 6443) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": f"c{i}",
                "cluster": {
                    "server": f"https://127.1.{i // 250}.{i % 250 + 1}:{port}",
                    "certificate-authority-data": ca,
                },
            }
            for i in range(n)
        ],
        "users": [{"name": f"u{i}", "user": {"token": f"token-{i:06d}-" + "x" * 32}} for i in range(n)],
        "contexts": [{"name": f"ctx-{i}", "context": {"cluster": f"c{i}", "user": f"u{i}"}} for i in range(n)],
        "current-context": "ctx-0",
    }
    path.write_text(yaml.safe_dump(doc))


def fleet_file(n: int, path: Path, kubeconfig: Path) -> None:
    """A fleet file naming every context, with a provider and timeouts for each, and a mute per ten."""
    doc = {
        "version": 1,
        "kubeconfig": [str(kubeconfig)],
        "clusters": [
            {"context": f"ctx-{i}", "provider": "other", "meshsync_mode": "operator", "timeouts": {"connect": 2}}
            for i in range(n)
        ],
        "mutes": [{"check": "kube-api.latency", "cluster": f"ctx-{i}", "reason": "far away"} for i in range(0, n, 10)],
    }
    path.write_text(yaml.safe_dump(doc))


CASES = {
    "kubeconfig": "one kubeconfig file",
    "fleet": "the same, through a fleet file naming every context",
    "shadowed": "two kubeconfig files defining the same names (the second one is shadowed)",
}


def planning(n: int, case: str) -> tuple[float, float, int]:
    """(seconds, peak traced MiB, contexts planned): timed without tracing, then traced once for memory."""
    from preflight import app
    from preflight.engine.plan import Request, build
    from preflight.engine.settings import Settings

    registry = app.load_registry()
    with tempfile.TemporaryDirectory() as tmp:
        kc = Path(tmp) / "config"
        kubeconfig(n, kc)
        request = Request(kubeconfigs=[str(kc)])
        if case == "fleet":
            fleet_file(n, Path(tmp) / "fleet.yaml", kc)
            request = Request(fleet=str(Path(tmp) / "fleet.yaml"))
        elif case == "shadowed":
            kubeconfig(n, Path(tmp) / "other", port=7443)
            request = Request(kubeconfigs=[str(kc), str(Path(tmp) / "other")])
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            plan = build(request, Settings(), registry, {})
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        build(request, Settings(), registry, {})
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return min(times), peak / 2**20, len(plan.contexts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--contexts", default="200,2000", help="comma-separated kubeconfig sizes for planning")
    args = ap.parse_args()
    print(f"{'command':<14} {'median s':>9} {'max RSS MiB':>12}  heavy modules imported")
    for name, argv in COMMANDS.items():
        runs = [measure([*TOOL, *argv]) for _ in range(args.runs)]
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs) / 1024
        print(f"{name:<14} {wall:>9.3f} {rss:>12.1f}  {', '.join(heavy_imports(argv)) or '-'}")
    print(f"\n{'contexts':>8} {'case':<11} {'planning s':>11} {'peak MiB':>9}  (best of 3; memory traced apart)")
    for n in (int(x) for x in args.contexts.split(",")):
        for case in CASES:
            seconds, peak, planned = planning(n, case)
            assert planned == n, (planned, n)
            print(f"{n:>8} {case:<11} {seconds:>11.3f} {peak:>9.1f}")
    print("\n" + "\n".join(f"{case}: {what}" for case, what in CASES.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
