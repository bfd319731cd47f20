"""`meshery-preflight rbac` and Meshery's managed Broker port-forward: create pods/portforward (a Role in the
Meshery namespace) is printed exactly when the forward path is on, says why, and is what broker.port-forward needs."""

from __future__ import annotations

from typing import Any

import yaml
from click.testing import CliRunner

from preflight.cli import main
from preflight.engine.model import Status
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from tests.e2e.test_rbac_command import lab_rules
from tests.runlab import result, run


def printed(*args: str, env: dict[str, str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    out = CliRunner().invoke(main, ["rbac", "--mode", "operator", *args], env=env)
    assert out.exit_code == 0, out.output
    return out.output, [d for d in yaml.safe_load_all(out.output) if d]


def forward_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    role = next(d for d in docs if d["kind"] == "Role")
    return [r for r in role["rules"] if "pods/portforward" in r["resources"]]


def test_the_forward_on_adds_create_pods_portforward_to_the_namespace_role_and_says_why() -> None:
    text, docs = printed(env={"MESHERY_MANAGED_BROKER_PORTFORWARD": "True"})
    assert forward_rules(docs) == [{"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}]
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert not any("pods/portforward" in r["resources"] for r in cluster_role["rules"])
    assert "# create pods/portforward (Role in meshery): broker.port-forward" in text
    assert printed("--broker-port-forward", env={"MESHERY_MANAGED_BROKER_PORTFORWARD": "false"})[1] == docs


def test_the_forward_off_leaves_it_out() -> None:
    for args, env in (((), {"MESHERY_MANAGED_BROKER_PORTFORWARD": "FALSE"}), (("--no-broker-port-forward",), {})):
        text, docs = printed(*args, env=env)
        assert forward_rules(docs) == [] and "pods/portforward" not in text


def _audit(tmp_path: Any, docs: list[dict[str, Any]], drop_forward: bool = False) -> Any:
    rules = tuple(r for r in lab_rules(docs) if not (drop_forward and "pods/portforward" in r.resources))
    spec = ClusterSpec(name="audited", rules=rules, meshery=MesherySetup(broker_address=allocate(NATS_PORT)))
    with LabFleet([spec], tmp_path) as lab:
        report = run(fleet=str(lab.fleet_path), connect_timeout=2.0, broker_port_forward=True, include=["broker.*"])
    return result(report, "audited", "broker.port-forward")


def test_the_printed_rules_are_what_the_port_forward_check_needs(tmp_path: Any) -> None:
    _text, docs = printed("--broker-port-forward")
    assert _audit(tmp_path / "full", docs).status is Status.PASS
    without = _audit(tmp_path / "without", docs, drop_forward=True)
    assert without.status is Status.FAIL and "may not create pods/portforward" in without.message
