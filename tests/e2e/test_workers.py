"""Worker processes (`--workers`): the same verdicts as one process, and signals end them the same way:
reports written with every cluster, plugins killed, no worker left behind, even when the parent is killed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from preflight.engine import runner, workers
from preflight.reports import json_report
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.processes import children, processes, running, wait_for

CLI = [sys.executable, "-m", "preflight.cli"]
QUICK = [f"quick-{i}" for i in range(5)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [
        *(ClusterSpec(name=name) for name in QUICK),
        ClusterSpec(name="refused", scenario="refused"),
        ClusterSpec(name="exec-ok", scenario="exec-ok"),
        ClusterSpec(name="stuck", scenario="hung-exec"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("workers-lab")) as fleet:
        yield fleet


def _start(lab: LabFleet, *args: str, session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "check", "--kubeconfig", str(lab.kubeconfig_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=session,
    )


def _statuses(doc: dict) -> dict[tuple[str, str], str]:
    pairs = {(c["name"], r["check_id"]): r["status"] for c in doc["clusters"] for r in c["results"]}
    pairs.update({("fleet", r["check_id"]): r["status"] for r in doc["fleet"]["results"]})
    return pairs


def test_workers_give_the_verdicts_of_one_process(lab: LabFleet, tmp_path: Path) -> None:
    common = ["--exec-timeout", "3", "--connect-timeout", "2"]
    one = subprocess.run(
        [
            *CLI,
            "check",
            "--kubeconfig",
            str(lab.kubeconfig_path),
            *common,
            "--workers",
            "1",
            "-o",
            f"json={tmp_path}/1.json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 1, one.stderr
    proc = _start(lab, *common, "--workers", "3", "-o", f"json={tmp_path}/3.json")
    # The hung plugin keeps the run going for its 3 s deadline: long enough to see the workers it forked.
    script = str(lab.clusters["stuck"].exec_script)
    seen: set[int] = set()

    def plugin_started() -> bool:
        seen.update(children(proc.pid))
        return bool(running(script))

    wait_for(plugin_started, "the hung plugin to start")
    plugin_parent = processes()[running(script)[0]][0]
    # Watched until the end: the hung cluster's worker can be forked first and start its plugin before the other
    # workers exist (the deal order decides), and under load the quick shares are done within a second.
    outcome: list[tuple[str, str]] = []
    reader = threading.Thread(target=lambda: outcome.append(proc.communicate(timeout=300)))
    reader.start()
    while reader.is_alive():
        seen.update(children(proc.pid))
        reader.join(0.02)
    err = outcome[0][1]
    assert proc.returncode == 1, err
    assert len(seen) == 3, seen  # three workers, one share each
    assert plugin_parent in seen  # the plugin ran in a worker, not in the parent
    text = (tmp_path / "3.json").read_text()
    planted = [s for c in lab.clusters.values() for s in c.planted if len(s.strip()) >= 8]
    assert planted and not [s for s in planted if s.strip() in text], "a worker's result carries a secret"
    single, split = json.loads((tmp_path / "1.json").read_text()), json.loads(text)
    jsonschema.validate(split, json_report.load_schema())
    assert [c["name"] for c in split["clusters"]] == [c["name"] for c in single["clusters"]]
    assert _statuses(split) == _statuses(single)
    assert split["aborted"] is None and split["summary"] == single["summary"]
    # Two clusters share a credential in no lab; the fleet checks saw every cluster's record all the same.
    assert {r["check_id"] for r in split["fleet"]["results"]} == {r["check_id"] for r in single["fleet"]["results"]}


def _quick_ones_done(lab: LabFleet) -> bool:
    """Every quick cluster's API answered its last kube-api request (the latency samples come last)."""
    return all(
        sum(1 for r in lab.clusters[n].server.requests() if r.path == "/version") >= 6  # type: ignore[union-attr]
        for n in QUICK
    )


def _run_until_stuck(lab: LabFleet, tmp_path: Path, session: bool = False) -> tuple[subprocess.Popen[str], str]:
    for name in QUICK:
        lab.clusters[name].server.clear_requests()  # type: ignore[union-attr]
    proc = _start(
        lab,
        "--exec-timeout",
        "60",
        "--checks",
        "kube*",
        "--workers",
        "2",
        "-o",
        f"json={tmp_path / 'r.json'}",
        session=session,
    )
    script = str(lab.clusters["stuck"].exec_script)
    wait_for(lambda: bool(running(script)), "the hung plugin to start")
    wait_for(lambda: _quick_ones_done(lab), "the quick clusters to finish")
    return proc, script


@pytest.mark.parametrize("how", ["SIGTERM to the parent", "SIGINT to the process group"])
def test_a_signal_ends_every_worker_with_every_report_written(lab: LabFleet, tmp_path: Path, how: str) -> None:
    proc, script = _run_until_stuck(lab, tmp_path, session=how.endswith("group"))
    forked = children(proc.pid)
    assert forked  # at least the stuck cluster's worker is still running
    if how.endswith("group"):
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        proc.send_signal(signal.SIGTERM)  # what Kubernetes and CI do
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if how.endswith("group") else 143), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    doc = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(doc, json_report.load_schema())
    # The stuck cluster never finishes; on a loaded machine `refused` or `exec-ok` may not have either.
    unfinished = re.match(r"interrupted: ([12]) of 8 clusters did not finish", doc["aborted"])
    assert unfinished, doc["aborted"]
    by_name = {c["name"]: c for c in doc["clusters"]}
    assert set(by_name) == {*QUICK, "refused", "exec-ok", "stuck"}
    late = {n for n, c in by_name.items() if any(r["message"].startswith("not finished") for r in c["results"])}
    assert "stuck" in late and late <= {"stuck", "refused", "exec-ok"} and len(late) == int(unfinished[1]), late
    for name in QUICK:
        decided = [r["status"] for r in by_name[name]["results"]]
        assert "error" not in decided and decided.count("pass") >= len(decided) - 1, by_name[name]["results"]
    stuck = [r for r in by_name["stuck"]["results"] if r["message"].startswith("not finished: interrupted")]
    assert stuck and all(r["status"] == "error" for r in stuck)
    assert not running(script), "the hung plugin outlived the run"
    assert not [p for p in forked if p in processes()], "a worker outlived the run"


def test_workers_of_a_killed_parent_kill_their_plugins_and_exit(lab: LabFleet, tmp_path: Path) -> None:
    proc, script = _run_until_stuck(lab, tmp_path)
    forked = children(proc.pid)
    assert forked
    proc.kill()  # no handler runs in the parent: the workers learn it from the kernel (parent-death signal)
    proc.communicate(timeout=30)
    wait_for(lambda: not running(script), "the orphaned worker to kill its plugin", timeout=30)
    wait_for(lambda: not [p for p in forked if p in processes()], "the orphaned workers to exit", timeout=30)


@pytest.mark.parametrize("value", ["0", "-1", "x", "65", "1.5"])
def test_a_bad_workers_value_is_one_line_and_exit_2(value: str) -> None:
    done = subprocess.run([*CLI, "check", "--workers", value], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--workers" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_worker_count() -> None:
    assert workers.count_for(3, 100) == 3 and workers.count_for(8, 2) == 2  # never more workers than clusters
    assert workers.count_for(0, workers.CLUSTERS_PER_WORKER - 1) == 1  # a small fleet stays in one process
    assert workers.count_for(0, 10_000) == workers.cpus()
    assert workers.share_size(32, 3) == 11 and workers.share_size(1, 4) == 1


def test_a_killed_worker_costs_its_clusters_not_the_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The OOM killer takes a worker: its clusters are `error` (not checked, and why), the rest stand."""
    names = [f"c-{i}" for i in range(6)]
    # The slow cluster's worker is the one killed; ``lost`` shares it, ``kept`` is the other worker's share.
    with_slow, other = sorted(runner.deal(names, 2), key=lambda share: 0 not in share)
    slow, kept, lost = "c-0", [names[i] for i in other], [names[i] for i in with_slow if i != 0]
    specs = [ClusterSpec(name=name, latency_ms=1500.0 if name == slow else None) for name in names]
    with LabFleet(specs, tmp_path_factory.mktemp("killed-worker")) as lab:
        out = tmp_path_factory.mktemp("killed-worker-out") / "r.json"
        proc = _start(lab, "--checks", "kube*", "--connect-timeout", "5", "--workers", "2", "-o", f"json={out}")
        server = lab.clusters[slow].server
        assert server is not None
        # Not "two workers at once": under load the quick share's worker can be done before the other is forked.
        wait_for(lambda: len(server.requests()) >= 2, "the slow cluster's first requests")
        wait_for(lambda: len(children(proc.pid)) == 1, "the quick share's worker to finish")
        (victim,) = children(proc.pid)
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json_report.load_schema())
    assert doc["aborted"] is None
    by_name = {c["name"]: c["results"] for c in doc["clusters"]}
    for name in [slow, *lost]:
        assert all(r["status"] == "error" for r in by_name[name])
        assert all(
            "worker process checking this cluster ended without a result (killed by SIGKILL)" in r["message"]
            for r in by_name[name]
        ), by_name[name][0]["message"]
    for name in kept:
        assert "error" not in {r["status"] for r in by_name[name]}


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [("max 100000\n", None), ("100000 100000\n", 1), ("150000 100000\n", 2), ("50000 100000\n", 1), ("junk", None)],
)
def test_a_containers_cpu_quota_bounds_the_workers(tmp_path: Path, cpu_max: str, limit: int | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    usable = len(os.sched_getaffinity(0))
    assert workers.cpus(tmp_path) == (usable if limit is None else min(usable, limit))
    assert workers.cpus(tmp_path / "absent") == usable


@pytest.mark.parametrize(("quota", "period", "limit"), [("-1", "100000", None), ("200000", "100000", 2), ("1", "3", 1)])
def test_a_cgroup_v1_cpu_quota_bounds_the_workers(tmp_path: Path, quota: str, period: str, limit: int | None) -> None:
    v1 = tmp_path / "cpu,cpuacct"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text(quota + "\n")
    (v1 / "cpu.cfs_period_us").write_text(period + "\n")
    usable = len(os.sched_getaffinity(0))
    assert workers.cpus(tmp_path) == (usable if limit is None else min(usable, limit))


def test_clusters_are_dealt_evenly_and_a_periodic_pattern_is_spread() -> None:
    """Every other cluster slow (a kubeconfig alternating two regions): round-robin in order would give one
    worker all of them; the hash order deals about half to each, and every cluster exactly once."""
    names = [f"cluster-{i:04d}" for i in range(200)]
    shares = runner.deal(names, 2)
    assert sorted(i for share in shares for i in share) == list(range(200))
    assert [len(s) for s in shares] == [100, 100]
    slow_per_worker = [sum(1 for i in share if i % 2) for share in shares]
    assert min(slow_per_worker) >= 35, slow_per_worker
    assert runner.deal(names, 2) == shares  # the same fleet is dealt the same way every run
