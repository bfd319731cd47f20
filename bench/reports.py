#!/usr/bin/env python3
"""Report benchmark: how big, how slow and how memory-hungry is each output format for a large fleet?

Two tables. The first builds a synthetic report of N clusters, each with one result per registered
cluster check (a fifth of the clusters pass everything, the rest fail, error or warn in a rotating
pattern, with messages that name addresses), compares it with a baseline where the first tenth of the
clusters was worse, and prints, per format, the render time and the output size; for markdown also the
share of GitHub's 1 MiB step-summary limit, for prometheus the number of series.

The second writes each format of a realistic fleet (tests/report_samples.py) to a file the way
``-o FORMAT=PATH`` does, each in a fresh process: the time (best of ``--repeat``), the peak memory Python
traced while writing (tracemalloc, a separate pass), and how far the process's peak RSS rose above its RSS
before writing (the kernel's high-water mark, reset first). From the second write on, the metrics read the
previous file, as a scheduled run does. ``streamed`` writes the renderer's chunks as they come (what the
CLI does); ``string`` renders the whole text first, then writes it.

Run: ``.venv/bin/python bench/reports.py [--sizes 100,500,2000] [--write-sizes 1000,2000] [--repeat 3]
[--modes streamed,string]``.
No root, no network; Linux (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight import TOOL_NAME, __version__  # noqa: E402
from preflight.app import load_registry  # noqa: E402
from preflight.engine import baseline
from preflight.engine.model import ClusterReport, Result, RunReport, Scope, Status  # noqa: E402
from preflight.reports import json_report, writer  # noqa: E402
from preflight.reports.options import RenderOptions  # noqa: E402

ROTATION = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.SKIP)
# The formats of -o, and the console's verbose view (-v), which lists every result.
WRITE_FORMATS = (*writer.FORMATS, "console-v")


def synthetic(n: int, *, worse_first: int = 0) -> RunReport:
    checks = [c for c in load_registry().all() if c.scope is Scope.CLUSTER]
    started = dt.datetime(2026, 11, 29, 6, 17, tzinfo=dt.timezone.utc)
    clusters = []
    for i in range(n):
        results = []
        for k, c in enumerate(checks):
            status = Status.PASS if i % 5 == 0 else ROTATION[(i + k) % len(ROTATION)]
            if i < worse_first and status is Status.PASS:
                status = Status.WARN
            results.append(
                Result(
                    c.id,
                    c.title,
                    c.category,
                    c.severity,
                    status,
                    f"{c.id} via 10.{i // 250}.{i % 250}.7:443",
                    c.remediation if status is not Status.PASS else "",
                    c.docs_url,
                    {"attempt": 1},
                    0.01,
                )
            )
        name = f"cluster-{i:04d}.eu-west-{i % 3}.example.internal"
        clusters.append(ClusterReport(name, f"https://10.{i // 250}.{i % 250}.1:6443", "eks", "operator", results))
    return RunReport(TOOL_NAME, __version__, started, started + dt.timedelta(seconds=42), [], clusters, [])


def render_table(sizes: list[int]) -> None:
    print(f"{'clusters':>8}  {'format':<10}  {'render ms':>9}  {'bytes':>10}  note")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "before.json"
            path.write_text(json_report.render(synthetic(n)))
            t0 = time.perf_counter()
            snap = baseline.load(str(path), tool_name=TOOL_NAME, schema_version=json_report.SCHEMA_VERSION)
            report = baseline.compare(synthetic(n, worse_first=n // 10), snap)
            compare_ms = (time.perf_counter() - t0) * 1000
        assert report.baseline is not None
        print(f"{n:>8}  {'baseline':<10}  {compare_ms:>9.0f}  {'':>10}  load + compare, {dict(report.baseline.counts)}")
        for fmt in writer.FORMATS:
            t0 = time.perf_counter()
            text = writer.render(fmt, report)
            ms = (time.perf_counter() - t0) * 1000
            size = len(text.encode())
            note = ""
            if fmt == "markdown":
                note = f"{100 * size / (1024 * 1024):.1f}% of the 1 MiB step-summary limit"
            elif fmt == "prometheus":
                note = f"{sum(1 for line in text.splitlines() if line and not line.startswith('#'))} series"
            elif fmt == "json":
                note = f"{len(json.loads(text)['clusters'])} clusters"
            print(f"{n:>8}  {fmt:<10}  {ms:>9.0f}  {size:>10}  {note}")


def _kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match, field
    return int(match.group(1))


def _write_once(n: int, fmt: str, mode: str, repeat: int) -> dict[str, float]:
    """Runs in a fresh process: write one format of an n-cluster fleet ``repeat`` times (the best time, and
    the RSS growth of the first), then once more traced."""
    from tests.report_samples import sample_report, synthetic_fleet

    report = synthetic_fleet(n)
    name, _, view = fmt.partition("-")
    options = RenderOptions(verbose=view == "v")
    with tempfile.TemporaryDirectory(prefix="mpf-bench-reports-") as tmp:
        path = str(Path(tmp) / f"report.{name}")

        def write() -> None:
            if mode == "string":
                writer.write_report(path, writer.render(name, report, options=options, path=path))
            else:
                writer.write_report(path, writer.stream(name, report, options=options, path=path))

        writer.render(name, sample_report(), options=options)  # imports and templates load outside the figures
        gc.collect()
        before = _kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS, to the current RSS
        t0 = time.perf_counter()
        write()
        seconds = time.perf_counter() - t0
        peak_rss = _kib("VmHWM")
        for _ in range(repeat - 1):
            t0 = time.perf_counter()
            write()
            seconds = min(seconds, time.perf_counter() - t0)
        size = os.path.getsize(path)
        gc.collect()
        tracemalloc.start()
        write()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "s": seconds,
        "traced": traced / 1e6,
        "rss": (peak_rss - before) / 1024,
        "mb": size / 1e6,
        "base": before / 1024,
    }


def write_table(sizes: list[int], modes: list[str], repeat: int) -> None:
    print(f"\n{'clusters':>8}  {'format':<10}  {'mode':<8}  {'write s':>7}  {'traced MB':>9}", end="")
    print(f"  {'RSS+ MB':>7}  {'out MB':>6}")
    for n in sizes:
        for fmt in WRITE_FORMATS:
            for mode in modes:
                argv = [sys.executable, __file__, "--child", str(n), fmt, mode, str(repeat)]
                got = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
                print(
                    f"{n:>8}  {fmt:<10}  {mode:<8}  {got['s']:>7.2f}  {got['traced']:>9.1f}  {got['rss']:>7.1f}"
                    f"  {got['mb']:>6.2f}",
                    flush=True,
                )
        print(f"{n:>8}  (RSS before writing, with the report built: {got['base']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000", help="fleet sizes of the render table ('' skips it)")
    parser.add_argument("--write-sizes", default="1000,2000", help="fleet sizes of the write table ('' skips it)")
    parser.add_argument("--modes", default="streamed,string", help="streamed, string or both")
    parser.add_argument("--repeat", type=int, default=3, help="timed writes per row; the best is printed")
    parser.add_argument("--child", nargs=4, metavar=("N", "FORMAT", "MODE", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, fmt, mode, repeat = args.child
        print(json.dumps(_write_once(int(n), fmt, mode, int(repeat))))
        return
    if args.sizes:
        render_table([int(s) for s in args.sizes.split(",")])
    if args.write_sizes:
        write_table([int(s) for s in args.write_sizes.split(",")], args.modes.split(","), args.repeat)


if __name__ == "__main__":
    main()
