"""A loopback stand-in for the GKE (container v1) and Compute Engine (compute v1) REST APIs.

It answers the real JSON shapes (camelCase, as the Google clients' REST transports parse them), so the
real google-cloud-container and google-cloud-compute clients run against it unchanged through
``api_endpoint``: ``GET /v1/projects/P/locations/L/clusters/C``, ``GET /compute/v1/projects/P/global/firewalls``
(``items`` + ``nextPageToken`` paging, page size configurable) and
``GET /compute/v1/projects/P/zones/Z/instances/N``. Every request is logged (method, path, identity,
status) so tests can prove the checks only read. Callers authenticate for real: the lab trusts the keys
of the service-account files it writes (the clients sign JWTs with them; ``/token`` also trades them, or
a refresh token, for an access token). Configured from Python; it knows nothing of the checks.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import secrets as _secrets
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from preflight_lab.addresses import require_loopback
from preflight_lab.certs import CertKeyPair, server_ssl_context
from preflight_lab.serving import LabServer, quiet_bind

__all__ = [
    "COMPUTE",
    "GcpRequest",
    "LabGCP",
    "firewall",
    "gke_cluster",
    "instance",
    "write_service_account_key",
]

COMPUTE = "https://www.googleapis.com/compute/v1"
_TIMESTAMP = "2024-09-02T08:15:00.000-07:00"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
}
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class GcpRequest:
    """One request the lab answered. ``path`` excludes the query string."""

    method: str
    path: str
    query: str
    identity: str | None
    status: int


# --------------------------------------------------------------------------------------------------
# Resource builders: the shapes the real APIs answer


def gke_cluster(
    project: str,
    location: str,
    name: str,
    *,
    cluster_id: str = "0d9a7a3e5b7c4f0e9d2c1b0a99887766554433221100ffeeddccbbaa99887766",
    network: str = "default",
    network_project: str | None = None,
    endpoint: str = "34.118.0.10",
    node_pools: Sequence[Mapping[str, Any]] = ({"name": "default-pool", "config": {"serviceAccount": "default"}},),
    control_plane_endpoints_config: Mapping[str, Any] | None = None,
    private_cluster_config: Mapping[str, Any] | None = None,
    master_authorized_networks_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A container v1 Cluster as clusters.get returns it; the endpoint blocks are passed through as given
    (camelCase), and omitted when None, as the API omits unset messages."""
    netproj = network_project or project
    region = location if location.count("-") == 1 else location.rsplit("-", 1)[0]
    doc: dict[str, Any] = {
        "name": name,
        "location": location,
        "zone": location,
        "id": cluster_id,
        "status": "RUNNING",
        "endpoint": endpoint,
        "currentMasterVersion": "1.30.5-gke.1014001",
        "network": network,
        "subnetwork": "default",
        "networkConfig": {
            "network": f"projects/{netproj}/global/networks/{network}",
            "subnetwork": f"projects/{netproj}/regions/{region}/subnetworks/default",
        },
        "selfLink": f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}",
        "nodePools": [
            {
                "name": p["name"],
                "status": "RUNNING",
                "initialNodeCount": 1,
                "config": {"machineType": "e2-medium", "diskSizeGb": 100, **(p.get("config") or {})},
            }
            for p in node_pools
        ],
    }
    if control_plane_endpoints_config is not None:
        doc["controlPlaneEndpointsConfig"] = copy.deepcopy(dict(control_plane_endpoints_config))
    if private_cluster_config is not None:
        doc["privateClusterConfig"] = copy.deepcopy(dict(private_cluster_config))
    if master_authorized_networks_config is not None:
        doc["masterAuthorizedNetworksConfig"] = copy.deepcopy(dict(master_authorized_networks_config))
    return doc


def firewall(
    project: str,
    name: str,
    *,
    network: str = "default",
    allowed: Sequence[tuple[str, Sequence[str]]] = (),
    denied: Sequence[tuple[str, Sequence[str]]] = (),
    source_ranges: Sequence[str] = (),
    source_tags: Sequence[str] = (),
    target_tags: Sequence[str] = (),
    target_service_accounts: Sequence[str] = (),
    priority: int | None = 1000,
    direction: str | None = "INGRESS",
    disabled: bool = False,
) -> dict[str, Any]:
    """A compute v1 Firewall as firewalls.list returns it (``allowed``: (IPProtocol, ports) pairs)."""
    doc: dict[str, Any] = {
        "kind": "compute#firewall",
        "id": str(int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big")),
        "creationTimestamp": _TIMESTAMP,
        "name": name,
        "network": f"{COMPUTE}/projects/{project}/global/networks/{network}",
        "selfLink": f"{COMPUTE}/projects/{project}/global/firewalls/{name}",
        "disabled": disabled,
        "logConfig": {"enable": False},
    }
    if priority is not None:
        doc["priority"] = priority
    if direction is not None:
        doc["direction"] = direction
    for key, entries in (("allowed", allowed), ("denied", denied)):
        if entries:
            doc[key] = [{"IPProtocol": p, **({"ports": list(ports)} if ports else {})} for p, ports in entries]
    for key, values in (
        ("sourceRanges", source_ranges),
        ("sourceTags", source_tags),
        ("targetTags", target_tags),
        ("targetServiceAccounts", target_service_accounts),
    ):
        if values:
            doc[key] = list(values)
    return doc


def instance(
    project: str, zone: str, name: str, *, tags: Sequence[str] = (), service_accounts: Sequence[str] = ()
) -> dict[str, Any]:
    """A compute v1 Instance as instances.get returns it (the parts a firewall rule's targets match)."""
    return {
        "kind": "compute#instance",
        "id": str(int.from_bytes(hashlib.sha256(name.encode()).digest()[:7], "big")),
        "name": name,
        "zone": f"{COMPUTE}/projects/{project}/zones/{zone}",
        "status": "RUNNING",
        "machineType": f"{COMPUTE}/projects/{project}/zones/{zone}/machineTypes/e2-medium",
        "tags": {"items": list(tags), "fingerprint": "lab-fp"},
        "serviceAccounts": [
            {"email": e, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]} for e in service_accounts
        ],
        "networkInterfaces": [{"name": "nic0", "network": f"{COMPUTE}/projects/{project}/global/networks/default"}],
        "selfLink": f"{COMPUTE}/projects/{project}/zones/{zone}/instances/{name}",
    }


def write_service_account_key(path: Path, project: str, token_uri: str, email: str | None = None) -> Path:
    """A service-account key file as the IAM console downloads it, with a fresh RSA key (trust it in a lab)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    doc = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": _secrets.token_hex(20),
        "private_key": pem,
        "client_email": email or f"meshery-preflight@{project}.iam.gserviceaccount.com",
        "client_id": str(int.from_bytes(_secrets.token_bytes(8), "big")),
        "auth_uri": token_uri.rsplit("/", 1)[0] + "/auth",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------------------------------
# The server


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class LabGCP(LabServer):
    """The lab's GCP APIs on one loopback address (``url``), plain HTTP or HTTPS (``tls``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: CertKeyPair | None = None,
        firewall_page_size: int = 500,
        require_auth: bool = True,
    ) -> None:
        super().__init__()
        self.host = require_loopback(host)
        self.port = port
        self.tls = tls
        self.thread_name = f"lab-gcp-{host}"
        self.firewall_page_size = firewall_page_size
        self.require_auth = require_auth
        self.clusters: dict[str, dict[str, Any]] = {}
        self.firewalls: dict[str, list[dict[str, Any]]] = {}
        self.instances: dict[str, dict[str, Any]] = {}
        self.forbidden: set[str] = set()  # path prefixes (after /v1/ or /compute/v1/) answered with 403
        self._keys: dict[str, tuple[rsa.RSAPublicKey, str]] = {}  # private_key_id -> (key, client_email)
        self._tokens: dict[str, str] = {}  # access token -> identity
        self._refresh: dict[str, str] = {}  # refresh token -> identity
        self._log: list[GcpRequest] = []
        self._lock = threading.Lock()

    # -- configuration -----------------------------------------------------------------------------

    def add_cluster(self, doc: Mapping[str, Any], project: str | None = None) -> dict[str, Any]:
        project = project or str(doc["selfLink"]).split("/projects/")[1].split("/")[0]
        path = f"projects/{project}/locations/{doc['location']}/clusters/{doc['name']}"
        self.clusters[path] = copy.deepcopy(dict(doc))
        return self.clusters[path]

    def add_firewalls(self, project: str, rules: Iterable[Mapping[str, Any]]) -> None:
        self.firewalls.setdefault(project, []).extend(copy.deepcopy(dict(r)) for r in rules)

    def add_instance(self, doc: Mapping[str, Any]) -> None:
        path = str(doc["selfLink"]).split("/compute/v1/", 1)[1]
        self.instances[path] = copy.deepcopy(dict(doc))

    def service_account_file(self, path: Path, project: str, email: str | None = None) -> Path:
        """Write a service-account key file whose key this lab trusts and whose token_uri is this lab."""
        write_service_account_key(path, project, f"{self.url}/token", email)
        return self.trust_service_account(path)

    def trust_service_account(self, path: Path) -> Path:
        """Accept JWTs signed with the key in a service-account key file (several labs may share one)."""
        doc = json.loads(Path(path).read_text())
        key = serialization.load_pem_private_key(doc["private_key"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._keys[doc["private_key_id"]] = (key.public_key(), doc["client_email"])
        return path

    def add_refresh_token(self, identity: str) -> str:
        """A refresh token /token accepts (for authorized_user flows driven by hand)."""
        token = "lab-refresh-" + _secrets.token_hex(16)
        self._refresh[token] = identity
        return token

    # -- queries -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def requests(self, path_contains: str = "") -> list[GcpRequest]:
        with self._lock:
            return [r for r in self._log if path_contains in r.path]

    def api_requests(self) -> list[GcpRequest]:
        """Requests to the APIs (not the token endpoint)."""
        return [r for r in self.requests() if r.path != "/token"]

    def mutating_requests(self) -> list[GcpRequest]:
        return [r for r in self.api_requests() if r.method not in ("GET", "HEAD")]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- authentication ----------------------------------------------------------------------------

    def _verify_jwt(self, token: str) -> str | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except ValueError:
            return None
        found = self._keys.get(str(header.get("kid")))
        if found is None or header.get("alg") != "RS256":
            return None
        key, email = found
        try:
            key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return None
        if float(claims.get("exp", 0)) < time.time() or claims.get("iss") != email:
            return None
        return email

    def identity(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization.split(" ", 1)[1].strip()
        return self._tokens.get(token) or self._verify_jwt(token)

    def token(self, form: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        grant = (form.get("grant_type") or [""])[0]
        who: str | None = None
        if grant == _JWT_BEARER:
            who = self._verify_jwt((form.get("assertion") or [""])[0])
        elif grant == "refresh_token":
            who = self._refresh.get((form.get("refresh_token") or [""])[0])
        if who is None:
            return 400, {"error": "invalid_grant", "error_description": "lab: unknown key or refresh token"}
        access = "lab-access-" + _secrets.token_hex(16)
        self._tokens[access] = who
        return 200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}

    # -- routing -----------------------------------------------------------------------------------

    @staticmethod
    def _error(code: int, message: str) -> tuple[int, dict[str, Any]]:
        reason = {404: "notFound", 403: "forbidden", 401: "required"}.get(code, "invalid")
        return code, {
            "error": {
                "code": code,
                "message": message,
                "status": _STATUS.get(code, "UNKNOWN"),
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }

    def answer(self, method: str, path: str, query: str, identity: str | None) -> tuple[int, dict[str, Any]]:
        if self.require_auth and identity is None:
            return self._error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        if method != "GET":
            return self._error(405, f"lab: {method} is not served: the checks only read")
        if path.startswith("/compute/v1/"):
            resource = path[len("/compute/v1/") :]
        elif path.startswith("/v1/"):
            resource = path[len("/v1/") :]
        else:
            return self._error(404, f"lab: no API at {path}")
        if any(resource.startswith(p) for p in self.forbidden):
            return self._error(403, f"Required permission denied on resource '{resource}' (or it may not exist).")
        parts = resource.split("/")
        if path.startswith("/v1/"):
            doc = self.clusters.get(resource)
            return (200, doc) if doc is not None else self._error(404, f"Not found: {resource}.")
        if len(parts) == 4 and parts[0] == "projects" and parts[2:] == ["global", "firewalls"]:
            return 200, self._firewall_page(parts[1], parse_qs(query))
        doc = self.instances.get(resource)
        if doc is not None:
            return 200, doc
        return self._error(404, f"The resource '{resource}' was not found")

    def _firewall_page(self, project: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        rules = self.firewalls.get(project, [])
        size = self.firewall_page_size
        with contextlib.suppress(ValueError, IndexError, KeyError):
            size = min(size, int(query["maxResults"][0]))
        start = 0
        token = (query.get("pageToken") or [""])[0]
        if token:
            start = int(_b64url(token).decode().rsplit(":", 1)[1])
        page: dict[str, Any] = {
            "kind": "compute#firewallList",
            "id": f"projects/{project}/global/firewalls",
            "selfLink": f"{COMPUTE}/projects/{project}/global/firewalls",
        }
        items = rules[start : start + max(size, 1)]
        if items:
            page["items"] = items
        if start + len(items) < len(rules):
            nxt = f"{project}:{start + len(items)}".encode()
            page["nextPageToken"] = base64.urlsafe_b64encode(nxt).decode().rstrip("=")
        return page

    def record(self, req: GcpRequest) -> None:
        with self._lock:
            self._log.append(req)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        return server_ssl_context(self.tls)

    def _bind(self) -> list[socketserver.TCPServer]:
        httpd = _Server((self.host, self.port), self, self._ssl_context())
        self.port = httpd.server_address[1]
        return [httpd]

    def __repr__(self) -> str:
        return f"LabGCP({self.url}, {len(self.clusters)} clusters)"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A fleet's clusters ask at once: the default backlog of 5 drops SYNs, which reads as a filtered port.
    request_queue_size = 128
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], lab: LabGCP, context: ssl.SSLContext | None) -> None:
        self.lab, self.ssl_context = lab, context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        quiet_bind(self)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshakes happen in the worker thread, so a stuck client never stalls the accept loop."""
        sock = cast(socket.socket, request)
        if self.ssl_context is not None:
            sock.settimeout(5)
            try:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            except (OSError, ValueError):
                sock.close()
                return
        with contextlib.suppress(OSError):
            _Handler(sock, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients hanging up are normal."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """The lab keeps its own log (LabGCP.requests)."""

    def _send(self, status: int, doc: Mapping[str, Any]) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        lab = self.server.lab
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if parts.path == "/token" and self.command == "POST":
            status, doc = lab.token(parse_qs(body.decode(errors="replace")))
            lab.record(GcpRequest(self.command, parts.path, "", None, status))
            self._send(status, doc)
            return
        identity = lab.identity(self.headers.get("Authorization"))
        try:
            status, doc = lab.answer(self.command, parts.path, parts.query, identity)
        except Exception as exc:  # a lab bug answers 500, as a real API would, instead of hanging up
            status, doc = 500, {"error": {"code": 500, "message": f"lab: {exc!r}", "status": "INTERNAL"}}
        lab.record(GcpRequest(self.command, parts.path, parts.query, identity, status))
        self._send(status, doc)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle
