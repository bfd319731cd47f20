"""`check --shard`: N shard runs against lab clusters check exactly the unsharded selection, once each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from preflight_lab.fleet import ClusterSpec, LabFleet

CLI = [sys.executable, "-m", "preflight.cli"]
NAMES = [f"region-{i}" for i in range(6)]
FLEET_CHECKS = {"fleet.shared-credential", "fleet.duplicate-cluster", "fleet.broker-endpoint-collision"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet([ClusterSpec(name=n, scenario="healthy") for n in NAMES], tmp_path_factory.mktemp("shards")) as f:
        yield f


def check(lab: LabFleet, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k not in ("KUBECONFIG",)}
    base = {k: v for k, v in base.items() if k not in ("JOB_COMPLETION_INDEX", "PREFLIGHT_SHARDS")}
    argv = ["check", "--kubeconfig", str(lab.kubeconfig_path), "--checks", "kubeconfig.*", "--checks", "fleet.*"]
    return subprocess.run(
        [*CLI, *argv, "-o", "json", *args], capture_output=True, text=True, timeout=120, env={**base, **(env or {})}
    )


def test_shards_partition_the_selection_and_skip_fleet_checks(lab: LabFleet) -> None:
    whole = json.loads(check(lab).stdout)
    assert "shard" not in whole
    assert sorted(c["name"] for c in whole["clusters"]) == NAMES
    assert {r["check_id"] for r in whole["fleet"]["results"] if r["status"] != "skip"} >= {"fleet.duplicate-cluster"}

    seen: list[str] = []
    for k in range(3):
        doc = json.loads(check(lab, "--shard", f"{k}/3").stdout)
        assert doc["shard"] == {"index": k, "count": 3}
        seen += [c["name"] for c in doc["clusters"]]
        fleet = {r["check_id"]: r for r in doc["fleet"]["results"]}
        assert set(fleet) >= FLEET_CHECKS
        for r in fleet.values():
            assert r["status"] == "skip" and "sharded run (shard " in r["message"] and r["remediation"] == ""
    assert sorted(seen) == NAMES  # every cluster checked exactly once


def test_shard_auto_reads_the_indexed_job_variables(lab: LabFleet) -> None:
    auto = json.loads(check(lab, "--shard", "auto", env={"JOB_COMPLETION_INDEX": "1", "PREFLIGHT_SHARDS": "2"}).stdout)
    explicit = json.loads(check(lab, "--shard", "1/2").stdout)
    assert auto["shard"] == {"index": 1, "count": 2}
    assert [c["name"] for c in auto["clusters"]] == [c["name"] for c in explicit["clusters"]]


@pytest.mark.parametrize(
    ("value", "env", "needle"),
    [("3/3", {}, "outside 0..2"), ("x", {}, "expected K/N"), ("auto", {}, "needs JOB_COMPLETION_INDEX")],
)
def test_bad_shard_is_one_line_and_exit_2(lab: LabFleet, value: str, env: dict[str, str], needle: str) -> None:
    proc = check(lab, "--shard", value, env=env)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
