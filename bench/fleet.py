#!/usr/bin/env python3
"""Fleet benchmark: does a bad 20% of the fleet delay the healthy 80%?

For each fleet size N it starts a lab fleet inside a fresh network namespace (10% hung exec plugins,
10% clusters behind an nftables rule that drops their SYNs, the rest healthy), runs
``meshery-preflight check`` against it, and prints the wall time next to the per-probe timeout (the
goal is about one timeout, not N of them), the tool's peak RSS, and whether every cluster got the
verdict it should. A run of the same N with no bad cluster is the baseline. It also times
``meshery-preflight --help`` and lists the heavy SDKs that ``--help`` imports (there should be none).

A second table repeats this with ``serve --with-brokers``: every token-healthy cluster gets a Meshery
Broker (a real ``nats-server`` on its own loopback address), the check runs with the lab's fleet file
(operator mode for those clusters) and ``--origin 127.0.0.0/8``, and another 10% of the fleet (chosen
among the Broker clusters) has its Broker's 4222 dropped by nftables. Last, a per-check cost table
(count, mean, p95, max of each result's ``duration_s``) from the largest fleet's 20%-bad runs.

At a thousand clusters one Python process serving every fake API server saturates its GIL and the
benchmark would time the lab, not the tool: the lab runs as ``--lab-processes`` ``serve`` processes
(default one per 200 clusters), each with its share of the fleet, its own context prefix and the same
scenario mix; the check gets every lab's kubeconfig, or one fleet file naming all their clusters.

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

from preflight_lab.portforward import NODE_SOURCE

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
TOOL = str(VENV_BIN / "meshery-preflight") if (VENV_BIN / "meshery-preflight").exists() else "meshery-preflight"
HEAVY = ("boto3", "botocore", "google", "azure", "kubernetes")
BAD_MIX = "healthy=8,exec-ok=1,hung-exec=1"  # plus 10% of the fleet filtered with nftables
BASELINE_MIX = "healthy=9,exec-ok=1"
ORIGIN = "127.0.0.0/8"  # the lab's loopback fleet, as Meshery Server's origin
KINDS = ("healthy", "filtered", "hung", "broker", "broker-filtered")
HEALTHY_SCENARIOS = ("healthy", "exec-ok")
DEADLINE_MESSAGE = re.compile(r"did not answer within|within its budget|deadline", re.I)
CMD_TIMEOUT_S = 30.0
HELP_RUNS = 5
CLUSTERS_PER_LAB = 200  # default --lab-processes: one `serve` per this many clusters


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
            f"    ip saddr != {NODE_SOURCE} ip daddr . tcp dport @filtered drop\n  }}\n"
            "}\n"
        )
        _run(self.argv("nft", "-f", "-"), stdin=ruleset)


@dataclass
class Lab:
    kubeconfigs: list[Path]  # one per lab process
    fleet: Path  # one fleet file naming every lab process's clusters
    brokers: dict[str, tuple[str, int]]  # context -> its Broker's address and port (--with-brokers)
    processes: int


# What `serve -v` prints per cluster on stderr (preflight_lab.fleet.describe).
_DESCRIBED_BROKER = re.compile(r"^(\S+)\s+\S+\s+https://\S+\s+broker (\S+) ([\d.]+):(\d+)\s*$", re.M)


def _lab_brokers(stderr: str, fleet: Path) -> dict[str, tuple[str, int]]:
    """Broker addresses from the lab's ``-v`` listing, checked against the fleet file's operator clusters."""
    import yaml

    brokers = {m[1]: (m[3], int(m[4])) for m in _DESCRIBED_BROKER.finditer(stderr) if m[2] == "nats"}
    doc: dict[str, Any] = yaml.safe_load(fleet.read_text())
    operator = {c["context"] for c in doc.get("clusters") or [] if c.get("meshsync_mode") == "operator"}
    if set(brokers) != operator:
        raise RuntimeError(
            f"the lab lists {len(brokers)} nats Brokers but its fleet file has {len(operator)} operator-mode "
            f"clusters: {sorted(set(brokers) ^ operator)[:5]}"
        )
    return brokers


def shares(total: int, parts: int) -> list[int]:
    """``total`` clusters split into ``parts`` near-equal shares (no empty one), the larger ones first."""
    parts = max(1, min(parts, total))
    return [total // parts + (i < total % parts) for i in range(parts)]


def merge_fleets(path: Path, fleets: Sequence[Path]) -> Path:
    """Write one fleet file at ``path`` with every lab's kubeconfig and clusters (paths relative to ``path``)."""
    import yaml

    docs: list[dict[str, Any]] = [yaml.safe_load(f.read_text()) for f in fleets]
    merged = dict(docs[0])  # version, origin: the same in every lab's file
    merged["kubeconfig"] = [
        os.path.relpath(os.path.normpath(f.parent / k), path.parent)
        for f, doc in zip(fleets, docs, strict=True)
        for k in doc.get("kubeconfig") or []
    ]
    merged["clusters"] = [c for doc in docs for c in doc.get("clusters") or []]
    merged["mutes"] = [m for doc in docs for m in doc.get("mutes") or []]
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


def _serve(
    ns: Namespace, directory: Path, clusters: int, mix: str, prefix: str, with_brokers: bool, realistic: bool = True
) -> subprocess.Popen[bytes]:
    directory.mkdir()
    with (directory / "lab.stderr").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            ns.argv(
                PYTHON,
                "-m",
                "preflight_lab",
                "serve",
                "--dir",
                str(directory),
                "--clusters",
                str(clusters),
                "--scenario-mix",
                mix,
                "--prefix",
                prefix,
                *(("--with-brokers", "--verbose") if with_brokers else ()),
                *(("--realistic",) if realistic else ()),
            ),
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            env=_child_env(),
        )


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every lab process at once (each stops its servers and nats-servers), then reap them."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@contextmanager
def lab_fleet(
    ns: Namespace,
    directory: Path,
    clusters: int,
    mix: str,
    with_brokers: bool = False,
    processes: int = 1,
    realistic: bool = True,
) -> Iterator[Lab]:
    """Run ``processes`` ``python -m preflight_lab serve`` in ``ns``, each with its share of ``clusters``.

    One Python process serving a thousand HTTPS API servers saturates its GIL and would time itself, not
    the tool. Each process gets its own directory and context prefix (``bench0``, ``bench1``, ...), the
    same scenario mix, and addresses from its own allocator blocks (flock-held, so never another's).
    Yields every lab's kubeconfig, one merged fleet file and every Broker once all of them print READY.
    """
    counts = shares(clusters, processes)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dirs = [directory / f"lab{i}" for i in range(len(counts))]
        for i, (sub, count) in enumerate(zip(dirs, counts, strict=True)):
            procs.append(_serve(ns, sub, count, mix, f"bench{i}", with_brokers, realistic))
        deadline = time.monotonic() + 60 + clusters * 0.5  # they start side by side on the same cores
        kubeconfigs, fleets, brokers = [], [], {}
        for sub, proc in zip(dirs, procs, strict=True):
            text = _read_until(proc, b"READY\n", deadline)
            match = re.search(r"^KUBECONFIG=(.+)$", text, re.M)
            fleet = re.search(r"^FLEET=(.+)$", text, re.M)
            if "READY" not in text or match is None or fleet is None:
                raise RuntimeError(f"lab did not become ready: {text!r}; see {sub / 'lab.stderr'}")
            kubeconfigs.append(Path(match.group(1)))
            fleets.append(Path(fleet.group(1)))
            if with_brokers:
                # `-v` writes the listing to stderr (flushed) before READY reaches stdout.
                brokers.update(_lab_brokers((sub / "lab.stderr").read_text(errors="replace"), fleets[-1]))
        yield Lab(kubeconfigs, merge_fleets(directory / "fleet.yaml", fleets), brokers, len(procs))
    finally:
        _stop(procs)


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
    sys_s: float = 0.0  # the system part of cpu_s: sockets, TLS records, threads, plugin processes
    tree_pss_kib: int = 0  # peak PSS of the tool and its workers together, sampled every 0.25 s


def run_measured(argv: Sequence[str], timeout: float, stderr_path: Path) -> Measured:
    """Run ``argv`` and reap it with wait4(2): its own wall time and peak RSS, no other child's."""
    with stderr_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=err, env=_child_env())
        deadline = t0 + timeout
        peak_pss, next_sample = 0, t0
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{' '.join(argv[:6])}... did not finish within {timeout:g}s")
                if time.perf_counter() >= next_sample:
                    peak_pss = max(peak_pss, tree_pss_kib(proc.pid))
                    next_sample = time.perf_counter() + 0.25
                time.sleep(0.005)
        except BaseException:
            proc.kill()
            _, status, _ = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, usage.ru_stime, peak_pss)


def tree_pss_kib(root: int) -> int:
    """Proportional set size of ``root`` and its descendants (worker processes, plugins): what the run costs
    the machine, shared pages counted once. Descendants have higher pids (no wrap-around in a bench run)."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) > root:
            with suppress(OSError, ValueError, IndexError):
                parent[int(name)] = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        tree |= found
        grew = bool(found)
    total = 0
    for pid in tree:
        with suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


@dataclass
class Verdicts:
    expected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    ok: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    mismatches: list[str] = field(default_factory=list)

    def cell(self, kind: str) -> str:
        return f"{self.ok[kind]}/{self.expected[kind]}" if self.expected[kind] else "-"

    def total_cell(self) -> str:
        return f"{sum(self.ok.values())}/{sum(self.expected.values())}"


def _result(cluster: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next((r for r in cluster["results"] if r["check_id"] == check_id), {"status": "missing"})


def _bad(r: dict[str, Any]) -> str:
    return f"{r.get('check_id')} {r['status']}: {r.get('message', '')}"


def verify(
    report: dict[str, Any], kinds: dict[str, str], brokers: dict[str, tuple[str, int]] | None = None
) -> Verdicts:
    """Healthy: kube-api.auth passes. Filtered: kube-api.tcp fails as "filtered". Hung: auth fails on a deadline.

    Broker: kube-api.auth, broker.auth and broker.port-forward pass. Broker-filtered (its published 4222
    dropped, the port-forward left alone, as a load balancer's source ranges do): broker.port-forward passes
    and broker.tcp warns as "filtered" (the Server takes the forward; nothing to fix). For
    every Broker cluster that got as far, broker.endpoint's evidence "published" must be the address
    the lab listed (so the nftables rule hit the Broker the check probed).
    """
    v = Verdicts()
    brokers = brokers or {}
    seen = {c["name"]: c for c in report["clusters"]}
    for name, kind in kinds.items():
        v.expected[kind] += 1
        cluster = seen.get(name)
        if cluster is None:
            v.mismatches.append(f"{name} ({kind}): not in the report")
            continue
        if name in brokers:
            published = _result(cluster, "broker.endpoint").get("evidence", {}).get("published")
            want = "{}:{}".format(*brokers[name])
            if published is not None and published != want:
                v.mismatches.append(f"{name} ({kind}): broker.endpoint published {published}, the lab listed {want}")
        if kind == "healthy":
            r = _result(cluster, "kube-api.auth")
            good = r["status"] == "pass"
        elif kind == "broker":
            r = _result(cluster, "kube-api.auth")
            for check_id in ("broker.auth", "broker.port-forward"):
                if r["status"] == "pass":
                    r = _result(cluster, check_id)
            good = r["status"] == "pass"
        elif kind == "broker-filtered":
            r = _result(cluster, "broker.port-forward")
            if r["status"] == "pass":
                r = _result(cluster, "broker.tcp")
            good = r["status"] == "warn" and r.get("evidence", {}).get("state") == "filtered"
        elif kind == "filtered":
            r = _result(cluster, "kube-api.tcp")
            good = r["status"] == "fail" and r.get("evidence", {}).get("state") == "filtered"
        else:
            r = _result(cluster, "kube-api.auth")
            # A hung plugin leaves the probe undecided: `error`, as the README defines it.
            good = r["status"] == "error" and bool(DEADLINE_MESSAGE.search(r.get("message", "")))
        if good:
            v.ok[kind] += 1
        else:
            v.mismatches.append(f"{name} ({kind}): {_bad(r)}")
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
    durations: dict[str, list[float]]  # check id -> every result's duration_s (clusters' and the fleet's)
    skipped: dict[str, int]  # check id -> how many of those results were skips
    lab_cpu_s: float = 0.0  # CPU the lab (API servers, Brokers) used while the check ran, on the same cores
    lab_processes: int = 1  # `serve` processes the lab ran as
    singles: list[Single] = field(default_factory=list)  # one cluster of each kind checked alone, same lab


@dataclass
class Single:
    """One cluster of one kind checked alone (``--context NAME``), several times against the same running lab."""

    kind: str
    cluster: str
    runs: list[Measured]
    mismatches: list[str]

    @property
    def wall_s(self) -> float:
        return statistics.median(m.wall_s for m in self.runs)

    @property
    def cpu_s(self) -> float:
        return statistics.median(m.cpu_s for m in self.runs)


def run_case(
    n: int, with_bad: bool, with_brokers: bool, args: argparse.Namespace, workdir: Path, single_runs: bool = False
) -> Case:
    """One lab fleet in one fresh namespace, one `check` run against it; with ``single_runs``, then one cluster
    of each kind alone (:func:`run_singles`) against the same lab."""
    label = f"n{n}-{'bad' if with_bad else 'base'}{'-brokers' if with_brokers else ''}-"
    directory = Path(tempfile.mkdtemp(prefix=label, dir=workdir))
    mix = BAD_MIX if with_bad else BASELINE_MIX
    processes = args.lab_processes or lab_processes_for(n)
    realistic = args.lab == "realistic"
    with Namespace() as ns, lab_fleet(ns, directory, n, mix, with_brokers, processes, realistic) as lab:
        clusters = {name: c for kubeconfig in lab.kubeconfigs for name, c in read_clusters(kubeconfig).items()}
        kinds = {name: ("hung" if s == "hung-exec" else "healthy") for name, (s, _, _) in clusters.items()}
        kinds.update(dict.fromkeys(lab.brokers, "broker"))
        if with_bad:
            token_healthy = [name for name, (s, _, _) in clusters.items() if s == "healthy"]
            filtered = spread(token_healthy, round(n * 0.1))
            drop = [clusters[name][1:] for name in filtered]
            kinds.update(dict.fromkeys(filtered, "filtered"))
            if with_brokers:
                # Another 10% of the fleet, among the Broker clusters whose API stays reachable.
                reachable = [name for name in lab.brokers if kinds[name] == "broker"]
                broker_filtered = spread(reachable, round(n * 0.1))
                drop += [lab.brokers[name] for name in broker_filtered]
                kinds.update(dict.fromkeys(broker_filtered, "broker-filtered"))
            ns.drop_tcp(drop)
        out = directory / "report.json"
        argv = check_argv(ns, lab, with_brokers, args, out)
        # The tool's own bound is one cluster budget per wave of --parallel clusters; allow that and more.
        timeout = 120 + 60 * math.ceil(n / args.parallel)
        before = set(ns.pids())  # every lab process and its nats-servers
        lab_cpu = _cpu_s(before)
        measured = run_measured(argv, timeout, directory / "check.stderr")
        lab_cpu = _cpu_s(before) - lab_cpu
        leftover = len(set(ns.pids()) - before)
        if measured.returncode not in (0, 1) or not out.exists():
            err = (directory / "check.stderr").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"check exited {measured.returncode} without a report: {err}")
        report = json.loads(out.read_text())
        singles = run_singles(ns, lab, kinds, with_brokers, args, directory) if single_runs else []
    durations: dict[str, list[float]] = {}
    skipped: dict[str, int] = {}
    results = [r for cluster in report["clusters"] for r in cluster["results"]]
    for r in [*results, *((report.get("fleet") or {}).get("results") or [])]:
        durations.setdefault(r["check_id"], []).append(float(r.get("duration_s") or 0))
        skipped[r["check_id"]] = skipped.get(r["check_id"], 0) + (r["status"] == "skip")
    slowest = sorted(((c, max(d)) for c, d in durations.items()), key=lambda kv: -kv[1])[:3]
    bad = sum(1 for k in kinds.values() if k not in ("healthy", "broker"))
    verdicts = verify(report, kinds, lab.brokers)
    endpoints = [c[1:] for c in clusters.values()] + list(lab.brokers.values())
    if len(set(endpoints)) != len(endpoints):  # the lab processes' allocators must never share an address
        verdicts.mismatches.append(f"{len(endpoints) - len(set(endpoints))} address:port pair(s) serve twice")
    if leftover:
        verdicts.mismatches.append(f"{leftover} process(es) left running in the namespace after check exited")
    tool_s = float(report.get("duration_s") or 0)
    return Case(
        n, bad, measured, tool_s, verdicts, slowest, leftover, durations, skipped, lab_cpu, lab.processes, singles
    )


def check_argv(
    ns: Namespace, lab: Lab, with_brokers: bool, args: argparse.Namespace, out: Path, *extra: str
) -> list[str]:
    """`meshery-preflight check` of the lab (every lab's kubeconfig, or the merged fleet file), JSON to ``out``."""
    source = (
        ("--fleet", str(lab.fleet), "--origin", ORIGIN)
        if with_brokers
        else tuple(a for k in lab.kubeconfigs for a in ("--kubeconfig", str(k)))
    )
    return ns.argv(
        *os.environ.get("BENCH_WRAP", "").split(),
        TOOL,
        "check",
        *source,
        *extra,
        "-o",
        f"json={out}",
        "--connect-timeout",
        f"{args.connect_timeout:g}",
        "--exec-timeout",
        f"{args.exec_timeout:g}",
        "--parallel",
        str(args.parallel),
    )


def run_singles(
    ns: Namespace, lab: Lab, kinds: dict[str, str], with_brokers: bool, args: argparse.Namespace, directory: Path
) -> list[Single]:
    """The middle cluster of each kind checked alone, ``--single-runs`` times, against the lab still running.

    A fleet is never quicker than its slowest cluster alone (a filtered API waits out --connect-timeout, a
    hung plugin --exec-timeout): these walls are what the fleet's wall compares with. Same flags, same
    source (so planning reads the whole fleet's kubeconfig or fleet file), narrowed by ``--context``.
    """
    singles = []
    for kind in KINDS:
        names = sorted(name for name, k in kinds.items() if k == kind)
        if not names:
            continue
        name = spread(names, 1)[0]
        runs, mismatches = [], []
        for i in range(args.single_runs):
            out = directory / f"single-{kind}-{i}.json"
            argv = check_argv(ns, lab, with_brokers, args, out, "--context", name)
            measured = run_measured(argv, 120, directory / f"single-{kind}-{i}.stderr")
            if measured.returncode not in (0, 1) or not out.exists():
                err = (directory / f"single-{kind}-{i}.stderr").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"check --context {name} exited {measured.returncode} without a report: {err}")
            runs.append(measured)
            report = json.loads(out.read_text())
            if [c["name"] for c in report["clusters"]] != [name]:
                mismatches.append(f"{name} ({kind}) alone: the report has {len(report['clusters'])} clusters")
            mismatches += verify(report, {name: kind}, lab.brokers).mismatches
        singles.append(Single(kind, name, runs, mismatches))
    return singles


def lab_processes_for(clusters: int) -> int:
    """The default: one lab process per CLUSTERS_PER_LAB clusters (or part of it)."""
    return max(1, math.ceil(clusters / CLUSTERS_PER_LAB))


def _cpu_s(pids: set[int]) -> float:
    """CPU seconds (user + system) the processes used so far: the lab shares this machine's cores with the tool."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_sizes, default=[10, 50, 200], help="fleet sizes (default 10,50,200)")
    p.add_argument("--connect-timeout", type=float, default=2.0, help="passed to check (default 2)")
    p.add_argument("--exec-timeout", type=float, default=2.0, help="passed to check (default 2)")
    p.add_argument("--parallel", type=int, default=32, help="passed to check (default 32)")
    p.add_argument("--no-baseline", action="store_true", help="skip the runs with no bad cluster")
    p.add_argument(
        "--lab-processes",
        type=_positive,
        default=0,
        metavar="K",
        help=f"run the lab as K `serve` processes, each with its share of the clusters (default: one per "
        f"{CLUSTERS_PER_LAB} clusters, at least 1; never more than the clusters)",
    )
    p.add_argument(
        "--lab",
        choices=("realistic", "light"),
        default="realistic",
        help="realistic (default): API servers answer as heavily as a real 1.30-era cluster "
        "(serve --realistic); light: the tests' minimal answers",
    )
    brokers = p.add_mutually_exclusive_group()
    brokers.add_argument(
        "--with-brokers",
        action="store_true",
        help="only the Broker table (lab --with-brokers, check --fleet, 10%% more with 4222 filtered); "
        "by default both tables run",
    )
    brokers.add_argument("--no-brokers", action="store_true", help="only the first table (no Brokers)")
    p.add_argument(
        "--single-runs",
        type=int,
        default=3,
        metavar="K",
        help="for the largest size, check one cluster of each kind alone K times against its lab (the median is "
        "printed; default 3, 0 skips)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (reports, lab logs)")
    return p


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _aligned(head: Sequence[str], body: Sequence[Sequence[str]], left: int = 0) -> list[str]:
    """Columns right-aligned, except the first ``left`` ones."""
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    return [
        "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in (head, *body)
    ]


def _table(rows: list[tuple[Case, Case | None]], args: argparse.Namespace, with_brokers: bool) -> list[str]:
    limit = max(args.connect_timeout, args.exec_timeout)
    kinds = ("healthy", "broker", "filtered", "broker-filtered", "hung") if with_brokers else KINDS[:3]
    labels = {"healthy": "no-broker" if with_brokers else "healthy", "broker-filtered": "4222 filtered"}
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
        *(f"{labels.get(k, k)} ok" for k in kinds),
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
                *(case.verdicts.cell(k) for k in kinds),
                *(
                    (
                        f"{base.measured.wall_s:.2f}",
                        f"{base.measured.cpu_s:.2f}",
                        f"{base.measured.maxrss_kib / 1024:.0f}",
                        base.verdicts.total_cell(),
                    )
                    if base
                    else ("-",) * 4
                ),
            )
        )
    return _aligned(head, body)


def singles_table(case: Case, args: argparse.Namespace, with_brokers: bool) -> list[str]:
    """One cluster of each kind alone next to the fleet's wall: a fleet is never quicker than its slowest cluster."""
    order = ("healthy", "broker", "filtered", "broker-filtered", "hung") if with_brokers else KINDS[:3]
    labels = {"healthy": "no-broker" if with_brokers else "healthy", "broker-filtered": "4222 filtered"}
    singles = sorted(case.singles, key=lambda s: order.index(s.kind))
    wall = case.measured.wall_s
    tag = " with Brokers" if with_brokers else ""
    head = ("kind", "cluster", "wall s", "min-max wall s", "CPU s", f"wall at N={case.clusters} / this")
    body = [
        (
            labels.get(s.kind, s.kind),
            s.cluster,
            f"{s.wall_s:.2f}",
            f"{min(m.wall_s for m in s.runs):.2f}-{max(m.wall_s for m in s.runs):.2f}",
            f"{s.cpu_s:.2f}",
            f"{wall / s.wall_s:.2f}",
        )
        for s in singles
    ]
    slowest = max(singles, key=lambda s: s.wall_s)
    # The healthy cluster of the fleet's own kind: operator mode with a Broker when the fleet has them.
    healthy = next((s for s in singles if s.kind == ("broker" if with_brokers else "healthy")), None)
    lines = [
        f"one cluster alone, N={case.clusters}{tag} lab (the middle cluster of each kind, `check --context NAME`, "
        f"median of {args.single_runs} run{'s' if args.single_runs > 1 else ''}; fleet: wall {wall:.2f}s, "
        f"CPU {case.measured.cpu_s:.2f}s):",
        *_aligned(head, body, left=2),
        f"wall at N={case.clusters}{tag} / wall of the slowest single cluster "
        f"({labels.get(slowest.kind, slowest.kind)}, {slowest.wall_s:.2f}s): {wall / slowest.wall_s:.2f}",
    ]
    if healthy:
        lines.append(
            f"wall at N={case.clusters}{tag} / wall of one healthy cluster "
            f"({labels.get(healthy.kind, healthy.kind)}, {healthy.wall_s:.2f}s): {wall / healthy.wall_s:.2f}"
        )
    return lines


def _p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def cost_table(case: Case) -> list[str]:
    """Per check id: how many results, how many skipped, mean / p95 / max / total duration_s; by mean, descending."""
    stats = [
        (check_id, len(d), case.skipped.get(check_id, 0), statistics.fmean(d), _p95(d), max(d), sum(d))
        for check_id, d in case.durations.items()
    ]
    stats.sort(key=lambda s: (-s[3], s[0]))
    head = ("check_id", "count", "skipped", "mean s", "p95 s", "max s", "total s")
    body = [
        (c, str(n), str(sk), f"{mean:.3f}", f"{p95:.3f}", f"{mx:.3f}", f"{tot:.1f}")
        for c, n, sk, mean, p95, mx, tot in stats
    ]
    return _aligned(head, body, left=1)


def run_sizes(
    args: argparse.Namespace, workdir: Path, with_brokers: bool
) -> tuple[list[tuple[Case, Case | None]], bool]:
    """Every size, baseline then 20% bad, printing a line per size as it goes; also says whether any mismatched."""
    rows: list[tuple[Case, Case | None]] = []
    failed = False
    tag = " with Brokers" if with_brokers else ""
    for n in args.sizes:
        base = None if args.no_baseline else run_case(n, False, with_brokers, args, workdir)
        largest = n == max(args.sizes) and args.single_runs > 0
        case = run_case(n, True, with_brokers, args, workdir, single_runs=largest)
        rows.append((case, base))
        print(
            f"N={n}{tag}, {case.lab_processes} lab process{'es' if case.lab_processes > 1 else ''}:"
            f" wall {case.measured.wall_s:.2f}s, CPU {case.measured.cpu_s:.2f}s"
            f" (of which system {case.measured.sys_s:.2f}s); peak PSS of the tool and its workers "
            f"{case.measured.tree_pss_kib / 1024:.0f} MiB; the lab's CPU meanwhile {case.lab_cpu_s:.2f}s"
            + (f", baseline {base.measured.wall_s:.2f}s" if base else "")
            + "; slowest checks (max s): "
            + ", ".join(f"{c} {s:.2f}" for c, s in case.slowest)
            + f"; processes left behind: {case.leftover}",
            flush=True,
        )
        singles = [m for single in case.singles for m in single.mismatches]
        if singles:
            failed = True
            print(f"  MISMATCH in the single-cluster{tag} runs ({len(singles)}):", *singles[:10], sep="\n    ")
        for label, c in (("20% bad", case), ("baseline", base)):
            if c and c.verdicts.mismatches:
                failed = True
                print(
                    f"  MISMATCH in the {label}{tag} run ({len(c.verdicts.mismatches)}):",
                    *c.verdicts.mismatches[:10],
                    sep="\n    ",
                )
    return rows, failed


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
    modes = [m for m in (False, True) if not (m and args.no_brokers) and not (not m and args.with_brokers)]
    failed = False
    costs: list[tuple[str, Case]] = []
    singles: list[tuple[bool, Case]] = []  # (with Brokers, the largest size's 20%-bad case)
    try:
        for line in help_figures():
            print(line, flush=True)
        for with_brokers in modes:
            print(
                f"\nfleet mix: {BAD_MIX} + 10% filtered (nftables drop); baseline: {BASELINE_MIX}"
                + (
                    f"; with Brokers (lab --with-brokers, check --fleet, --origin {ORIGIN}) "
                    "+ another 10% with the Broker's 4222 filtered"
                    if with_brokers
                    else ""
                ),
                flush=True,
            )
            rows, bad = run_sizes(args, workdir, with_brokers)
            failed |= bad
            print()
            print("\n".join(_table(rows, args, with_brokers)))
            largest = max(rows, key=lambda r: r[0].clusters)[0]
            costs.append((f"N={largest.clusters}, 20% bad{', with Brokers' if with_brokers else ''}", largest))
            singles.append((with_brokers, largest))
        print(
            f"\ngoal: wall close to one timeout (max(connect, exec) = "
            f"{max(args.connect_timeout, args.exec_timeout):g}s), not N of them; RSS is the check process's peak"
        )
        for with_brokers, case in singles:
            if case.singles:
                print()
                print("\n".join(singles_table(case, args, with_brokers)))
        for title, case in costs:
            print(f"\nper-check cost, {title} (every result's duration_s, skips included):")
            print("\n".join(cost_table(case)))
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
