"""`meshery-preflight demo`: a local lab fleet with the classic failures, checked by the real `check` path."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from preflight.lab.fleet import ClusterSpec, LabFleet
from preflight.plan import Request
from preflight.settings import Settings

# Context names say what each lab cluster gets wrong, so the report reads as a tour.
DEMO_FLEET = (
    ClusterSpec(name="prod-eu", scenario="healthy"),
    ClusterSpec(name="prod-us-exec", scenario="exec-ok"),
    ClusterSpec(name="staging-client-cert", scenario="client-cert"),
    ClusterSpec(name="edge-api-refused", scenario="refused"),
    ClusterSpec(name="dr-wrong-ca", scenario="wrong-ca"),
    ClusterSpec(name="dev-expired-token", scenario="expired-token"),
    ClusterSpec(name="ci-hung-exec-plugin", scenario="hung-exec"),
    ClusterSpec(name="lab-insecure-tls", scenario="insecure"),
)


def run_demo(directory: str) -> None:
    from preflight.cli import execute

    out = Path(directory).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lab_dir = out / "lab"
    click.echo(f"Starting a lab fleet of {len(DEMO_FLEET)} clusters on loopback ...", err=True)
    t0 = time.monotonic()
    with LabFleet(list(DEMO_FLEET), lab_dir) as lab:
        # Short deadlines keep the tour quick; the hung plugin is still cut at its own deadline.
        settings = Settings(connect_timeout=1.0, exec_timeout=2.0, cluster_timeout=20.0)
        request = Request(fleet=str(lab.fleet_path))
        outputs = [("console", None), ("json", str(out / "report.json")), ("junit", str(out / "junit.xml"))]
        report = execute(request, settings, outputs)
    s = report.summary
    click.echo(
        f"\nDemo done in {time.monotonic() - t0:.1f}s: {len(report.clusters)} clusters, "
        f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail, {s['error']} error. "
        f"Reports: {out / 'report.json'}, {out / 'junit.xml'}",
        err=True,
    )
    sys.exit(0)
