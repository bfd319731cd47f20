from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from preflight.reports import console, html, json_report, junit, writer
from tests.report_samples import sample_report


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("console", ("console", None)),
        ("json", ("json", None)),
        ("JUnit", ("junit", None)),
        ("json=out/report.json", ("json", "out/report.json")),
        ("junit=reports/a=b.xml", ("junit", "reports/a=b.xml")),
    ],
)
def test_parse_output_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert writer.parse_output_spec(spec) == expected


@pytest.mark.parametrize("spec", ["yaml", "out.json", "", "xml=report.xml"])
def test_parse_output_spec_rejects_unknown_format(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        writer.parse_output_spec(spec)
    message = str(info.value)
    assert "\n" not in message
    assert "unknown output format" in message and "console, json, junit" in message


def test_parse_output_spec_rejects_empty_path() -> None:
    with pytest.raises(ValueError, match="empty path"):
        writer.parse_output_spec("json=")


def test_render_dispatches() -> None:
    report = sample_report()
    assert writer.render("json", report) == json_report.render(report)
    assert writer.render("junit", report) == junit.render(report)
    assert writer.render("console", report) == console.render(report, color=False)
    assert writer.render("console", report, color=True) == console.render(report, color=True)
    assert writer.render("html", report) == html.render(report)
    verbose = writer.RenderOptions(verbose=True, fail_on="warn", width=80)
    assert writer.render("console", report, options=verbose) == console.render(report, options=verbose)
    assert writer.render("junit", report, options=verbose) == junit.render(report, fail_on="warn")
    with pytest.raises(ValueError):
        writer.render("pdf", report)


def test_write_atomic_replaces_and_never_creates_directories(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        writer.write_atomic(tmp_path / "deep" / "report.json", "x")
    assert not (tmp_path / "deep").exists()
    target = tmp_path / "report.json"
    writer.write_atomic(target, "first ✔\n")
    assert target.read_bytes() == "first ✔\n".encode()
    writer.write_atomic(str(target), "second\n")
    assert target.read_text(encoding="utf-8") == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_write_atomic_keeps_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.xml"
    target.write_text("old", encoding="utf-8")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        writer.write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xml"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_write_atomic_respects_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        writer.write_atomic(tmp_path / "r.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_written_reports_round_trip(tmp_path: Path) -> None:
    report = sample_report()
    for fmt in writer.FORMATS:
        path = tmp_path / f"out.{fmt}"
        writer.write_atomic(path, writer.render(fmt, report))
        assert path.read_text(encoding="utf-8") == writer.render(fmt, report)
