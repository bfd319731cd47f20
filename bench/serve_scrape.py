"""What one `/metrics` scrape of `meshery-preflight serve` costs for synthetic fleets: series, bytes (plain and
gzip, as Prometheus asks for it) and the time to render them.

    .venv/bin/python bench/serve_scrape.py [--sizes 100,1000]

Prints figures; asserts nothing. Each fleet has every shipped check per cluster (tests/report_samples.py).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.serve.metrics import Health, exposition, report_exposition, server_registry  # noqa: E402
from tests.report_samples import synthetic_fleet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000", help="fleet sizes, comma-separated")
    args = parser.parse_args()
    print(f"{'clusters':>8}  {'series':>8}  {'plain':>9}  {'gzip':>8}  {'run':>7}  {'scrape':>7}  {'gzip':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        report = synthetic_fleet(size)
        registry = server_registry(lambda r=report: r, Health(), 300.0)
        exposition(registry, report_exposition(report, {}))  # warm-up: imports and caches
        t0 = time.perf_counter()
        once = report_exposition(report, {})  # once per run, in the scheduler's thread
        render = time.perf_counter() - t0
        t0 = time.perf_counter()
        body = exposition(registry, once)  # every scrape
        scrape = time.perf_counter() - t0
        t0 = time.perf_counter()
        packed = gzip.compress(body, compresslevel=1)
        pack = time.perf_counter() - t0
        series = sum(1 for line in body.splitlines() if line.startswith(b"meshery_preflight_"))
        print(
            f"{size:>8}  {series:>8}  {len(body) / 1e6:>7.2f}MB  {len(packed) / 1e6:>6.2f}MB  {render:>6.2f}s  "
            f"{scrape:>6.3f}s  {pack:>5.2f}s"
        )


if __name__ == "__main__":
    main()
