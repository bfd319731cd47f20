"""Which clusters to check: kubeconfig contexts (or the in-cluster ServiceAccount) resolved into targets.

A target keeps the problems it found instead of raising, so one broken context becomes one failing
check while every other cluster is still checked.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from preflight.errors import ConfigError
from preflight.kubeconfig import MergedKubeconfig, read_file_or_data
from preflight.probes.addresses import hostport

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Credential:
    """How the context authenticates. Secret material stays here and never reaches a Result."""

    kind: str  # exec | oidc | auth-provider | token | token-file | client-cert | basic | none
    token: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    exec_spec: dict[str, Any] | None = None
    provider: str | None = None
    # Other secret material that must never be printed (refresh tokens, client secrets, passwords).
    extra_secrets: list[str] = field(default_factory=list)

    def fingerprint(self) -> str | None:
        """A one-way digest of what identifies the credential, to spot reuse across clusters."""
        material: bytes | None = None
        if self.token:
            material = b"token:" + self.token.encode()
        elif self.client_cert_pem:
            material = b"cert:" + self.client_cert_pem.strip()
        elif self.exec_spec:
            spec = self.exec_spec
            env = sorted((str(e.get("name")), str(e.get("value"))) for e in spec.get("env") or [])
            material = repr(("exec", spec.get("command"), spec.get("args") or [], env)).encode()
        return hashlib.sha256(material).hexdigest()[:16] if material else None

    def secrets(self) -> list[str]:
        out: list[str] = list(self.extra_secrets)
        if self.token:
            out.append(self.token)
        for item in (self.exec_spec or {}).get("env") or []:
            # Exec plugins often get keys through env (AWS_SECRET_ACCESS_KEY, AZURE_CLIENT_SECRET...).
            if isinstance(item, Mapping) and item.get("value"):
                out.append(str(item["value"]))
        for pem in (self.client_cert_pem, self.client_key_pem):
            if pem:
                out.append(pem.decode(errors="replace"))
        return out


@dataclass
class ClusterTarget:
    name: str
    source: Path | None = None
    cluster_name: str | None = None
    user_name: str | None = None
    server: str = ""
    host: str | None = None
    port: int | None = None
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    # Where proxy_url came from: "proxy-url" (the kubeconfig's cluster) or the environment variable's name;
    # the NO_PROXY variable's name (and no proxy_url) when it sends this host around HTTPS_PROXY.
    proxy_source: str | None = None
    credential: Credential = field(default_factory=lambda: Credential("none"))
    problems: list[str] = field(default_factory=list)
    # Entries of this context that another kubeconfig file defines differently (and loses).
    shadowed: list[str] = field(default_factory=list)
    # A single-context kubeconfig, handed to the real kubernetes client's loader.
    config_dict: dict[str, Any] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)
    in_cluster: bool = False
    # Filled from the fleet file.
    mode: str | None = None
    provider: str = "unknown"
    declared_provider: str | None = None  # the fleet file's provider:, which wins over every signal
    provider_ids: dict[str, Any] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return hostport(self.host, self.port) if self.host else ""


def _in_no_proxy_cidr(host: str, no_proxy: str) -> bool:
    """NO_PROXY CIDR entries (10.0.0.0/8), which kubectl honours and urllib does not."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in no_proxy.split(","):
        try:
            net = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            continue
        if net.version == ip.version and ip in net:
            return True
    return False


def _proxy_for(host: str, proxy_url: str | None, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The proxy the client would use for host, and where it was configured."""
    if proxy_url:
        return proxy_url, "proxy-url"
    names = {k.lower().removesuffix("_proxy"): k for k in env if k.lower().endswith("_proxy")}
    https = env.get(names["https"]) if "https" in names else None
    if not https:
        return None, None
    no_proxy = env.get(names["no"], "") if "no" in names else ""
    if no_proxy and urllib.request.proxy_bypass_environment(host, {"no": no_proxy}):  # type: ignore[attr-defined]
        return None, names["no"]
    if no_proxy and _in_no_proxy_cidr(host, no_proxy):
        return None, names["no"]
    return https, names["https"]


def _url_secrets(url: str | None) -> list[str]:
    """A proxy URL's password (and the URL that carries it) must never be printed."""
    try:
        password = urlsplit(url).password if url else None
    except ValueError:
        return []
    return [url, unquote(password)] if url and password else []


def _parse_server(target: ClusterTarget, server: str) -> None:
    target.server = server
    try:
        parts = urlsplit(server)
        port = parts.port
    except ValueError as exc:
        target.problems.append(f"server URL {server!r} is invalid: {exc}")
        return
    if parts.scheme not in ("https", "http") or not parts.hostname:
        target.problems.append(f"server URL {server!r} is not an http(s) URL with a host")
        return
    target.host = parts.hostname
    target.port = port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "http":
        target.problems.append(f"server URL {server!r} uses plain http: credentials would cross in clear text")


def _credential(user: Mapping[str, Any], base: Path, problems: list[str]) -> Credential:
    if user.get("exec"):
        return Credential("exec", exec_spec=dict(user["exec"]))
    if user.get("auth-provider"):
        ap = user["auth-provider"] or {}
        name = str(ap.get("name") or "")
        cfg = ap.get("config") or {}
        token = cfg.get("id-token") or cfg.get("access-token")
        hidden = [str(v) for k, v in cfg.items() if k in ("refresh-token", "client-secret", "access-token") and v]
        return Credential(
            "oidc" if name == "oidc" else "auth-provider", token=token, provider=name, extra_secrets=hidden
        )
    try:
        cert = read_file_or_data(user, "client-certificate", "client-certificate-data", base)
        key = read_file_or_data(user, "client-key", "client-key-data", base)
    except ValueError as exc:
        problems.append(f"user credential: {exc}")
        cert = key = None
    if user.get("token"):
        return Credential("token", token=str(user["token"]), client_cert_pem=cert, client_key_pem=key)
    if user.get("tokenFile"):
        p = Path(str(user["tokenFile"])).expanduser()
        p = p if p.is_absolute() else base / p
        try:
            return Credential("token-file", token=p.read_text().strip())
        except OSError as exc:
            problems.append(f"tokenFile {p}: {exc.strerror or exc}")
            return Credential("token-file")
    if cert or key:
        if not (cert and key):
            problems.append("user has a client certificate without its key, or a key without its certificate")
        return Credential("client-cert", client_cert_pem=cert, client_key_pem=key)
    if user.get("username") or user.get("password"):
        return Credential("basic", extra_secrets=[str(user.get("password") or "")])
    return Credential("none")


def _absolutize(body: Mapping[str, Any], base: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    out = dict(body)
    for k in keys:
        v = out.get(k)
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            out[k] = str(base / v)
    return out


def from_context(merged: MergedKubeconfig, name: str, env: Mapping[str, str]) -> ClusterTarget:
    ctx_entry = merged.contexts[name]
    ctx = ctx_entry.body
    t = ClusterTarget(name=name, source=ctx_entry.source, base_dir=ctx_entry.source.parent)
    t.cluster_name = str(ctx.get("cluster") or "") or None
    t.user_name = str(ctx.get("user") or "") or None
    cluster = merged.clusters.get(t.cluster_name or "")
    user = merged.users.get(t.user_name or "")
    if not t.cluster_name:
        t.problems.append("context names no cluster")
    elif cluster is None:
        t.problems.append(f"context names cluster {t.cluster_name!r}, which no kubeconfig file defines")
    if not t.user_name:
        t.problems.append("context names no user")
    elif user is None:
        t.problems.append(f"context names user {t.user_name!r}, which no kubeconfig file defines")
    cbody: dict[str, Any] = {}
    if cluster is not None:
        cbase = cluster.source.parent
        cbody = _absolutize(cluster.body, cbase, ("certificate-authority",))
        if not cbody.get("server"):
            t.problems.append(f"cluster {t.cluster_name!r} has no server URL")
        else:
            _parse_server(t, str(cbody["server"]))
        try:
            t.ca_pem = read_file_or_data(cbody, "certificate-authority", "certificate-authority-data", cbase)
        except ValueError as exc:
            t.problems.append(f"cluster {t.cluster_name!r}: {exc}")
        t.insecure = bool(cbody.get("insecure-skip-tls-verify"))
        t.tls_server_name = cbody.get("tls-server-name")
        if t.host:
            t.proxy_url, t.proxy_source = _proxy_for(t.host, cbody.get("proxy-url"), env)
    ubody: dict[str, Any] = {}
    if user is not None:
        ubase = user.source.parent
        ubody = _absolutize(user.body, ubase, ("client-certificate", "client-key", "tokenFile"))
        t.credential = _credential(ubody, ubase, t.problems)
    t.credential.extra_secrets += _url_secrets(t.proxy_url)
    mine = {("contexts", name), ("clusters", t.cluster_name), ("users", t.user_name)}
    t.shadowed = [
        f"{section[:-1]} {n!r} in {lost}"
        for section, n, lost, _won, differs in merged.shadowed
        if differs and (section, n) in mine
    ]
    t.config_dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "contexts": [{"name": name, "context": dict(ctx)}],
        "clusters": [{"name": t.cluster_name, "cluster": cbody}] if cluster is not None else [],
        "users": [{"name": t.user_name, "user": ubody}] if user is not None else [],
    }
    return t


def select_contexts(merged: MergedKubeconfig, patterns: list[str]) -> list[str]:
    """Every context by default; --context globs narrow, and a glob that matches nothing is an error."""
    names = list(merged.contexts)
    if not patterns:
        return names
    chosen: list[str] = []
    for pat in patterns:
        hits = [n for n in names if fnmatchcase(n, pat)]
        if not hits:
            known = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise ConfigError(f"unknown context {pat!r} (known: {known or 'none'})")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def in_cluster_target(env: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ClusterTarget:
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("--in-cluster: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)")
    token_path, ca_path = sa_dir / "token", sa_dir / "ca.crt"
    if not token_path.is_file():
        raise ConfigError(f"--in-cluster: {token_path} not found (is a ServiceAccount token mounted?)")
    name = env.get("PREFLIGHT_CLUSTER_NAME", "in-cluster")
    server = f"https://{hostport(host, port)}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_path)}}],
        "users": [{"name": name, "user": {"tokenFile": str(token_path)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
    t = ClusterTarget(name=name, base_dir=sa_dir, in_cluster=True, config_dict=kubeconfig)
    t.cluster_name = t.user_name = name
    _parse_server(t, server)
    try:
        t.ca_pem = ca_path.read_bytes()
    except OSError as exc:
        t.problems.append(f"{ca_path}: {exc.strerror or exc}")
    try:
        t.credential = Credential("token-file", token=token_path.read_text().strip())
    except OSError as exc:
        raise ConfigError(f"--in-cluster: cannot read {token_path}: {exc.strerror or exc}") from None
    t.proxy_url, t.proxy_source = _proxy_for(host, None, env)
    t.credential.extra_secrets += _url_secrets(t.proxy_url)
    return t


def environment() -> dict[str, str]:
    return dict(os.environ)
