"""A loopback HTTPS Azure Resource Manager for the lab: AKS managed clusters, NSGs and VNets as ARM's JSON.

The real azure-mgmt-* clients talk to it unchanged (point base_url at :attr:`LabARM.url` and trust
:attr:`LabARM.ca_file`, e.g. through REQUESTS_CA_BUNDLE). It answers what ARM answers: the ARM casing
(``properties.apiServerAccessProfile.authorizedIPRanges``, ``securityRules[].properties...``), ``value`` +
``nextLink`` paging, ARM error bodies, 401 without the expected bearer token, 400 without an
``api-version`` (any value is accepted, as long as the SDK sends one). Every request is logged (method,
path, query, Authorization header) so tests can prove the tool only reads. Like the rest of the lab it
holds what a subscription contains, never what a check should conclude; it never imports checks.
"""

from __future__ import annotations

import json
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from preflight_lab.addresses import require_loopback
from preflight_lab.certs import CertificateAuthority, create_ca, server_ssl_context
from preflight_lab.serving import LabServer

__all__ = ["DEFAULT_SECURITY_RULES", "LabARM", "ArmRequest", "nsg_rule"]

# What ARM returns in every NSG's defaultSecurityRules (inbound half; outbound ones exist too).
DEFAULT_SECURITY_RULES: tuple[tuple[str, int, str, str, str, str], ...] = (
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
)


@dataclass(frozen=True)
class ArmRequest:
    method: str
    path: str
    query: str
    authorization: str | None


def _plural(props: dict[str, Any], singular: str, plural: str, value: str | Sequence[str]) -> None:
    """ARM sets one of the pair: a string goes in the singular field, a list in the plural one."""
    if isinstance(value, str):
        props[singular], props[plural] = value, []
    else:
        props[singular], props[plural] = None, list(value)
    if props[singular] is None:
        del props[singular]


def nsg_rule(
    name: str,
    priority: int,
    access: str = "Allow",
    *,
    source: str | Sequence[str] = "*",
    ports: str | Sequence[str] = "*",
    destination: str | Sequence[str] = "*",
    direction: str = "Inbound",
    protocol: str = "Tcp",
) -> dict[str, Any]:
    """A securityRules[] entry (without its id: :meth:`LabARM.add_nsg` fills it in)."""
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "protocol": protocol,
        "sourcePortRange": "*",
        "access": access,
        "priority": priority,
        "direction": direction,
        "sourcePortRanges": [],
        "sourceApplicationSecurityGroups": [],
        "destinationApplicationSecurityGroups": [],
    }
    _plural(props, "sourceAddressPrefix", "sourceAddressPrefixes", source)
    _plural(props, "destinationAddressPrefix", "destinationAddressPrefixes", destination)
    _plural(props, "destinationPortRange", "destinationPortRanges", ports)
    return {"name": name, "type": "Microsoft.Network/networkSecurityGroups/securityRules", "properties": props}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A fleet's clusters ask at once: the default backlog of 5 drops SYNs, which reads as a filtered port.
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, lab: LabARM, address: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.lab = lab
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        sock.settimeout(5.0)
        # The handshake happens on the handler's first read, in its own thread, not in the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # handshake failures and resets are a client's business, not the lab's stderr


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", "lab-00000000-0000-0000-0000-000000000000")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        lab = self.server.lab
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        lab._record(ArmRequest(self.command, parts.path, parts.query, auth))
        status, body, headers = lab._respond(self.command, parts.path, parse_qs(parts.query), auth)
        self._send(status, body, headers)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class LabARM(LabServer):
    """ARM on a loopback address. Add resources with the ``add_*`` helpers; they return the stored JSON.

    ``token`` is the bearer token the server accepts (``None``: any bearer token). ``page_size`` splits
    every list into pages joined by ``nextLink``. ``forbid(id)`` answers 403 AuthorizationFailed for
    one resource, as a credential without Reader on it sees.
    """

    thread_name = "lab-arm"

    def __init__(self, *, host: str = "127.0.0.1", token: str | None = None, page_size: int = 50) -> None:
        super().__init__()
        self.host = require_loopback(host)
        self.port = 0
        self.token = token
        self.page_size = max(page_size, 1)
        self.ca: CertificateAuthority = create_ca("lab-arm-ca")
        self._cert = self.ca.issue_server_cert("management.lab.test", ip_addresses=[host], dns_names=["localhost"])
        self._resources: dict[str, dict[str, Any]] = {}
        self._forbidden: set[str] = set()
        self._log: list[ArmRequest] = []
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: Path | None = None

    # -- resources ---------------------------------------------------------------------------------

    def _put(self, resource: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._resources[resource["id"].lower()] = resource
        return resource

    def forbid(self, resource_id: str) -> None:
        with self._lock:
            self._forbidden.add(resource_id.lower())

    @staticmethod
    def group_id(subscription: str, resource_group: str) -> str:
        return f"/subscriptions/{subscription}/resourceGroups/{resource_group}"

    def subnet_id(self, subscription: str, resource_group: str, vnet: str, subnet: str) -> str:
        group = self.group_id(subscription, resource_group)
        return f"{group}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"

    def nsg_id(self, subscription: str, resource_group: str, name: str) -> str:
        return f"{self.group_id(subscription, resource_group)}/providers/Microsoft.Network/networkSecurityGroups/{name}"

    def add_managed_cluster(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        *,
        location: str = "eastus",
        authorized_ip_ranges: Sequence[str] | None = None,
        private: bool = False,
        public_fqdn: bool = False,
        private_dns_zone: str | None = None,
        fqdn: str | None = None,
        private_fqdn: str | None = None,
        node_resource_group: str | None = None,
        pools: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """A Microsoft.ContainerService/managedClusters resource as GET returns it.

        ``pools`` maps agent pool names to their vnetSubnetID (None: AKS's managed VNet).
        """
        group = self.group_id(subscription, resource_group)
        rid = f"{group}/providers/Microsoft.ContainerService/managedClusters/{name}"
        dns_prefix = f"{name}-{resource_group}"[:40]
        profile: dict[str, Any] = {"enablePrivateCluster": private}
        if authorized_ip_ranges is not None:
            profile["authorizedIPRanges"] = list(authorized_ip_ranges)
        if private:
            profile["privateDNSZone"] = private_dns_zone or "system"
            profile["enablePrivateClusterPublicFQDN"] = public_fqdn
        props: dict[str, Any] = {
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "kubernetesVersion": "1.30.4",
            "currentKubernetesVersion": "1.30.4",
            "dnsPrefix": dns_prefix,
            "azurePortalFQDN": f"{dns_prefix}-portal.hcp.{location}.azmk8s.io",
            "agentPoolProfiles": [
                {
                    "name": pool,
                    "count": 3,
                    "vmSize": "Standard_D4s_v5",
                    "osType": "Linux",
                    "type": "VirtualMachineScaleSets",
                    "mode": "System" if i == 0 else "User",
                    "provisioningState": "Succeeded",
                    **({"vnetSubnetID": subnet} if subnet else {}),
                }
                for i, (pool, subnet) in enumerate((pools or {"nodepool1": None}).items())
            ],
            "nodeResourceGroup": node_resource_group or f"MC_{resource_group}_{name}_{location}",
            "enableRBAC": True,
            "networkProfile": {"networkPlugin": "azure", "loadBalancerSku": "standard", "outboundType": "loadBalancer"},
            "apiServerAccessProfile": profile,
            "publicNetworkAccess": "Enabled",
        }
        if not private or public_fqdn:
            props["fqdn"] = fqdn or f"{dns_prefix}-1a2b3c4d.hcp.{location}.azmk8s.io"
        if private:
            props["privateFQDN"] = private_fqdn or f"{dns_prefix}-5e6f7a8b.privatelink.{location}.azmk8s.io"
        return self._put(
            {
                "id": rid,
                "name": name,
                "type": "Microsoft.ContainerService/ManagedClusters",
                "location": location,
                "sku": {"name": "Base", "tier": "Free"},
                "identity": {"type": "SystemAssigned"},
                "properties": props,
            }
        )

    def add_nsg(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        rules: Iterable[dict[str, Any]] = (),
        *,
        location: str = "eastus",
        subnets: Sequence[str] = (),
    ) -> dict[str, Any]:
        """An NSG with ``rules`` (see :func:`nsg_rule`) and ARM's defaultSecurityRules."""
        rid = self.nsg_id(subscription, resource_group, name)
        security = []
        for r in rules:
            r = json.loads(json.dumps(r))
            r["id"] = f"{rid}/securityRules/{r['name']}"
            r["etag"] = 'W/"lab"'
            security.append(r)
        defaults = []
        for rname, prio, direction, access, src, dst in DEFAULT_SECURITY_RULES:
            d = nsg_rule(rname, prio, access, source=src, destination=dst, direction=direction, protocol="*")
            d["id"] = f"{rid}/defaultSecurityRules/{rname}"
            d["type"] = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
            d["properties"]["description"] = f"lab copy of ARM's {rname}"
            defaults.append(d)
        return self._put(
            {
                "id": rid,
                "name": name,
                "type": "Microsoft.Network/networkSecurityGroups",
                "location": location,
                "etag": 'W/"lab"',
                "properties": {
                    "provisioningState": "Succeeded",
                    "resourceGuid": "00000000-0000-0000-0000-000000000001",
                    "securityRules": security,
                    "defaultSecurityRules": defaults,
                    "subnets": [{"id": s} for s in subnets],
                },
            }
        )

    def add_vnet(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        address_prefixes: Sequence[str],
        subnets: Mapping[str, tuple[str, str | None]],
        *,
        location: str = "eastus",
        peered_prefixes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """A VNet; ``subnets`` maps a name to (prefix, NSG id or None). Subnets are GETtable on their own too."""
        rid = f"{self.group_id(subscription, resource_group)}/providers/Microsoft.Network/virtualNetworks/{name}"
        subs = []
        for sname, (prefix, nsg_id) in subnets.items():
            sprops: dict[str, Any] = {"provisioningState": "Succeeded", "addressPrefix": prefix}
            if nsg_id:
                sprops["networkSecurityGroup"] = {"id": nsg_id}
            sub = {
                "id": f"{rid}/subnets/{sname}",
                "name": sname,
                "type": "Microsoft.Network/virtualNetworks/subnets",
                "etag": 'W/"lab"',
                "properties": sprops,
            }
            subs.append(sub)
            self._put(sub)
        peerings = []
        if peered_prefixes:
            peerings.append(
                {
                    "id": f"{rid}/virtualNetworkPeerings/to-meshery",
                    "name": "to-meshery",
                    "properties": {
                        "peeringState": "Connected",
                        "allowVirtualNetworkAccess": True,
                        "remoteAddressSpace": {"addressPrefixes": list(peered_prefixes)},
                        "remoteVirtualNetwork": {
                            "id": f"{self.group_id(subscription, 'rg-meshery')}/providers/"
                            "Microsoft.Network/virtualNetworks/vnet-meshery"
                        },
                    },
                }
            )
        return self._put(
            {
                "id": rid,
                "name": name,
                "type": "Microsoft.Network/virtualNetworks",
                "location": location,
                "etag": 'W/"lab"',
                "properties": {
                    "provisioningState": "Succeeded",
                    "addressSpace": {"addressPrefixes": list(address_prefixes)},
                    "subnets": subs,
                    "virtualNetworkPeerings": peerings,
                },
            }
        )

    # -- serving -----------------------------------------------------------------------------------

    def _respond(
        self, method: str, path: str, query: Mapping[str, list[str]], auth: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not auth or not auth.startswith("Bearer ") or (self.token is not None and auth != f"Bearer {self.token}"):
            why = "missing 'Authorization' header" if not auth else "invalid bearer token"
            challenge = (
                'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", '
                f'error_description="The authentication failed because of {why}."'
            )
            code = "AuthenticationFailed" if not auth else "InvalidAuthenticationToken"
            return 401, _error(code, f"Authentication failed: {why}."), {"WWW-Authenticate": challenge}
        if method != "GET":
            return 405, _error("MethodNotAllowed", f"the lab ARM is read-only; {method} is not served"), {}
        if not query.get("api-version"):
            return (
                400,
                _error(
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                ),
                {},
            )
        key = path.rstrip("/").lower()
        with self._lock:
            forbidden = any(key == f or key.startswith(f + "/") for f in self._forbidden)
            resource = self._resources.get(key)
            members = sorted(
                (r for rid, r in self._resources.items() if rid.rsplit("/", 1)[0] == key), key=lambda r: r["id"].lower()
            )
            # A subscription-wide list: every resource of that type in any group of the subscription.
            segs = key.split("/")
            if not members and len(segs) == 6 and segs[1] == "subscriptions" and segs[3] == "providers":
                ns_type = "/".join(segs[4:])
                members = sorted(
                    (
                        r
                        for rid, r in self._resources.items()
                        if rid.startswith(f"/subscriptions/{segs[2]}/resourcegroups/")
                        and rid.split("/providers/", 1)[-1].rsplit("/", 1)[0] == ns_type
                    ),
                    key=lambda r: r["id"].lower(),
                )
        if forbidden:
            return (
                403,
                _error(
                    "AuthorizationFailed",
                    f"The client 'lab-principal' does not have authorization to perform action 'read' over scope "
                    f"'{path}' or the scope is invalid.",
                ),
                {},
            )
        if resource is not None:
            return 200, resource, {}
        if members or self._is_collection(key):
            start = int((query.get("$skiptoken") or ["0"])[0])
            page = members[start : start + self.page_size]
            body: dict[str, Any] = {"value": page}
            if start + self.page_size < len(members):
                params = {"api-version": query["api-version"][0], "$skiptoken": str(start + self.page_size)}
                body["nextLink"] = f"{self.url}{path}?{urlencode(params)}"
            return 200, body, {}
        return (
            404,
            _error(
                "ResourceNotFound",
                f"The Resource '{path.split('/providers/', 1)[-1]}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            ),
            {},
        )

    @staticmethod
    def _is_collection(key: str) -> bool:
        """ARM answers an empty list (not 404) for a known collection with nothing in it."""
        return key.endswith(("/managedclusters", "/networksecuritygroups", "/virtualnetworks", "/subnets"))

    def _record(self, req: ArmRequest) -> None:
        with self._lock:
            self._log.append(req)

    def requests(self) -> list[ArmRequest]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def non_get_requests(self) -> list[ArmRequest]:
        return [r for r in self.requests() if r.method != "GET"]

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _bind(self) -> list[socketserver.TCPServer]:
        # The CA file is what clients are given (REQUESTS_CA_BUNDLE, the SDKs' connection_verify).
        self._tmp = tempfile.TemporaryDirectory(prefix="lab-arm-")
        self.ca_file = Path(self._tmp.name) / "ca.crt"
        self.ca_file.write_bytes(self.ca.cert_pem)
        httpd = _Server(self, (self.host, self.port), server_ssl_context(self._cert))
        self.port = httpd.server_address[1]
        return [httpd]

    def _stopped(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
