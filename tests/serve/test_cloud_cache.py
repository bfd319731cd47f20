"""The long-lived cloud cache `serve` hands every run and probe: describes answered from it across runs
until they are --cloud-cache-ttl old, the calls counted once, and the one handed to the real pipeline."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from preflight.app import load_registry
from preflight.cloud.cache import run_cache
from preflight.interrupt import Guard
from preflight.plan import Request
from preflight.serve.logs import Log
from preflight.serve.scheduler import Scheduler
from preflight.serve.ttlcache import TtlShared
from preflight.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def describe_twice_per_run(shared: dict[str, object], fetched: Counter[str]) -> None:
    """What a cloud check does: describe through the run cache, as two clusters of one account would."""
    for _cluster in range(2):
        for key in ("sg-1", "sg-2"):
            run_cache(shared, "aws").get(("acct", "eu-west-1", key), lambda k=key: fetched.update([k]) or k)  # type: ignore[misc]


def test_describes_are_cache_hits_across_runs_until_the_ttl() -> None:
    clock = Clock()
    shared = TtlShared(ttl=600, clock=clock)
    fetched: Counter[str] = Counter()
    describe_twice_per_run(shared, fetched)
    assert fetched == {"sg-1": 1, "sg-2": 1} and shared.api_calls() == 2
    clock.now += 599  # the next runs, within the TTL: every describe is a hit
    describe_twice_per_run(shared, fetched)
    describe_twice_per_run(shared, fetched)
    assert fetched == {"sg-1": 1, "sg-2": 1} and shared.api_calls() == 2
    clock.now += 1  # ten minutes after the first describe: fetched afresh, and counted
    describe_twice_per_run(shared, fetched)
    assert fetched == {"sg-1": 2, "sg-2": 2} and shared.api_calls() == 4


def test_concurrent_runs_and_probes_fetch_each_describe_once() -> None:
    shared = TtlShared(ttl=600)
    fetched: Counter[str] = Counter()
    start = threading.Barrier(8)

    def probe() -> None:
        start.wait()
        describe_twice_per_run(shared, fetched)

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fetched == {"sg-1": 1, "sg-2": 1} and shared.api_calls() == 2


def test_every_scheduled_run_is_handed_the_one_long_lived_cache(tmp_path: Path) -> None:
    """The scheduler's single place that makes a run's settings gives each run the same TtlShared, so
    what one run's cloud checks describe, the next run's find."""
    shared = TtlShared(ttl=600)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: abcdefgh}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    sched = Scheduler(
        Request([str(kubeconfig)]),
        Settings(connect_timeout=0.5),
        include=["kubeconfig.*"],
        exclude=[],
        interval=60,
        jitter=0,
        shared=shared,
        guard=Guard(lambda code: None),
        log=Log(),
        registry=load_registry(),
    )
    first, second = sched.settings(), sched.settings()
    assert first is not second and first.shared is shared and second.shared is shared
    sched.run_once()
    sched.run_once()
    assert sched.health.runs["completed"] == 2
    assert sched.prepared is not None and sched.prepared.plan.settings.shared is shared
    assert all(c.settings.shared is shared for c in sched.prepared.plan.contexts)
