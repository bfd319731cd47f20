"""The parent's side of shared cloud reads (preflight/engine/sharedreads.py) as plain logic, a worker's side over
real pipes, and the run state's long-lived cache hook."""

from __future__ import annotations

import threading
from multiprocessing import Pipe
from typing import Any

from preflight.engine.context import ClusterContext
from preflight.engine.model import Check, Finding, Scope, Severity, passed
from preflight.engine.once import Once
from preflight.engine.runner import run_fleet
from preflight.engine.runstate import CloudReads, RunState
from preflight.engine.settings import Settings
from preflight.engine.sharedreads import Channel, ReadServer, WorkerCloudReads
from preflight.engine.targets import ClusterTarget

KEY = ("aws", "111122223333", "eu-west-1", "ec2.describe_subnets")


def test_the_first_asker_fetches_later_ones_wait_and_all_get_the_value() -> None:
    server = ReadServer(CloudReads())
    assert server.handle(0, (1, "claim", KEY)) == [(0, (1, ("fetch", None)))]
    assert server.handle(1, (7, "claim", KEY)) == []  # waits for worker 0
    assert server.handle(2, (3, "claim", KEY)) == []
    replies = server.handle(0, (None, "put", KEY, ["subnet-1"]))
    assert replies == [(1, (7, ("value", ["subnet-1"]))), (2, (3, ("value", ["subnet-1"])))]
    assert server.handle(2, (4, "claim", KEY)) == [(2, (4, ("value", ["subnet-1"])))]


def test_a_worker_that_dies_or_gives_up_hands_its_claim_to_the_next_waiter() -> None:
    server = ReadServer(CloudReads())
    server.handle(0, (1, "claim", KEY))
    server.handle(1, (2, "claim", KEY))
    server.handle(2, (3, "claim", KEY))
    assert server.lost(0) == [(1, (2, ("fetch", None)))]
    assert server.handle(1, (None, "abandon", KEY)) == [(2, (3, ("fetch", None)))]
    assert server.lost(1) == []  # worker 1 no longer fetches; worker 2 does


def test_counts_and_breakers_are_the_parents() -> None:
    reads = CloudReads()
    server = ReadServer(reads)
    server.handle(0, (None, "count", "azure:Microsoft.Network/networkSecurityGroups/read", 2))
    server.handle(1, (None, "trip", "azure:unreachable", "connection refused"))
    server.handle(2, (None, "trip", "azure:unreachable", "later reason"))
    assert server.handle(2, (5, "calls", "azure")) == [(2, (5, {"Microsoft.Network/networkSecurityGroups/read": 2}))]
    assert server.handle(1, (6, "tripped", "azure:unreachable")) == [(1, (6, "connection refused"))]


def test_a_worker_asks_over_pipes_and_fetches_once() -> None:
    """A worker's CloudReads against a parent loop on a thread, over the same pipes fan_out makes."""
    up_read, up_write = Pipe(duplex=False)
    down_read, down_write = Pipe(duplex=False)
    server = ReadServer(CloudReads())

    def parent() -> None:
        while True:
            kind, payload = up_read.recv()
            if kind == "stop":
                return
            for _to, message in server.handle(0, payload):
                down_write.send(message)

    loop = threading.Thread(target=parent, daemon=True)
    loop.start()
    channel = Channel(up_write, down_read)
    reads = WorkerCloudReads(channel, CloudReads())
    fetched: list[int] = []

    def fetch() -> list[str]:
        fetched.append(1)
        reads.count("aws:ec2.DescribeSubnets")
        return ["subnet-1"]

    assert reads.read(KEY, fetch) == ["subnet-1"] and reads.read(KEY, fetch) == ["subnet-1"]
    assert fetched == [1] and reads.calls("aws") == {"ec2.DescribeSubnets": 1}
    assert server.reads.cache.peek(KEY) == (True, ["subnet-1"])
    # Another worker (a fresh local copy) gets the parent's value without fetching.
    other = WorkerCloudReads(channel, CloudReads())
    assert other.read(KEY, lambda: ["never"]) == ["subnet-1"]
    channel.send("stop", None)
    loop.join(5)


def test_a_caller_supplied_cloud_cache_outlives_the_run_and_call_counts_do_not() -> None:
    fetches: list[str] = []

    def probe(ctx: ClusterContext) -> Finding:
        def fetch() -> str:
            fetches.append(ctx.name)
            ctx.state.cloud.count("aws:eks.DescribeCluster")
            return "ACTIVE"

        status = ctx.state.cloud.read(("aws", "eks.describe_cluster", "shared"), fetch)
        return passed(status, calls=ctx.state.cloud.calls("aws"))

    chk = Check("toy.cloud", "t", "toy", Severity.LOW, Scope.CLUSTER, probe, "fix", "toy-cloud")
    cache = Once()
    runs: list[Any] = []
    for _ in range(2):
        contexts = [ClusterContext(ClusterTarget(name=f"c{i}"), Settings(check_timeout=2.0)) for i in range(3)]
        runs.append(run_fleet(contexts, [chk], [], Settings(check_timeout=2.0), state=RunState(cloud_cache=cache)))
    assert len(fetches) == 1  # one describe for three clusters and two runs
    first, second = ([r.evidence["calls"] for c in run.clusters for r in c.results] for run in runs)
    assert max(c.get("eks.DescribeCluster", 0) for c in first) == 1
    assert all(c == {} for c in second)  # the second run sent nothing
