"""A realistic AWS account in moto, served on loopback, for the EKS cloud checks' tests and demos.

:class:`AwsLab` runs moto's server (``ThreadedMotoServer``) on 127.0.0.1 with an ephemeral port and
seeds, per :class:`EksSetup`, what an EKS cluster's account holds: a VPC with public and private
subnets, an internet gateway and route tables, the load balancer's and the nodes' security groups,
NACLs (the VPC's default one and optionally a custom one), the EKS cluster itself, the Broker's load
balancer (NLB, ALB or classic ELB), instances for the nodes and, when asked, a peering connection, a
transit gateway attachment or a VPN. It returns every identifier and the load balancer's DNSName, which
a lab cluster's Broker Service publishes (:meth:`EksLabCluster.meshery_setup`) and a LabDNS maps to the
broker's loopback address.

Like the rest of the lab it fakes the world and never imports ``checks``: it encodes what the account
holds, never what a check should conclude. The code under test reaches it through boto3's standard
``AWS_ENDPOINT_URL`` (:meth:`AwsLab.env`).

moto's gaps, which the adapter must survive and the tests cover separately: describe_cluster has no
vpcId and no defaults for omitted endpoint fields (the lab adds clusterSecurityGroupId, as EKS reports it,
unless the setup says not to); NLB ARNs say ``app/``;
classic ELB DNS names always say us-east-1; custom NACLs lack the ``*`` (32767) deny entries.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight_lab.meshery import MesherySetup
from preflight_lab.serving import Startable

__all__ = ["ACCOUNT", "AclEntry", "AwsLab", "EksLabCluster", "EksSetup", "SgRule"]

ACCOUNT = "123456789012"  # moto's default account
_AMI = "ami-12c6146b"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_KEYS = {"AWS_ACCESS_KEY_ID": "AKIALABLABLABLAB0000", "AWS_SECRET_ACCESS_KEY": "lab-secret-not-a-real-key"}
NODE_PORT_RANGE = (30000, 32767)


@dataclass(frozen=True)
class SgRule:
    """One ingress permission: from a CIDR, a managed prefix list (made here) or another group.

    ``ports=None`` means every port; ``group`` is "lb", "nodes", "cluster" (the cluster security group, which
    the control plane's network interfaces carry) or "self" (a security-group reference).
    """

    ports: tuple[int, int] | None
    cidr: str | None = None
    prefix_list: Sequence[str] | None = None
    group: str | None = None
    protocol: str = "tcp"
    description: str = ""


@dataclass(frozen=True)
class AclEntry:
    """One NACL entry (protocol "6" tcp, "-1" all); ``ports=None`` with tcp means every port."""

    number: int
    action: str
    cidr: str
    ports: tuple[int, int] | None = None
    protocol: str = "6"
    egress: bool = False


# What a healthy account usually has: the Broker's port open to the Server's office, nodes open to the LB.
OFFICE = "203.0.113.0/24"
DEFAULT_LB_RULES = (SgRule((4222, 4222), cidr=OFFICE, description="meshery server"),)
DEFAULT_NODE_RULES = (
    SgRule(NODE_PORT_RANGE, group="lb", description="from the load balancer"),
    SgRule(None, group="self", protocol="-1", description="node to node"),
)


@dataclass
class EksSetup:
    """One EKS cluster and the account pieces around it.

    ``endpoint_public``/``endpoint_private``/``public_access_cidrs`` = None leave the field out of the
    create call. ``connectivity`` holds any of "peering", "tgw", "vpn". ``lb`` is "network",
    "application", "classic" or None; ``lb_security_groups`` None means the usual (an NLB made by the
    cloud controller has none). ``nacl_inbound``/``nacl_outbound`` (either set) make a custom NACL on
    the subnets named by ``nacl_on`` ("public", "private", "all"); otherwise the default NACL applies.
    """

    name: str
    vpc_cidr: str | None = None
    endpoint_public: bool | None = True
    endpoint_private: bool | None = True
    public_access_cidrs: Sequence[str] | None = (OFFICE,)
    connectivity: Sequence[str] = ()
    peer_cidr: str = "10.250.0.0/16"
    lb: str | None = "network"
    lb_scheme: str = "internet-facing"
    lb_security_groups: bool | None = None
    lb_sg_rules: Sequence[SgRule] = DEFAULT_LB_RULES
    node_sg_rules: Sequence[SgRule] = DEFAULT_NODE_RULES
    # The cluster security group's ingress (EKS creates it with "all traffic from itself"; none by default here)
    # and whether describe_cluster reports it as clusterSecurityGroupId.
    cluster_sg_rules: Sequence[SgRule] = ()
    report_cluster_sg: bool = True
    nacl_inbound: Sequence[AclEntry] | None = None
    nacl_outbound: Sequence[AclEntry] | None = None
    nacl_on: str = "all"
    nodes: int = 1
    nodes_in: str = "private"
    node_port: int = 31222
    listener_port: int = 4222


@dataclass
class EksLabCluster:
    """Everything seeded for one EksSetup: the ids a test asserts on."""

    setup: EksSetup
    region: str
    vpc_id: str
    vpc_cidr: str
    public_subnets: list[str]
    private_subnets: list[str]
    route_tables: list[str]
    internet_gateway: str
    cluster_sg: str
    lb_sg: str
    node_sg: str
    default_nacl: str
    custom_nacl: str | None = None
    lb_name: str | None = None
    lb_dns_name: str | None = None
    lb_arn: str | None = None
    instance_ids: list[str] = field(default_factory=list)
    provider_ids: list[str] = field(default_factory=list)
    private_ips: list[str] = field(default_factory=list)  # one per instance: the node's InternalIP
    peering: str | None = None
    peer_vpc: str | None = None
    tgw_attachment: str | None = None
    vpn_gateway: str | None = None
    vpn_connection: str | None = None
    prefix_lists: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.setup.name

    def aws_ids(self) -> dict[str, str]:
        """The fleet file's ``aws:`` block for this cluster."""
        return {"region": self.region, "cluster_name": self.name}

    def meshery_setup(self, broker_address: str, **overrides: Any) -> MesherySetup:
        """A current-generation Broker whose LoadBalancer Service publishes this cluster's LB hostname."""
        opts: dict[str, Any] = {
            "service_type": "LoadBalancer" if self.lb_dns_name else "NodePort",
            "lb_hostname": self.lb_dns_name,
            "broker_address": broker_address,
            "node_port": self.setup.node_port,
            "node_provider_id": self.provider_ids[0] if self.provider_ids else None,
            "broker_port": self.setup.listener_port,
        }
        opts.update(overrides)
        return MesherySetup(**opts)


class AwsLab(Startable):
    """moto on 127.0.0.1:<ephemeral>, reset on start, seeded cluster by cluster with :meth:`add`."""

    def __init__(self, region: str = "eu-west-1") -> None:
        self.region = region
        self._server: Any = None
        self.endpoint = ""
        self.clusters: dict[str, EksLabCluster] = {}
        self._clients: dict[str, Any] = {}
        self._vpcs = 0
        self._requests: list[str] = []
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> AwsLab:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._log_requests(server)
        host, port = server.get_host_and_port()
        self._server, self.endpoint = server, f"http://{host}:{port}"
        # moto's backends are process-wide: start from an empty account whatever ran before.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10)
        return self

    def _log_requests(self, server: Any) -> None:
        """Record the service of every API request moto answers (its own /moto-api aside)."""
        wsgi = server._server  # werkzeug's server: its request handler calls wsgi.app per request
        inner = wsgi.app

        def logged(environ: dict[str, Any], start_response: Any) -> Any:
            if not str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
                scope = _CREDENTIAL_SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
                with self._lock:
                    self._requests.append(scope.group(1) if scope else "?")
            return inner(environ, start_response)

        wsgi.app = logged

    def requests(self) -> list[str]:
        """The service (from the request's SigV4 scope) of each API request answered since the last clear."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def env(self) -> dict[str, str]:
        """What the code under test needs: boto3's standard endpoint override, fake keys, no metadata service."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            **_KEYS,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str) -> Any:
        """A client for seeding (and for tests that change the account): explicit endpoint and keys, no env."""
        if service not in self._clients:
            import boto3

            session = boto3.session.Session(
                aws_access_key_id=_KEYS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=_KEYS["AWS_SECRET_ACCESS_KEY"],
                region_name=self.region,
            )
            self._clients[service] = session.client(service, endpoint_url=self.endpoint)
        return self._clients[service]

    # -- seeding -----------------------------------------------------------------------------------

    def add(self, setup: EksSetup) -> EksLabCluster:
        if setup.name in self.clusters:
            raise ValueError(f"cluster {setup.name!r} already seeded")
        ec2 = self.client("ec2")
        self._vpcs += 1
        cidr = setup.vpc_cidr or f"10.{10 + self._vpcs}.0.0/16"
        net = ipaddress.ip_network(cidr)
        halves = list(net.subnets(new_prefix=min(net.prefixlen + 4, 28)))
        vpc = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=_tags("vpc", f"eksctl-{setup.name}-cluster/VPC"))
        vpc_id = vpc["Vpc"]["VpcId"]
        zones = [f"{self.region}a", f"{self.region}b"]
        public, private = [], []
        for i, az in enumerate(zones):
            public.append(
                self._subnet(vpc_id, str(halves[i]), az, f"{setup.name}-public-{az}", "kubernetes.io/role/elb")
            )
            private.append(
                self._subnet(
                    vpc_id, str(halves[i + 2]), az, f"{setup.name}-private-{az}", "kubernetes.io/role/internal-elb"
                )
            )
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
        rt_public = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=rt_public, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        rt_private = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        for sn in public:
            ec2.associate_route_table(RouteTableId=rt_public, SubnetId=sn)
        for sn in private:
            ec2.associate_route_table(RouteTableId=rt_private, SubnetId=sn)
        cluster_sg = self._sg(vpc_id, f"eks-cluster-sg-{setup.name}", "EKS created security group applied to ENI")
        lb_sg = self._sg(vpc_id, f"k8s-meshery-{setup.name}-lb", "Broker load balancer")
        node_sg = self._sg(vpc_id, f"eks-{setup.name}-nodes", "EKS node group")
        lab = EksLabCluster(
            setup,
            self.region,
            vpc_id,
            cidr,
            public,
            private,
            [rt_public, rt_private],
            igw,
            cluster_sg,
            lb_sg,
            node_sg,
            default_nacl=self._default_nacl(vpc_id),
        )
        groups = {"lb": lb_sg, "nodes": node_sg, "cluster": cluster_sg}
        self._ingress(lab, lb_sg, setup.lb_sg_rules, {**groups, "self": lb_sg})
        self._ingress(lab, node_sg, setup.node_sg_rules, {**groups, "self": node_sg})
        self._ingress(lab, cluster_sg, setup.cluster_sg_rules, {**groups, "self": cluster_sg})
        if setup.nacl_inbound is not None or setup.nacl_outbound is not None:
            on = {"public": public, "private": private, "all": public + private}[setup.nacl_on]
            lab.custom_nacl = self._nacl(vpc_id, on, [*(setup.nacl_inbound or ()), *(setup.nacl_outbound or ())])
        vpc_config: dict[str, Any] = {"subnetIds": public + private, "securityGroupIds": [cluster_sg]}
        for key, value in (
            ("endpointPublicAccess", setup.endpoint_public),
            ("endpointPrivateAccess", setup.endpoint_private),
        ):
            if value is not None:
                vpc_config[key] = value
        if setup.public_access_cidrs is not None:
            vpc_config["publicAccessCidrs"] = list(setup.public_access_cidrs)
        self._create_cluster(setup, vpc_config, cluster_sg if setup.report_cluster_sg else None)
        node_subnets = public if setup.nodes_in == "public" else private
        for k in range(setup.nodes):
            sn = node_subnets[k % len(node_subnets)]
            inst = ec2.run_instances(
                ImageId=_AMI,
                MinCount=1,
                MaxCount=1,
                InstanceType="m5.large",
                SubnetId=sn,
                SecurityGroupIds=[node_sg, cluster_sg],
                TagSpecifications=_tags("instance", f"{setup.name}-ng-1-node-{k + 1}"),
            )
            i = inst["Instances"][0]
            lab.instance_ids.append(i["InstanceId"])
            lab.provider_ids.append(f"aws:///{i['Placement']['AvailabilityZone']}/{i['InstanceId']}")
            lab.private_ips.append(str(i["PrivateIpAddress"]))
        if setup.lb:
            self._load_balancer(lab, public if setup.lb_scheme == "internet-facing" else private)
        self._connectivity(lab)
        self.clusters[setup.name] = lab
        return lab

    def _create_cluster(self, setup: EksSetup, vpc_config: dict[str, Any], cluster_sg: str | None) -> None:
        """create_cluster; with ``cluster_sg``, the request also carries clusterSecurityGroupId (an output field
        the API model does not let a request name, so it is put into the body before sending), which moto
        stores with the rest of resourcesVpcConfig and describe_cluster then reports, as EKS does."""
        eks = self.client("eks")

        def with_cluster_sg(request: Any, **_: Any) -> None:
            body = json.loads(request.data)
            body["resourcesVpcConfig"]["clusterSecurityGroupId"] = cluster_sg
            request.data = json.dumps(body).encode()

        event = "before-sign.eks.CreateCluster"
        if cluster_sg:
            eks.meta.events.register(event, with_cluster_sg)
        try:
            eks.create_cluster(
                name=setup.name,
                version="1.30",
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-{setup.name}",
                resourcesVpcConfig=vpc_config,
            )
        finally:
            if cluster_sg:
                eks.meta.events.unregister(event, with_cluster_sg)

    def _subnet(self, vpc_id: str, cidr: str, az: str, name: str, role_tag: str) -> str:
        sn = self.client("ec2").create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=az,
            TagSpecifications=[
                {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}, {"Key": role_tag, "Value": "1"}]}
            ],
        )
        return str(sn["Subnet"]["SubnetId"])

    def _sg(self, vpc_id: str, name: str, description: str) -> str:
        return str(
            self.client("ec2").create_security_group(GroupName=name, Description=description, VpcId=vpc_id)["GroupId"]
        )

    def _ingress(self, lab: EksLabCluster, group_id: str, rules: Sequence[SgRule], groups: Mapping[str, str]) -> None:
        if not rules:
            return
        ec2 = self.client("ec2")
        perms = []
        for r in rules:
            every = r.ports is None and r.protocol in ("-1", "all")
            perm: dict[str, Any] = {"IpProtocol": "-1" if every else r.protocol}
            if r.ports is not None:
                perm.update(FromPort=r.ports[0], ToPort=r.ports[1])
            elif perm["IpProtocol"] != "-1":
                perm.update(FromPort=0, ToPort=65535)
            desc = {"Description": r.description} if r.description else {}
            if r.cidr:
                key = "Ipv6Ranges" if ":" in r.cidr else "IpRanges"
                perm[key] = [{"CidrIpv6" if ":" in r.cidr else "CidrIp": r.cidr, **desc}]
            if r.prefix_list is not None:
                pl = ec2.create_managed_prefix_list(
                    PrefixListName=f"{lab.name}-pl-{len(lab.prefix_lists) + 1}",
                    MaxEntries=max(len(r.prefix_list), 1),
                    AddressFamily="IPv4",
                    Entries=[{"Cidr": c} for c in r.prefix_list],
                )["PrefixList"]["PrefixListId"]
                lab.prefix_lists.append(pl)
                perm["PrefixListIds"] = [{"PrefixListId": pl, **desc}]
            if r.group:
                perm["UserIdGroupPairs"] = [{"GroupId": groups[r.group], **desc}]
            perms.append(perm)
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=perms)

    def _default_nacl(self, vpc_id: str) -> str:
        acls = self.client("ec2").describe_network_acls(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}]
        )["NetworkAcls"]
        return str(acls[0]["NetworkAclId"])

    def _nacl(self, vpc_id: str, subnets: Sequence[str], entries: Sequence[AclEntry]) -> str:
        ec2 = self.client("ec2")
        acl = str(ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]["NetworkAclId"])
        for e in entries:
            kw: dict[str, Any] = {}
            if e.protocol in ("6", "17"):
                lo, hi = e.ports or (0, 65535)
                kw["PortRange"] = {"From": lo, "To": hi}
            ec2.create_network_acl_entry(
                NetworkAclId=acl,
                RuleNumber=e.number,
                Protocol=e.protocol,
                RuleAction=e.action,
                Egress=e.egress,
                CidrBlock=e.cidr,
                **kw,
            )
        by_subnet = {
            a["SubnetId"]: a["NetworkAclAssociationId"]
            for n in ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]
            for a in n.get("Associations") or []
        }
        for sn in subnets:
            ec2.replace_network_acl_association(AssociationId=by_subnet[sn], NetworkAclId=acl)
        return acl

    def _load_balancer(self, lab: EksLabCluster, subnets: list[str]) -> None:
        setup = lab.setup
        # The cloud controller's naming: a 32-character hash-like name.
        name = "a" + hashlib.sha256(f"{lab.name}/{lab.vpc_id}".encode()).hexdigest()[:31]
        with_sgs = setup.lb_security_groups if setup.lb_security_groups is not None else setup.lb != "network"
        sgs = [lab.lb_sg] if with_sgs else []
        if setup.lb == "classic":
            elb = self.client("elb")
            kw: dict[str, Any] = {"SecurityGroups": sgs} if sgs else {}
            if setup.lb_scheme == "internal":
                kw["Scheme"] = "internal"
            out = elb.create_load_balancer(
                LoadBalancerName=name,
                Subnets=subnets,
                **kw,
                Listeners=[
                    {
                        "Protocol": "TCP",
                        "LoadBalancerPort": setup.listener_port,
                        "InstanceProtocol": "TCP",
                        "InstancePort": setup.node_port,
                    }
                ],
            )
            lab.lb_name, lab.lb_dns_name = name, str(out["DNSName"])
            return
        elbv2 = self.client("elbv2")
        kw = {"SecurityGroups": sgs} if sgs else {}
        lb = elbv2.create_load_balancer(
            Name=name, Subnets=subnets, Type=setup.lb, Scheme=setup.lb_scheme, IpAddressType="ipv4", **kw
        )["LoadBalancers"][0]
        lab.lb_name, lab.lb_dns_name, lab.lb_arn = name, str(lb["DNSName"]), str(lb["LoadBalancerArn"])

    def _connectivity(self, lab: EksLabCluster) -> None:
        ec2 = self.client("ec2")
        setup = lab.setup
        if "peering" in setup.connectivity:
            peer = ec2.create_vpc(
                CidrBlock=setup.peer_cidr, TagSpecifications=_tags("vpc", f"meshery-server-{lab.name}")
            )["Vpc"]["VpcId"]
            pcx = ec2.create_vpc_peering_connection(VpcId=peer, PeerVpcId=lab.vpc_id)["VpcPeeringConnection"]
            ec2.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx["VpcPeeringConnectionId"])
            lab.peer_vpc, lab.peering = peer, str(pcx["VpcPeeringConnectionId"])
        if "tgw" in setup.connectivity:
            tgw = ec2.create_transit_gateway(Description=f"{lab.name} hub")["TransitGateway"]["TransitGatewayId"]
            att = ec2.create_transit_gateway_vpc_attachment(
                TransitGatewayId=tgw, VpcId=lab.vpc_id, SubnetIds=lab.private_subnets[:1]
            )
            lab.tgw_attachment = str(att["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"])
        if "vpn" in setup.connectivity:
            vgw = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
            ec2.attach_vpn_gateway(VpcId=lab.vpc_id, VpnGatewayId=vgw)
            cgw = ec2.create_customer_gateway(BgpAsn=65000, PublicIp="198.51.100.7", Type="ipsec.1")
            conn = ec2.create_vpn_connection(
                Type="ipsec.1", VpnGatewayId=vgw, CustomerGatewayId=cgw["CustomerGateway"]["CustomerGatewayId"]
            )
            lab.vpn_gateway, lab.vpn_connection = str(vgw), str(conn["VpnConnection"]["VpnConnectionId"])

    # -- queries -----------------------------------------------------------------------------------

    def dump(self) -> str:
        """The seeded identifiers, for humans and logs."""
        return json.dumps(
            {n: {"vpc": c.vpc_id, "lb": c.lb_dns_name, "instances": c.instance_ids} for n, c in self.clusters.items()}
        )


def _tags(resource: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [{"Key": "Name", "Value": name}]}]
