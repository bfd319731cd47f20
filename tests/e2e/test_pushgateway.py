"""--pushgateway against Debian's prometheus-pushgateway on loopback: push, then scrape it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.promtools import fetch, promtool_check, pushgateway

CLI = [sys.executable, "-m", "preflight.cli"]
NAMES = ["eu-1", "eu-2", "eu-bad"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [
        ClusterSpec(name="eu-1", scenario="healthy"),
        ClusterSpec(name="eu-2", scenario="healthy"),
        ClusterSpec(name="eu-bad", scenario="expired-token"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("push-lab")) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with pushgateway() as url:
        yield url


def check(lab: LabFleet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    argv = ["check", "--kubeconfig", str(lab.kubeconfig_path), "--connect-timeout", "1", "--checks", "kubeconfig.*"]
    argv += ["--checks", "kube-api.auth"]
    return subprocess.run([*CLI, *argv, *args], capture_output=True, text=True, timeout=120, env=env)


def scraped(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = fetch(f"{url}/metrics")
    return [
        (s.name, s.labels, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("meshery_preflight_")
    ]


def test_shards_push_their_own_groups_and_scrape_back(lab: LabFleet, gateway: str, tmp_path: Path) -> None:
    for k in range(2):
        proc = check(
            lab,
            "--shard",
            f"{k}/2",
            "--cluster-set",
            "eu",
            "--pushgateway",
            gateway,
            "-o",
            f"prometheus={tmp_path / f'{k}.prom'}",
        )
        assert proc.returncode in (0, 1), proc.stderr
        assert promtool_check((tmp_path / f"{k}.prom").read_text()).returncode == 0
    series = scraped(gateway)
    status = [(labels, v) for name, labels, v in series if name == "meshery_preflight_check_status"]
    assert {labels["cluster"] for labels, _ in status} == set(NAMES)
    assert {labels["job"] for labels, _ in status} == {"meshery-preflight"}
    assert {labels["cluster_set"] for labels, _ in status} == {"eu"}
    assert {labels["shard"] for labels, _ in status} <= {"0-of-2", "1-of-2"}
    starts = [labels["shard"] for name, labels, _ in series if name == "meshery_preflight_run_start_timestamp_seconds"]
    assert sorted(starts) == ["0-of-2", "1-of-2"]  # one group per shard, neither overwrote the other
    healthy = {labels["cluster"]: v for name, labels, v in series if name == "meshery_preflight_cluster_healthy"}
    assert healthy == {"eu-1": 1.0, "eu-2": 1.0, "eu-bad": 0.0}


def test_a_push_replaces_its_group(lab: LabFleet, gateway: str) -> None:
    for _ in range(2):
        assert check(lab, "--context", "eu-1", "--cluster-set", "once", "--pushgateway", gateway).returncode == 0
    mine = [
        labels
        for name, labels, _ in scraped(gateway)
        if name == "meshery_preflight_run_duration_seconds" and labels["cluster_set"] == "once"
    ]
    assert len(mine) == 1 and mine[0]["shard"] == "all"


def test_an_unreachable_pushgateway_is_one_line_and_exit_2_after_the_reports(lab: LabFleet, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "r.json"
    proc = check(lab, "--context", "eu-1", "-o", f"json={out}", "--pushgateway", f"http://ops:s3cret@127.0.0.1:{port}")
    assert proc.returncode == 2
    assert f"--pushgateway http://127.0.0.1:{port}: push failed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "s3cret" not in proc.stderr + proc.stdout
    assert json.loads(out.read_text())["clusters"][0]["name"] == "eu-1"


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:9091", "http://:9091", "http://h:notaport"])
def test_a_bad_pushgateway_url_is_refused_before_the_run(lab: LabFleet, url: str) -> None:
    proc = check(lab, "--pushgateway", url)
    assert proc.returncode == 2 and proc.stderr.startswith("meshery-preflight: error: --pushgateway")
    assert len(proc.stderr.strip().splitlines()) == 1
