#!/usr/bin/env python3
"""Fleet benchmark: does a bad 20% of the fleet delay the healthy 80%?

For each fleet size N it starts a lab fleet inside a fresh network namespace (10% hung exec plugins,
10% clusters behind an nftables rule that drops their SYNs, the rest healthy), runs
``meshery-preflight check`` against it, and prints the wall time next to the per-probe timeout (the
goal is about one timeout, not N of them), the tool's peak RSS, and whether every cluster got the
verdict it should. A run of the same N with no bad cluster is the baseline. It also times
``meshery-preflight --help`` and lists the heavy SDKs that ``--help`` imports (there should be none).

Needs root (network namespaces, nftables). Run: ``sudo .venv/bin/python bench/fleet.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
TOOL = str(VENV_BIN / "meshery-preflight") if (VENV_BIN / "meshery-preflight").exists() else "meshery-preflight"
HEAVY = ("boto3", "botocore", "google", "azure", "kubernetes")
BAD_MIX = "healthy=8,exec-ok=1,hung-exec=1"  # plus 10% of the fleet filtered with nftables
BASELINE_MIX = "healthy=9,exec-ok=1"
HEALTHY_SCENARIOS = ("healthy", "exec-ok")
DEADLINE_MESSAGE = re.compile(r"did not answer within|within its budget|deadline", re.I)
CMD_TIMEOUT_S = 30.0
HELP_RUNS = 5


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = CMD_TIMEOUT_S) -> str:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _child_env() -> dict[str, str]:
    """The caller's environment minus proxies: the lab lives on loopback inside the namespace."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


# -- network namespace and lab ---------------------------------------------------------------------


class Namespace:
    """A throwaway network namespace with ``lo`` up; deleted (with anything left in it) on exit."""

    def __init__(self) -> None:
        self.name = f"mpf-bench-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Namespace:
        _run(["ip", "netns", "add", self.name])
        try:
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # Only processes this benchmark started can live in a namespace it just created.
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=CMD_TIMEOUT_S)
        shutil.rmtree(f"/etc/netns/{self.name}", ignore_errors=True)

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=10)
        return [int(p) for p in out.stdout.split() if p.isdigit()]

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def drop_tcp(self, endpoints: Sequence[tuple[str, int]]) -> None:
        """One nftables set of address.port pairs whose SYNs are silently dropped (a firewall)."""
        if not endpoints:
            return
        elements = ", ".join(f"{addr} . {port}" for addr, port in endpoints)
        ruleset = (
            "table inet mpfbench {\n"
            "  set filtered {\n    type ipv4_addr . inet_service\n    elements = { " + elements + " }\n  }\n"
            "  chain output {\n    type filter hook output priority 0; policy accept;\n"
            "    ip daddr . tcp dport @filtered drop\n  }\n"
            "}\n"
        )
        _run(self.argv("nft", "-f", "-"), stdin=ruleset)


@contextmanager
def lab_fleet(ns: Namespace, directory: Path, clusters: int, mix: str) -> Iterator[Path]:
    """Run ``python -m preflight.lab serve`` in ``ns``; yield its kubeconfig once it prints READY."""
    log = (directory / "lab.stderr").open("wb")
    proc = subprocess.Popen(
        ns.argv(
            PYTHON,
            "-m",
            "preflight.lab",
            "serve",
            "--dir",
            str(directory),
            "--clusters",
            str(clusters),
            "--scenario-mix",
            mix,
            "--prefix",
            "bench",
        ),
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=ROOT,
        env=_child_env(),
    )
    try:
        assert proc.stdout is not None
        text = _read_until(proc, b"READY\n", deadline=time.monotonic() + 60 + clusters * 0.5)
        match = re.search(r"^KUBECONFIG=(.+)$", text, re.M)
        if "READY" not in text or match is None:
            raise RuntimeError(f"lab did not become ready: {text!r}; see {directory / 'lab.stderr'}")
        yield Path(match.group(1))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        log.close()


def _read_until(proc: subprocess.Popen[bytes], marker: bytes, deadline: float) -> str:
    assert proc.stdout is not None
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while marker not in buf and (left := deadline - time.monotonic()) > 0:
            if not sel.select(min(left, 0.5)):
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace")


def read_clusters(kubeconfig: Path) -> dict[str, tuple[str, str, int]]:
    """Context -> (lab scenario, API address, port), from the kubeconfig the lab wrote."""
    import yaml

    doc: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    servers = {c["name"]: c["cluster"]["server"] for c in doc["clusters"]}
    out: dict[str, tuple[str, str, int]] = {}
    for ctx in doc["contexts"]:
        name = ctx["name"]
        url = urlsplit(servers[ctx["context"]["cluster"]])
        out[name] = (name.split("-", 2)[2], url.hostname or "", url.port or 443)  # bench-NNN-<scenario>
    return out


def spread(items: Sequence[str], count: int) -> list[str]:
    """``count`` items evenly spaced through ``items`` (the lab interleaves scenarios the same way)."""
    count = min(count, len(items))
    return [items[int((i + 0.5) * len(items) / count)] for i in range(count)] if count else []


# -- measuring ---------------------------------------------------------------------------------------


@dataclass
class Measured:
    returncode: int
    wall_s: float
    cpu_s: float  # user + system, the tool and the exec plugins it reaped
    maxrss_kib: int


def run_measured(argv: Sequence[str], timeout: float, stderr_path: Path) -> Measured:
    """Run ``argv`` and reap it with wait4(2): its own wall time and peak RSS, no other child's."""
    with stderr_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=err, env=_child_env())
        deadline = t0 + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{' '.join(argv[:6])}... did not finish within {timeout:g}s")
                time.sleep(0.005)
        except BaseException:
            proc.kill()
            _, status, _ = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


@dataclass
class Verdicts:
    expected: dict[str, int] = field(default_factory=lambda: {"healthy": 0, "filtered": 0, "hung": 0})
    ok: dict[str, int] = field(default_factory=lambda: {"healthy": 0, "filtered": 0, "hung": 0})
    mismatches: list[str] = field(default_factory=list)

    def cell(self, kind: str) -> str:
        return f"{self.ok[kind]}/{self.expected[kind]}" if self.expected[kind] else "-"


def _result(cluster: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next((r for r in cluster["results"] if r["check_id"] == check_id), {"status": "missing"})


def verify(report: dict[str, Any], kinds: dict[str, str]) -> Verdicts:
    """Healthy: kube-api.auth passes. Filtered: kube-api.tcp fails as "filtered". Hung: auth fails on a deadline."""
    v = Verdicts()
    seen = {c["name"]: c for c in report["clusters"]}
    for name, kind in kinds.items():
        v.expected[kind] += 1
        cluster = seen.get(name)
        if cluster is None:
            v.mismatches.append(f"{name} ({kind}): not in the report")
            continue
        if kind == "healthy":
            r = _result(cluster, "kube-api.auth")
            good = r["status"] == "pass"
        elif kind == "filtered":
            r = _result(cluster, "kube-api.tcp")
            good = r["status"] == "fail" and r.get("evidence", {}).get("state") == "filtered"
        else:
            r = _result(cluster, "kube-api.auth")
            good = r["status"] == "fail" and bool(DEADLINE_MESSAGE.search(r.get("message", "")))
        if good:
            v.ok[kind] += 1
        else:
            v.mismatches.append(f"{name} ({kind}): {r.get('check_id')} {r['status']}: {r.get('message', '')}")
    return v


@dataclass
class Case:
    clusters: int
    bad: int
    measured: Measured
    tool_s: float
    verdicts: Verdicts
    slowest: list[tuple[str, float]]
    leftover: int  # processes (exec plugins) still alive in the namespace after the check exited


def run_case(n: int, with_bad: bool, args: argparse.Namespace, workdir: Path) -> Case:
    """One lab fleet in one fresh namespace, one `check` run against it."""
    directory = Path(tempfile.mkdtemp(prefix=f"n{n}-{'bad' if with_bad else 'base'}-", dir=workdir))
    with Namespace() as ns, lab_fleet(ns, directory, n, BAD_MIX if with_bad else BASELINE_MIX) as kubeconfig:
        clusters = read_clusters(kubeconfig)
        kinds = {name: ("hung" if s == "hung-exec" else "healthy") for name, (s, _, _) in clusters.items()}
        if with_bad:
            token_healthy = [name for name, (s, _, _) in clusters.items() if s == "healthy"]
            filtered = spread(token_healthy, round(n * 0.1))
            ns.drop_tcp([clusters[name][1:] for name in filtered])
            kinds.update(dict.fromkeys(filtered, "filtered"))
        out = directory / "report.json"
        argv = ns.argv(
            TOOL,
            "check",
            "--kubeconfig",
            str(kubeconfig),
            "-o",
            f"json={out}",
            "--connect-timeout",
            f"{args.connect_timeout:g}",
            "--exec-timeout",
            f"{args.exec_timeout:g}",
            "--parallel",
            str(args.parallel),
        )
        # The tool's own bound is one cluster budget per wave of --parallel clusters; allow that and more.
        timeout = 120 + 60 * math.ceil(n / args.parallel)
        before = set(ns.pids())  # the lab
        measured = run_measured(argv, timeout, directory / "check.stderr")
        leftover = len(set(ns.pids()) - before)
        if measured.returncode not in (0, 1) or not out.exists():
            err = (directory / "check.stderr").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"check exited {measured.returncode} without a report: {err}")
        report = json.loads(out.read_text())
    durations: dict[str, float] = {}
    for cluster in report["clusters"]:
        for r in cluster["results"]:
            durations[r["check_id"]] = max(durations.get(r["check_id"], 0.0), float(r.get("duration_s") or 0))
    slowest = sorted(durations.items(), key=lambda kv: -kv[1])[:3]
    bad = sum(1 for k in kinds.values() if k != "healthy")
    verdicts = verify(report, kinds)
    if leftover:
        verdicts.mismatches.append(f"{leftover} process(es) left running in the namespace after check exited")
    return Case(n, bad, measured, float(report.get("duration_s") or 0), verdicts, slowest, leftover)


# -- --help -------------------------------------------------------------------------------------------

_HEAVY_PROBE = """
import contextlib, io, json, sys
from preflight.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:], prog_name="meshery-preflight")
    except SystemExit:
        pass
heavy = %r
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy})))
"""


def help_figures() -> list[str]:
    """Median wall of `--help`, import time of preflight.cli, and the heavy SDKs `--help` imports."""
    walls = []
    for _ in range(HELP_RUNS):
        t0 = time.perf_counter()
        _run([TOOL, "--help"])
        walls.append(time.perf_counter() - t0)
    trace = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import preflight.cli"],
        capture_output=True,
        text=True,
        timeout=CMD_TIMEOUT_S,
    ).stderr
    # "import time: self | cumulative | name"; a top-level import's name has no extra indent.
    top = [int(m.group(1)) for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (?! )", trace, re.M)]
    lines = [
        f"`meshery-preflight --help`: median {statistics.median(walls) * 1000:.0f} ms over {HELP_RUNS} runs "
        f"(min {min(walls) * 1000:.0f} ms)",
        f"`import preflight.cli` (python -X importtime, top-level cumulative): {sum(top) / 1000:.0f} ms",
    ]
    for argv in (["--help"], ["check", "--help"]):
        code = _HEAVY_PROBE % (HEAVY,)
        found = json.loads(_run([PYTHON, "-c", code, *argv]).strip().splitlines()[-1])
        verdict = "OK, none imported" if not found else f"FAIL, imported: {', '.join(found)}"
        lines.append(f"heavy modules ({'/'.join(HEAVY)}) after `{' '.join(argv)}`: {verdict}")
    return lines


# -- main --------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or any(not 1 <= s <= 1000 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be between 1 and 1000")
    return sizes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_sizes, default=[10, 50, 200], help="fleet sizes (default 10,50,200)")
    p.add_argument("--connect-timeout", type=float, default=2.0, help="passed to check (default 2)")
    p.add_argument("--exec-timeout", type=float, default=2.0, help="passed to check (default 2)")
    p.add_argument("--parallel", type=int, default=32, help="passed to check (default 32)")
    p.add_argument("--no-baseline", action="store_true", help="skip the run with no bad cluster")
    p.add_argument("--keep", action="store_true", help="keep the work directory (reports, lab logs)")
    return p


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _table(rows: list[tuple[Case, Case | None]], args: argparse.Namespace) -> list[str]:
    limit = max(args.connect_timeout, args.exec_timeout)
    head = (
        "N",
        "bad",
        "connect s",
        "exec s",
        "parallel",
        "wall s",
        "wall/timeout",
        "tool s",
        "CPU s",
        "RSS MiB",
        "healthy ok",
        "filtered ok",
        "hung ok",
        "base wall s",
        "base CPU s",
        "base RSS MiB",
        "base ok",
    )
    body = []
    for case, base in rows:
        body.append(
            (
                str(case.clusters),
                str(case.bad),
                f"{args.connect_timeout:g}",
                f"{args.exec_timeout:g}",
                str(args.parallel),
                f"{case.measured.wall_s:.2f}",
                f"{case.measured.wall_s / limit:.2f}",
                f"{case.tool_s:.2f}",
                f"{case.measured.cpu_s:.2f}",
                f"{case.measured.maxrss_kib / 1024:.0f}",
                case.verdicts.cell("healthy"),
                case.verdicts.cell("filtered"),
                case.verdicts.cell("hung"),
                *(
                    (
                        f"{base.measured.wall_s:.2f}",
                        f"{base.measured.cpu_s:.2f}",
                        f"{base.measured.maxrss_kib / 1024:.0f}",
                        base.verdicts.cell("healthy"),
                    )
                    if base
                    else ("-",) * 4
                ),
            )
        )
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    return ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in (head, *body)]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if os.geteuid() != 0:
        print(
            "bench/fleet.py needs root: it creates network namespaces and nftables rules "
            "(try: sudo .venv/bin/python bench/fleet.py)",
            file=sys.stderr,
        )
        return 2
    missing = [tool for tool in ("ip", "nft") if not shutil.which(tool)]
    if missing:
        print(f"bench/fleet.py needs {' and '.join(missing)} (iproute2, nftables)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="mpf-bench-"))
    rows: list[tuple[Case, Case | None]] = []
    failed = False
    try:
        for line in help_figures():
            print(line, flush=True)
        print(f"fleet mix: {BAD_MIX} + 10% filtered (nftables drop); baseline: {BASELINE_MIX}", flush=True)
        for n in args.sizes:
            base = None if args.no_baseline else run_case(n, False, args, workdir)
            case = run_case(n, True, args, workdir)
            rows.append((case, base))
            print(
                f"N={n}: wall {case.measured.wall_s:.2f}s"
                + (f", baseline {base.measured.wall_s:.2f}s" if base else "")
                + "; slowest checks (max s): "
                + ", ".join(f"{c} {s:.2f}" for c, s in case.slowest)
                + f"; processes left behind: {case.leftover}",
                flush=True,
            )
            for label, c in (("20% bad", case), ("baseline", base)):
                if c and c.verdicts.mismatches:
                    failed = True
                    print(
                        f"  MISMATCH in the {label} run ({len(c.verdicts.mismatches)}):",
                        *c.verdicts.mismatches[:10],
                        sep="\n    ",
                    )
        print()
        print("\n".join(_table(rows, args)))
        print(
            f"\ngoal: wall close to one timeout (max(connect, exec) = "
            f"{max(args.connect_timeout, args.exec_timeout):g}s), not N of them; RSS is the check process's peak"
        )
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
