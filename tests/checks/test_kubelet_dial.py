"""The node address and failure broker.port-forward reads from kube-apiserver's `error dialing backend` answer,
and the order that lets the cloud kubelet-path checks read it."""

from __future__ import annotations

import pytest

import preflight.checks  # noqa: F401  (registers every check)
from preflight.engine.model import Scope
from preflight.engine.probes.portforward import KUBELET, KubeletDial, classify, kubelet_dial
from preflight.engine.registry import REGISTRY


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("error dialing backend: dial tcp 10.0.1.23:10250: i/o timeout", KubeletDial("10.0.1.23", 10250, "timeout")),
        (
            "error dialing backend: dial tcp [fd00:10::7]:10250: connect: connection refused",
            KubeletDial("fd00:10::7", 10250, "refused"),
        ),
        (
            "error dialing backend: dial tcp 192.168.4.9:10250: connect: no route to host",
            KubeletDial("192.168.4.9", 10250, "no-route"),
        ),
        (
            "error dialing backend: dial tcp 10.2.3.4:10255: connect: network is down",
            KubeletDial("10.2.3.4", 10255, "other"),
        ),
        ("error dialing backend: remote error: tls: bad certificate", None),
        ('pods "meshery-nats-0" not found', None),
    ],
)
def test_the_dial_names_the_node_address_and_how_it_failed(message: str, expected: KubeletDial | None) -> None:
    assert kubelet_dial(message) == expected


def test_the_api_servers_status_body_is_classified_and_parsed() -> None:
    body = (
        '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error dialing backend: dial tcp '
        '10.0.1.23:10250: i/o timeout","code":500}'
    )
    exc = classify(500, body)
    assert exc.cause == KUBELET
    assert kubelet_dial(exc.detail) == KubeletDial("10.0.1.23", 10250, "timeout")
    assert KubeletDial("10.0.1.23", 10250, "timeout").as_evidence() == {
        "node_ip": "10.0.1.23",
        "kubelet_port": 10250,
        "kubelet_dial": "timeout",
    }


@pytest.mark.parametrize("check_id", ["aws.kubelet-path", "gcp.kubelet-path"])
def test_the_kubelet_path_checks_run_after_the_port_forward_that_sets_their_fact(check_id: str) -> None:
    order = [c.id for c in REGISTRY.ordered(REGISTRY.all(), Scope.CLUSTER)]
    assert order.index("broker.port-forward") < order.index(check_id)
