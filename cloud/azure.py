"""Azure Resource Manager reads for the AKS checks, and Azure NSG rules in the shared rule model.

One credential per run, one client pair per subscription, every describe fetched once per run (the
session's ``read``, cloud/session.py) and every HTTP call bounded by connect/read timeouts with at most one retry: a
fleet of AKS clusters in one subscription costs each read once, and a dead endpoint costs seconds.

The Azure SDK is imported inside functions only: the CLI starts (and non-Azure runs finish) without
loading it. The client pipeline is the SDK's own, minus ARM's auto resource-provider registration
(a POST on a 409): this tool only reads.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from preflight.cloud import errors
from preflight.cloud.rules import FIRST_MATCH, Rule, Verdict, evaluate, port_ranges
from preflight.cloud.session import CloudSession
from preflight.engine.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

# The run's breaker: once ARM is unreachable, every later read fails at once instead of timing out again.
UNREACHABLE = "azure:unreachable"
HINT = "az login, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET"

# settings.azure_cloud -> (ARM endpoint, azure.identity.AzureAuthorityHosts attribute)
CLOUDS: dict[str, tuple[str, str]] = {
    "public": ("https://management.azure.com", "AZURE_PUBLIC_CLOUD"),
    "china": ("https://management.chinacloudapi.cn", "AZURE_CHINA"),
    "usgov": ("https://management.usgovcloudapi.net", "AZURE_GOVERNMENT"),
}

AZURE_LB_ADDRESS = "168.63.129.16/32"  # the AzureLoadBalancer service tag (health probes, platform DNS)
_PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
_WORLD_TOKENS = ("*", "any", "0.0.0.0/0", "::/0", "internet")


READER_FIX = (
    "Give the credential Reader on the cluster's resource group, its node resource group (MC_...) and the node "
    "subnet's VNet (Microsoft.ContainerService/managedClusters/read, Microsoft.Network/networkSecurityGroups/read, "
    "Microsoft.Network/virtualNetworks/read)."
)
_FIXES: dict[type[errors.CloudError], str] = {
    errors.NotFound: "Check azure.subscription, azure.resource_group and azure.cluster in the fleet file.",
    errors.Unauthenticated: f"Refresh the Azure login ({HINT}); for sovereign clouds set --azure-cloud.",
    errors.Unavailable: "Check --azure-arm-endpoint / --azure-cloud, the proxy (HTTPS_PROXY) and the CA "
    "(REQUESTS_CA_BUNDLE) from here.",
    errors.Timeout: "ARM answered too slowly: retry, or raise --connect-timeout.",
}
_ACTION = re.compile(r"perform action '([^'/]+/[^']+)'")  # a provider action, as real ARM names it


# -- endpoints and credentials ----------------------------------------------------------------------


def endpoints(settings: Settings) -> tuple[str, str, str]:
    """(ARM base URL, token scope, login authority) for the run's cloud; --azure-arm-endpoint wins for the URL."""
    from azure.identity import AzureAuthorityHosts

    arm, authority_attr = CLOUDS.get(settings.azure_cloud, CLOUDS["public"])
    base = (settings.azure_arm_endpoint or arm).rstrip("/")
    return base, f"{arm}/.default", str(getattr(AzureAuthorityHosts, authority_attr))


def _ca_bundle(settings: Settings) -> str | bool:
    """--cloud-ca-file, else REQUESTS_CA_BUNDLE (all requests reads), else SSL_CERT_FILE, else the system store."""
    return settings.cloud_ca_file or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


class _CachedCredential:
    """Hands out one token per scope until shortly before it expires (the CLI credential spawns `az` per call)."""

    def __init__(self, inner: TokenCredential) -> None:
        self.inner = inner
        self._tokens: dict[tuple[str, ...], AccessToken] = {}
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with self._lock:
            tok = self._tokens.get(scopes)
            if tok is not None and tok.expires_on > time.time() + 300 and not kwargs.get("claims"):
                return tok
        tok = self.inner.get_token(*scopes, **kwargs)
        with self._lock:
            self._tokens[scopes] = tok
        return tok


@dataclass
class _Credential:
    credential: _CachedCredential | None = None
    problem: errors.CloudError | None = None


def _build_credential(settings: Settings, authority: str) -> TokenCredential:
    if settings.azure_credential is not None:
        return cast("TokenCredential", settings.azure_credential(authority))
    from azure.identity import DefaultAzureCredential

    # process_timeout bounds the Azure CLI / PowerShell / azd steps; the probe thread bounds the rest.
    return DefaultAzureCredential(authority=authority, process_timeout=max(settings.exec_timeout, 1.0))


class AzureSession(CloudSession):
    """The run's view of ARM: one credential, a client pair per subscription, every read shared by every cluster."""

    cloud = "azure"


def credential(session: AzureSession) -> _CachedCredential:
    """The run's credential, proven by getting a token once; raises errors.NoCredentials otherwise."""
    settings = session.settings

    def fetch() -> _Credential:
        from azure.core.exceptions import ClientAuthenticationError

        _base, scope, authority = endpoints(settings)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                cred = _CachedCredential(_build_credential(settings, authority))
                cred.get_token(scope)
                box["cred"] = cred
            except ClientAuthenticationError as exc:  # CredentialUnavailableError is one
                box["problem"] = _no_credential(_first_line(exc))
            except Exception as exc:  # a broken credential chain must not crash the run
                box["problem"] = _no_credential(f"{type(exc).__name__}: {_first_line(exc)}")

        budget = settings.exec_timeout + settings.connect_timeout
        t = threading.Thread(target=work, daemon=True, name="azure-credential")
        t.start()
        t.join(budget)
        if t.is_alive():
            return _Credential(problem=_no_credential(f"no Azure token within {budget:g}s"))
        return _Credential(box.get("cred"), box.get("problem"))

    outcome = session.resource(("credential", settings.azure_cloud), fetch)
    if outcome.credential is None:
        raise (outcome.problem or _no_credential("")).fresh()
    return outcome.credential


def _no_credential(detail: str) -> errors.NoCredentials:
    """DefaultAzureCredential reports "none configured" and "none works" alike: both are no usable credential."""
    return errors.NoCredentials("no Azure credential", HINT, detail=detail)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _clients(session: AzureSession, subscription: str) -> tuple[Any, Any]:
    """ContainerServiceClient and NetworkManagementClient for a subscription, built once per run."""
    settings = session.settings

    def build() -> tuple[Any, Any]:
        from azure.core.pipeline import policies as p
        from azure.mgmt.containerservice import ContainerServiceClient
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy
        from azure.mgmt.network import NetworkManagementClient

        cred = credential(session)
        base, scope, _authority = endpoints(settings)
        transport: dict[str, Any] = {
            "connection_timeout": settings.connect_timeout,
            "read_timeout": max(settings.connect_timeout * 2, 5.0),
            "connection_verify": _ca_bundle(settings),
        }

        def pipeline() -> list[Any]:
            # The generated default list, without ARMAutoResourceProviderRegistrationPolicy (it POSTs).
            return [
                p.RequestIdPolicy(),
                p.HeadersPolicy(),
                p.UserAgentPolicy(sdk_moniker="meshery-preflight"),
                p.ProxyPolicy(),
                p.ContentDecodePolicy(),
                p.RedirectPolicy(),
                p.RetryPolicy(
                    retry_total=1, retry_backoff_factor=0.2, retry_backoff_max=1.0, timeout=settings.connect_timeout * 3
                ),
                ARMChallengeAuthenticationPolicy(cred, scope),  # a BearerTokenCredentialPolicy
                p.CustomHookPolicy(),
                p.SensitiveHeaderCleanupPolicy(),
                ARMHttpLoggingPolicy(),
            ]

        common: dict[str, Any] = {"base_url": base, "credential_scopes": [scope], **transport}
        return (
            ContainerServiceClient(cred, subscription, policies=pipeline(), **common),
            NetworkManagementClient(cred, subscription, policies=pipeline(), **common),
        )

    clients: tuple[Any, Any] = session.resource(("clients", subscription.lower()), build)
    return clients


def _mapped(exc: BaseException, base: str, what: str, action: str) -> errors.CloudError:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, errors.CloudError):
        return exc
    prefix, line = f"cannot read {what}: ", _first_line(exc)
    err: errors.CloudError
    if isinstance(exc, ClientAuthenticationError):
        status = getattr(exc, "status_code", None)
        err = errors.Unauthenticated(f"{prefix}ARM rejected the credential ({status or 'no token'}): {line}")
    elif isinstance(exc, ResourceNotFoundError):
        err = errors.NotFound(prefix + line)
    elif isinstance(exc, HttpResponseError) and exc.status_code == 403:
        found = _ACTION.search(str(exc))
        err = errors.Forbidden(f"{prefix}403 {line}", READER_FIX, permission=found.group(1) if found else action)
    elif isinstance(exc, HttpResponseError) and exc.status_code == 429:
        err = errors.Throttled(f"{prefix}ARM throttled the read (429): {line}")
    elif isinstance(exc, HttpResponseError):
        code = getattr(getattr(exc, "error", None), "code", None) or ""
        err = errors.CloudError(f"{prefix}ARM answered {exc.status_code}: {line or code}")
    elif isinstance(exc, ServiceResponseError):
        err = errors.Timeout(f"{prefix}ARM at {base} did not answer in time: {line}")
    elif isinstance(exc, ServiceRequestError):
        err = errors.Unavailable(f"{prefix}cannot reach ARM at {base}: {line}")
    else:
        err = errors.CloudError(f"{prefix}{type(exc).__name__}: {line}")
    err.hint = err.hint or _FIXES.get(type(err), "")
    err.call = action
    return err


def _describe(session: AzureSession, key: tuple[str, ...], what: str, action: str, fetch: Callable[[], Any]) -> Any:
    """Fetch once per run (failures too: 200 clusters must not retry a 403 or a dead endpoint 200 times)."""
    base = endpoints(session.settings)[0]
    down = session.reads.tripped(UNREACHABLE)
    if down:
        raise errors.Unavailable(f"cannot read {what}: {down}", _FIXES[errors.Unavailable], call=action)

    def counted() -> Any:
        session.count(action)
        try:
            return fetch()
        except Exception as exc:
            err = _mapped(exc, base, what, action)
            if isinstance(err, errors.Unavailable):
                session.reads.trip(UNREACHABLE, err.message.removeprefix(f"cannot read {what}: "))
            return err

    return session.read(tuple(k.lower() for k in key), counted, call=action)


# -- what the checks read ---------------------------------------------------------------------------


def parse_id(resource_id: str) -> dict[str, str]:
    """ARM id segments by lower-cased type: subscriptions, resourcegroups, virtualnetworks, subnets..."""
    parts = [p for p in (resource_id or "").split("/") if p]
    return {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}


@dataclass(frozen=True)
class AksCluster:
    id: str
    name: str
    subscription: str
    resource_group: str
    fqdn: str | None
    private_fqdn: str | None
    private: bool
    public_fqdn: bool
    authorized_ranges: tuple[str, ...]
    private_dns_zone: str | None
    node_resource_group: str | None
    pools: tuple[tuple[str, str | None], ...]  # (agent pool, vnet_subnet_id)
    public_network_access: str | None = None

    @property
    def subnet_ids(self) -> list[str | None]:
        """Distinct node subnets; None is AKS's managed VNet (in the node resource group)."""
        out: list[str | None] = []
        seen: set[str] = set()
        for _pool, sid in self.pools:
            if (sid or "").lower() not in seen:
                seen.add((sid or "").lower())
                out.append(sid)
        return out or [None]


@dataclass(frozen=True)
class NsgRule:
    name: str
    priority: int
    direction: str  # Inbound | Outbound
    access: str  # Allow | Deny
    protocol: str  # Tcp | Udp | Icmp | Esp | Ah | *
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    ports: tuple[str, ...]
    source_asgs: bool = False
    destination_asgs: bool = False
    default: bool = False


@dataclass(frozen=True)
class Nsg:
    id: str
    name: str
    resource_group: str
    rules: tuple[NsgRule, ...]
    subnet_ids: tuple[str, ...] = ()
    nic_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vnet:
    id: str
    name: str
    address_space: tuple[str, ...]
    peered_space: tuple[str, ...] = ()

    @property
    def tag_space(self) -> tuple[str, ...]:
        """The VirtualNetwork service tag: the VNet's own space plus its peers' (and gateway routes, unseen)."""
        return self.address_space + self.peered_space


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    nsg_id: str | None


def _get(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _text(value: Any, default: str = "") -> str:
    """The wire value: the SDK's str-enums print as 'SecurityRuleAccess.ALLOW' on Python 3.11+."""
    if value is None or value == "":
        return default
    return str(value.value) if isinstance(value, Enum) else str(value)


def _strs(single: Any, plural: Any) -> tuple[str, ...]:
    """ARM carries either the singular or the plural field (sourceAddressPrefix / sourceAddressPrefixes)."""
    out = [str(single)] if single not in (None, "") else []
    out += [str(v) for v in plural or [] if v not in (None, "") and str(v) not in out]
    return tuple(out)


def _cluster_from(mc: Any, subscription: str) -> AksCluster:
    prof = _get(mc, "api_server_access_profile")
    ids = parse_id(str(_get(mc, "id") or ""))
    profiles = _get(mc, "agent_pool_profiles") or []
    pools = tuple((str(_get(ap, "name") or ""), _get(ap, "vnet_subnet_id") or None) for ap in profiles)
    return AksCluster(
        id=str(_get(mc, "id") or ""),
        name=str(_get(mc, "name") or ""),
        subscription=subscription,
        resource_group=ids.get("resourcegroups", ""),
        fqdn=_get(mc, "fqdn") or None,
        private_fqdn=_get(mc, "private_fqdn") or None,
        private=bool(_get(prof, "enable_private_cluster")),
        public_fqdn=bool(_get(prof, "enable_private_cluster_public_fqdn")),
        authorized_ranges=tuple(_get(prof, "authorized_ip_ranges") or ()),
        private_dns_zone=_text(_get(prof, "private_dns_zone")) or None,
        node_resource_group=_get(mc, "node_resource_group") or None,
        pools=pools,
        public_network_access=_text(_get(mc, "public_network_access")) or None,
    )


def _rule_from(r: Any, default: bool) -> NsgRule:
    return NsgRule(
        name=str(_get(r, "name") or "?"),
        priority=int(_get(r, "priority") or 0),
        direction=_text(_get(r, "direction"), "Inbound"),
        access=_text(_get(r, "access"), "Deny"),
        protocol=_text(_get(r, "protocol"), "*"),
        sources=_strs(_get(r, "source_address_prefix"), _get(r, "source_address_prefixes")),
        destinations=_strs(_get(r, "destination_address_prefix"), _get(r, "destination_address_prefixes")),
        ports=_strs(_get(r, "destination_port_range"), _get(r, "destination_port_ranges")) or ("*",),
        source_asgs=bool(_get(r, "source_application_security_groups")),
        destination_asgs=bool(_get(r, "destination_application_security_groups")),
        default=default,
    )


def _nsg_from(n: Any) -> Nsg:
    nid = str(_get(n, "id") or "")
    rules = [_rule_from(r, False) for r in _get(n, "security_rules") or []]
    rules += [_rule_from(r, True) for r in _get(n, "default_security_rules") or []]
    if not any(r.default for r in rules):
        rules += list(DEFAULT_RULES)  # ARM always has them; a trimmed response must not read as "allow"
    return Nsg(
        id=nid,
        name=str(_get(n, "name") or ""),
        resource_group=parse_id(nid).get("resourcegroups", ""),
        rules=tuple(rules),
        subnet_ids=tuple(str(_get(s, "id")) for s in _get(n, "subnets") or []),
        nic_ids=tuple(str(_get(s, "id")) for s in _get(n, "network_interfaces") or []),
    )


def _vnet_from(v: Any) -> Vnet:
    space = tuple(_get(_get(v, "address_space"), "address_prefixes") or ())
    peered: list[str] = []
    for peering in _get(v, "virtual_network_peerings") or []:
        if _text(_get(peering, "peering_state"), "Connected").lower() != "connected":
            continue
        peered += [p for p in _get(_get(peering, "remote_address_space"), "address_prefixes") or [] if p not in peered]
    return Vnet(str(_get(v, "id") or ""), str(_get(v, "name") or ""), space, tuple(peered))


def managed_cluster(session: AzureSession, subscription: str, resource_group: str, name: str) -> AksCluster:
    def fetch() -> AksCluster:
        aks, _net = _clients(session, subscription)
        return _cluster_from(aks.managed_clusters.get(resource_group, name), subscription)

    return _describe(
        session,
        ("managed-cluster", subscription, resource_group, name),
        f"managed cluster {resource_group}/{name}",
        "Microsoft.ContainerService/managedClusters/read",
        fetch,
    )


def subscription_clusters(session: AzureSession, subscription: str) -> list[AksCluster]:
    """Every AKS cluster of a subscription: one paged list, shared by every context that lacks fleet ids."""

    def fetch() -> list[AksCluster]:
        aks, _net = _clients(session, subscription)
        return [_cluster_from(mc, subscription) for mc in aks.managed_clusters.list()]

    return _describe(
        session,
        ("managed-clusters", subscription),
        f"AKS clusters of {subscription}",
        "Microsoft.ContainerService/managedClusters/read",
        fetch,
    )


def find_cluster(session: AzureSession, subscription: str, host: str) -> AksCluster | None:
    """The cluster whose API FQDN (public or private) is the kubeconfig's server host."""
    h = host.lower().rstrip(".")
    for c in subscription_clusters(session, subscription):
        if h in {(c.fqdn or "").lower(), (c.private_fqdn or "").lower()}:
            return c
    return None


def group_nsgs(session: AzureSession, subscription: str, resource_group: str) -> list[Nsg]:
    def fetch() -> list[Nsg]:
        _aks, net = _clients(session, subscription)
        return [_nsg_from(n) for n in net.network_security_groups.list(resource_group)]

    return _describe(
        session,
        ("nsgs", subscription, resource_group),
        f"the NSGs of {resource_group}",
        "Microsoft.Network/networkSecurityGroups/read",
        fetch,
    )


def nsg(session: AzureSession, nsg_id: str) -> Nsg:
    p = parse_id(nsg_id)
    sub, rg, name = p.get("subscriptions", ""), p.get("resourcegroups", ""), p.get("networksecuritygroups", "")

    def fetch() -> Nsg:
        _aks, net = _clients(session, sub)
        return _nsg_from(net.network_security_groups.get(rg, name))

    return _describe(
        session, ("nsg", sub, rg, name), f"nsg {rg}/{name}", "Microsoft.Network/networkSecurityGroups/read", fetch
    )


def subnet(session: AzureSession, subnet_id: str) -> Subnet:
    p = parse_id(subnet_id)
    sub, rg = p.get("subscriptions", ""), p.get("resourcegroups", "")
    vnet_name, name = p.get("virtualnetworks", ""), p.get("subnets", "")

    def fetch() -> Subnet:
        _aks, net = _clients(session, sub)
        s = net.subnets.get(rg, vnet_name, name)
        return Subnet(str(_get(s, "id") or subnet_id), name, _get(_get(s, "network_security_group"), "id") or None)

    return _describe(
        session,
        ("subnet", sub, rg, vnet_name, name),
        f"subnet {vnet_name}/{name}",
        "Microsoft.Network/virtualNetworks/subnets/read",
        fetch,
    )


def vnet_of_subnet(session: AzureSession, subnet_id: str) -> Vnet:
    p = parse_id(subnet_id)
    sub, rg, name = p.get("subscriptions", ""), p.get("resourcegroups", ""), p.get("virtualnetworks", "")

    def fetch() -> Vnet:
        _aks, net = _clients(session, sub)
        return _vnet_from(net.virtual_networks.get(rg, name))

    return _describe(
        session, ("vnet", sub, rg, name), f"VNet {rg}/{name}", "Microsoft.Network/virtualNetworks/read", fetch
    )


def group_vnets(session: AzureSession, subscription: str, resource_group: str) -> list[Vnet]:
    """AKS's managed VNet lives in the node resource group."""

    def fetch() -> list[Vnet]:
        _aks, net = _clients(session, subscription)
        return [_vnet_from(v) for v in net.virtual_networks.list(resource_group)]

    return _describe(
        session,
        ("vnets", subscription, resource_group),
        f"the VNets of {resource_group}",
        "Microsoft.Network/virtualNetworks/read",
        fetch,
    )


# -- NSG rules in the shared rule model ---------------------------------------------------------------


DEFAULT_RULES = (
    NsgRule(
        "AllowVnetInBound",
        65000,
        "Inbound",
        "Allow",
        "*",
        ("VirtualNetwork",),
        ("VirtualNetwork",),
        ("*",),
        default=True,
    ),
    NsgRule(
        "AllowAzureLoadBalancerInBound",
        65001,
        "Inbound",
        "Allow",
        "*",
        ("AzureLoadBalancer",),
        ("*",),
        ("*",),
        default=True,
    ),
    NsgRule("DenyAllInBound", 65500, "Inbound", "Deny", "*", ("*",), ("*",), ("*",), default=True),
)


def _complement(world: str, holes: Iterable[str]) -> list[str]:
    nets: list[Any] = [ipaddress.ip_network(world)]
    for h in holes:
        hole = ipaddress.ip_network(h)
        if hole.version != nets[0].version:
            continue
        out: list[Any] = []
        for n in nets:
            if hole.subnet_of(n):
                out.extend(n.address_exclude(hole))
            elif not n.subnet_of(hole):
                out.append(n)
        nets = out
    return [str(n) for n in ipaddress.collapse_addresses(nets)]


# The Internet service tag, as terms.md counts it: every address that is not private.
INTERNET: tuple[str, ...] = tuple(_complement("0.0.0.0/0", _PRIVATE) + _complement("::/0", _PRIVATE))


def expand(prefix: str, vnet_space: Sequence[str]) -> list[str] | None:
    """A rule's address prefix as CIDRs; None for service tags this tool cannot expand offline."""
    p = prefix.strip()
    low = p.lower()
    if low in ("*", "any"):
        return ["0.0.0.0/0", "::/0"]
    if low == "internet":
        return list(INTERNET)
    if low == "virtualnetwork":
        return list(vnet_space) if vnet_space else list(_PRIVATE)
    if low == "azureloadbalancer":
        return [AZURE_LB_ADDRESS]
    try:
        return [str(ipaddress.ip_network(p, strict=False))]
    except ValueError:
        return None


def _ports(specs: Sequence[str]) -> tuple[tuple[int, int], ...] | None:
    """() is every port (the model's convention); None when nothing parses."""
    if any(s.strip() in ("*", "0-65535") for s in specs):
        return ()
    return tuple(port_ranges(specs)) or None


def _covers(cidrs: Sequence[str], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for c in cidrs:
        n = ipaddress.ip_network(c, strict=False)
        if n.version == ip.version and ip in n:
            return True
    return False


@dataclass
class Layer:
    """One NSG on the way in (the subnet's, the NICs'), its inbound rules for one destination."""

    nsg: Nsg
    rules: list[Rule] = field(default_factory=list)
    world: set[str] = field(default_factory=set)  # labels of allow rules from *, Internet, 0.0.0.0/0
    by_label: dict[str, NsgRule] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def layer(nsg_: Nsg, vnet_space: Sequence[str], target: str | None) -> Layer:
    """Normalise an NSG's inbound rules into cloud.rules.Rule, keeping those whose destination covers `target`."""
    out = Layer(nsg_)
    for r in nsg_.rules:
        if r.direction.lower() != "inbound":
            continue
        label_name = f"{r.name} (priority {r.priority}{', default' if r.default else ''})"
        if r.destination_asgs:
            out.notes.append(f"{r.name}: destination application security groups assumed to include the nodes")
        elif target is not None:
            dests: list[str] = []
            for d in r.destinations or ("*",):
                cidrs = expand(d, vnet_space)
                if cidrs is None:
                    out.notes.append(f"{r.name}: destination tag {d!r} not evaluated (assumed not to match)")
                else:
                    dests += cidrs
            if not _covers(dests, target):
                continue
        sources: list[str] = []
        for s in r.sources:
            cidrs = expand(s, vnet_space)
            if cidrs is None:
                out.notes.append(f"{r.name}: source tag {s!r} not evaluated (assumed not to match the origin)")
            else:
                sources += cidrs
        if r.source_asgs:
            out.notes.append(f"{r.name}: source application security groups not evaluated")
        ports = _ports(r.ports)
        if ports is None or not sources:
            continue
        proto = r.protocol.lower()
        rule = Rule(
            provider="azure",
            name=label_name,
            action="allow" if r.access.lower() == "allow" else "deny",
            sources=tuple(sources),
            ports=ports,
            protocol="all" if proto in ("*", "any") else proto,
            priority=r.priority,
            container=f"nsg {nsg_.name}",
        )
        out.rules.append(rule)
        out.by_label[rule.label()] = r
        if rule.action == "allow" and any(s.strip().lower() in _WORLD_TOKENS for s in r.sources):
            out.world.add(rule.label())
    return out


@dataclass
class PathVerdict:
    """The origin through every NSG on the path: allowed only where each one allows."""

    verdict: Verdict
    blockers: list[tuple[Layer, list[str], list[str]]]  # (layer, blocked CIDRs, deciding rule labels)
    world_open: list[str]


def through(layers: Sequence[Layer], origin: Sequence[str], port: int) -> PathVerdict:
    current = list(origin)
    blocked: list[str] = []
    blockers: list[tuple[Layer, list[str], list[str]]] = []
    for lay in layers:
        if not current:
            break
        v = evaluate(lay.rules, current, port, semantics=FIRST_MATCH)
        if v.blocked:
            why = evaluate(lay.rules, v.blocked, port, semantics=FIRST_MATCH).deciding
            blockers.append((lay, v.blocked, why))
            blocked += v.blocked
        current = v.allowed
    # Name what blocks when anything does (that is what to change), else what allows.
    deciding: list[str] = []
    for _lay, _b, why in blockers:
        deciding += [d for d in why if d not in deciding]
    if not blockers:
        for lay in layers:
            deciding += [
                d for d in evaluate(lay.rules, current, port, semantics=FIRST_MATCH).deciding if d not in deciding
            ]
    state = "allowed" if current and not blocked else "partial" if current else "blocked"
    verdict = Verdict(state=state, allowed=current, blocked=blocked, deciding=deciding)
    return PathVerdict(verdict, blockers, world_open(layers, port))


def world_open(layers: Sequence[Layer], port: int) -> list[str]:
    """Allow rules from the whole internet that actually let internet addresses through every NSG."""
    if not layers:
        return []
    current: list[str] = list(INTERNET)
    for lay in layers:
        current = evaluate(lay.rules, current, port, semantics=FIRST_MATCH).allowed
        if not current:
            return []
    found: list[str] = []
    for lay in layers:
        used = [d for d in evaluate(lay.rules, current, port, semantics=FIRST_MATCH).deciding if d in lay.world]
        if not used:
            return []
        found += used
    return found


def free_priority(nsg_: Nsg, below: int) -> int | None:
    """A custom-rule priority (100-4096) not in use and evaluated before `below`."""
    used = {r.priority for r in nsg_.rules if r.direction.lower() == "inbound" and not r.default}
    for p in range(min(below - 1, 4096), 99, -1):
        if p not in used:
            return p
    return None
