"""Two things broken at once: a check reported *after* a failing one still gives its own verdict.

Against the lab's API server: the classic Operator publishes ``localhost:<nodePort>`` while its Service's load
balancer is pending. ``broker.service`` fails (pending) and ``broker.endpoint`` must still say where the Server
is being sent, as a separate problem, instead of being skipped.
"""

from __future__ import annotations

import pytest

from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup
from tests.runlab import result, run

SPECS = [
    ClusterSpec(
        name="classic-lb-pending",
        meshery=MesherySetup(generation="classic", service_type="LoadBalancer", published_external="localhost:31222"),
    ),
    ClusterSpec(name="embedded-plain"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("independent")) as lab:
        return run(fleet=str(lab.fleet_path), origins=["127.0.0.0/8"], connect_timeout=1.0, include=["broker.*"])


def test_pending_load_balancer_does_not_hide_the_published_localhost(report) -> None:
    service = result(report, "classic-lb-pending", "broker.service")
    assert service.status.value == "fail" and "load balancer pending" in service.message
    endpoint = result(report, "classic-lb-pending", "broker.endpoint")
    # The API is on this machine's loopback (a kind-like cluster): localhost may work, with its caveat.
    assert endpoint.status.value == "warn", endpoint.message
    assert "publishes localhost:31222" in endpoint.message
    assert "a separate problem from broker.service (fail)" in endpoint.message
    assert endpoint.evidence["independent_of"] == ["broker.service"]


def test_root_cause_is_reported_first(report) -> None:
    ids = [r.check_id for r in next(c for c in report.clusters if c.name == "classic-lb-pending").results]
    assert ids.index("broker.service") < ids.index("broker.endpoint") < ids.index("broker.exposure")


def test_selection_pulls_in_data_dependencies_but_not_checks_reported_before(report) -> None:
    ids = {r.check_id for c in report.clusters for r in c.results}
    assert {"kube-api.auth", "kubeconfig.context"} <= ids  # needed for their data
    assert not any(i.startswith("meshery.") for i in ids)


def test_not_applicable_propagates_through_reported_after(report) -> None:
    # Embedded mode: broker.service does not apply, nor does anything reported after it.
    for check_id in ("broker.service", "broker.endpoint", "broker.exposure"):
        r = result(report, "embedded-plain", check_id)
        assert r.status.value == "skip" and "embedded mode" in r.message, (check_id, r.message)
