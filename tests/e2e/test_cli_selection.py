"""Selecting one Broker check on the command line runs what it needs first, against a real nats-server.

`--checks broker.nats` and `--checks broker.auth` read facts (the address that answered, the server's
INFO) that earlier checks establish: selection pulls those checks in, so the verdict is NATS's, never a
KeyError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from preflight_lab.addresses import allocate
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import behind_load_balancer

CLI = [sys.executable, "-m", "preflight.cli"]
ORIGIN = "127.0.0.0/8"
# What broker.nats needs the data of; broker.service and broker.endpoint are only reported before it.
BROKER_PATH = ["kube-api.auth", "broker.dns", "broker.tcp"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    specs = [
        ClusterSpec(name="sel-healthy", meshery=behind_load_balancer(allocate(4222), source_ranges=(ORIGIN,))),
        ClusterSpec(
            name="sel-stale-token",
            meshery=behind_load_balancer(
                allocate(4222), source_ranges=(ORIGIN,), secret_token="stale-token-0123456789abcdef"
            ),
        ),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("selection-lab")) as fleet:
        yield fleet


def check(
    lab: LabFleet, selected: str, out: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, dict]]]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    proc = subprocess.run(
        [
            *CLI,
            "check",
            "--fleet",
            str(lab.fleet_path),
            "--origin",
            ORIGIN,
            "--connect-timeout",
            "2",
            "--checks",
            selected,
            "-o",
            f"json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "NO_COLOR": "1"},
    )
    doc = json.loads(out.read_text())
    by = {c["name"]: {r["check_id"]: r for r in c["results"]} for c in doc["clusters"]}
    return proc, by


def test_checks_broker_nats_runs_the_path_before_it_and_gives_a_verdict(lab: LabFleet, tmp_path: Path) -> None:
    proc, by = check(lab, "broker.nats", tmp_path / "nats.json")
    assert "KeyError" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    for cluster in ("sel-healthy", "sel-stale-token"):
        results = by[cluster]
        assert results["broker.nats"]["status"] == "pass", results["broker.nats"]["message"]
        assert results["broker.nats"]["message"].startswith("NATS ")
        assert all(results[cid]["status"] == "pass" for cid in BROKER_PATH), results
        assert "broker.auth" not in results  # a dependant is not pulled in
        assert "broker.endpoint" not in results  # nor a check it is only reported after


def test_checks_broker_auth_gives_the_brokers_answer(lab: LabFleet, tmp_path: Path) -> None:
    proc, by = check(lab, "broker.auth", tmp_path / "auth.json")
    assert "KeyError" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    healthy, stale = by["sel-healthy"], by["sel-stale-token"]
    assert healthy["broker.nats"]["status"] == "pass"
    assert healthy["broker.auth"]["status"] == "pass", healthy["broker.auth"]["message"]
    assert "PONG" in healthy["broker.auth"]["message"]
    assert stale["broker.auth"]["status"] == "fail", stale["broker.auth"]["message"]
    assert "rejected the token" in stale["broker.auth"]["message"]
    assert proc.returncode == 1  # a failed check, not a crash or a usage error
