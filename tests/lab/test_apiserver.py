"""FakeKubeAPI against the real ``kubernetes`` client: if the client accepts it, so will the tool."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from preflight_lab.addresses import allocate
from preflight_lab.apiserver import FakeKubeAPI, is_review_request, version_info
from preflight_lab.certs import CertificateAuthority, CertKeyPair, create_ca, utcnow
from preflight_lab.kube_selectors import field_selector_matches, label_selector_matches
from preflight_lab.rbac import CLUSTER_ADMIN, RBAC, Identity, ResourceAttributes, Rule
from preflight_lab.store import ResourceType

HOST = allocate()
ADMIN = Identity("admin", ("ops",), uid="uid-admin")
VIEWER = Identity("viewer", ("viewers",))
NOBODY = Identity("nobody")
BROKER = ResourceType("meshery.io", "v1alpha1", "Broker", "brokers", short_names=("brk",))


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return create_ca("kubernetes")


@pytest.fixture(scope="module")
def server_cert(ca: CertificateAuthority) -> CertKeyPair:
    return ca.issue_server_cert("kube-apiserver", ip_addresses=[HOST], dns_names=["lab.local"])


def _rbac() -> RBAC:
    rbac = RBAC()
    rbac.grant_user("admin", CLUSTER_ADMIN)
    rbac.grant_user("viewer", [Rule(("get", "list"), ("", "apps"), ("pods", "configmaps", "deployments"), ("team-a",))])
    return rbac


@pytest.fixture
def api(server_cert: CertKeyPair, ca: CertificateAuthority) -> Iterator[FakeKubeAPI]:
    server = FakeKubeAPI(
        server_cert,
        host=HOST,
        client_ca_pem=ca.cert_pem,
        tokens={"tok-admin": ADMIN, "tok-viewer": VIEWER, "tok-nobody": NOBODY},
        rbac=_rbac(),
        resources=[BROKER],
    )
    server.store.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "labels": {"zone": "a"}}})
    server.store.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b", "labels": {"zone": "b"}}})
    server.store.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "team-a"},
            "data": {"k": "v"},
        }
    )
    server.store.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "meshery", "namespace": "meshery"},
        }
    )
    server.store.put(
        {
            "apiVersion": "meshery.io/v1alpha1",
            "kind": "Broker",
            "metadata": {"name": "meshery-broker", "namespace": "meshery"},
        }
    )
    with server:
        yield server


def kube(
    api: FakeKubeAPI,
    tmp_path: Path,
    ca: CertificateAuthority,
    *,
    token: str | None = None,
    cert: CertKeyPair | None = None,
) -> client.ApiClient:
    """A client built the way the tool builds one: from a kubeconfig file."""
    user: dict[str, Any] = {}
    if token is not None:
        user["token"] = token
    if cert is not None:
        user["client-certificate-data"] = cert.cert_b64
        user["client-key-data"] = cert.key_b64
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": api.url, "certificate-authority-data": ca.cert_b64}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / f"kubeconfig-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return config.new_client_from_config(config_file=str(path), context="ctx")


def body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


# -- happy paths -------------------------------------------------------------------------------------


def test_version_and_nodes_with_bearer_token(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-admin")
    info = client.VersionApi(c).get_code()
    assert info.git_version == "v1.30.4-eks-a737599"
    assert (info.major, info.minor, info.platform) == ("1", "30+", "linux/amd64")
    nodes = client.CoreV1Api(c).list_node()
    assert [n.metadata.name for n in nodes.items] == ["node-a", "node-b"]
    assert nodes.metadata.resource_version
    zone_b = client.CoreV1Api(c).list_node(label_selector="zone=b")
    assert [n.metadata.name for n in zone_b.items] == ["node-b"]


def test_get_and_list_namespaced_objects(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-admin")
    core = client.CoreV1Api(c)
    cm = core.read_namespaced_config_map("cfg", "team-a")
    assert cm.data == {"k": "v"} and cm.metadata.uid
    assert [d.metadata.name for d in client.AppsV1Api(c).list_deployment_for_all_namespaces().items] == ["meshery"]
    assert core.list_namespaced_config_map("default").items == []
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "team-a")
    assert missing.value.status == 404
    assert body(missing.value)["reason"] == "NotFound"
    assert body(missing.value)["message"] == 'configmaps "nope" not found'


def test_custom_resources_discovery_and_crd(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-admin")
    groups = {g.name: g for g in client.ApisApi(c).get_api_versions().groups}
    for name in ("authentication.k8s.io", "authorization.k8s.io", "apps", "meshery.io"):
        assert name in groups
    assert groups["meshery.io"].preferred_version.group_version == "meshery.io/v1alpha1"
    assert client.CoreApi(c).get_api_versions().versions == ["v1"]
    core_resources = {r.name: r for r in client.CoreV1Api(c).get_api_resources().resources}
    assert core_resources["nodes"].namespaced is False and core_resources["secrets"].kind == "Secret"
    brokers = client.CustomObjectsApi(c).list_namespaced_custom_object("meshery.io", "v1alpha1", "meshery", "brokers")
    assert brokers["kind"] == "BrokerList"
    assert [b["metadata"]["name"] for b in brokers["items"]] == ["meshery-broker"]
    assert brokers["items"][0]["kind"] == "Broker"  # custom resources keep their type in lists
    crd = client.ApiextensionsV1Api(c).read_custom_resource_definition("brokers.meshery.io")
    assert crd.spec.names.kind == "Broker" and crd.spec.scope == "Namespaced"
    status, resources = raw(api, "GET", "/apis/meshery.io/v1alpha1", token="tok-admin")
    assert status == 200 and resources["groupVersion"] == "meshery.io/v1alpha1"
    assert resources["resources"][0]["name"] == "brokers"


def test_list_items_of_builtin_kinds_omit_type_like_the_real_server(api: FakeKubeAPI) -> None:
    status, doc = raw(api, "GET", "/api/v1/nodes", token="tok-admin")
    assert status == 200
    assert doc["kind"] == "NodeList" and doc["apiVersion"] == "v1"
    assert doc["metadata"]["resourceVersion"]
    assert "kind" not in doc["items"][0]


# -- authentication ----------------------------------------------------------------------------------


def test_unknown_or_missing_token_is_401_status(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    for token in ("not-a-token", None):
        c = kube(api, tmp_path, ca, token=token)
        with pytest.raises(ApiException) as err:
            client.VersionApi(c).get_code()
        assert err.value.status == 401
        doc = body(err.value)
        assert {k: doc[k] for k in ("kind", "apiVersion", "status", "message", "reason", "code")} == {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    assert [r.username for r in api.requests()] == [None, None]


def test_anonymous_may_read_version_only_when_enabled(api: FakeKubeAPI) -> None:
    api.allow_anonymous = True
    assert raw(api, "GET", "/version")[0] == 200
    status, doc = raw(api, "GET", "/api/v1/nodes")
    assert status == 403 and 'User "system:anonymous"' in doc["message"]


def test_client_certificate_auth(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = ca.issue_client_cert("admin", ["system:masters"])
    c = kube(api, tmp_path, ca, cert=cert)
    review = client.AuthenticationV1Api(c).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status.user_info.username == "admin"
    assert review.status.user_info.groups == ["system:masters", "system:authenticated"]
    assert client.CoreV1Api(c).list_node().items


def test_expired_client_certificate_is_401_not_a_tls_error(
    api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority
) -> None:
    now = utcnow()
    cert = ca.issue_client_cert("admin", not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1))
    with pytest.raises(ApiException) as err:
        client.VersionApi(kube(api, tmp_path, ca, cert=cert)).get_code()
    assert err.value.status == 401


def test_client_certificate_from_unknown_ca_fails_the_handshake(
    api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority
) -> None:
    stranger = create_ca("kubernetes").issue_client_cert("admin")
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.VersionApi(kube(api, tmp_path, ca, cert=stranger)).get_code(_request_timeout=5)
    assert api.handshake_failures >= 1
    assert api.requests() == []


def test_wrong_server_ca_fails_verification(api: FakeKubeAPI, tmp_path: Path) -> None:
    other = create_ca("kubernetes")
    with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
        client.VersionApi(kube(api, tmp_path, other, token="tok-admin")).get_code(_request_timeout=5)
    assert isinstance(err.value.reason, urllib3.exceptions.SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value.reason)


# -- authorization -----------------------------------------------------------------------------------


def test_forbidden_list_has_realistic_status(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-nobody")
    assert client.VersionApi(c).get_code().major == "1"  # discovery and /version stay open
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(c).list_node()
    assert err.value.status == 403
    doc = body(err.value)
    assert doc["reason"] == "Forbidden" and doc["code"] == 403
    assert doc["message"] == (
        'nodes is forbidden: User "nobody" cannot list resource "nodes" in API group "" at the cluster scope'
    )
    with pytest.raises(ApiException) as named:
        client.CoreV1Api(kube(api, tmp_path, ca, token="tok-viewer")).read_namespaced_secret("s", "team-a")
    assert body(named.value)["message"] == (
        'secrets "s" is forbidden: User "viewer" cannot get resource "secrets" in API group "" '
        'in the namespace "team-a"'
    )


def ssar(c: client.ApiClient, verb: str, resource: str, namespace: str = "", group: str = "") -> bool:
    attrs = client.V1ResourceAttributes(verb=verb, resource=resource, namespace=namespace or None, group=group)
    spec = client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
    review = client.AuthorizationV1Api(c).create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec))
    assert review.spec.resource_attributes.verb == verb
    return bool(review.status.allowed)


def test_self_subject_access_reviews(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    admin = kube(api, tmp_path, ca, token="tok-admin")
    assert ssar(admin, "list", "nodes")
    assert ssar(admin, "delete", "brokers", "meshery", "meshery.io")
    viewer = kube(api, tmp_path, ca, token="tok-viewer")
    assert ssar(viewer, "list", "pods", "team-a")
    assert ssar(viewer, "get", "deployments", "team-a", "apps")
    assert not ssar(viewer, "list", "pods", "default")  # a RoleBinding does not reach other namespaces
    assert not ssar(viewer, "list", "pods")  # nor the cluster scope
    assert not ssar(viewer, "delete", "pods", "team-a")
    assert not ssar(viewer, "list", "deployments", "team-a", "extensions")
    non_resource = client.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=client.V1NonResourceAttributes(path="/version", verb="get")
    )
    review = client.AuthorizationV1Api(viewer).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=non_resource)
    )
    assert review.status.allowed
    # The reviews themselves go through live RBAC: what is allowed is what the reads then get.
    assert client.CoreV1Api(viewer).list_namespaced_pod("team-a").items == []


def test_self_subject_rules_review(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    viewer = kube(api, tmp_path, ca, token="tok-viewer")
    spec = client.V1SelfSubjectRulesReviewSpec(namespace="team-a")
    status = (
        client.AuthorizationV1Api(viewer)
        .create_self_subject_rules_review(client.V1SelfSubjectRulesReview(spec=spec))
        .status
    )
    assert status.incomplete is False
    assert any(r.resources == ["pods", "configmaps", "deployments"] for r in status.resource_rules)
    assert any("/version" in r.non_resource_urls for r in status.non_resource_rules)
    other = (
        client.AuthorizationV1Api(viewer)
        .create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace="default"))
        )
        .status
    )
    assert not any("pods" in r.resources for r in other.resource_rules)


def test_self_subject_review_and_switching_it_off(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-admin")
    info = client.AuthenticationV1Api(c).create_self_subject_review(client.V1SelfSubjectReview()).status.user_info
    assert (info.username, info.uid, info.groups) == ("admin", "uid-admin", ["ops", "system:authenticated"])
    api.selfsubjectreview = False
    with pytest.raises(ApiException) as err:
        client.AuthenticationV1Api(c).create_self_subject_review(client.V1SelfSubjectReview())
    assert err.value.status == 404 and body(err.value)["reason"] == "NotFound"
    served = [r.name for r in client.AuthenticationV1Api(c).get_api_resources().resources]
    assert "selfsubjectreviews" not in served and "tokenreviews" in served


# -- request log, writes, latency, lifecycle --------------------------------------------------------


def raw(
    api: FakeKubeAPI, method: str, path: str, token: str | None = None, payload: Any = None
) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cadata=api.server_cert.cert_pem.decode())
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(api.host, api.port, context=ctx, timeout=5)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(payload).encode() if payload is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
    finally:
        conn.close()
    if resp.getheader("Content-Type", "").startswith("application/json"):
        return resp.status, json.loads(text)
    return resp.status, {"text": text.decode()}


def test_request_log_and_mutating_requests(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-admin")
    client.CoreV1Api(c).list_node()
    ssar(c, "list", "nodes")
    client.AuthenticationV1Api(c).create_self_subject_review(client.V1SelfSubjectReview())
    assert api.mutating_requests() == []
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
    with pytest.raises(ApiException) as created:
        client.CoreV1Api(c).create_namespaced_config_map("default", cm)
    assert created.value.status == 405 and body(created.value)["reason"] == "MethodNotAllowed"
    with pytest.raises(ApiException) as deleted:
        client.CoreV1Api(c).delete_node("node-a")
    assert deleted.value.status == 405
    assert raw(api, "PATCH", "/api/v1/nodes/node-a", payload={})[0] == 405  # even unauthenticated
    assert api.store.get(api.resources.by_plural("", "v1", "nodes"), "node-a") is not None  # type: ignore[arg-type]
    log = [(r.method, r.path, r.username, r.status) for r in api.requests()]
    assert log[:3] == [
        ("GET", "/api/v1/nodes", "admin", 200),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "admin", 201),
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "admin", 201),
    ]
    mutating = [(r.method, r.path, r.username, r.status) for r in api.mutating_requests()]
    assert mutating == [
        ("POST", "/api/v1/namespaces/default/configmaps", "admin", 405),
        ("DELETE", "/api/v1/nodes/node-a", "admin", 405),
        ("PATCH", "/api/v1/nodes/node-a", None, 405),
    ]
    api.clear_requests()
    assert api.requests() == []


def test_raw_paths_health_and_unknown(api: FakeKubeAPI) -> None:
    assert raw(api, "GET", "/healthz", token="tok-admin") == (200, {"text": "ok"})
    assert raw(api, "GET", "/nonsense", token="tok-admin") == (404, {"text": "404 page not found\n"})
    status, doc = raw(api, "GET", "/apis/apps/v1/widgets", token="tok-admin")
    assert status == 404 and doc["reason"] == "NotFound"
    assert raw(api, "GET", "/api/v1/nodes?watch=true", token="tok-admin")[0] == 405
    status, doc = raw(
        api,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        token="tok-admin",
        payload={
            "spec": {
                "user": "viewer",
                "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team-a"},
            }
        },
    )
    assert status == 201 and doc["status"]["allowed"] is True
    status, doc = raw(
        api,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        token="tok-admin",
        payload={"spec": {"token": "tok-viewer"}},
    )
    assert doc["status"]["user"]["username"] == "viewer"
    assert api.mutating_requests() == []


def test_injected_latency(api: FakeKubeAPI, tmp_path: Path, ca: CertificateAuthority) -> None:
    c = kube(api, tmp_path, ca, token="tok-admin")
    client.VersionApi(c).get_code()  # warm the connection pool
    start = time.monotonic()
    client.VersionApi(c).get_code()
    fast = time.monotonic() - start
    api.latency_ms = 250
    start = time.monotonic()
    client.VersionApi(c).get_code()
    assert time.monotonic() - start >= 0.25 > fast


def test_stop_is_fast_and_frees_the_port(server_cert: CertKeyPair, ca: CertificateAuthority, tmp_path: Path) -> None:
    first = FakeKubeAPI(server_cert, host=HOST, tokens={"t": ADMIN}, rbac=_rbac()).start()
    port = first.port
    assert port > 0 and first.url == f"https://{HOST}:{port}"
    # At stop time: an idle keep-alive connection, a request stuck in injected latency, a bare TCP connect.
    idle = http.client.HTTPSConnection(HOST, port, context=ssl._create_unverified_context(), timeout=10)
    idle.request("GET", "/version", headers={"Authorization": "Bearer t"})
    assert idle.getresponse().read()
    first.latency_ms = 5000
    outcome: list[object] = []

    def slow_request() -> None:
        try:
            outcome.append(raw(first, "GET", "/version", "t"))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    stuck = threading.Thread(target=slow_request)
    stuck.start()
    bare = socket.create_connection((HOST, port))
    deadline = time.monotonic() + 5
    while len(first.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    first.stop()
    assert time.monotonic() - started < 5  # a stop that waited for the stuck request would hang, not be slow
    stuck.join(timeout=2)
    assert not stuck.is_alive() and outcome
    idle.close()
    bare.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=2)
    with FakeKubeAPI(server_cert, host=HOST, port=port, tokens={"t": ADMIN}, rbac=_rbac()) as second:
        assert second.port == port
        assert client.VersionApi(kube(second, tmp_path, ca, token="t")).get_code().major == "1"
    first.stop()  # idempotent


def test_only_loopback_addresses(server_cert: CertKeyPair) -> None:
    for host in ("10.0.0.1", "0.0.0.0", "::2", "2001:db8::1", "localhost"):
        with pytest.raises(ValueError):
            FakeKubeAPI(server_cert, host=host)


# -- pure helpers ------------------------------------------------------------------------------------


def test_rule_matching() -> None:
    rule = Rule(("get", "list"), ("",), ("pods", "*/log"), ("team-a",))
    assert rule.matches(ResourceAttributes("get", "pods", "", "team-a"))
    assert rule.matches(ResourceAttributes("get", "pods", "", "team-a", "p", "log"))
    assert not rule.matches(ResourceAttributes("get", "pods", "", "team-a", "p", "exec"))
    assert not rule.matches(ResourceAttributes("get", "pods", "", ""))
    assert not rule.matches(ResourceAttributes("get", "pods", "apps", "team-a"))
    named = Rule(("get",), resources=("secrets",), resource_names=("only",))
    assert named.matches(ResourceAttributes("get", "secrets", "", "x", "only"))
    assert not named.matches(ResourceAttributes("get", "secrets", "", "x", "other"))
    assert Rule(("get",), non_resource_urls=("/healthz*",)).matches_path("get", "/healthz/etcd")
    rbac = RBAC()
    assert rbac.allows(Identity("root", ("system:masters",)), ResourceAttributes("delete", "nodes"))
    assert not rbac.allows(Identity("x"), ResourceAttributes("get", "nodes"))


def test_selectors_and_helpers() -> None:
    labels = {"app": "meshery", "tier": "web"}
    assert label_selector_matches("app=meshery,tier!=db", labels)
    assert label_selector_matches("app in (meshery, broker),!missing", labels)
    assert not label_selector_matches("tier notin (web)", labels)
    assert not label_selector_matches("missing", labels)
    assert field_selector_matches("metadata.name=x", {"metadata": {"name": "x"}})
    assert not field_selector_matches("metadata.name!=x", {"metadata": {"name": "x"}})
    assert is_review_request("POST", "/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews")
    assert not is_review_request("POST", "/api/v1/namespaces/a/configmaps")
    assert not is_review_request("DELETE", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert version_info("v1.21.0")["minor"] == "21"
    assert version_info("v1.29.7-gke.1008000", platform="linux/arm64")["platform"] == "linux/arm64"


def test_certificates(ca: CertificateAuthority) -> None:
    now = utcnow()
    soon = ca.issue_server_cert("s", ip_addresses=["127.0.0.9"], not_after=now + dt.timedelta(days=5))
    cert = soon.certificate
    assert dt.timedelta(days=4) < cert.not_valid_after_utc - now <= dt.timedelta(days=5)
    assert b"BEGIN EC PRIVATE KEY" in soon.key_pem
    assert base64.b64decode(soon.cert_b64) == soon.cert_pem
    user = ca.issue_client_cert("alice", ["team-a", "team-b"]).certificate
    assert "CN=alice" in user.subject.rfc4514_string() and "O=team-b" in user.subject.rfc4514_string()
    with pytest.raises(ValueError):
        ca.issue_server_cert("s")  # no SAN
    with pytest.raises(ValueError):
        ca.issue_client_cert("x", not_before=now, not_after=now - dt.timedelta(seconds=1))
