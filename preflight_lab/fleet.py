"""A fleet of lab clusters plus the kubeconfig and fleet file that describe it.

Each cluster is a :class:`~preflight_lab.apiserver.FakeKubeAPI` on its own loopback address (from
:mod:`preflight_lab.addresses`, so concurrent labs never collide), set up
to reproduce one named failure (or none). The kubeconfig is what an operator would have, warts and
all, so the tool under test reads it through its ordinary code path. The lab knows which scenario
each cluster plays but never what the checks should conclude: that is the tests' business.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import secrets as _secrets
import shlex
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey as EcKey

from preflight_lab.addresses import LoopbackAllocator, default_allocator, require_loopback
from preflight_lab.apiserver import DEFAULT_VERSION, FakeKubeAPI, RequestRecord
from preflight_lab.broker import NATS_PORT, LabBroker, make_broker, start_brokers, stop_brokers
from preflight_lab.certs import (
    CertificateAuthority,
    CertKeyPair,
    create_ca,
    generate_key,
    key_to_pem,
    pem_body,
    utcnow,
)
from preflight_lab.meshery import MesherySetup, dns_records, install_meshery, nats_pod_name
from preflight_lab.rbac import CLUSTER_ADMIN, RBAC, Identity, Rule
from preflight_lab.realistic import OPERATOR_RULES, RealisticProfile, dress, filler_objects
from preflight_lab.serving import Startable
from preflight_lab.store import ResourceType

__all__ = [
    "AUTH_MODES",
    "SCENARIOS",
    "TLS_MODES",
    "ClusterSpec",
    "LabCluster",
    "LabFleet",
    "ResolvedSpec",
    "describe",
    "dump_state",
    "new_token",
    "parse_mix",
    "specs_from_mix",
]

AUTH_MODES = ("token", "client-cert", "exec", "hung-exec", "expired-token", "expired-client-cert")
TLS_MODES = ("verify", "wrong-ca", "insecure")
EXEC_API_VERSION = "client.authentication.k8s.io/v1"
OLD_VERSION = "v1.21.0"

# Each scenario is a set of overrides on a healthy cluster; explicit ClusterSpec fields win over these.
SCENARIOS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "client-cert": {"auth": "client-cert"},
    "exec-ok": {"auth": "exec"},
    "hung-exec": {"auth": "hung-exec"},
    "refused": {"listening": False},
    "wrong-ca": {"tls": "wrong-ca"},
    "expired-token": {"auth": "expired-token"},
    "expired-client-cert": {"auth": "expired-client-cert"},
    "forbidden": {"rules": ()},
    "insecure": {"tls": "insecure"},
    "slow": {"latency_ms": 300.0},
    # SelfSubjectReview went GA in 1.28; a 1.21 server does not have it at all.
    "old-version": {"version": OLD_VERSION, "selfsubjectreview": False},
}

_BASE_DEFAULTS: dict[str, Any] = {
    "auth": "token",
    "tls": "verify",
    "listening": True,
    "version": DEFAULT_VERSION,
    "latency_ms": 0.0,
    "selfsubjectreview": True,
    "rules": CLUSTER_ADMIN,
}


def new_token() -> str:
    """A bearer token long and random enough that finding it in a report can only mean a leak."""
    return "lab-" + _secrets.token_hex(24)


@dataclass(frozen=True)
class ResolvedSpec:
    """A ClusterSpec with the scenario applied: every knob has a concrete value."""

    auth: str
    tls: str
    listening: bool
    version: str
    latency_ms: float
    selfsubjectreview: bool
    rules: tuple[Rule, ...]


@dataclass
class ClusterSpec:
    """One lab cluster: a context name, a scenario, and optional overrides of what it implies.

    ``scenario`` picks defaults (see :data:`SCENARIOS`); any of ``auth``, ``tls``, ``listening``,
    ``version``, ``latency_ms``, ``selfsubjectreview`` and ``rules`` set explicitly wins, so
    ``ClusterSpec("x", "slow", auth="client-cert")`` is a slow cluster reached with a client cert.
    ``rules`` are the RBAC rules of the kubeconfig's user (default: cluster-admin). ``meshery``
    describes the Meshery components the cluster holds and what listens at its broker address; a
    setup with a generation makes the fleet file say ``meshsync_mode: operator``.
    """

    name: str
    scenario: str = "healthy"
    auth: str | None = None
    tls: str | None = None
    listening: bool | None = None
    version: str | None = None
    latency_ms: float | None = None
    selfsubjectreview: bool | None = None
    rules: Sequence[Rule] | None = None
    objects: Sequence[Mapping[str, Any]] = ()
    resources: Sequence[ResourceType] = ()
    nodes: int = 1
    namespace: str | None = None
    meshsync_mode: str = "embedded"
    address: str | None = None
    server_cert_not_before: _dt.datetime | None = None
    server_cert_not_after: _dt.datetime | None = None
    client_cert_not_before: _dt.datetime | None = None
    client_cert_not_after: _dt.datetime | None = None
    meshery: MesherySetup | None = None

    @property
    def effective_meshsync_mode(self) -> str:
        """What the fleet file says: ``operator`` where Meshery's Operator is deployed."""
        if self.meshery is not None and self.meshery.generation is not None:
            return "operator"
        return self.meshsync_mode

    def resolve(self) -> ResolvedSpec:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose from {', '.join(SCENARIOS)}")
        values = {**_BASE_DEFAULTS, **SCENARIOS[self.scenario]}
        for key in _BASE_DEFAULTS:
            explicit = getattr(self, key)
            if explicit is not None:
                values[key] = explicit
        if values["auth"] not in AUTH_MODES:
            raise ValueError(f"unknown auth {values['auth']!r}; choose from {', '.join(AUTH_MODES)}")
        if values["tls"] not in TLS_MODES:
            raise ValueError(f"unknown tls {values['tls']!r}; choose from {', '.join(TLS_MODES)}")
        values["rules"] = tuple(values["rules"])
        values["latency_ms"] = float(values["latency_ms"])
        return ResolvedSpec(**values)


@dataclass
class LabCluster:
    """A running lab cluster and everything the lab planted for it."""

    spec: ClusterSpec
    resolved: ResolvedSpec
    index: int
    address: str
    port: int = 0
    server: FakeKubeAPI | None = None
    identity: Identity | None = None
    token: str | None = None  # the bearer token the kubeconfig (or its exec plugin) presents
    client_cert: CertKeyPair | None = None
    server_cert: CertKeyPair | None = None
    exec_script: Path | None = None
    planted: list[str] = field(default_factory=list)
    meshery: MesherySetup | None = None  # the spec's setup, resolved (token generated, defaults filled)
    broker: LabBroker | None = None
    meshery_objects: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _placeholder: socket.socket | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def scenario(self) -> str:
        return self.spec.scenario

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"

    @property
    def dns_name(self) -> str:
        return f"cluster-{self.index:04d}.lab.local"

    @property
    def user_name(self) -> str:
        """The kubeconfig ``users[].name`` (the cluster entry is named after the context)."""
        return f"{self.spec.name}-user"

    @property
    def broker_address(self) -> str | None:
        """The loopback address where this cluster's broker (or imposter) listens, if it has one."""
        return self.broker.host if self.broker is not None else None

    @property
    def broker_port(self) -> int | None:
        return self.broker.port if self.broker is not None else None

    @property
    def broker_token(self) -> str | None:
        """The token the broker requires (None: no auth, or no broker)."""
        return self.meshery.auth_token if self.meshery is not None and self.broker is not None else None


# POSIX shell, not Python: a plugin's start-up is counted in the tool's CPU by the fleet benchmark, and a Python
# interpreter per plugin (about 50 ms of CPU) would dwarf the check's own cost per cluster.
_EXEC_OK = """\
#!/bin/sh
# Lab exec credential plugin for context {name}: prints a {api} ExecCredential.
expiry=$(date -u -d '+15 minutes' +%Y-%m-%dT%H:%M:%SZ)
printf '{{"apiVersion": "%s", "kind": "ExecCredential", ' {api_q}
printf '"status": {{"token": "%s", "expirationTimestamp": "%s"}}}}\\n' {token_q} "$expiry"
"""

_EXEC_HUNG = """\
#!/bin/sh
# Lab exec credential plugin for context {name} that never answers (an SSO prompt nobody sees).
sleep 3600
"""


def _seed_objects(cluster: LabCluster, node_address: Callable[[], str], min_nodes: int = 1) -> list[dict[str, Any]]:
    """What an empty cluster already holds, so list calls return realistic, non-empty answers."""
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease")
    ]
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.1",
                "ports": [{"name": "https", "port": 443}],
            },
        }
    )
    version = cluster.resolved.version
    for k in range(1, max(cluster.spec.nodes, min_nodes) + 1):
        node = f"lab-{cluster.index:04d}-node-{k}"
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "labels": {
                        "kubernetes.io/hostname": node,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
                "status": {
                    # Loopback, never 10.x: a checker probes node addresses, and lab traffic must stay here.
                    "addresses": [{"type": "InternalIP", "address": node_address()}],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                    "nodeInfo": {
                        "architecture": "amd64",
                        "bootID": str(uuid.uuid4()),
                        "containerRuntimeVersion": "containerd://1.7.20",
                        "kernelVersion": "6.1.102",
                        "kubeProxyVersion": version,
                        "kubeletVersion": version,
                        "machineID": uuid.uuid4().hex,
                        "operatingSystem": "linux",
                        "osImage": "Lab Linux 2024",
                        "systemUUID": str(uuid.uuid4()),
                    },
                },
            }
        )
    return objs


class LabFleet(Startable):
    """Start every cluster in ``specs`` and write ``kubeconfig.yaml`` and ``fleet.yaml`` into ``directory``.

    One CA, one server key and one client key are shared by all clusters (per-cluster certificates
    still carry each cluster's own IP SAN), which keeps 200 clusters to a second or so of startup.
    ``realistic`` makes every API server answer as heavily as a real 1.30-era cluster
    (:mod:`preflight_lab.realistic`: full discovery, dressed objects, three nodes, kube-system's workloads,
    an operator's full rule list); the fleet benchmark uses it, the tests keep the light answers.
    """

    def __init__(
        self,
        specs: Iterable[ClusterSpec],
        directory: str | os.PathLike[str],
        *,
        allocator: LoopbackAllocator | None = None,
        realistic: bool = False,
    ) -> None:
        self.realistic = realistic
        self.specs = list(specs)
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ValueError("cluster names (kubeconfig contexts) must be unique")
        self.directory = Path(directory).resolve()
        self.kubeconfig_path = self.directory / "kubeconfig.yaml"
        self.fleet_path = self.directory / "fleet.yaml"
        self.allocator = allocator
        self.clusters: dict[str, LabCluster] = {}
        self.ca: CertificateAuthority | None = None
        self.wrong_ca: CertificateAuthority | None = None
        self.broker_other_ca: CertificateAuthority | None = None  # issues brokers' broker_tls="other-ca" certs
        self._server_key_pem = b""
        self._brokers: list[LabBroker] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LabFleet:
        if self._started:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        resolved = [spec.resolve() for spec in self.specs]  # fail on a bad spec before starting anything
        meshery = [spec.meshery.resolved() if spec.meshery is not None else None for spec in self.specs]
        # kubeadm and EKS CAs are all CN=kubernetes, so a stale kubeconfig CA differs only by its key.
        self.ca = create_ca("kubernetes")
        self.wrong_ca = create_ca("kubernetes")
        server_key, client_key = generate_key(), generate_key()
        self._server_key_pem = key_to_pem(server_key)
        self._started = True
        try:
            for index, (spec, res, setup) in enumerate(zip(self.specs, resolved, meshery, strict=True)):
                address = require_loopback(spec.address) if spec.address else self._allocate()
                cluster = LabCluster(spec, res, index, address, meshery=setup)
                self._build(cluster, server_key, client_key)
                self.clusters[spec.name] = cluster
            self._start_brokers()
            self._install_meshery()
            if self.realistic:
                self._dress()
            self._write_files()
        except BaseException:
            self.stop()
            raise
        return self

    def _build(self, cluster: LabCluster, server_key: EcKey, client_key: EcKey) -> None:
        assert self.ca is not None
        spec, res = cluster.spec, cluster.resolved
        username = f"lab-admin-{cluster.index:04d}"
        groups = ("lab:operators",)
        rbac = RBAC()
        rbac.grant_user(username, res.rules)
        if self.realistic and res.rules == CLUSTER_ADMIN:
            rbac.grant_group(groups[0], OPERATOR_RULES)
        tokens: dict[str, Identity] = {}
        cluster.identity = Identity(username, groups, uid=str(uuid.uuid4()))
        if res.auth in ("token", "exec", "hung-exec"):
            cluster.token = new_token()
            tokens[cluster.token] = cluster.identity
        elif res.auth == "expired-token":
            cluster.token = new_token()  # never registered with the server
        else:
            now = utcnow()
            expired = res.auth == "expired-client-cert"
            not_before = spec.client_cert_not_before or (now - _dt.timedelta(days=30) if expired else None)
            not_after = spec.client_cert_not_after or (now - _dt.timedelta(days=1) if expired else None)
            cluster.client_cert = self.ca.issue_client_cert(
                username, groups, not_before=not_before, not_after=not_after, key=client_key
            )
            cluster.identity = Identity(username, groups)  # x509 users carry no uid
        if cluster.token:
            cluster.planted.append(cluster.token)
        if cluster.client_cert:
            pem = cluster.client_cert
            cluster.planted += [
                pem.key_pem.decode(),
                pem_body(pem.key_pem),
                pem.key_b64,
                pem.cert_pem.decode(),
                pem_body(pem.cert_pem),
                pem.cert_b64,
            ]
        if res.auth in ("exec", "hung-exec"):
            cluster.exec_script = self._write_exec_script(cluster)
        if not res.listening:
            # A bound socket that never listens reserves the port and answers SYNs with RST: "refused".
            placeholder = socket.socket(socket.AF_INET6 if ":" in cluster.address else socket.AF_INET)
            placeholder.bind((cluster.address, 0))
            cluster._placeholder = placeholder
            cluster.port = placeholder.getsockname()[1]
            return
        cluster.server_cert = self.ca.issue_server_cert(
            "kube-apiserver",
            ip_addresses=[cluster.address],
            dns_names=[cluster.dns_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            not_before=spec.server_cert_not_before,
            not_after=spec.server_cert_not_after,
            key=server_key,
        )
        cluster.planted += [self._server_key_pem.decode(), pem_body(self._server_key_pem)]
        server = FakeKubeAPI(
            cluster.server_cert,
            host=cluster.address,
            client_ca_pem=self.ca.cert_pem,
            tokens=tokens,
            rbac=rbac,
            version=res.version,
            latency_ms=res.latency_ms,
            selfsubjectreview=res.selfsubjectreview,
            resources=spec.resources,
            profile=RealisticProfile() if self.realistic else None,
        )
        for obj in [*_seed_objects(cluster, self._allocate, 3 if self.realistic else 1), *spec.objects]:
            server.store.put(obj)
        cluster.server = server
        server.start()
        cluster.port = server.port

    def _allocate(self, port: int | None = None) -> str:
        return (self.allocator or default_allocator()).allocate(port)

    def _start_brokers(self) -> None:
        """One broker (or imposter) per cluster whose Meshery is deployed, all started in parallel.

        Brokers without an address get one from the allocator, proved free on their port (4222 unless
        the setup says otherwise), so every one of them can listen on 4222.
        """
        for cluster in self.clusters.values():
            setup = cluster.meshery
            if setup is None or setup.generation is None:
                continue
            address = setup.broker_address or self._allocate(setup.broker_port or None)
            broker = make_broker(
                setup.broker,
                address,
                setup.broker_port,
                token=setup.auth_token,
                directory=self.directory / "brokers",
                name=f"cluster-{cluster.index:04d}-nats",
                server_name=f"{setup.service_name}-0",  # the StatefulSet's first pod, as in a cluster
                tls=self._broker_cert(cluster, setup, address) if setup.broker_tls else None,
            )
            cluster.broker = broker
            self._brokers.append(broker)
            for secret in (setup.token, setup.secret_token):
                if secret:
                    cluster.planted += [secret, base64.b64encode(secret.encode()).decode()]
        start_brokers(self._brokers)

    def _broker_cert(self, cluster: LabCluster, setup: MesherySetup, address: str) -> CertKeyPair:
        """The Broker's serving certificate for ``setup.broker_tls``; its key joins what the lab planted."""
        assert self.ca is not None and self.wrong_ca is not None
        ca = self.wrong_ca if cluster.resolved.tls == "wrong-ca" else self.ca  # what the kubeconfig trusts
        if setup.broker_tls == "other-ca":
            self.broker_other_ca = self.broker_other_ca or create_ca("meshery-broker-ca")
            ca = self.broker_other_ca
        names = sorted({*dns_records(setup, address), *([setup.lb_hostname] if setup.lb_hostname else [])})
        ips = [address]
        if setup.broker_tls == "wrong-name":
            names, ips = [f"{setup.service_name}.elsewhere.lab.test"], []
        now = utcnow()
        expired = setup.broker_tls == "expired"
        pair = ca.issue_server_cert(
            str(setup.service_name),
            ip_addresses=ips,
            dns_names=names,
            not_before=now - _dt.timedelta(days=90) if expired else None,
            not_after=now - _dt.timedelta(days=1) if expired else None,
        )
        cluster.planted += [pair.key_pem.decode(), pem_body(pair.key_pem)]
        return pair

    def _install_meshery(self) -> None:
        for cluster in self.clusters.values():
            if cluster.meshery is None or cluster.server is None:
                continue
            port = cluster.broker.port if cluster.broker is not None else None
            cluster.meshery_objects = install_meshery(cluster.server, cluster.meshery, cluster.address, port)
            setup, server = cluster.meshery, cluster.server
            server.kubelet, server.upgrade_stripped_by = setup.kubelet, setup.upgrade_stripped_by
            pod = nats_pod_name(setup)
            if pod is not None and setup.nats_pod == "running" and setup.broker_ready and cluster.broker is not None:
                # The pod's 4222 is where the cluster's nats-server (or imposter) really listens.
                server.pod_ports[(setup.namespace, pod)] = {NATS_PORT: (cluster.broker.host, cluster.broker.port)}

    def _dress(self) -> None:
        """Every stored object as heavy as a real cluster's copy, plus kube-system's workloads."""
        for cluster in self.clusters.values():
            server = cluster.server
            if server is None:
                continue
            for rt in server.resources.all():
                for obj in server.store.list(rt):
                    obj.setdefault("apiVersion", rt.api_version)
                    obj.setdefault("kind", rt.kind)
                    server.store.put(dress(obj))
            nodes = [
                n["metadata"]["name"]
                for rt in server.resources.all()
                if rt.kind == "Node"
                for n in server.store.list(rt)
            ]
            for obj in filler_objects(nodes):
                server.store.put(obj)

    def _write_exec_script(self, cluster: LabCluster) -> Path:
        exec_dir = self.directory / "exec"
        exec_dir.mkdir(exist_ok=True)
        path = exec_dir / f"cluster-{cluster.index:04d}.sh"
        template = _EXEC_OK if cluster.resolved.auth == "exec" else _EXEC_HUNG
        path.write_text(
            template.format(
                name=cluster.name.replace("\n", " "),
                api=EXEC_API_VERSION,
                api_q=shlex.quote(EXEC_API_VERSION),
                token_q=shlex.quote(cluster.token or ""),
            )
        )
        path.chmod(0o700)
        return path

    def stop(self) -> None:
        """Stop every server and broker and release every port; safe to call twice."""
        brokers, self._brokers = self._brokers, []
        stop_brokers(brokers)
        for cluster in self.clusters.values():
            if cluster.server is not None:
                cluster.server.stop()
            if cluster._placeholder is not None:
                cluster._placeholder.close()
                cluster._placeholder = None
        self._started = False

    # -- files -------------------------------------------------------------------------------------

    def kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig document: one cluster, user and context per spec, in spec order."""
        assert self.ca is not None and self.wrong_ca is not None
        clusters, users, contexts = [], [], []
        for c in self.clusters.values():
            entry: dict[str, Any] = {"server": c.url}
            if c.resolved.tls == "insecure":
                entry["insecure-skip-tls-verify"] = True
            else:
                ca = self.wrong_ca if c.resolved.tls == "wrong-ca" else self.ca
                entry["certificate-authority-data"] = ca.cert_b64
            clusters.append({"name": c.name, "cluster": entry})
            users.append({"name": c.user_name, "user": self._user_entry(c)})
            context: dict[str, Any] = {"cluster": c.name, "user": c.user_name}
            if c.spec.namespace:
                context["namespace"] = c.spec.namespace
            contexts.append({"name": c.name, "context": context})
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": clusters,
            "users": users,
            "contexts": contexts,
            "current-context": self.specs[0].name if self.specs else "",
        }

    @staticmethod
    def _user_entry(c: LabCluster) -> dict[str, Any]:
        if c.exec_script is not None:
            return {
                "exec": {
                    "apiVersion": EXEC_API_VERSION,
                    "command": "/bin/sh",
                    "args": [str(c.exec_script)],
                    "env": None,
                    "interactiveMode": "Never",
                    "provideClusterInfo": False,
                }
            }
        if c.client_cert is not None:
            return {
                "client-certificate-data": c.client_cert.cert_b64,
                "client-key-data": c.client_cert.key_b64,
            }
        return {"token": c.token}

    def fleet_document(self) -> dict[str, Any]:
        return {
            "version": 1,
            "kubeconfig": [os.path.relpath(self.kubeconfig_path, self.fleet_path.parent)],
            "origin": {"cidrs": ["127.0.0.0/8"]},
            "clusters": [
                {"context": c.name, "meshsync_mode": c.spec.effective_meshsync_mode} for c in self.clusters.values()
            ],
            "mutes": [],
        }

    def _write_files(self) -> None:
        _write_private(self.kubeconfig_path, yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        self.fleet_path.write_text(yaml.safe_dump(self.fleet_document(), sort_keys=False))

    # -- queries -----------------------------------------------------------------------------------

    def secrets(self) -> list[str]:
        """Every credential string the lab planted: tokens, key PEMs, client-cert PEMs, their base64.

        Each key and certificate appears as PEM, as its one-line base64 body and as the kubeconfig
        ``*-data`` value. Broker tokens (what the broker requires and what its Secret holds) appear
        as themselves and as base64. CA certificates are public and not included.
        """
        seen: dict[str, None] = {}
        for cluster in self.clusters.values():
            for s in cluster.planted:
                seen.setdefault(s, None)
        return list(seen)

    def brokers(self) -> list[LabBroker]:
        return [c.broker for c in self.clusters.values() if c.broker is not None]

    def dns_records(self) -> dict[str, str]:
        """Name -> address records (LB hostnames etc.) that make every cluster's names reach its broker."""
        records: dict[str, str] = {}
        for c in self.clusters.values():
            if c.meshery is not None and c.broker is not None:
                records.update(dns_records(c.meshery, c.broker.host))
        return records

    def servers(self) -> list[FakeKubeAPI]:
        return [c.server for c in self.clusters.values() if c.server is not None]

    def mutating_requests(self) -> dict[str, list[RequestRecord]]:
        """Per context, the mutating requests its server saw (only contexts with any)."""
        found = {c.name: c.server.mutating_requests() for c in self.clusters.values() if c.server is not None}
        return {name: reqs for name, reqs in found.items() if reqs}

    def __repr__(self) -> str:
        return f"LabFleet({len(self.specs)} clusters in {self.directory})"


def _write_private(path: Path, text: str) -> None:
    """Write a credentials file 0600 from the start, as kubectl expects of a kubeconfig."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def describe(fleet: LabFleet) -> str:
    """A one-line-per-cluster summary for humans running the lab by hand."""
    rows = [
        f"{c.name:<28} {c.scenario:<20} {c.url}" + (f"  broker {c.broker.kind} {c.broker.address}" if c.broker else "")
        for c in fleet.clusters.values()
    ]
    return "\n".join(rows)


def dump_state(fleet: LabFleet) -> str:
    """Machine-readable fleet description (addresses, ports, scenarios) for benchmark logs."""
    rows: list[dict[str, Any]] = []
    for c in fleet.clusters.values():
        row: dict[str, Any] = {"context": c.name, "scenario": c.scenario, "address": c.address, "port": c.port}
        if c.broker is not None:
            row.update(broker=c.broker.kind, broker_address=c.broker.host, broker_port=c.broker.port)
        rows.append(row)
    return json.dumps(rows)


def parse_mix(text: str) -> dict[str, int]:
    """``"healthy=8,refused=1"`` -> ``{"healthy": 8, "refused": 1}``; a bare name weighs 1."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        mix[name] = mix.get(name, 0) + (int(weight) if weight.strip() else 1)
        if mix[name] < 0:
            raise ValueError(f"negative weight for {name!r}")
    if not mix or sum(mix.values()) == 0:
        raise ValueError("the scenario mix needs at least one positive weight")
    return mix


def specs_from_mix(count: int, mix: Mapping[str, int], prefix: str = "lab") -> list[ClusterSpec]:
    """``count`` specs in proportion to ``mix``, interleaved (smooth weighted round-robin).

    Interleaving keeps any prefix of the fleet representative, and the heaviest scenario (usually
    ``healthy``) comes first, so it becomes the kubeconfig's current-context.
    """
    total = sum(mix.values())
    current = dict.fromkeys(mix, 0)
    width = max(3, len(str(count)))
    specs = []
    for i in range(1, count + 1):
        for name, weight in mix.items():
            current[name] += weight
        pick = max(current, key=lambda n: current[n])
        current[pick] -= total
        specs.append(ClusterSpec(f"{prefix}-{i:0{width}d}-{pick}", pick))
    return specs
