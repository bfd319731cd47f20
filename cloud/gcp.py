"""GKE and Compute Engine reads for the GCP checks: credentials, the cluster, firewall rules, node identities.

google.* is imported inside functions only: the SDKs take seconds to import and are an optional extra,
so neither `import preflight.cli` nor `import checks` may pay for them; only a GKE cluster does.
Every read goes through the session's ``read`` (cloud/session.py), one entry per HTTP call (each firewall
page is its own entry), so ``calls()`` is the exact number of GCP API calls the run made, and a fleet of
clusters in one project costs each get/list once. Errors are remembered too: a 403 is not asked twice.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight.cloud import errors
from preflight.cloud.rules import Rule, port_ranges
from preflight.cloud.session import CloudSession
from preflight.engine.runstate import CloudReads
from preflight.engine.settings import Settings

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
ADC_HINT = (
    'run "gcloud auth application-default login" (or set GOOGLE_APPLICATION_CREDENTIALS to a service account key '
    "file) on the machine that runs Meshery Server"
)
SDK_HINT = "install the GCP extra: pip install 'meshery-preflight[gcp]'"
# Each API call's deadline, as a multiple of --connect-timeout (a describe is one connect plus a response).
CALL_TIMEOUT_FACTOR = 2.0
FIREWALL_PAGE_SIZE = 500  # the API's maximum
DEFAULT_PRIORITY = 1000
NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp"}
_NETWORK = re.compile(r"projects/(?P<project>[^/]+)/global/networks/(?P<name>[^/]+)$")
_PROVIDER_ID = re.compile(r"^gce://(?P<project>[^/]+)/(?P<zone>[^/]+)/(?P<name>[^/]+)$")
# REST errors read "GET https://host/v1/...?%24alt=json...: message"; the call is named separately.
_REQUEST_PREFIX = re.compile(r"^[A-Z]+ https?://\S+: ")


# The permission (and the predefined role that grants it) each read needs.
ROLES = {
    "clusters.get": "container.clusters.get (roles/container.clusterViewer)",
    "firewalls.list": "compute.firewalls.list (roles/compute.networkViewer)",
    "instances.get": "compute.instances.get (roles/compute.viewer)",
}
IDS_FIX = "Check the project, location and cluster name (the context name, or gcp: in the fleet file)."


def _classify(exc: BaseException, call: str, endpoint: str) -> errors.CloudError:
    """Map the SDKs' exceptions onto cloud.errors: wrong id, missing role, bad login, throttled, no path."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    message = _REQUEST_PREFIX.sub("", str(getattr(exc, "message", "") or exc))
    unreachable_fix = f"Check that this machine reaches the GCP APIs ({endpoint}), or set --gcp-api-endpoint."
    if isinstance(exc, gexc.NotFound):
        return errors.NotFound(f"{call}: not found ({message})", IDS_FIX, call=call, code="404")
    if isinstance(exc, gexc.Forbidden):
        op = call.split(" ", 1)[0]
        role = ROLES.get(op, "read access for " + op)
        return errors.Forbidden(
            f"{call}: permission denied ({message})",
            f"grant the credential {role} on the project",
            permission=role,
            call=call,
            code="403",
        )
    if isinstance(exc, gexc.Unauthorized):
        return errors.Unauthenticated(
            f"{call}: the Google credentials were rejected ({message})", ADC_HINT, call=call, code="401"
        )
    if isinstance(exc, aexc.RefreshError):
        return errors.Unauthenticated(
            f"{call}: the Google credentials were rejected (could not refresh the credentials: {exc})",
            ADC_HINT,
            call=call,
        )
    if isinstance(exc, gexc.TooManyRequests):
        return errors.Throttled(f"{call}: throttled ({message})", call=call, code="429")
    if isinstance(exc, (aexc.TransportError, requests.RequestException, OSError)):
        kind = errors.Timeout if isinstance(exc, requests.Timeout) else errors.Unavailable
        return kind(f"{call} failed: {type(exc).__name__}: {exc}", unreachable_fix, call=call)
    if isinstance(exc, gexc.GoogleAPICallError):
        return errors.CloudError(
            f"{call} failed: {exc.code}: {message}", unreachable_fix, call=call, code=str(exc.code)
        )
    return errors.CloudError(f"{call} failed: {type(exc).__name__}: {exc}", unreachable_fix, call=call)


def _ca_file() -> str | None:
    """requests honours REQUESTS_CA_BUNDLE itself but not SSL_CERT_FILE, which the rest of the tool follows."""
    if os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        return None
    return os.environ.get("SSL_CERT_FILE") or None


class GcpSession(CloudSession):
    """The run's view of the GKE and Compute APIs: one per run, every read shared by every cluster."""

    cloud = "gcp"

    def __init__(self, settings: Settings, reads: CloudReads) -> None:
        super().__init__(settings, reads)
        self.timeout = settings.connect_timeout * CALL_TIMEOUT_FACTOR

    def translate(self, exc: Exception, call: str) -> errors.CloudError:
        return _classify(exc, call, self.endpoint)

    @property
    def endpoint(self) -> str:
        return self.settings.gcp_api_endpoint or "https://container.googleapis.com, https://compute.googleapis.com"

    # -- credentials ------------------------------------------------------------------------------

    def credentials(self) -> Any:
        """Google ADC, looked up once per run; raises errors.NoCredentials with the hint to fix it."""

        def lookup() -> Any:
            try:
                import google.auth
                from google.auth import exceptions as aexc
            except ImportError as exc:  # pragma: no cover - the test extra installs it
                return errors.NoCredentials(f"the GCP SDK is not installed ({exc})", SDK_HINT)
            try:
                import google.cloud.compute_v1  # noqa: F401
                import google.cloud.container_v1  # noqa: F401
            except ImportError as exc:  # pragma: no cover - the test extra installs it
                return errors.NoCredentials(f"the GCP SDK is not installed ({exc})", SDK_HINT)
            try:
                creds, _project = google.auth.default(scopes=list(SCOPES))
            except aexc.DefaultCredentialsError as exc:
                return errors.NoCredentials(f"no Google Application Default Credentials: {exc}", ADC_HINT)
            return creds

        found = self.resource(("adc",), lookup)
        if isinstance(found, errors.CloudError):
            raise found.fresh()
        return found

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"credentials": self.credentials(), "transport": "rest"}
        if self.settings.gcp_api_endpoint:
            # The REST transport keeps an explicit http:// or https:// scheme from api_endpoint.
            kwargs["client_options"] = {"api_endpoint": self.settings.gcp_api_endpoint.rstrip("/")}
        return kwargs

    @staticmethod
    def _trust(client: Any) -> Any:
        ca = _ca_file()
        session = getattr(client.transport, "_session", None)
        if ca and session is not None:
            session.verify = ca
        return client

    def _cached(self, key: tuple[str, ...], call: str, fetch: Callable[[], Any]) -> Any:
        """One HTTP call per key and run, counted under the key's first word."""

        def counted() -> Any:
            self.count(key[0])
            return fetch()

        return self.read(key, counted, call=call)

    # -- reads ------------------------------------------------------------------------------------

    def cluster(self, project: str, location: str, name: str) -> Any:
        """container.projects.locations.clusters.get."""
        path = f"projects/{project}/locations/{location}/clusters/{name}"
        self.credentials()  # a missing credential is errors.NoCredentials, not an API error

        def fetch() -> Any:
            from google.cloud import container_v1

            with container_v1.ClusterManagerClient(**self._client_kwargs()) as client:
                return self._trust(client).get_cluster(name=path, timeout=self.timeout, retry=None)

        return self._cached(("cluster", path), f"clusters.get {path}", fetch)

    def firewalls(self, project: str) -> list[Any]:
        """compute.firewalls.list, every page (each page one cached call)."""
        self.credentials()
        out: list[Any] = []
        token = ""
        for _ in range(1000):  # a bound, not a limit anyone reaches: 500 rules a page
            page = self._firewall_page(project, token)
            out.extend(page.items)
            token = page.next_page_token
            if not token:
                return out
        raise errors.CloudError("firewalls.list kept returning nextPageToken", call=f"firewalls.list {project}")

    def _firewall_page(self, project: str, token: str) -> Any:
        def fetch() -> Any:
            from google.cloud import compute_v1

            request = compute_v1.ListFirewallsRequest(project=project, max_results=FIREWALL_PAGE_SIZE)
            if token:
                request.page_token = token
            with compute_v1.FirewallsClient(**self._client_kwargs()) as client:
                pager = self._trust(client).list(request=request, timeout=self.timeout, retry=None)
                return next(iter(pager.pages))  # the first page only: the next is its own cached call

        return self._cached(("firewalls", project, token), f"firewalls.list {project}", fetch)

    def instance(self, project: str, zone: str, name: str) -> Any:
        """compute.instances.get: a node's real network tags and service accounts."""
        self.credentials()

        def fetch() -> Any:
            from google.cloud import compute_v1

            with compute_v1.InstancesClient(**self._client_kwargs()) as client:
                return self._trust(client).get(
                    project=project, zone=zone, instance=name, timeout=self.timeout, retry=None
                )

        return self._cached(("instance", project, zone, name), f"instances.get {project}/{zone}/{name}", fetch)


# --------------------------------------------------------------------------------------------------
# Control plane endpoints


@dataclass(frozen=True)
class EndpointAccess:
    """Who may reach the control plane, from the new controlPlaneEndpointsConfig or the older fields."""

    source: str  # controlPlaneEndpointsConfig | privateClusterConfig
    ip_enabled: bool = True
    public_enabled: bool = True
    public_endpoint: str = ""
    private_endpoint: str = ""
    global_access: bool = False
    authorized_enabled: bool = False
    authorized: list[tuple[str, str]] = field(default_factory=list)  # (display name, CIDR)
    gcp_public_cidrs: bool = False
    private_enforced: bool = False
    dns_endpoint: str = ""
    dns_external: bool = False

    def as_evidence(self) -> dict[str, Any]:
        return {
            "config": self.source,
            "ip_endpoints": self.ip_enabled,
            "public_endpoint_enabled": self.public_enabled,
            "public_endpoint": self.public_endpoint or None,
            "private_endpoint": self.private_endpoint or None,
            "global_access": self.global_access,
            "authorized_networks": {
                "enabled": self.authorized_enabled,
                "cidrs": [c for _, c in self.authorized],
                "gcp_public_cidrs_access": self.gcp_public_cidrs,
                "private_endpoint_enforced": self.private_enforced,
            },
            "dns_endpoint": self.dns_endpoint or None,
            "dns_allow_external_traffic": self.dns_external,
        }


def _has(msg: Any, name: str) -> bool:
    try:
        return name in msg
    except (TypeError, ValueError):
        return False


def _authorized(config: Any, legacy: bool) -> dict[str, Any]:
    """EndpointAccess's authorized-network fields from a masterAuthorizedNetworksConfig."""
    enabled = bool(config.enabled)
    if _has(config, "private_endpoint_enforcement_enabled"):
        enforced = bool(config.private_endpoint_enforcement_enabled)
    else:
        # Older clusters: authorized networks also bind internal clients of the private endpoint.
        enforced = legacy
    return {
        "authorized_enabled": enabled,
        "authorized": [(b.display_name, b.cidr_block) for b in config.cidr_blocks if b.cidr_block],
        "gcp_public_cidrs": bool(config.gcp_public_cidrs_access_enabled),
        "private_enforced": enabled and enforced,
    }


def endpoint_access(cluster: Any) -> EndpointAccess:
    """Prefer controlPlaneEndpointsConfig (GKE's current model); fall back to privateClusterConfig and
    masterAuthorizedNetworksConfig, which older clusters and older API answers carry alone."""
    pcc = cluster.private_cluster_config
    cpec = cluster.control_plane_endpoints_config
    ipc = cpec.ip_endpoints_config
    dns = cpec.dns_endpoint_config
    new = any(_has(ipc, f) for f in ("enabled", "enable_public_endpoint", "global_access")) or bool(dns.endpoint)
    if new:
        ip_enabled = bool(ipc.enabled) if _has(ipc, "enabled") else True
        public = bool(ipc.enable_public_endpoint) if _has(ipc, "enable_public_endpoint") else True
        public_enabled = ip_enabled and public
        networks = (
            ipc.authorized_networks_config
            if _has(ipc, "authorized_networks_config")
            else cluster.master_authorized_networks_config
        )
        return EndpointAccess(
            "controlPlaneEndpointsConfig",
            ip_enabled=ip_enabled,
            public_enabled=public_enabled,
            public_endpoint=ipc.public_endpoint or pcc.public_endpoint or (cluster.endpoint if public_enabled else ""),
            private_endpoint=ipc.private_endpoint or pcc.private_endpoint,
            global_access=(
                bool(ipc.global_access) if _has(ipc, "global_access") else bool(pcc.master_global_access_config.enabled)
            ),
            dns_endpoint=dns.endpoint,
            dns_external=bool(dns.allow_external_traffic),
            **_authorized(networks, legacy=False),
        )
    public_enabled = not pcc.enable_private_endpoint
    return EndpointAccess(
        "privateClusterConfig",
        public_enabled=public_enabled,
        public_endpoint=pcc.public_endpoint or (cluster.endpoint if public_enabled else ""),
        private_endpoint=pcc.private_endpoint or ("" if public_enabled else cluster.endpoint),
        global_access=bool(pcc.master_global_access_config.enabled),
        **_authorized(cluster.master_authorized_networks_config, legacy=True),
    )


# --------------------------------------------------------------------------------------------------
# Firewall rules


def network_of(cluster: Any, project: str) -> tuple[str, str]:
    """(project, network) of the cluster's VPC; a Shared VPC lives in its host project, and so do its rules."""
    full = cluster.network_config.network
    m = _NETWORK.search(full or "")
    if m:
        return m.group("project"), m.group("name")
    return project, cluster.network or "default"


def network_key(url: str) -> str | None:
    """`projects/P/global/networks/N` from a full or partial network URL."""
    m = _NETWORK.search(url or "")
    return f"projects/{m.group('project')}/global/networks/{m.group('name')}" if m else None


def firewall_rules(firewalls: Iterable[Any], project: str, network: str) -> list[Rule]:
    """Ingress, enabled rules of one VPC as cloud.rules Rules (targets: `tag:X` / `sa:EMAIL`).

    Source tags and source service accounts name instances, never an external origin, so only
    sourceRanges count; an ingress rule with no source at all means 0.0.0.0/0, as GCP applies it.
    """
    want = f"projects/{project}/global/networks/{network}"
    out: list[Rule] = []
    for fw in firewalls:
        if fw.disabled or (fw.direction or "INGRESS").upper() != "INGRESS" or network_key(fw.network) != want:
            continue
        sources = tuple(fw.source_ranges)
        if not sources and not fw.source_tags and not fw.source_service_accounts:
            sources = ("0.0.0.0/0",)
        targets = frozenset({f"tag:{t}" for t in fw.target_tags} | {f"sa:{s}" for s in fw.target_service_accounts})
        priority = fw.priority if _has(fw, "priority") else DEFAULT_PRIORITY
        for action, entries in (("allow", fw.allowed), ("deny", fw.denied)):
            for entry in entries:
                proto = str(entry.I_p_protocol).lower()
                out.append(
                    Rule(
                        provider="gcp",
                        name=fw.name,
                        action=action,
                        sources=sources,
                        ports=tuple(port_ranges(entry.ports)),
                        protocol=_PROTOCOLS.get(proto, proto),
                        priority=int(priority),
                        targets=targets or None,
                    )
                )
    return out


# --------------------------------------------------------------------------------------------------
# Node identities


@dataclass(frozen=True)
class NodeIdentity:
    """What a firewall rule's targets match on a node: its network tags and service accounts."""

    pool: str
    tags: tuple[str, ...]
    service_accounts: tuple[str, ...]
    source: str  # "instance NAME" or "node pool config"
    note: str = ""

    @property
    def targets(self) -> frozenset[str]:
        return frozenset({f"tag:{t}" for t in self.tags} | {f"sa:{s}" for s in self.service_accounts})

    def as_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node_pool": self.pool,
            "tags": list(self.tags),
            "service_accounts": list(self.service_accounts),
            "from": self.source,
        }
        if self.note:
            out["note"] = self.note
        return out


def auto_node_tag(cluster: Any) -> str | None:
    """GKE tags every node `gke-<cluster>-<first 8 of the cluster id>-node`; its own rules target it."""
    cid = str(cluster.id or "")
    return f"gke-{cluster.name}-{cid[:8]}-node" if cid and cluster.name else None


def parse_provider_id(provider_id: str) -> tuple[str, str, str] | None:
    m = _PROVIDER_ID.match(provider_id or "")
    return (m.group("project"), m.group("zone"), m.group("name")) if m else None


def _from_config(cluster: Any, pool: str, note: str = "") -> NodeIdentity:
    config = next((p.config for p in cluster.node_pools if p.name == pool), None)
    tags = list(config.tags) if config is not None else []
    auto = auto_node_tag(cluster)
    if auto and auto not in tags:
        tags.append(auto)
    sa = config.service_account if config is not None else ""
    # "default" is the project's Compute Engine default account, whose email the config does not say.
    sas = (sa,) if sa and sa != "default" else ()
    return NodeIdentity(pool or "(unlabelled nodes)", tuple(tags), sas, "node pool config", note)


def node_identities(api: GcpSession, cluster: Any, nodes: Sequence[dict[str, Any]] | None) -> list[NodeIdentity]:
    """One identity per node pool the cluster's nodes are in: the instance's own tags when a node's
    providerID names it (authoritative), else the node pool's config plus GKE's node tag."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for node in nodes or []:
        labels = (node.get("metadata") or {}).get("labels") or {}
        groups.setdefault(str(labels.get(NODEPOOL_LABEL) or ""), []).append(node)
    if not groups:
        groups = {p.name: [] for p in cluster.node_pools} or {"": []}
    out: list[NodeIdentity] = []
    for pool, members in groups.items():
        where = next(
            (w for w in (parse_provider_id(str((n.get("spec") or {}).get("providerID") or "")) for n in members) if w),
            None,
        )
        if where is None:
            out.append(_from_config(cluster, pool))
            continue
        try:
            inst = api.instance(*where)
        except errors.CloudError as exc:
            out.append(_from_config(cluster, pool, f"instances.get {where[2]} failed ({exc.failure}: {exc.message})"))
            continue
        tags = tuple(inst.tags.items)
        sas = tuple(s.email for s in inst.service_accounts if s.email)
        out.append(NodeIdentity(pool or "(unlabelled nodes)", tags, sas, f"instance {where[2]}"))
    return out


# --------------------------------------------------------------------------------------------------
# Origin


def is_private_origin(cidrs: Sequence[str]) -> bool | None:
    """Every origin CIDR inside private space (terms.md); None without an origin."""
    from preflight.engine.probes.addresses import classify

    if not cidrs:
        return None
    for c in cidrs:
        net = ipaddress.ip_network(c, strict=False)
        if classify(str(net.network_address)) != "private" or classify(str(net.broadcast_address)) != "private":
            return False
    return True
