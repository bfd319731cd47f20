#!/usr/bin/env python3
"""Report benchmark: how big and how slow is each output format for a large fleet?

Builds a synthetic report of N clusters, each with one result per registered cluster check (a fifth
of the clusters pass everything, the rest fail, error or warn in a rotating pattern, with messages
that name addresses), compares it with a baseline where the first tenth of the clusters was worse,
and prints, per format, the render time and the output size; for markdown also the share of GitHub's
1 MiB step-summary limit, for prometheus the number of series.

Run: ``.venv/bin/python bench/reports.py [--sizes 100,500,2000]``. No root, no network.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from preflight import TOOL_NAME, __version__, baseline
from preflight.app import load_registry
from preflight.model import ClusterReport, Result, RunReport, Scope, Status
from preflight.reports import json_report, writer

ROTATION = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.SKIP)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000")
    args = parser.parse_args()
    print(f"{'clusters':>8}  {'format':<10}  {'render ms':>9}  {'bytes':>10}  note")
    for n in (int(s) for s in args.sizes.split(",")):
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


if __name__ == "__main__":
    main()
