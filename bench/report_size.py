"""Size and build time of the HTML report for synthetic fleets, and, with Debian's Chromium, how long
a browser takes to open it and apply a filter.

    .venv/bin/python bench/report_size.py [--sizes 200,2000] [--browser]

Prints figures; asserts nothing. The fleets cycle through healthy, refused API, filtered Broker, warning,
muted and erroring clusters (tests/report_samples.py), with every shipped cluster check per cluster.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.reports import console, html, json_report  # noqa: E402
from tests.report_samples import synthetic_fleet  # noqa: E402


def _browser(path: Path) -> tuple[float, float]:
    """Seconds to load the page, and to untick `pass` so the matrix hides the passing clusters."""
    from tests.reports.browser import chromium, file_url

    with chromium() as driver:
        t0 = time.perf_counter()
        driver.get(file_url(path))
        driver.execute_script("return document.getElementById('shown').textContent")
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        driver.find_element("css selector", "input[name=status][value=pass]").click()
        driver.execute_script("return document.getElementById('shown').textContent")
        return load, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,2000")
    parser.add_argument("--browser", action="store_true", help="also time opening and filtering in Chromium")
    args = parser.parse_args()
    print(f"{'clusters':>8}  {'html MB':>8}  {'build s':>8}  {'json MB':>8}  {'console lines':>13}", end="")
    print(f"  {'open s':>7}  {'filter s':>8}" if args.browser else "")
    with tempfile.TemporaryDirectory(prefix="mpf-report-size-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            report = synthetic_fleet(n)
            t0 = time.perf_counter()
            page = html.render(report)
            build = time.perf_counter() - t0
            size = len(page.encode("utf-8")) / 1e6
            json_size = sum(len(chunk.encode("utf-8")) for chunk in json_report.chunks(report)) / 1e6
            lines = console.render(report).count("\n")
            print(f"{n:>8}  {size:>8.2f}  {build:>8.2f}  {json_size:>8.2f}  {lines:>13}", end="")
            if args.browser:
                path = Path(tmp) / f"report-{n}.html"
                path.write_text(page, encoding="utf-8")
                load, filtered = _browser(path)
                print(f"  {load:>7.2f}  {filtered:>8.3f}", end="")
            print()


if __name__ == "__main__":
    main()
