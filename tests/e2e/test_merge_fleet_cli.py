"""`merge` reruns the fleet checks: the shards of a lab fleet (real API servers, real nats-servers), merged,
judge the fleet as one unsharded run does; credential fingerprints are keyed and never reveal a token."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import behind_load_balancer

CLI = [sys.executable, "-m", "preflight.cli"]
FLEET_CHECKS = {
    "fleet.shared-credential",
    "fleet.duplicate-cluster",
    "fleet.broker-endpoint-collision",
    "fleet.mode-consistency",
}
A = [allocate(NATS_PORT) for _ in range(3)]
ORIGIN = ("127.0.0.0/8",)
DIFFERENT_KEYS = "runs used different fingerprint keys (give every run --fingerprint-key-file)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    specs = [
        # Two clusters publishing one Broker endpoint.
        ClusterSpec("op-collide-a", meshery=behind_load_balancer(A[0], ORIGIN, published_external=f"{A[0]}:4222")),
        ClusterSpec("op-collide-b", meshery=behind_load_balancer(A[1], ORIGIN, published_external=f"{A[0]}:4222")),
        ClusterSpec("op-own", meshery=behind_load_balancer(A[2], ORIGIN)),
        *(ClusterSpec(f"plain-{n}") for n in "abcd"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("mergefleet")) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def fleet_file(lab: LabFleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's fleet, plus a context reaching plain-b with plain-a's token (one credential, two servers; and
    two contexts for plain-b), a second context for plain-c, and op-own declared embedded (mode drift)."""
    where = tmp_path_factory.mktemp("fleetfile")
    kc = yaml.safe_load(lab.kubeconfig_path.read_text())
    kc["users"].append({"name": "shared-user", "user": {"token": lab.clusters["plain-a"].token}})
    kc["contexts"] += [
        {"name": "plain-b-shared", "context": {"cluster": "plain-b", "user": "shared-user"}},
        {
            "name": "plain-c-again",
            "context": dict(next(c for c in kc["contexts"] if c["name"] == "plain-c")["context"]),
        },
    ]
    (where / "kubeconfig.yaml").write_text(yaml.safe_dump(kc))
    doc = lab.fleet_document()
    doc["kubeconfig"] = ["kubeconfig.yaml"]
    doc["clusters"] += [{"context": "plain-b-shared"}, {"context": "plain-c-again"}]
    for entry in doc["clusters"]:
        if entry["context"] == "op-own":
            entry["meshsync_mode"] = "embedded"
    (where / "fleet.yaml").write_text(yaml.safe_dump(doc))
    return where / "fleet.yaml"


def _env() -> dict[str, str]:
    drop = ("KUBECONFIG", "JOB_COMPLETION_INDEX", "PREFLIGHT_SHARDS", "MESHSYNC_DEFAULT_DEPLOYMENT_MODE")
    return {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k not in drop}


def _outputs(stem: Path) -> list[str]:
    return ["-o", f"json={stem}.json", "-o", f"junit={stem}.xml", "-o", f"console={stem}.txt"]


def check(fleet_file: Path, stem: Path, *args: str) -> dict[str, Any]:
    argv = [*CLI, "check", "--fleet", str(fleet_file), "--checks", "fleet.*", *_outputs(stem), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=_env())
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads(Path(f"{stem}.json").read_text())
    return doc


def merge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "merge", *args], capture_output=True, text=True, timeout=120, env=_env())


def verdicts(doc: dict[str, Any]) -> dict[str, tuple[str, str, Any]]:
    return {r["check_id"]: (r["status"], r["message"], r["evidence"]) for r in doc["fleet"]["results"]}


def fingerprints(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["fleet"]["credential"]["fingerprint"] for c in doc["clusters"]}


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("keys")
    (where / "fleet.key").write_bytes(os.urandom(32).hex().encode() + b"\n")
    (where / "other.key").write_bytes(os.urandom(32).hex().encode() + b"\n")
    return where / "fleet.key", where / "other.key"


@pytest.fixture(scope="module")
def runs(fleet_file: Path, key_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One unsharded run and three shards, all with one key file, and the shards merged."""
    where = tmp_path_factory.mktemp("runs")
    key = ["--fingerprint-key-file", str(key_files[0])]
    whole = check(fleet_file, where / "whole", *key)
    shards = [check(fleet_file, where / f"shard-{k}", "--shard", f"{k}/3", *key) for k in range(3)]
    merged = merge(*(str(where / f"shard-{k}.json") for k in range(3)), *key, *_outputs(where / "merged"))
    assert merged.returncode == 1, merged.stderr  # the fleet's problems fail the merged report
    return {"dir": where, "whole": whole, "shards": shards, "merged": json.loads((where / "merged.json").read_text())}


def test_merged_shards_judge_the_fleet_as_the_unsharded_run(runs: dict[str, Any]) -> None:
    whole, merged = verdicts(runs["whole"]), verdicts(runs["merged"])
    assert set(whole) == FLEET_CHECKS and merged == whole
    assert all(len(s["clusters"]) < len(runs["whole"]["clusters"]) for s in runs["shards"])
    assert all({r["status"] for r in s["fleet"]["results"]} == {"skip"} for s in runs["shards"])

    shared, dup = whole["fleet.shared-credential"], whole["fleet.duplicate-cluster"]
    assert shared[0] == "fail" and shared[2]["shared"][0]["clusters"] == ["plain-a", "plain-b-shared"]
    assert dup[0] == "fail"
    assert sorted(d["contexts"] for d in dup[2]["duplicates"]) == [
        ["plain-b", "plain-b-shared"],
        ["plain-c", "plain-c-again"],
    ]
    collide = whole["fleet.broker-endpoint-collision"]
    assert collide[0] == "fail"
    assert collide[2]["collisions"] == [{"endpoint": f"{A[0]}:4222", "clusters": ["op-collide-a", "op-collide-b"]}]
    mode = whole["fleet.mode-consistency"]
    assert mode[0] == "warn" and mode[2]["drift"] == ["op-own: runs operator, declared embedded"]


def test_one_key_file_gives_the_same_fingerprints_in_every_run(runs: dict[str, Any]) -> None:
    whole = fingerprints(runs["whole"])
    from_shards = {n: fp for s in runs["shards"] for n, fp in fingerprints(s).items()}
    assert from_shards == whole
    assert whole["plain-a"] == whole["plain-b-shared"] != whole["plain-b"]
    ids = {c["fleet"]["credential"]["key_id"] for doc in (runs["whole"], *runs["shards"]) for c in doc["clusters"]}
    assert len(ids) == 1


def test_random_or_different_keys_make_shared_credential_skip(
    fleet_file: Path, key_files: tuple[Path, Path], runs: dict[str, Any], tmp_path: Path
) -> None:
    a = check(fleet_file, tmp_path / "a", "--shard", "0/2")
    check(fleet_file, tmp_path / "b", "--shard", "1/2")
    again = check(fleet_file, tmp_path / "a-again", "--shard", "0/2")
    assert set(fingerprints(a).values()).isdisjoint(fingerprints(again).values())  # a random key per run
    random_keys = merge(str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", "json")
    # Shard 1 of the keyed run again, with another key: a complete set whose keys differ.
    c = check(fleet_file, tmp_path / "c", "--shard", "1/3", "--fingerprint-key-file", str(key_files[1]))
    mixed = merge(
        str(runs["dir"] / "shard-0.json"), str(tmp_path / "c.json"), str(runs["dir"] / "shard-2.json"), "-o", "json"
    )
    for proc in (random_keys, mixed):
        fleet = verdicts(json.loads(proc.stdout))
        assert fleet["fleet.shared-credential"][:2] == ("skip", DIFFERENT_KEYS), proc.stdout
        assert fleet["fleet.duplicate-cluster"][0] == "fail"  # the other fleet checks still judge the merged set
    assert c["clusters"]

    wrong = merge(
        str(runs["dir"] / "shard-0.json"), str(tmp_path / "c.json"), "--fingerprint-key-file", str(key_files[0])
    )
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert str(tmp_path / "c.json") in wrong.stderr and "another key" in wrong.stderr


def test_no_token_and_no_plain_token_hash_in_any_output(lab: LabFleet, runs: dict[str, Any]) -> None:
    texts = {p.name: p.read_text() for p in runs["dir"].iterdir()}
    assert {"whole.json", "whole.xml", "whole.txt", "merged.json", "merged.xml", "merged.txt"} <= set(texts)
    tokens = [c.token for c in lab.clusters.values() if c.token]
    assert len(tokens) == len(lab.clusters)
    needles = list(lab.secrets())
    for token in tokens:
        for material in (token.encode(), b"token:" + token.encode()):
            for digest in (hashlib.sha256(material).hexdigest(), hashlib.sha1(material).hexdigest()):
                needles.append(digest[:12])
    for name, text in texts.items():
        for needle in needles:
            assert needle not in text, f"{name} holds a secret or a plain hash of one"


def test_bad_key_file_is_one_line_and_exit_2(fleet_file: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("tiny\n")
    for argv in (
        [*CLI, "check", "--fleet", str(fleet_file), "--fingerprint-key-file", str(short)],
        [*CLI, "merge", "x.json", "--fingerprint-key-file", str(tmp_path / "missing.key")],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_env())
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "--fingerprint-key-file" in proc.stderr


@pytest.mark.parametrize("present", [[0], [0, 2]], ids=["shard-0-only", "shard-1-missing"])
def test_an_incomplete_set_of_shards_says_which_are_missing(runs: dict[str, Any], present: list[int]) -> None:
    """A merge over part of a sharded fleet: no fleet verdict read as the fleet's (a pass could hide the
    shared credential in the missing shard); stderr and every report name the missing shards."""
    where = runs["dir"]
    missing = [f"{k}/3" for k in range(3) if k not in present]
    stem = where / f"partial-{'-'.join(map(str, present))}"
    proc = merge(*(str(where / f"shard-{k}.json") for k in present), *_outputs(stem))
    assert proc.returncode == 1, proc.stderr
    assert f"shard {', '.join(missing)} missing" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    fleet = verdicts(json.loads(Path(f"{stem}.json").read_text()))
    assert set(fleet) == FLEET_CHECKS
    for status, message, evidence in fleet.values():
        assert status == "error" and evidence["missing_shards"] == missing
        assert all(m in message for m in missing)
    console = Path(f"{stem}.txt").read_text()
    lacks = f"lacks shard{'s' if len(missing) > 1 else ''} {missing[0]}"
    assert "fleet checks  ? error" in console and lacks in " ".join(console.split())


def test_a_shards_own_fleet_section_says_skip_not_pass(runs: dict[str, Any]) -> None:
    console = (runs["dir"] / "shard-0.txt").read_text()
    assert "fleet checks  - skip" in console and "fleet checks  ✔ pass" not in console
    assert "not checked in a shard (shard 0/3)" in console
    lines = [line.strip() for line in console.splitlines()]
    assert "meshery-preflight merge SHARD-0.json SHARD-1.json SHARD-2.json -o console" in lines


def test_merge_help_lists_every_output_format() -> None:
    from preflight.reports.writer import FORMATS

    proc = subprocess.run([*CLI, "merge", "--help"], capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert all(fmt in text.split("--output FORMAT[=PATH]", 1)[1].split("--fail-on")[0] for fmt in FORMATS), text
