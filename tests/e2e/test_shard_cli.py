"""`check --shard`: N shard runs against lab clusters check exactly the unsharded selection, once each;
`merge` makes them one fleet report again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from preflight.reports import json_report
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
            assert r["status"] == "skip" and f"not checked in a shard (shard {k}/3)" in r["message"]
            assert "meshery-preflight merge SHARD-0.json SHARD-1.json SHARD-2.json" in r["remediation"]
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


def merge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "merge", *args], capture_output=True, text=True, timeout=60)


def test_merging_the_shards_gives_the_fleet_with_origins(lab: LabFleet, tmp_path: Path) -> None:
    files = []
    for k in range(3):
        path = tmp_path / f"shard-{k}.json"
        path.write_text(check(lab, "--shard", f"{k}/3").stdout)
        files.append(str(path))
    proc = merge(*files, "-o", f"json={tmp_path / 'fleet.json'}", "-o", f"markdown={tmp_path / 'fleet.md'}")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "fleet.json").read_text())
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)
    assert sorted(c["name"] for c in doc["clusters"]) == NAMES
    for c in doc["clusters"]:
        shard = c["origin"]["shard"]
        assert c["origin"]["report"] == files[shard["index"]] and shard["count"] == 3
    assert "shard" not in doc
    # The fleet checks are rerun over the merged clusters: the same verdicts as one unsharded run, but for
    # credentials, which the shards fingerprinted with a random key each (no --fingerprint-key-file).
    whole = json.loads(check(lab).stdout)
    verdicts = {r["check_id"]: (r["status"], r["message"]) for r in doc["fleet"]["results"]}
    shared = verdicts.pop("fleet.shared-credential")
    assert shared == ("skip", "runs used different fingerprint keys (give every run --fingerprint-key-file)")
    assert verdicts == {
        r["check_id"]: (r["status"], r["message"])
        for r in whole["fleet"]["results"]
        if r["check_id"] != "fleet.shared-credential"
    }
    assert verdicts["fleet.duplicate-cluster"][0] == "pass"
    summary = (tmp_path / "fleet.md").read_text()  # the lab's static tokens warn on every cluster: one group
    assert "6 of 6 clusters need attention" in summary and "On 6 clusters:" in summary

    # Merged again against itself as the baseline: nothing new.
    again = merge(*files, "--baseline", str(tmp_path / "fleet.json"), "--fail-on", "new", "-o", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["baseline"]["changes"]["new"] == 0


def test_merge_conflicts_are_one_line_naming_both_files(lab: LabFleet, tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(check(lab, "--context", "region-0").stdout)
    doc = json.loads(a.read_text())
    doc["clusters"][0]["server"] = "https://10.99.0.1:6443"
    b.write_text(json.dumps(doc))
    two_servers = merge(str(a), str(b))
    doc["schema_version"] = 2
    b.write_text(json.dumps(doc))
    versions = merge(str(a), str(b))
    (tmp_path / "c.json").write_text("<testsuites/>")
    not_json = merge(str(a), str(tmp_path / "c.json"))
    nothing = merge()
    for proc, needle in [
        (two_servers, "cluster 'region-0' has two API servers"),
        (versions, "has schema_version 1 and"),
        (not_json, "not a JSON report"),
        (nothing, "merge needs one or more JSON reports"),
    ]:
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(a) in two_servers.stderr and str(b) in two_servers.stderr
    assert str(a) in versions.stderr and str(b) in versions.stderr


def test_in_cluster_cannot_be_sharded() -> None:
    proc = subprocess.run([*CLI, "check", "--in-cluster", "--shard", "0/2"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--shard splits the contexts" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
