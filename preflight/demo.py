"""`meshery-preflight demo`: the lab fleet (package ``preflight_lab``, the ``demo`` extra) checked by the real
`check` path, with every report written under one directory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from preflight.engine.errors import ConfigError
from preflight.engine.model import RunReport
from preflight.engine.plan import Request
from preflight.engine.settings import Settings

EXTRA_HINT = "the demo needs the lab: pip install 'meshery-preflight[demo]'"
Outputs = list[tuple[str, str | None]]
_LABELS = {
    "html": "HTML fleet report (open in a browser)",
    "console": "console transcript",
    "json": "JSON report",
    "junit": "JUnit XML",
}


@contextlib.contextmanager
def running(directory: str) -> Iterator[tuple[Request, Settings, Outputs]]:
    """The demo's lab, started; yields what `check` needs to run over it. The lab stops on exit."""
    try:
        from preflight_lab import demo as lab_demo
    except ImportError as exc:
        raise ConfigError(f"{EXTRA_HINT} ({exc})") from None
    out = Path(directory).resolve()
    with lab_demo.start(out) as lab:
        outputs: Outputs = [
            ("console", None),
            ("html", str(out / "report.html")),
            ("console", str(out / "report.txt")),
            ("json", str(out / "report.json")),
            ("junit", str(out / "junit.xml")),
            ("markdown", str(out / "summary.md")),
            ("prometheus", str(out / "meshery_preflight.prom")),
        ]
        yield Request(fleet=str(lab.fleet_file)), Settings(**lab.settings), outputs


def print_summary(report: RunReport, outputs: Sequence[tuple[str, str | None]], seconds: float) -> None:
    s = report.summary
    click.echo(
        f"\nDemo done in {seconds:.1f}s: {len(report.clusters)} clusters, "
        f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail, {s['error']} error. Reports:",
        err=True,
    )
    for fmt, path in outputs:
        if path:
            click.echo(f"  {_LABELS.get(fmt, fmt):<38} {path}", err=True)
