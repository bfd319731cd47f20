"""`check --baseline` and `--fail-on new` through the CLI against lab clusters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from preflight_lab.fleet import ClusterSpec, LabFleet

CLI = [sys.executable, "-m", "preflight.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env={**env, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    specs = [ClusterSpec(name="good", scenario="healthy"), ClusterSpec(name="bad-token", scenario="expired-token")]
    with LabFleet(specs, tmp_path_factory.mktemp("baseline-lab")) as fleet:
        yield fleet


def _check(lab: LabFleet, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("check", "--kubeconfig", str(lab.kubeconfig_path), "--connect-timeout", "1", *args)


@pytest.fixture(scope="module")
def first(lab: LabFleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "yesterday.json"
    proc = _check(lab, "-o", f"json={path}", "-o", "console")
    assert proc.returncode == 1, proc.stdout  # the expired token fails
    return path


def test_same_findings_as_the_baseline_pass_fail_on_new(lab: LabFleet, first: Path) -> None:
    proc = _check(lab, "--baseline", str(first), "--fail-on", "new", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["baseline"]["changes"]["new"] == 0
    failing = [r for c in doc["clusters"] for r in c["results"] if r["status"] == "fail"]
    assert failing and all(r["change"] == "unchanged" for r in failing)


def test_a_result_worse_than_the_baseline_fails_fail_on_new(lab: LabFleet, first: Path, tmp_path: Path) -> None:
    doc = json.loads(first.read_text())
    bad = next(c for c in doc["clusters"] if c["name"] == "bad-token")
    worse = [r for r in bad["results"] if r["status"] == "fail"]
    for r in worse:  # yesterday these passed
        r["status"], r["message"] = "pass", "ok"
    yesterday = tmp_path / "passing.json"
    yesterday.write_text(json.dumps(doc))
    proc = _check(lab, "--baseline", str(yesterday), "--fail-on", "new", "-o", "console")
    assert proc.returncode == 1
    assert "1 new" in proc.stdout or f"{len(worse)} new" in proc.stdout
    lines = proc.stdout.splitlines()
    # The cluster that got worse is listed first, its new failures at its top.
    first_cluster = next(line for line in lines if line.startswith("cluster "))
    assert first_cluster.startswith("cluster bad-token")
    assert "[new]" in lines[lines.index(first_cluster) + 1]


@pytest.mark.parametrize(
    ("content", "needle"),
    [("not json", "not a JSON report"), ('{"tool": {"name": "popeye"}}', "written by 'popeye'")],
)
def test_a_bad_baseline_is_one_line_and_exit_2(lab: LabFleet, tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    proc = _check(lab, "--baseline", str(path))
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_fail_on_new_needs_a_baseline(lab: LabFleet) -> None:
    proc = _check(lab, "--fail-on", "new")
    assert proc.returncode == 2 and "--fail-on new needs --baseline" in proc.stderr
