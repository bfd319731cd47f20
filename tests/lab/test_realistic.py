"""The lab's realistic mode (the fleet benchmark's lab), read by the real kubernetes client."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.realistic import AGGREGATED_DISCOVERY, BUILTIN_GROUPS


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    with LabFleet([ClusterSpec("real-1")], tmp_path_factory.mktemp("real"), realistic=True) as real:
        yield real


@pytest.fixture(scope="module")
def api(fleet: LabFleet) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(fleet.kubeconfig_path), context="real-1")


def _raw(api: client.ApiClient, path: str, accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept}
    api.update_params_for_auth(headers, [], ["BearerToken"])
    resp = api.rest_client.pool_manager.request("GET", api.configuration.host + path, headers=headers)
    return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.data


def test_discovery_lists_every_builtin_group_and_subresources(api: client.ApiClient) -> None:
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {g for g in BUILTIN_GROUPS if g} <= groups
    core = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"pods", "pods/log", "pods/exec", "nodes/status", "serviceaccounts/token"} <= core
    apps = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps["deployments"].short_names == ["deploy"] and apps["deployments"].storage_version_hash


def test_aggregated_discovery_when_asked(api: client.ApiClient) -> None:
    status, headers, body = _raw(api, "/apis", AGGREGATED_DISCOVERY)
    assert status == 200 and headers["content-type"] == AGGREGATED_DISCOVERY
    doc = json.loads(body)
    assert doc["kind"] == "APIGroupDiscoveryList"
    apps = next(i for i in doc["items"] if i["metadata"]["name"] == "apps")
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert {s["subresource"] for s in deployments["subresources"]} == {"scale", "status"}
    status, _, body = _raw(api, "/api", AGGREGATED_DISCOVERY)
    assert [i["metadata"]["name"] for i in json.loads(body)["items"]] == [""]


def test_nodes_are_as_heavy_as_real_ones_and_large_answers_come_chunked(api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    assert len(nodes) == 3
    for node in nodes:
        assert len(node.status.images) >= 30 and len(node.metadata.managed_fields) == 2
        internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        assert internal and all(ipaddress.ip_address(a).is_loopback for a in internal)
        assert not [a for a in node.status.addresses if a.type == "ExternalIP"]
    status, headers, body = _raw(api, "/api/v1/nodes")
    assert status == 200 and headers.get("transfer-encoding") == "chunked" and len(body) > 30_000
    assert "x-kubernetes-pf-flowschema-uid" in headers
    _, small, _ = _raw(api, "/version")
    assert "content-length" in small


def test_limited_lists_page_with_a_count_of_the_rest(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    every = core.list_pod_for_all_namespaces().items
    first = core.list_pod_for_all_namespaces(limit=1)
    assert len(every) > 10 and len(first.items) == 1
    assert first.metadata.remaining_item_count == len(every) - 1 and first.metadata._continue


def test_rules_review_lists_every_bound_rule(api: client.ApiClient, fleet: LabFleet) -> None:
    review = client.AuthorizationV1Api(api).create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace="meshery"))
    )
    rules = review.status.resource_rules
    assert len(rules) > 25
    assert any(r.verbs == ["*"] and r.resources == ["*"] for r in rules)
    assert any("pods/exec" in r.resources for r in rules)


def test_the_default_lab_stays_light(tmp_path: Path) -> None:
    with LabFleet([ClusterSpec("light-1")], tmp_path) as light:
        api = config.new_client_from_config(config_file=str(light.kubeconfig_path), context="light-1")
        nodes = client.CoreV1Api(api).list_node().items
        assert len(nodes) == 1 and not nodes[0].status.images
        assert len(client.CoreV1Api(api).get_api_resources().resources) < 20
