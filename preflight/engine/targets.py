"""Which clusters to check: kubeconfig contexts (or the in-cluster ServiceAccount) resolved into targets.

A target keeps the problems it found instead of raising, so one broken context becomes one failing
check while every other cluster is still checked.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from preflight.engine import proxyenv
from preflight.engine.errors import ConfigError
from preflight.engine.fingerprint import FingerprintKey
from preflight.engine.kubeconfig import MergedKubeconfig, read_file_or_data
from preflight.engine.probes.addresses import hostport
from preflight.engine.redact import REDACTED, bearer_forms, credential_forms, url_password

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_GLOB_CHARS = frozenset("*?[")


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
    # username and password (kind basic): sent as HTTP Basic, as client-go does.
    basic: tuple[str, str] | None = field(default=None, repr=False)
    # Why the credential as written cannot work (a token that is a list, a key that is not PEM), and its fix:
    # kubeconfig.credential fails with both, and it is never sent.
    problem: str | None = None
    fix: str | None = None

    def fingerprint(self, key: FingerprintKey) -> str | None:
        """A keyed one-way digest of what identifies the credential, to spot reuse across clusters."""
        material: bytes | None = None
        if self.token:
            material = b"token:" + self.token.encode()
        elif self.client_cert_pem:
            material = b"cert:" + self.client_cert_pem.strip()
        elif self.exec_spec:
            spec = self.exec_spec
            env = sorted((str(e.get("name")), str(e.get("value"))) for e in spec.get("env") or [])
            material = repr(("exec", spec.get("command"), spec.get("args") or [], env)).encode()
        return key.digest(material) if material else None

    def secrets(self) -> list[str]:
        out: list[str] = list(self.extra_secrets)
        if self.token:
            out += bearer_forms(self.token)
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
    # certificate-authority(-data) that decodes but holds no certificate (kubeconfig.tls-verify fails on it).
    ca_problem: str | None = None
    # Entries of this context that another kubeconfig file defines differently (and loses).
    shadowed: list[str] = field(default_factory=list)
    # The file of this context, when Go's client rejects it as a whole (a name given twice in it).
    rejected_file: str | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    in_cluster: bool = False
    # Filled from the fleet file (mode: else the default mode; mode_from_fleet says which).
    mode: str | None = None
    mode_from_fleet: bool = False
    provider: str = "unknown"
    declared_provider: str | None = None  # the fleet file's provider:, which wins over every signal
    provider_ids: dict[str, Any] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return hostport(self.host, self.port) if self.host else ""


def normalized_server(url: str) -> str:
    """An API server's identity: scheme, lower-case host and port (the scheme's default when absent)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return url
    return f"{parts.scheme}://{hostport((parts.hostname or '').lower(), port)}"


def _proxy_for(
    scheme: str, host: str, port: int | None, proxy_url: str | None, env: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The proxy the client would use for host, and where it was configured: the cluster's proxy-url for every
    request (as client-go does), else the environment's by Go's rules (see preflight.engine.proxyenv)."""
    if proxy_url:
        return proxy_url, "proxy-url"
    return proxyenv.from_environment(env).proxy_for(scheme, host, port)


def check_proxy_environment(env: Mapping[str, str]) -> None:
    """A proxy variable the Server's client cannot use is a configuration error of the whole run, named."""
    cfg = proxyenv.from_environment(env)
    for value, var in ((cfg.https, cfg.https_var), (cfg.http, cfg.http_var)):
        if var is not None:
            problem, _ = _url_problem(proxyenv.with_scheme(value), var, proxyenv.PROXY_SCHEMES, shown=value)
            if problem:
                raise ConfigError(f"{problem}: set it to http://HOST:PORT (user and password before an @), or unset it")


_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


def _url_problem(
    url: str, what: str, schemes: tuple[str, ...], shown: str | None = None
) -> tuple[str | None, SplitResult | None]:
    """Why ``url`` is not usable (None when it is), checked as strictly as Go's URL parser does in kubectl."""
    shown = redact_url(shown if shown is not None else url)
    if url != url.strip() or any(c.isspace() or ord(c) < 32 for c in url):
        return f"{what} {shown!r} contains a space or a control character", None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{what} {shown!r} is invalid: {exc}", None
    if parts.scheme not in schemes or not parts.hostname:
        kinds = "http(s)" if schemes == ("https", "http") else "/".join(schemes)
        return f"{what} {shown!r} is not an {kinds} URL with a host", None
    host = parts.hostname
    if ":" not in host and not _HOST.match(host):
        return f"{what} {shown!r}: {host!r} is not a host name or IP address", None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return f"{what} {shown!r}: {host!r} is not an IPv6 address", None
    if port == 0:
        return f"{what} {shown!r}: port 0 is not a port (leave it out for the scheme's default)", None
    return None, parts


def redact_url(url: str) -> str:
    password = url_password(url)
    return url.replace(f":{password}@", f":{REDACTED}@", 1) if password else url


def _host_as_written(server: str, host: str) -> str:
    """The server URL's host in its own case, as Go's url.Hostname() gives it (urlsplit lower-cases it): Go's
    localhost rule compares it exactly."""
    netloc = urlsplit(server).netloc.rpartition("@")[2]
    return netloc[: len(host) + 2].strip("[]") if netloc.startswith("[") else netloc[: len(host)]


def _choose_proxy(t: ClusterTarget, proxy_url: str | None, env: Mapping[str, str]) -> None:
    scheme = urlsplit(t.server).scheme if t.server else "https"
    host = _host_as_written(t.server, t.host or "") if t.server else t.host or ""
    try:
        t.proxy_url, t.proxy_source = _proxy_for(scheme, host, t.port, proxy_url, env)
    except proxyenv.CgiRefusal as exc:
        t.problems.append(str(exc))


def _parse_server(target: ClusterTarget, server: str) -> None:
    problem, parts = _url_problem(server, "server", ("https", "http"))
    if problem or parts is None:
        target.problems.append(f"cluster {target.cluster_name or target.name!r}: {problem}")
        # Shown in report headers and compared across clusters: only a URL that parses.
        target.server = ""
        return
    target.server = server
    target.host = parts.hostname
    target.port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "http":
        target.problems.append(
            f"server URL {redact_url(server)!r} uses plain http: credentials would cross in clear text"
        )


# The in-tree auth-providers client-go dropped in 1.26, and the exec plugin that replaces each.
_REMOVED_AUTH_PROVIDERS = {
    "gcp": "Switch this user to the gke-gcloud-auth-plugin exec plugin: gcloud components install "
    "gke-gcloud-auth-plugin, then USE_GKE_GCLOUD_AUTH_PLUGIN=True gcloud container clusters get-credentials "
    "CLUSTER --location LOCATION re-writes the user (the plugin must also be on the Server's PATH).",
    "azure": "Switch this user to the kubelogin exec plugin: install kubelogin (az aks install-cli), then "
    "KUBECONFIG=FILE kubelogin convert-kubeconfig -l azurecli (or re-run az aks get-credentials) re-writes the "
    "user (kubelogin must also be on the Server's PATH).",
}
_TOKEN_FIX = (
    "Write the token as one string on the token: line (quoted if it has special characters), with no line "
    "break: a block scalar `token: |` keeps the final newline, `token: |-` does not."
)
_CERT_FIX = (
    "Set {field} to the base64 of the PEM file (kubectl config set-credentials NAME "
    "--client-certificate=CERT --client-key=KEY --embed-certs), or point {file_field} at the PEM file."
)


def _token_problem(raw: Any) -> str | None:
    if isinstance(raw, (list, tuple, dict)):
        return f"the token is a YAML {'mapping' if isinstance(raw, dict) else 'list'}, not a string"
    token = str(raw)
    if token.rstrip("\r\n") != token:
        return "the token ends with a line break (it would be sent in the Authorization header)"
    if any(c.isspace() or not c.isprintable() for c in token):
        return "the token contains spaces, line breaks or control characters"
    return None


def _pem_problem(cert: bytes | None, key: bytes | None) -> tuple[str, str] | None:
    """A client certificate or key that is not PEM (or not a pair): the cause, and its fix."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    loaded = None
    if cert is not None:
        try:
            loaded = x509.load_pem_x509_certificate(cert)
        except ValueError:
            fix = _CERT_FIX.format(field="client-certificate-data", file_field="client-certificate")
            return "the client certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)", fix
    if key is not None:
        fix = _CERT_FIX.format(field="client-key-data", file_field="client-key")
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except TypeError:
            return "the client key is encrypted; kubectl and Meshery need it unencrypted", fix
        except Exception:  # ValueError, or UnsupportedAlgorithm for exotic keys
            return "the client key is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)", fix
        if loaded is not None and _public_bytes(private.public_key()) != _public_bytes(loaded.public_key()):
            return (
                "the client key does not belong to the client certificate",
                "Use the key the certificate was issued for (or re-issue the certificate for this key).",
            )
    return None


def _public_bytes(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    try:
        return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    except (ValueError, TypeError, AttributeError):
        return b""


def _leaves(value: Any) -> list[str]:
    """Every string inside a token written as a list or mapping, so each is redacted on its own."""
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [str(value)]


def _credential(user: Mapping[str, Any], base: Path, problems: list[str]) -> Credential:
    if user.get("exec"):
        spec = user["exec"]
        if not isinstance(spec, Mapping):
            problems.append("user: field 'exec' must be a mapping with a command")
            return Credential("exec", exec_spec={})
        return Credential("exec", exec_spec=dict(spec))
    if user.get("auth-provider"):
        ap = user["auth-provider"] if isinstance(user["auth-provider"], Mapping) else {}
        name = str(ap.get("name") or "")
        raw_cfg = ap.get("config")
        cfg: Mapping[str, Any] = raw_cfg if isinstance(raw_cfg, Mapping) else {}
        token = cfg.get("id-token") or cfg.get("access-token")
        hidden = [str(v) for k, v in cfg.items() if k in ("refresh-token", "client-secret", "access-token") and v]
        removed = _REMOVED_AUTH_PROVIDERS.get(name)
        return Credential(
            "oidc" if name == "oidc" else "auth-provider",
            token=str(token) if token else None,
            provider=name,
            extra_secrets=hidden,
            problem=f"auth-provider {name!r} was removed from client-go in Kubernetes 1.26: kubectl and Meshery "
            "Server can no longer authenticate with it"
            if removed
            else None,
            fix=removed,
        )
    try:
        cert = read_file_or_data(user, "client-certificate", "client-certificate-data", base)
        key = read_file_or_data(user, "client-key", "client-key-data", base)
    except ValueError as exc:
        problems.append(f"user credential: {exc}")
        cert = key = None
    cred = _plain_credential(user, base, problems, cert, key)
    pem = _pem_problem(cert, key) if (cert or key) else None
    if pem and not cred.problem:
        cred.problem, cred.fix = pem
    return cred


def _plain_credential(
    user: Mapping[str, Any], base: Path, problems: list[str], cert: bytes | None, key: bytes | None
) -> Credential:
    raw = user.get("token")
    if raw:
        problem = _token_problem(raw)
        token = raw if isinstance(raw, str) else str(raw)
        return Credential(
            "token",
            token=token,
            client_cert_pem=cert,
            client_key_pem=key,
            problem=problem,
            fix=_TOKEN_FIX if problem else None,
            extra_secrets=[] if isinstance(raw, str) else _leaves(raw),
        )
    if user.get("tokenFile"):
        p = Path(str(user["tokenFile"])).expanduser()
        p = p if p.is_absolute() else base / p
        try:
            return Credential("token-file", token=p.read_text().strip())
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"tokenFile {p}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}")
            return Credential("token-file")
    if cert or key:
        if not (cert and key):
            problems.append("user has a client certificate without its key, or a key without its certificate")
        return Credential("client-cert", client_cert_pem=cert, client_key_pem=key)
    if user.get("username") or user.get("password"):
        password = str(user.get("password") or "")
        username = str(user.get("username") or "")
        return Credential("basic", basic=(username, password), extra_secrets=credential_forms(username, password))
    return Credential("none")


def _absolutize(body: Mapping[str, Any], base: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    out = dict(body)
    for k in keys:
        v = out.get(k)
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            out[k] = str(base / v)
    return out


def _url_secrets(*urls: str | None) -> list[str]:
    """A URL's password in every form the tool derives from it (percent-decoded as the client sends it, the
    user:password pair and its base64, the Basic header value): none may ever be printed."""
    out: list[str] = []
    for url in urls:
        password = url_password(url) if url else None
        if url and password:
            parts = urlsplit(url if "://" in url else f"http://{url}")
            out += credential_forms(parts.username, password)
    return out


def _env_proxies(env: Mapping[str, str]) -> list[str]:
    """Every proxy URL in the environment, used for this cluster or not: their passwords are secrets anyway."""
    return [v for k, v in env.items() if k.lower() in ("https_proxy", "http_proxy", "all_proxy") and v]


def _ca_problem(pem: bytes, cluster: Mapping[str, Any]) -> str | None:
    """CA bytes that decode but hold no certificate: TLS would fail later with `no start line`."""
    from cryptography import x509

    field_name = "certificate-authority-data" if cluster.get("certificate-authority-data") else "certificate-authority"
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        try:
            x509.load_der_x509_certificate(pem)
        except ValueError:
            return f"{field_name} holds no PEM certificate (it decodes to {len(pem)} bytes of something else)"
        return f"{field_name} is a DER certificate; kubectl and Meshery need PEM"
    return None


def from_context(merged: MergedKubeconfig, name: str, env: Mapping[str, str]) -> ClusterTarget:
    ctx_entry = merged.contexts[name]
    ctx = ctx_entry.body
    t = ClusterTarget(name=name, source=ctx_entry.source, base_dir=ctx_entry.source.parent)
    t.cluster_name = str(ctx.get("cluster") or "") or None
    t.user_name = str(ctx.get("user") or "") or None
    if ctx_entry.rejected:
        # Go's client never loads the file: nothing of it is used, and this is the only problem worth naming.
        t.problems.append(ctx_entry.rejected)
        t.rejected_file = str(ctx_entry.source)
        return t
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
        if t.ca_pem is not None:
            t.ca_problem = _ca_problem(t.ca_pem, cbody)
        t.insecure = bool(cbody.get("insecure-skip-tls-verify"))
        t.tls_server_name = cbody.get("tls-server-name")
        proxy = cbody.get("proxy-url")
        if proxy:
            problem, _ = _url_problem(str(proxy), "proxy-url", proxyenv.PROXY_SCHEMES)
            if problem:
                t.problems.append(f"cluster {t.cluster_name!r}: {problem}")
                proxy = None  # never used: the context fails on it
        if t.host:
            _choose_proxy(t, str(proxy) if proxy else None, env)
    ubody: dict[str, Any] = {}
    if user is not None:
        ubase = user.source.parent
        ubody = _absolutize(user.body, ubase, ("client-certificate", "client-key", "tokenFile"))
        t.credential = _credential(ubody, ubase, t.problems)
    t.credential.extra_secrets.extend(_url_secrets(str(cbody.get("server") or ""), t.proxy_url, *_env_proxies(env)))
    t.shadowed = [
        f"{section[:-1]} {n!r} in {lost}"
        for section, n, lost, _won, differs in merged.shadowed_of(
            [("contexts", name), ("clusters", t.cluster_name), ("users", t.user_name)]
        )
        if differs
    ]
    return t


def matching(names: Mapping[str, Any], pattern: str) -> list[str]:
    """The names a glob matches, in order; a plain name is looked up (a fleet file lists thousands)."""
    if not _GLOB_CHARS.intersection(pattern):
        return [pattern] if pattern in names else []
    return [n for n in names if fnmatchcase(n, pattern)]


def select_contexts(merged: MergedKubeconfig, patterns: list[str]) -> list[str]:
    """Every context by default; --context globs narrow, and a glob that matches nothing is an error."""
    if not patterns:
        return list(merged.contexts)
    chosen: dict[str, None] = {}
    for pat in patterns:
        hits = matching(merged.contexts, pat)
        if not hits:
            names = list(merged.contexts)[:11]
            known = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise ConfigError(f"unknown context {pat!r} (known: {known or 'none'})")
        chosen.update(dict.fromkeys(hits))
    return list(chosen)


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
    t = ClusterTarget(name=name, base_dir=sa_dir, in_cluster=True)
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
    _choose_proxy(t, None, env)
    t.credential.extra_secrets.extend(_url_secrets(t.proxy_url, *_env_proxies(env)))
    return t


def environment() -> dict[str, str]:
    return dict(os.environ)
