"""The long-lived cloud cache `serve` hands every run and probe (RunState(cloud_cache=...)): describes
answered from it across runs until they are --cloud-cache-ttl old, each fetched once however many ask."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from preflight.app import load_registry
from preflight.engine.interrupt import Guard
from preflight.engine.plan import Request
from preflight.engine.runstate import RunState
from preflight.engine.settings import Settings
from preflight.serve.logs import Log
from preflight.serve.scheduler import Scheduler
from preflight.serve.ttlcache import TtlOnce


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def describe_twice_per_run(cache: TtlOnce, fetched: Counter[str]) -> RunState:
    """What the cloud checks of two clusters of one account do in one run: read through the run's state."""
    state = RunState(cloud_cache=cache)
    for _cluster in range(2):
        for key in ("sg-1", "sg-2"):

            def fetch(k: str = key) -> str:
                fetched.update([k])
                state.cloud.count(f"aws:ec2.Describe-{k}")
                return k

            assert state.cloud.read(("aws", "acct", "eu-west-1", key), fetch) == key
    return state


def test_describes_are_cache_hits_across_runs_until_the_ttl() -> None:
    clock = Clock()
    cache = TtlOnce(ttl=600, clock=clock)
    fetched: Counter[str] = Counter()
    first = describe_twice_per_run(cache, fetched)
    assert fetched == {"sg-1": 1, "sg-2": 1} and sum(first.cloud.calls("aws").values()) == 2
    clock.now += 599  # the next runs, within the TTL: every describe is a hit, no request sent
    for _ in range(2):
        again = describe_twice_per_run(cache, fetched)
        assert again.cloud.calls("aws") == {}
    assert fetched == {"sg-1": 1, "sg-2": 1} and cache.computed == 2
    clock.now += 1  # ten minutes after the first describe: fetched afresh, once each
    describe_twice_per_run(cache, fetched)
    assert fetched == {"sg-1": 2, "sg-2": 2} and cache.computed == 4


def test_a_value_put_from_elsewhere_expires_too() -> None:
    clock = Clock()
    cache = TtlOnce(ttl=10, clock=clock)
    cache.put("k", "from a worker")
    assert cache.peek("k") == (True, "from a worker")
    clock.now += 10
    assert cache.peek("k") == (False, None)
    assert cache.get("k", lambda: "fresh") == "fresh"


def test_concurrent_runs_and_probes_fetch_each_describe_once() -> None:
    cache = TtlOnce(ttl=600)
    fetched: Counter[str] = Counter()
    start = threading.Barrier(8)

    def probe() -> None:
        start.wait()
        describe_twice_per_run(cache, fetched)

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fetched == {"sg-1": 1, "sg-2": 1} and cache.computed == 2


def test_every_scheduled_run_is_handed_the_one_long_lived_cache(tmp_path: Path) -> None:
    """The scheduler's single place that makes a run's state gives each run and probe the same cache."""
    cache = TtlOnce(ttl=600)
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
        cache=cache,
        cancel=Guard(lambda code: None).cancel,
        log=Log(),
        registry=load_registry(),
    )
    first, second = sched.run_state(), sched.run_state()
    assert first is not second and first.cloud.cache is cache and second.cloud.cache is cache
    sched.run_once()
    sched.run_once()
    assert sched.health.runs["completed"] == 2
