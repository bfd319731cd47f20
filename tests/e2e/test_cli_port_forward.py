"""The port-forward policy on the command line: --broker-port-forward/--no-broker-port-forward win over
MESHERY_MANAGED_BROKER_PORTFORWARD; a bad fleet-file value is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup

CLI = [sys.executable, "-m", "preflight.cli"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    spec = ClusterSpec(name="clusterip", meshery=MesherySetup(broker_address=allocate(NATS_PORT)))
    with LabFleet([spec], tmp_path_factory.mktemp("cli-pf")) as fleet:
        yield fleet


def check(lab: LabFleet, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, "check", "--fleet", str(lab.fleet_path), "--checks", "broker.*", "-o", "json", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def statuses(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    doc = json.loads(proc.stdout)
    return {r["check_id"]: r["status"] for r in doc["clusters"][0]["results"]}


@pytest.mark.parametrize(
    "args, env, forward",
    [
        ((), {"MESHERY_MANAGED_BROKER_PORTFORWARD": "true"}, True),
        ((), {"MESHERY_MANAGED_BROKER_PORTFORWARD": "False"}, False),
        (("--broker-port-forward",), {"MESHERY_MANAGED_BROKER_PORTFORWARD": "false"}, True),
        (("--no-broker-port-forward",), {"MESHERY_MANAGED_BROKER_PORTFORWARD": "true"}, False),
    ],
)
def test_the_flag_wins_over_the_environment(
    lab: LabFleet, args: tuple[str, ...], env: dict[str, str], forward: bool
) -> None:
    proc = check(lab, *args, env=env)
    got = statuses(proc)
    if forward:  # a ClusterIP-only Broker reached through the forward: nothing fails, exit 0
        assert proc.returncode == 0, proc.stderr
        assert got["broker.port-forward"] == "pass" and got["broker.service"] == "warn"
    else:
        assert proc.returncode == 1
        assert got["broker.port-forward"] == "skip" and got["broker.service"] == "fail"


def test_a_bad_fleet_value_is_one_line_and_exit_2(lab: LabFleet, tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(
        lab.fleet_path.read_text().replace(
            "meshsync_mode: operator", "meshsync_mode: operator\n  broker_port_forward: maybe"
        )
    )
    bad_fleet = bad.read_text().replace("kubeconfig:\n- ", f"kubeconfig:\n- {lab.directory}/")
    bad.write_text(bad_fleet)
    proc = subprocess.run([*CLI, "check", "--fleet", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "broker_port_forward: must be true or false, got 'maybe'" in proc.stderr
