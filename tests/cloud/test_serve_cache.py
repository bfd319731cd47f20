"""`serve`'s long-lived cloud cache against moto: the second scheduled run describes nothing the first
one did (every describe a cache hit), and a run after --cloud-cache-ttl describes afresh."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import preflight.checks.aws  # noqa: F401  (registers the AWS checks)
from preflight.app import load_registry
from preflight.engine.interrupt import Guard
from preflight.engine.plan import Request
from preflight.engine.settings import Settings
from preflight.serve.logs import Log
from preflight.serve.scheduler import Scheduler
from preflight.serve.ttlcache import TtlOnce
from preflight_lab.addresses import allocate
from preflight_lab.aws import OFFICE, AwsLab, EksSetup, SgRule
from preflight_lab.broker import NATS_PORT
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet

NODE_OK = (SgRule((31222, 31222), cidr=OFFICE, description="meshery server"),)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "aws-home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp, AwsLab() as lab:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                mp.delenv(key)
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        for key, value in lab.env().items():
            mp.setenv(key, value)
        eks = {name: lab.add(EksSetup(name, node_sg_rules=NODE_OK)) for name in ("eks-a", "eks-b")}
        specs = [ClusterSpec(name=n, meshery=c.meshery_setup(allocate(NATS_PORT))) for n, c in eks.items()]
        with LabFleet(specs, tmp_path / "lab") as fleet, LabDNS(zones=("amazonaws.com",)) as dns:
            for host, address in fleet.dns_records().items():
                dns.add_a(host, address)
            doc: dict[str, Any] = fleet.fleet_document()
            doc["kubeconfig"] = [str(fleet.kubeconfig_path)]
            for entry in doc["clusters"]:
                entry["provider"] = "eks"
                entry["aws"] = eks[entry["context"]].aws_ids()
            path = tmp_path / "fleet.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            yield path, dns.address


def test_describes_are_cache_hits_across_scheduled_runs_until_the_ttl(world: tuple[Path, str]) -> None:
    path, dns = world
    clock = Clock()
    cache = TtlOnce(ttl=600, clock=clock)
    sched = Scheduler(
        Request(fleet=str(path), origins=[OFFICE]),
        Settings(connect_timeout=2.0, dns_server=dns),
        include=["kubeconfig.*", "kube-api.*", "broker.service", "aws.*"],
        exclude=[],
        interval=60,
        jitter=0,
        cache=cache,
        cancel=Guard(lambda code: None).cancel,
        log=Log(),
        registry=load_registry(),
    )
    first = sched.run_once()
    assert first is not None
    # aws.kubelet-path applies only when the port-forward failed at the kubelet: not in this fleet.
    aws = [
        r
        for c in first.clusters
        for r in c.results
        if r.check_id.startswith("aws.") and r.check_id != "aws.kubelet-path"
    ]
    assert aws and all(r.status.value in ("pass", "fail", "warn") for r in aws), [(r.check_id, r.message) for r in aws]
    calls = sched.health.cloud_api_calls
    assert calls >= 3  # the account, the cluster describes and the firewall describes
    clock.now += 599
    second = sched.run_once()
    assert second is not None and sched.health.cloud_api_calls == calls  # every describe answered from the cache
    statuses = [[r.status for c in rep.clusters for r in c.results] for rep in (first, second)]
    assert statuses[0] == statuses[1]
    clock.now += 1
    assert sched.run_once() is not None
    assert sched.health.cloud_api_calls == 2 * calls  # ten minutes on: described afresh, once each
