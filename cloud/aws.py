"""AWS adapter for the cloud checks: credentials, read-only describes, and normalisation into cloud.rules.

boto3 is imported inside functions only: `meshery-preflight --help` and runs without an EKS cluster must
not pay for (or need) the SDK. Every describe is fetched once per run per account and region through the
session's ``read`` (cloud/session.py) and shared by every cluster; ``calls()`` counts the requests actually
sent, so a report can show that a fleet of 200 clusters cost a handful of API calls.

Only Describe*/List*/Get* operations are ever called (`READ_ONLY` guards it). Credentials come from
boto3's standard chain (profiles, SSO, environment); endpoints from AWS_ENDPOINT_URL(_<SERVICE>) and the
CA bundle from AWS_CA_BUNDLE or REQUESTS_CA_BUNDLE, all of which botocore honours natively.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight.cloud import errors
from preflight.cloud.rules import Rule
from preflight.cloud.session import CloudSession
from preflight.engine.runstate import CloudReads
from preflight.engine.settings import Settings

INSTALL_HINT = "install the AWS extra: pip install 'meshery-preflight[aws]'"
READ_ONLY = re.compile(r"^(describe|list|get)_")
EPHEMERAL = (1024, 65535)
# EKS's documented defaults for fields a describe_cluster answer may leave out.
DEFAULT_PUBLIC_ACCESS = True
DEFAULT_PRIVATE_ACCESS = False
DEFAULT_PUBLIC_CIDRS = ("0.0.0.0/0",)

_CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}
_PERMISSION_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
_THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "SlowDown",
}
_UNREACHABLE_FIX = "check this machine's route and proxy to the AWS endpoints (AWS_ENDPOINT_URL, HTTPS_PROXY)"
_IAM_PREFIX = {"elb": "elasticloadbalancing", "elbv2": "elasticloadbalancing"}
_LOCK = threading.Lock()
_PROVIDER_ID = re.compile(r"^aws://[^/]*/(?:[^/]*/)?(?P<id>i-[0-9a-f]+)$")


def credential_hint(profile: str | None) -> str:
    """The one fix for every credential problem: the SSO login of the profile, or the standard variables."""
    return (
        f"configure AWS credentials: aws sso login --profile {profile or '<profile>'}, "
        "or AWS_PROFILE / AWS_ACCESS_KEY_ID"
    )


# --------------------------------------------------------------------------------------------------
# Session, clients, calls


class AwsSession(CloudSession):
    """One profile, region and account of one run: clients, and read-only calls read once per run."""

    cloud = "aws"

    def __init__(
        self, settings: Settings, reads: CloudReads, boto: Any, profile: str | None, region: str, account: str
    ) -> None:
        super().__init__(settings, reads, (account, region))
        self.boto, self.profile, self.region, self.account = boto, profile, region, account
        self.timeout = settings.connect_timeout
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        with _LOCK:
            if service not in self._clients:
                from botocore.config import Config

                cfg = Config(
                    connect_timeout=self.timeout,
                    read_timeout=max(self.timeout * 2, 1.0),
                    retries={"max_attempts": 2, "mode": "standard"},
                    user_agent_extra="meshery-preflight",
                )
                # Session.client is not thread-safe: every client is made under the lock.
                self._clients[service] = self.boto.client(service, region_name=self.region, config=cfg)
            return self._clients[service]

    def translate(self, exc: Exception, call: str) -> errors.CloudError:
        return _translate(exc, self.profile, call) or super().translate(exc, call)

    def call(self, service: str, op: str, **params: Any) -> dict[str, Any]:
        """One read-only request; botocore's exceptions become cloud.errors with a fix."""
        if not READ_ONLY.match(op):
            raise ValueError(f"{service}.{op} is not a read-only call")
        client = self.client(service)
        self.count(f"{service}.{_op_name(client, op)}")
        with _translated(self, service, client, op):
            result: dict[str, Any] = getattr(client, op)(**params)
        return result

    def pages(self, service: str, op: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list; each page is one counted request."""
        if not READ_ONLY.match(op):
            raise ValueError(f"{service}.{op} is not a read-only call")
        client = self.client(service)
        if not client.can_paginate(op):
            return list(self.call(service, op, **params).get(key) or [])
        items: list[dict[str, Any]] = []
        name = f"{service}.{_op_name(client, op)}"
        with _translated(self, service, client, op):
            for page in client.get_paginator(op).paginate(**params):
                self.count(name)
                items.extend(page.get(key) or [])
        return items


def _op_name(client: Any, op: str) -> str:
    try:
        return str(client.meta.method_to_api_mapping.get(op) or op)
    except AttributeError:
        return op


@contextlib.contextmanager
def _translated(session: AwsSession, service: str, client: Any, op: str) -> Iterator[None]:
    """Turn botocore's exceptions into cloud.errors, naming the IAM action or the credential fix."""
    try:
        yield
    except errors.CloudError:
        raise
    except Exception as exc:
        err = _translate(exc, session.profile, f"{_IAM_PREFIX.get(service, service)}:{_op_name(client, op)}")
        if err is None:
            raise
        raise err from exc


def _translate(exc: Exception, profile: str | None, action: str) -> errors.CloudError | None:
    """The cloud.errors for a botocore exception raised by the IAM ``action``; None for anything else."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error") or {}
        code, msg = str(err.get("Code") or ""), str(err.get("Message") or "")
        if code in _CREDENTIAL_CODES:
            return errors.Unauthenticated(
                f"AWS rejected the credentials ({code})", credential_hint(profile), call=action, code=code
            )
        if code in _PERMISSION_CODES:
            return errors.Forbidden(
                f"not allowed to call {action}",
                f"grant the read-only action {action} to the identity the tool uses",
                permission=action,
                call=action,
                code=code,
            )
        if code in _THROTTLING_CODES:
            return errors.Throttled(f"AWS throttled {action} ({code}): {msg}", call=action, code=code)
        kind = errors.NotFound if code.endswith(("NotFound", "NotFoundException")) else errors.CloudError
        return kind(f"{action} failed: {code}: {msg}", call=action, code=code)
    if _is_credential_error(exc):
        return _no_credentials(exc, profile)
    if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return errors.Timeout(f"the AWS API did not answer {action}: {exc}", _UNREACHABLE_FIX, call=action)
    if isinstance(exc, bx.EndpointConnectionError):
        return errors.Unavailable(f"the AWS API did not answer {action}: {exc}", _UNREACHABLE_FIX, call=action)
    if isinstance(exc, bx.BotoCoreError):
        return errors.CloudError(f"{action} failed: {exc}", call=action)
    return None


def _no_credentials(exc: BaseException, profile: str | None) -> errors.CloudError:
    """An SSO login that expired is a rejected credential; anything else here is no usable credential."""
    rejected = type(exc).__name__ in ("UnauthorizedSSOTokenError", "SSOTokenLoadError", "TokenRetrievalError")
    kind = errors.Unauthenticated if rejected else errors.NoCredentials
    return kind(f"no usable AWS credentials ({exc})", credential_hint(profile))


def _is_credential_error(exc: BaseException) -> bool:
    from botocore import exceptions as bx

    names = (
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "ProfileNotFound",
        "SSOError",
        "SSOTokenLoadError",
        "UnauthorizedSSOTokenError",
        "TokenRetrievalError",
        "InvalidConfigError",
    )
    kinds = tuple(k for k in (getattr(bx, n, None) for n in names) if isinstance(k, type))
    return isinstance(exc, kinds)


def connect(
    settings: Settings, reads: CloudReads, profile: str | None, region: str, account: str | None = None
) -> AwsSession:
    """The run's session for this profile and region, credentials resolved (raises cloud.errors).

    Credentials are resolved once per run and profile, failures included, so 200 clusters without a credential
    do not walk the credential chain 200 times. A missing credential is found without a request; the account
    id (the cache key) comes from the fleet file, the credential, or one sts:GetCallerIdentity per run.
    """
    try:
        import boto3  # noqa: F401  (only to tell a missing SDK apart)
    except ImportError as exc:
        raise errors.NoCredentials("boto3 is not installed", INSTALL_HINT) from exc
    found = reads.resource(("aws", "credentials", profile or ""), lambda: _credentials(profile))
    if isinstance(found, errors.CloudError):
        raise found.fresh()
    boto, frozen = found
    acct = account or str(getattr(frozen, "account_id", "") or "")
    if not acct:
        ask = AwsSession(settings, reads, boto, profile, region, "")
        acct = ask.read(
            ("sts.get_caller_identity", profile or ""),
            lambda: str(ask.call("sts", "get_caller_identity").get("Account") or ""),
        )
    session: AwsSession = reads.resource(
        ("aws", "session", profile or "", region, acct),
        lambda: AwsSession(settings, reads, boto, profile, region, acct),
    )
    return session


def _credentials(profile: str | None) -> tuple[Any, Any] | errors.CloudError:
    """This process's boto3 session for ``profile`` and its frozen credentials, or why there are none."""
    import boto3

    try:
        with _LOCK:
            boto = boto3.Session(profile_name=profile or None)
        creds = boto.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception as exc:
        if _is_credential_error(exc):
            return _no_credentials(exc, profile)
        raise
    if frozen is None or not frozen.access_key:
        return errors.NoCredentials("no AWS credentials", credential_hint(profile))
    return boto, frozen


def api_calls(reads: CloudReads) -> dict[str, int]:
    """AWS requests sent so far in this run, by "service.Operation" (a copy, safe to put in evidence)."""
    return reads.calls("aws")


# --------------------------------------------------------------------------------------------------
# EKS


@dataclass(frozen=True)
class EndpointConfig:
    """resourcesVpcConfig with EKS's defaults applied where the answer leaves a field out."""

    public: bool
    private: bool
    public_cidrs: list[str]
    vpc_id: str | None
    subnet_ids: list[str]
    security_group_ids: list[str]
    cluster_security_group_id: str | None
    defaulted: list[str] = field(default_factory=list)


def endpoint_config(cluster: dict[str, Any]) -> EndpointConfig:
    """Normalise describe_cluster["cluster"]: real AWS fills every field; older answers and emulators omit some."""
    vpc = cluster.get("resourcesVpcConfig") or {}
    defaulted = [k for k in ("endpointPublicAccess", "endpointPrivateAccess", "publicAccessCidrs") if k not in vpc]
    public = bool(vpc.get("endpointPublicAccess", DEFAULT_PUBLIC_ACCESS))
    cidrs = [str(c) for c in vpc.get("publicAccessCidrs") or []] or list(DEFAULT_PUBLIC_CIDRS)
    return EndpointConfig(
        public=public,
        private=bool(vpc.get("endpointPrivateAccess", DEFAULT_PRIVATE_ACCESS)),
        public_cidrs=cidrs,
        vpc_id=vpc.get("vpcId") or None,
        subnet_ids=[str(s) for s in vpc.get("subnetIds") or []],
        security_group_ids=[str(s) for s in vpc.get("securityGroupIds") or []],
        cluster_security_group_id=vpc.get("clusterSecurityGroupId") or None,
        defaulted=defaulted,
    )


def describe_cluster(acct: AwsSession, name: str) -> dict[str, Any]:
    """The cluster; errors.NotFound (code ResourceNotFoundException) when the name is wrong."""
    cluster: dict[str, Any] = acct.read(
        ("eks.describe_cluster", name), lambda: acct.call("eks", "describe_cluster", name=name)["cluster"]
    )
    return cluster


def subnets(acct: AwsSession) -> dict[str, dict[str, Any]]:
    return dict(
        acct.read(("ec2.describe_subnets",), lambda: _by(acct.pages("ec2", "describe_subnets", "Subnets"), "SubnetId"))
    )


def vpcs(acct: AwsSession) -> dict[str, dict[str, Any]]:
    return dict(acct.read(("ec2.describe_vpcs",), lambda: _by(acct.pages("ec2", "describe_vpcs", "Vpcs"), "VpcId")))


def cluster_vpc(acct: AwsSession, cfg: EndpointConfig) -> str | None:
    """resourcesVpcConfig.vpcId, or the VPC of the cluster's subnets when the answer lacks it."""
    if cfg.vpc_id:
        return cfg.vpc_id
    known = subnets(acct)
    for sid in cfg.subnet_ids:
        if sid in known and known[sid].get("VpcId"):
            return str(known[sid]["VpcId"])
    return None


def vpc_cidrs(acct: AwsSession, vpc_id: str) -> list[str]:
    vpc = vpcs(acct).get(vpc_id) or {}
    out = [
        str(a["CidrBlock"])
        for a in vpc.get("CidrBlockAssociationSet") or []
        if (a.get("CidrBlockState") or {}).get("State", "associated") == "associated" and a.get("CidrBlock")
    ]
    out += [str(a["Ipv6CidrBlock"]) for a in vpc.get("Ipv6CidrBlockAssociationSet") or [] if a.get("Ipv6CidrBlock")]
    if not out and vpc.get("CidrBlock"):
        out.append(str(vpc["CidrBlock"]))
    return out


@dataclass(frozen=True)
class PrivatePath:
    """A way from another network into the cluster's VPC."""

    kind: str  # vpc-peering | transit-gateway | vpn
    id: str
    state: str
    usable: bool
    remote_cidrs: list[str] = field(default_factory=list)  # peering: the other VPC's CIDRs
    detail: str = ""

    def as_evidence(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "state": self.state,
            "usable": self.usable,
            "remote_cidrs": self.remote_cidrs,
            "detail": self.detail,
        }

    def label(self) -> str:
        extra = f" to {', '.join(self.remote_cidrs)}" if self.remote_cidrs else ""
        return f"{self.kind} {self.id}{extra} ({self.state})"


def _peer_cidrs(info: dict[str, Any]) -> list[str]:
    cidrs = [str(c["CidrBlock"]) for c in info.get("CidrBlockSet") or [] if c.get("CidrBlock")]
    cidrs += [str(c["Ipv6CidrBlock"]) for c in info.get("Ipv6CidrBlockSet") or [] if c.get("Ipv6CidrBlock")]
    if not cidrs and info.get("CidrBlock"):
        cidrs.append(str(info["CidrBlock"]))
    return cidrs


def private_paths(acct: AwsSession, vpc_id: str) -> list[PrivatePath]:
    """Peering connections, transit gateway attachments and VPN gateways/connections of the VPC."""
    out: list[PrivatePath] = []
    peerings = acct.read(
        ("ec2.describe_vpc_peering_connections",),
        lambda: acct.pages("ec2", "describe_vpc_peering_connections", "VpcPeeringConnections"),
    )
    for pc in peerings:
        req, acc = pc.get("RequesterVpcInfo") or {}, pc.get("AccepterVpcInfo") or {}
        if vpc_id not in (req.get("VpcId"), acc.get("VpcId")):
            continue
        other = acc if req.get("VpcId") == vpc_id else req
        state = str((pc.get("Status") or {}).get("Code") or "")
        out.append(
            PrivatePath(
                "vpc-peering",
                str(pc.get("VpcPeeringConnectionId")),
                state,
                state == "active",
                _peer_cidrs(other),
                f"peer {other.get('VpcId')} in {other.get('OwnerId', '?')}",
            )
        )
    attachments = acct.read(
        ("ec2.describe_transit_gateway_vpc_attachments",),
        lambda: acct.pages("ec2", "describe_transit_gateway_vpc_attachments", "TransitGatewayVpcAttachments"),
    )
    for att in attachments:
        if att.get("VpcId") != vpc_id:
            continue
        state = str(att.get("State") or "")
        out.append(
            PrivatePath(
                "transit-gateway",
                str(att.get("TransitGatewayAttachmentId")),
                state,
                state == "available",
                detail=f"gateway {att.get('TransitGatewayId')}",
            )
        )
    gateways = acct.read(
        ("ec2.describe_vpn_gateways",), lambda: acct.pages("ec2", "describe_vpn_gateways", "VpnGateways")
    )
    attached = [
        g
        for g in gateways
        if any(a.get("VpcId") == vpc_id and a.get("State") == "attached" for a in g.get("VpcAttachments") or [])
    ]
    if attached:
        connections = acct.read(
            ("ec2.describe_vpn_connections",), lambda: acct.pages("ec2", "describe_vpn_connections", "VpnConnections")
        )
        for g in attached:
            gid = str(g.get("VpnGatewayId"))
            conns = [c for c in connections if c.get("VpnGatewayId") == gid]
            up = [c for c in conns if c.get("State") == "available"]
            state = f"{g.get('State')}, {len(up)}/{len(conns)} connections available"
            out.append(
                PrivatePath(
                    "vpn",
                    gid,
                    state,
                    g.get("State") == "available" and bool(up),
                    detail=", ".join(str(c.get("VpnConnectionId")) for c in conns),
                )
            )
    return out


@dataclass(frozen=True)
class VpcReach:
    """A VPC as the private-connectivity decision sees it: its own CIDRs and the ways into it."""

    vpc_id: str
    cidrs: tuple[str, ...]
    paths: tuple[PrivatePath, ...]


def vpc_reach(acct: AwsSession, vpc_id: str) -> VpcReach:
    return VpcReach(vpc_id, tuple(vpc_cidrs(acct, vpc_id)), tuple(private_paths(acct, vpc_id)))


# --------------------------------------------------------------------------------------------------
# Load balancers


@dataclass(frozen=True)
class LoadBalancer:
    kind: str  # classic | application | network | gateway
    name: str
    dns_name: str
    scheme: str
    vpc_id: str | None
    subnet_ids: list[str]
    security_group_ids: list[str]
    arn: str = ""

    def label(self) -> str:
        return f"{self.kind} load balancer {self.name}"

    def as_evidence(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "name": self.name,
            "dns_name": self.dns_name,
            "scheme": self.scheme,
            "vpc": self.vpc_id,
            "subnets": self.subnet_ids,
            "security_groups": self.security_group_ids,
            "arn": self.arn,
        }


def _v2(lb: dict[str, Any]) -> LoadBalancer:
    return LoadBalancer(
        kind=str(lb.get("Type") or "application"),  # the type, not the ARN: some emulators write app/ for NLBs
        name=str(lb.get("LoadBalancerName") or ""),
        dns_name=str(lb.get("DNSName") or ""),
        scheme=str(lb.get("Scheme") or ""),
        vpc_id=lb.get("VpcId"),
        subnet_ids=[str(z["SubnetId"]) for z in lb.get("AvailabilityZones") or [] if z.get("SubnetId")],
        security_group_ids=[str(s) for s in lb.get("SecurityGroups") or []],
        arn=str(lb.get("LoadBalancerArn") or ""),
    )


def _classic(lb: dict[str, Any]) -> LoadBalancer:
    return LoadBalancer(
        kind="classic",
        name=str(lb.get("LoadBalancerName") or ""),
        dns_name=str(lb.get("DNSName") or ""),
        scheme=str(lb.get("Scheme") or ""),
        vpc_id=lb.get("VPCId"),
        subnet_ids=[str(s) for s in lb.get("Subnets") or []],
        security_group_ids=[str(s) for s in lb.get("SecurityGroups") or []],
    )


def load_balancers(acct: AwsSession) -> list[LoadBalancer]:
    v2 = acct.read(
        ("elbv2.describe_load_balancers",), lambda: acct.pages("elbv2", "describe_load_balancers", "LoadBalancers")
    )
    classic = acct.read(
        ("elb.describe_load_balancers",),
        lambda: acct.pages("elb", "describe_load_balancers", "LoadBalancerDescriptions"),
    )
    return [_v2(lb) for lb in v2] + [_classic(lb) for lb in classic]


def _norm_host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def find_load_balancer(acct: AwsSession, hostname: str | None, ip: str | None = None) -> LoadBalancer | None:
    """The ELB/ALB/NLB whose DNSName is exactly the hostname (case-insensitive), or whose fixed IP is `ip`."""
    lbs = load_balancers(acct)
    if hostname:
        want = _norm_host(hostname)
        # "dualstack." is the AAAA-answering alias of the same load balancer.
        want = want.removeprefix("dualstack.")
        for lb in lbs:
            if _norm_host(lb.dns_name).removeprefix("dualstack.") == want:
                return lb
    if ip:
        raw = acct.read(
            ("elbv2.describe_load_balancers",), lambda: acct.pages("elbv2", "describe_load_balancers", "LoadBalancers")
        )
        for item in raw:
            for zone in item.get("AvailabilityZones") or []:
                for addr in zone.get("LoadBalancerAddresses") or []:
                    if ip in (addr.get("IpAddress"), addr.get("PrivateIPv4Address"), addr.get("IPv6Address")):
                        return _v2(item)
    return None


# --------------------------------------------------------------------------------------------------
# Security groups


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    vpc_id: str | None
    description: str
    tags: dict[str, str]
    ingress: list[dict[str, Any]]

    def label(self) -> str:
        return f"{self.id} ({self.name})" if self.name else self.id

    @property
    def managed_by_kubernetes(self) -> bool:
        """Rules the cloud controller rewrites from the Service's loadBalancerSourceRanges."""
        return self.description.startswith("Security group for Kubernetes ELB") or any(
            k.startswith(("kubernetes.io/cluster/", "elbv2.k8s.aws/")) or k == "service.k8s.aws/stack"
            for k in self.tags
        )


def security_groups(acct: AwsSession) -> dict[str, SecurityGroup]:
    def fetch() -> dict[str, SecurityGroup]:
        out = {}
        for g in acct.pages("ec2", "describe_security_groups", "SecurityGroups"):
            gid = str(g.get("GroupId"))
            out[gid] = SecurityGroup(
                id=gid,
                name=str(g.get("GroupName") or ""),
                vpc_id=g.get("VpcId"),
                description=str(g.get("Description") or ""),
                tags={str(t.get("Key")): str(t.get("Value")) for t in g.get("Tags") or []},
                ingress=list(g.get("IpPermissions") or []),
            )
        return out

    return dict(acct.read(("ec2.describe_security_groups",), fetch))


def prefix_list_cidrs(acct: AwsSession, pl_id: str) -> list[str]:
    entries = acct.read(
        ("ec2.get_managed_prefix_list_entries", pl_id),
        lambda: acct.pages("ec2", "get_managed_prefix_list_entries", "Entries", PrefixListId=pl_id),
    )
    return [str(e["Cidr"]) for e in entries if e.get("Cidr")]


_PROTOCOLS = {
    "-1": "all",
    "all": "all",
    "6": "tcp",
    "tcp": "tcp",
    "17": "udp",
    "udp": "udp",
    "1": "icmp",
    "icmp": "icmp",
    "58": "icmpv6",
    "icmpv6": "icmpv6",
}


def _ports(proto: str, lo: Any, hi: Any) -> tuple[tuple[int, int], ...]:
    if proto not in ("tcp", "udp") or lo is None or hi is None or int(lo) == -1:
        return ()
    return ((int(lo), int(hi)),)


def _perm_text(proto: str, ports: tuple[tuple[int, int], ...]) -> str:
    if proto == "all":
        return "all traffic"
    if not ports:
        return f"{proto} all ports"
    lo, hi = ports[0]
    return f"{proto} {lo}" if lo == hi else f"{proto} {lo}-{hi}"


def sg_rules(group: SecurityGroup, prefix_lists: Callable[[str], list[str]]) -> tuple[list[Rule], list[str]]:
    """Ingress rules as cloud.rules.Rule (one per source), and notes on references that never match an origin.

    Prefix lists are resolved through `prefix_lists`; security-group references (pairs) only admit
    traffic from instances in that group, never an external origin, so they become notes, not rules.
    """
    rules: list[Rule] = []
    notes: list[str] = []
    for perm in group.ingress:
        proto = _PROTOCOLS.get(str(perm.get("IpProtocol")), str(perm.get("IpProtocol")))
        ports = _ports(proto, perm.get("FromPort"), perm.get("ToPort"))
        what = _perm_text(proto, ports)

        found: list[tuple[list[str], str, Any]] = []
        for r in perm.get("IpRanges") or []:
            if r.get("CidrIp"):
                found.append(([str(r["CidrIp"])], str(r["CidrIp"]), r.get("Description")))
        for r in perm.get("Ipv6Ranges") or []:
            if r.get("CidrIpv6"):
                found.append(([str(r["CidrIpv6"])], str(r["CidrIpv6"]), r.get("Description")))
        for r in perm.get("PrefixListIds") or []:
            pl = str(r.get("PrefixListId") or "")
            if pl:
                found.append((prefix_lists(pl), f"prefix list {pl}", r.get("Description")))
        for sources, src_text, desc in found:
            name = f"{what} from {src_text}" + (f" ({desc})" if desc else "")
            rules.append(
                Rule(
                    provider="aws-sg",
                    name=name,
                    action="allow",
                    sources=tuple(sources),
                    ports=ports,
                    protocol=proto,
                    container=group.label(),
                )
            )
        for r in perm.get("UserIdGroupPairs") or []:
            ref = str(r.get("GroupId") or r.get("GroupName") or "?")
            notes.append(
                f"{group.label()}: {what} from security group {ref} (a reference: admits members of "
                "that group, never an external origin)"
            )
    return rules, notes


def reference_rules(group: SecurityGroup) -> list[Rule]:
    """The group's ingress permissions from other security groups, one Rule per referenced group, its id as
    the only source: they admit traffic from network interfaces that carry that group (the control plane's
    carry the cluster security group), which no CIDR evaluation can see."""
    rules: list[Rule] = []
    for perm in group.ingress:
        proto = _PROTOCOLS.get(str(perm.get("IpProtocol")), str(perm.get("IpProtocol")))
        ports = _ports(proto, perm.get("FromPort"), perm.get("ToPort"))
        for r in perm.get("UserIdGroupPairs") or []:
            ref = str(r.get("GroupId") or r.get("GroupName") or "?")
            desc = f" ({r['Description']})" if r.get("Description") else ""
            rules.append(
                Rule(
                    provider="aws-sg",
                    name=f"{_perm_text(proto, ports)} from security group {ref}{desc}",
                    action="allow",
                    sources=(ref,),
                    ports=ports,
                    protocol=proto,
                    container=group.label(),
                )
            )
    return rules


def group_rules(acct: AwsSession, group_ids: Iterable[str]) -> tuple[list[Rule], list[str], list[str]]:
    """Rules of several groups (evaluated together with UNION), notes, and ids not found."""
    groups = security_groups(acct)
    rules: list[Rule] = []
    notes: list[str] = []
    missing: list[str] = []
    for gid in group_ids:
        g = groups.get(gid)
        if g is None:
            missing.append(gid)
            continue
        r, n = sg_rules(g, lambda pl: prefix_list_cidrs(acct, pl))
        rules += r
        notes += n
    return rules, notes, missing


@dataclass(frozen=True)
class GroupsView:
    """Security groups as the UNION decision sees them: their rules, references and who manages them."""

    group_ids: tuple[str, ...]
    rules: tuple[Rule, ...]
    references: tuple[str, ...]  # security-group references: never match an external origin
    not_found: tuple[str, ...]
    labels: tuple[str, ...]  # one per group id: "sg-... (name)", or the bare id when it is not found
    managed: tuple[str, ...]  # ids whose rules the cloud controller rewrites


def groups_view(acct: AwsSession, group_ids: Sequence[str]) -> GroupsView:
    rules, notes, unknown = group_rules(acct, group_ids)
    groups = security_groups(acct)
    return GroupsView(
        group_ids=tuple(group_ids),
        rules=tuple(rules),
        references=tuple(notes),
        not_found=tuple(unknown),
        labels=tuple(groups[g].label() if g in groups else g for g in group_ids),
        managed=tuple(g for g in group_ids if g in groups and groups[g].managed_by_kubernetes),
    )


# --------------------------------------------------------------------------------------------------
# Instances


@dataclass(frozen=True)
class Instance:
    id: str
    subnet_id: str | None
    vpc_id: str | None
    security_group_ids: list[str]
    private_ips: tuple[str, ...] = ()  # every private IPv4 address of every interface


def instance_id(provider_id: str) -> str | None:
    """aws:///eu-west-1a/i-0abc → i-0abc; None for Fargate or other providers."""
    m = _PROVIDER_ID.match(provider_id.strip())
    return m.group("id") if m else None


def instances(acct: AwsSession) -> dict[str, Instance]:
    def fetch() -> dict[str, Instance]:
        out = {}
        for res in acct.pages("ec2", "describe_instances", "Reservations"):
            for i in res.get("Instances") or []:
                iid = str(i.get("InstanceId"))
                out[iid] = Instance(
                    iid,
                    i.get("SubnetId"),
                    i.get("VpcId"),
                    [str(g["GroupId"]) for g in i.get("SecurityGroups") or [] if g.get("GroupId")],
                    _private_ips(i),
                )
        return out

    return dict(acct.read(("ec2.describe_instances",), fetch))


def _private_ips(instance: dict[str, Any]) -> tuple[str, ...]:
    found = [instance.get("PrivateIpAddress")]
    for eni in instance.get("NetworkInterfaces") or []:
        found += [a.get("PrivateIpAddress") for a in eni.get("PrivateIpAddresses") or []]
    return tuple(dict.fromkeys(str(a) for a in found if a))


def instance_with_ip(acct: AwsSession, private_ip: str) -> Instance | None:
    """The instance that has ``private_ip`` (a node's InternalIP), from the run's one instance listing."""
    return next((i for i in instances(acct).values() if private_ip in i.private_ips), None)


# --------------------------------------------------------------------------------------------------
# Network ACLs


@dataclass(frozen=True)
class NetworkAcl:
    id: str
    vpc_id: str | None
    is_default: bool
    entries: list[dict[str, Any]]

    def label(self) -> str:
        return f"{self.id} (default)" if self.is_default else self.id


def network_acls(acct: AwsSession) -> list[tuple[NetworkAcl, set[str]]]:
    """Every NACL of the region with the subnets explicitly associated to it."""

    def fetch() -> list[tuple[NetworkAcl, set[str]]]:
        return [
            (
                NetworkAcl(
                    str(a.get("NetworkAclId")), a.get("VpcId"), bool(a.get("IsDefault")), list(a.get("Entries") or [])
                ),
                {str(s.get("SubnetId")) for s in a.get("Associations") or [] if s.get("SubnetId")},
            )
            for a in acct.pages("ec2", "describe_network_acls", "NetworkAcls")
        ]

    return list(acct.read(("ec2.describe_network_acls",), fetch))


def acl_for_subnet(acct: AwsSession, subnet_id: str, vpc_id: str | None) -> tuple[NetworkAcl | None, bool]:
    """The subnet's NACL and whether the association is explicit; without one, the VPC's default NACL."""
    table = network_acls(acct)
    for acl, members in table:
        if subnet_id in members:
            return acl, True
    if vpc_id is None:
        vpc_id = (subnets(acct).get(subnet_id) or {}).get("VpcId")
    default = next((a for a, _ in table if a.is_default and a.vpc_id == vpc_id), None)
    return default, False


def nacl_rules(acl: NetworkAcl, egress: bool) -> list[Rule]:
    """One direction of a NACL as FIRST_MATCH rules (priority = rule number); 32767 is the '*' deny."""
    out: list[Rule] = []
    for e in acl.entries:
        if bool(e.get("Egress")) != egress:
            continue
        proto = _PROTOCOLS.get(str(e.get("Protocol")), str(e.get("Protocol")))
        pr = e.get("PortRange") or {}
        ports = _ports(proto, pr.get("From"), pr.get("To")) if pr else ()
        number = int(e.get("RuleNumber") or 0)
        source = e.get("CidrBlock") or e.get("Ipv6CidrBlock")
        if not source:
            continue
        name = "rule *" if number == 32767 else f"rule {number}"
        text = f"{e.get('RuleAction')} {_perm_text(proto, ports)} {'to' if egress else 'from'} {source}"
        out.append(
            Rule(
                provider="aws-nacl",
                name=f"{name} ({text})",
                action=str(e.get("RuleAction") or "deny"),
                sources=(str(source),),
                ports=ports,
                protocol=proto,
                priority=number,
                direction="egress" if egress else "ingress",
                container=acl.label(),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# helpers


def _by(items: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {str(i.get(key)): i for i in items}
