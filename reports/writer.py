"""Choosing a renderer from ``--output FORMAT[=PATH]`` and writing its output safely.

Reports are replaced atomically so a CI job that reads a report while (or after) a run is interrupted
sees either the previous file or the complete new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from pathlib import Path

from preflight.model import RunReport

from . import console, html, json_report, junit
from .options import RenderOptions

FORMATS: tuple[str, ...] = ("console", "json", "junit", "html", "prometheus", "markdown")


def _check_format(fmt: str) -> str:
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise ValueError(
            f"unknown output format {fmt!r}: expected FORMAT or FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}"
        )
    return name


def parse_output_spec(spec: str) -> tuple[str, str | None]:
    """Split ``FORMAT`` or ``FORMAT=PATH``; only the first ``=`` separates, so paths may contain one."""
    fmt, sep, path = spec.partition("=")
    name = _check_format(fmt)
    if not sep:
        return name, None
    if not path.strip():
        raise ValueError(f"output {spec!r} has an empty path: use {name} or {name}=PATH")
    return name, path


def render(
    fmt: str, report: RunReport, *, color: bool = False, options: RenderOptions | None = None, path: str | None = None
) -> str:
    """``options`` carry what the run is judged by (``--fail-on``) and the console's view (``-v``, width);
    ``path`` is where the output goes, if a file: the metrics read their previous version there."""
    name = _check_format(fmt)
    opts = options or RenderOptions()
    if color != opts.color:
        opts = dataclasses.replace(opts, color=color)
    if name == "prometheus":
        from . import prometheus

        return prometheus.render(report, previous=_previous(path))
    if name == "markdown":
        from . import markdown

        return markdown.render(report)
    if name == "json":
        return json_report.render(report)
    if name == "junit":
        return junit.render(report, fail_on=opts.fail_on)
    if name == "html":
        return html.render(report, fail_on=opts.fail_on)
    return console.render(report, options=opts)


def _previous(path: str | None) -> str | None:
    if path is None or path == "-":
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` via a sibling temp file and ``os.replace``, creating parent directories.

    The temp file is opened with ``os.open`` rather than ``tempfile`` so it gets the usual umask-derived
    permissions instead of 0600, and the finished report stays readable by CI artifact uploaders.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
