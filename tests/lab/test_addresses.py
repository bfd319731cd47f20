"""The loopback allocator: labs started side by side (threads, processes, a busy 4222) never collide."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client, config

from preflight_lab.addresses import POOL, LoopbackAllocator, allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.demo import demo_fleet
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from tests.lab.natswire import nats_handshake

_HOLD = """
import sys, ipaddress
from pathlib import Path
from urllib.parse import urlsplit
from preflight_lab.addresses import LoopbackAllocator
a = LoopbackAllocator(blocks=iter([ipaddress.IPv4Network(sys.argv[1])]), lock_dir=Path(sys.argv[2]))
print(a.allocate(), flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def occupied(address: str, port: int) -> Iterator[socket.socket]:
    """A listener on ``address:port``; an address another process already holds is just as busy."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
        sock.listen(1)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            sock.close()
            raise
    try:
        yield sock
    finally:
        sock.close()


def test_block_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    first, second = ipaddress.IPv4Network("127.127.250.0/24"), ipaddress.IPv4Network("127.127.251.0/24")
    cmd = [sys.executable, "-c", _HOLD, str(first), str(tmp_path)]
    holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "127.127.250.1"
        mine = LoopbackAllocator(blocks=iter([first, second]), lock_dir=tmp_path)
        assert mine.allocate() == "127.127.251.1" and mine.blocks == [second]
        mine.close()
    finally:
        holder.kill()
        holder.wait()
    # Its lock died with it: the block is free again.
    after = LoopbackAllocator(blocks=iter([first]), lock_dir=tmp_path)
    assert after.allocate() == "127.127.250.1"
    after.close()


def test_an_occupied_address_is_skipped_for_that_port_only(tmp_path: Path) -> None:
    alloc = LoopbackAllocator(blocks=iter([ipaddress.IPv4Network("127.127.252.0/24")]), lock_dir=tmp_path)
    with occupied("127.127.252.1", NATS_PORT), occupied("127.127.252.2", NATS_PORT):
        assert alloc.allocate(NATS_PORT) == "127.127.252.3"
    assert alloc.allocate() == "127.127.252.4"  # never handed out twice, even once free again
    alloc.close()


def test_a_block_runs_out_into_the_next(tmp_path: Path) -> None:
    blocks = [ipaddress.IPv4Network("127.127.253.0/24"), ipaddress.IPv4Network("127.127.254.0/24")]
    alloc = LoopbackAllocator(blocks=iter(blocks), lock_dir=tmp_path)
    got = alloc.many(255)
    assert len(set(got)) == 255 and got[253:] == ["127.127.253.254", "127.127.254.1"]
    assert not any(a.endswith((".0", ".255")) for a in got)
    alloc.close()
    with pytest.raises(OSError, match="held by another process"):
        LoopbackAllocator(blocks=iter(()), lock_dir=tmp_path).allocate()


def test_a_port_taken_on_every_address_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as wildcard:
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen(1)
        alloc = LoopbackAllocator(lock_dir=tmp_path)
        with pytest.raises(OSError, match=r"no free loopback address for port \d+.*0\.0\.0\.0"):
            alloc.allocate(wildcard.getsockname()[1])
        alloc.close()


def test_threads_get_distinct_addresses_from_the_pool() -> None:
    got: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [allocate() for _ in range(50)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 200 and all(ipaddress.ip_address(a) in POOL for a in got)


def _specs() -> list[ClusterSpec]:
    """The same names, scenarios and Brokers (on 4222) each time; no addresses: the lab allocates them."""
    return [
        ClusterSpec("same-healthy", meshery=MesherySetup(service_type="LoadBalancer")),
        ClusterSpec("same-silent", meshery=MesherySetup(broker="silent")),
        ClusterSpec("same-absent", meshery=MesherySetup(broker="absent")),
        ClusterSpec("same-refused", "refused"),
    ]


def _works(lab: LabFleet) -> None:
    healthy = lab.clusters["same-healthy"]
    api = config.new_client_from_config(config_file=str(lab.kubeconfig_path), context=healthy.name)
    assert client.VersionApi(api).get_code().major == "1"
    assert healthy.broker_address and healthy.broker_port == NATS_PORT
    assert nats_handshake(healthy.broker_address, NATS_PORT, healthy.broker_token) == b"PONG"
    socket.create_connection((lab.clusters["same-silent"].broker_address, NATS_PORT), timeout=2).close()


def test_two_fleets_with_the_same_specs_at_once(tmp_path: Path) -> None:
    specs = _specs()
    labs = [LabFleet(specs, tmp_path / name) for name in ("one", "two")]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def start(lab: LabFleet) -> None:
        barrier.wait()
        try:
            lab.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(lab,)) for lab in labs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        for lab in labs:
            _works(lab)
        one, two = ({(c.address, c.port, c.broker_address) for c in lab.clusters.values()} for lab in labs)
        assert not one & two
    finally:
        for lab in labs:
            lab.stop()


def _serve(directory: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "preflight_lab", "serve", "--dir", str(directory), "--clusters", "3"]
    cmd += ["--scenario-mix", "healthy=2,refused=1", "--with-brokers"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _ready(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.strip())
        if lines[-1] == "READY":
            return dict(line.split("=", 1) for line in lines if "=" in line)
    raise AssertionError(f"lab exited before READY: {lines} {proc.stderr.read() if proc.stderr else ''}")


def test_two_lab_processes_with_the_same_fleet_at_once(tmp_path: Path) -> None:
    procs = [_serve(tmp_path / name) for name in ("one", "two")]
    watchdog = threading.Timer(60, lambda: [p.kill() for p in procs])
    watchdog.start()
    try:
        brokers: list[set[str]] = []
        for proc in procs:
            paths = _ready(proc)
            kube = yaml.safe_load(Path(paths["KUBECONFIG"]).read_text())
            c = config.new_client_from_config(config_file=paths["KUBECONFIG"], context="lab-001-healthy")
            assert client.VersionApi(c).get_code().major == "1"
            found = set()
            for name in ("lab-001-healthy", "lab-003-healthy"):
                c = config.new_client_from_config(config_file=paths["KUBECONFIG"], context=name)
                cr = client.CustomObjectsApi(c).get_namespaced_custom_object(
                    "meshery.io", "v1alpha2", "meshery", "brokers", "meshery-broker"
                )
                host, port = cr["status"]["endpoint"]["external"].rsplit(":", 1)
                assert port == "4222" and ipaddress.ip_address(host) in POOL
                socket.create_connection((host, NATS_PORT), timeout=2).close()
                found.add(host)
            brokers.append(found | {urlsplit(c["cluster"]["server"]).hostname or "" for c in kube["clusters"]})
        assert not brokers[0] & brokers[1]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_demo_fleet_starts_around_busy_4222s(tmp_path: Path) -> None:
    """127.70.0.1:4222 (the demo's old fixed Broker) and the allocator's very next address are taken."""
    alloc = LoopbackAllocator()
    first = ipaddress.ip_address(alloc.allocate())
    busy = str(first + 1)
    with occupied("127.70.0.1", NATS_PORT), occupied(busy, NATS_PORT):
        specs = demo_fleet(lambda: alloc.allocate(NATS_PORT))
        with LabFleet(specs, tmp_path, allocator=alloc) as lab:
            brokers = {c.name: c.broker_address for c in lab.clusters.values() if c.broker is not None}
            assert len(brokers) == 6 and busy not in brokers.values() and "127.70.0.1" not in brokers.values()
            healthy = lab.clusters["ops-broker-healthy"]
            assert healthy.broker_address
            assert nats_handshake(healthy.broker_address, NATS_PORT, healthy.broker_token) == b"PONG"
    alloc.close()
