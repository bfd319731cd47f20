"""`--server-vantage docker` through the CLI against the lab, whose API servers listen on 127.x addresses: from a
Server in a Docker container those are its own loopback, so kube-api.tcp fails with the cause and the fix, and
the checks that need it wait on it. The default (`host`) judges the same kubeconfig reachable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.checks import broker, vantage
from preflight.checks import meshery_state as ms
from preflight.engine.context import ClusterContext
from preflight.engine.settings import Settings
from preflight.engine.targets import ClusterTarget
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.e2e.test_cli import cli


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabFleet, Path]]:
    with LabFleet([ClusterSpec(name="kind-dev"), ClusterSpec(name="k3d-edge")], tmp_path_factory.mktemp("vl")) as fleet:
        # The same clusters named the way minikube's kubeconfig would: server https://localhost:<port>.
        doc = yaml.safe_load(fleet.kubeconfig_path.read_text())
        for c in doc["clusters"]:
            c["cluster"]["server"] = "https://localhost:" + c["cluster"]["server"].rsplit(":", 1)[1]
        local = fleet.directory / "localhost.yaml"
        local.write_text(yaml.safe_dump(doc))
        local.chmod(0o600)
        yield fleet, local


def _check(kubeconfig: Path, out: Path, *extra: str) -> tuple[int, dict[str, dict[str, dict[str, Any]]]]:
    proc = cli(
        "check",
        "--kubeconfig",
        str(kubeconfig),
        "--checks",
        "kubeconfig.context",
        "--checks",
        "kube-api.*",
        "--connect-timeout",
        "1",
        "-o",
        f"json={out}",
        *extra,
    )
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(out.read_text())
    return proc.returncode, {c["name"]: {r["check_id"]: r for r in c["results"]} for c in doc["clusters"]}


def test_a_loopback_api_is_the_containers_own_with_the_fix(lab: tuple[LabFleet, Path], tmp_path: Path) -> None:
    fleet, _ = lab
    code, clusters = _check(fleet.kubeconfig_path, tmp_path / "r.json", "--server-vantage", "docker")
    assert code == 1
    kind = clusters["kind-dev"]
    tcp = kind["kube-api.tcp"]
    port = fleet.clusters["kind-dev"].port
    assert tcp["status"] == "fail" and tcp["meshery_code"] == "connection_inactive"
    assert "runs in a Docker container (--server-vantage docker)" in tcp["message"]
    assert fleet.clusters["kind-dev"].address in tcp["message"] and "the container itself" in tcp["message"]
    assert tcp["evidence"]["suggested_server"] == f"https://host.docker.internal:{port}"
    # The certificate's names, read from this machine: tls-server-name must be one of them.
    assert tcp["evidence"]["tls_server_name"] == "kubernetes"
    assert "kubernetes" in tcp["evidence"]["certificate_names"]
    fix = tcp["remediation"]
    assert f"server: https://host.docker.internal:{port} and tls-server-name: kubernetes" in fix
    assert "kind get kubeconfig --internal --name dev" in fix and "docker network connect kind" in fix
    assert "k3d-edge-server-0:6443" in clusters["k3d-edge"]["kube-api.tcp"]["remediation"]
    for dependant in ("kube-api.tls", "kube-api.auth", "kube-api.version", "kube-api.latency"):
        assert kind[dependant]["status"] == "skip", dependant
        assert kind[dependant]["evidence"]["blocked_by"] == "kube-api.tcp"
        assert "meshery_code" not in kind[dependant]
    assert kind["kube-api.dns"]["status"] == "pass"


def test_the_default_vantage_is_this_machine(lab: tuple[LabFleet, Path], tmp_path: Path) -> None:
    fleet, _ = lab
    code, clusters = _check(fleet.kubeconfig_path, tmp_path / "r.json")
    assert code == 0
    assert {c["kube-api.tcp"]["status"] for c in clusters.values()} == {"pass"}
    assert clusters["kind-dev"]["kube-api.auth"]["status"] == "pass"
    code, explicit = _check(fleet.kubeconfig_path, tmp_path / "h.json", "--server-vantage", "host")
    assert code == 0 and explicit["kind-dev"]["kube-api.tcp"]["status"] == "pass"


def test_localhost_is_loopback_too_and_the_fix_says_which_name_to_find(
    lab: tuple[LabFleet, Path], tmp_path: Path
) -> None:
    _, local = lab
    _code, clusters = _check(local, tmp_path / "r.json", "--server-vantage", "docker")
    tcp = clusters["kind-dev"]["kube-api.tcp"]
    assert tcp["status"] == "fail" and "https://localhost:" in tcp["message"]
    if tcp["evidence"]["certificate_names"]:
        # Something of this machine's answers on 127.0.0.1 at that port: its names are suggested.
        assert tcp["evidence"]["tls_server_name"] in tcp["evidence"]["certificate_names"]
    else:
        assert "tls-server-name: <a DNS name the API server's certificate covers>" in tcp["remediation"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--server-vantage", "vm"], "'vm' is not one of 'host', 'docker'"),
        (["--in-cluster", "--server-vantage", "docker"], "--server-vantage docker is a Server on a workstation"),
    ],
)
def test_bad_vantage_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    proc = cli("check", *args)
    assert proc.returncode == 2
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def _ctx(host: str, vantage_: str) -> ClusterContext:
    return ClusterContext(ClusterTarget(name="kind-dev", host=host, port=6443), Settings(server_vantage=vantage_))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.8.9.10"])
def test_loopback_in_every_spelling(host: str) -> None:
    assert vantage.is_loopback(host)
    assert not vantage.is_loopback("10.0.0.1") and not vantage.is_loopback("localhost.example")


def test_broker_loopback_endpoints_are_judged_from_the_container() -> None:
    published = "localhost:31222"
    # On this machine, a loopback Broker endpoint of a loopback cluster is reachable ...
    host_side = _ctx("127.0.0.1", "host")
    assert ms.local_cluster(host_side)
    assert broker._published_problem(host_side, ms.BrokerState(), published) is None
    # ... but from the Server's container it is the container itself: not probed, and a problem.
    docker_side = _ctx("127.0.0.1", "docker")
    assert not ms.local_cluster(docker_side)
    problem = broker._published_problem(docker_side, ms.BrokerState(), published)
    assert problem == (
        "the published endpoint localhost:31222 is loopback: it means the Server's own container "
        "(--server-vantage docker), not this machine"
    )
    answered = broker._probe_candidate(docker_side, {"kind": "lb-ip", "endpoint": published})
    assert (
        answered["answers"]
        == "not probed (loopback: the Server's own container (--server-vantage docker), not this machine)"
    )
