"""A small, deadline-bound view of a cluster's API.

The context as planning read it (server, CA, TLS server name, proxy, credential) becomes one :class:`Endpoint`;
an exec plugin runs here, under our own deadline, the first time a check talks to the cluster. Requests then go
over :mod:`preflight.engine.apiconn`'s kept-alive connections: no silent retries, a connect and a read timeout.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from preflight import __version__
from preflight.engine.apiconn import Endpoint, Pool, TransportError, tls_context
from preflight.engine.execcred import ExecResult, ExecTimeout, run_plugin
from preflight.engine.probes.proxy import Proxy
from preflight.engine.redact import bearer_forms
from preflight.engine.targets import ClusterTarget

__all__ = ["Endpoint", "KubeAPI", "KubeSetupError", "PluginTimeout", "Response", "TransportError"]


class KubeSetupError(Exception):
    """The client could not be configured from the context (bad CA data, missing files...)."""


class PluginTimeout(TransportError):
    """The exec plugin never answered: like a request without an answer, nothing was decided (`error`)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # parsed JSON, or the raw text when the server did not send JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def reason(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or self.body.get("reason") or "")
        return body_summary(str(self.body if self.body is not None else ""))


def parse_body(raw: bytes) -> Any:
    """An answer's JSON (orjson: a node list parses in a third of json's time), or its text when it is not JSON.
    What orjson refuses and json reads (NaN, invalid UTF-8 replaced) json reads; an integer beyond 64 bits comes
    back as a float (the API's objects hold none: resource versions and quantities are strings)."""
    import orjson

    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode(errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_REASON_CHARS = 120


def body_summary(text: str) -> str:
    """What a non-JSON answer (a proxy's or load balancer's page) says, without quoting it: some echo the
    request, headers and all. An HTML page is its title; text is its first line; bounded and printable."""
    title = _TITLE.search(text)
    if title:
        first = title.group(1)
    elif text.lstrip().startswith("<"):
        return f"an HTML page ({len(text)} characters)"
    else:
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
    shown = " ".join("".join(c if c.isprintable() else " " for c in first).split())
    return shown if len(shown) <= _REASON_CHARS else shown[: _REASON_CHARS - 1] + "…"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secrets_of(cred: ExecResult) -> list[str]:
    """What an exec plugin handed over, in every form the client carries it (a header, base64 kubeconfig data)."""
    out = bearer_forms(cred.token) if cred.token else []
    return out + [form for pem in (cred.client_cert_pem, cred.client_key_pem) if pem for form in (pem, _b64(pem))]


def preload() -> None:
    """Import what requests use now: before forking workers, so they share it instead of each importing it."""
    import http.client  # noqa: F401

    import orjson  # noqa: F401


_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "User-Agent": f"meshery-preflight/{__version__}",
}


class KubeAPI:
    def __init__(
        self,
        target: ClusterTarget,
        connect_timeout: float,
        exec_timeout: float,
        on_secrets: Callable[[list[str]], None] = lambda _: None,
    ) -> None:
        """``on_secrets`` registers the credentials the client obtains mid-run (an exec plugin's token)."""
        self.target = target
        self._on_secrets = on_secrets
        self.connect_timeout = connect_timeout
        self.exec_timeout = exec_timeout
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self.exec_result: ExecResult | None = None

    def _credential(self) -> tuple[str | None, bytes | None, bytes | None]:
        """The bearer token and client certificate and key the context presents (its exec plugin's, run here
        under our deadline). Raises KubeSetupError, ExecError or PluginTimeout with a message fit for the user."""
        t = self.target
        if t.credential.problem:
            # Never sent as written (a token with a newline would even crash the HTTP layer).
            raise KubeSetupError(f"the credential cannot be used: {t.credential.problem}")
        if t.problems:
            raise KubeSetupError(f"the context cannot be used: {'; '.join(t.problems)}")
        spec = t.credential.exec_spec
        if spec is None:
            return t.credential.token, t.credential.client_cert_pem, t.credential.client_key_pem
        try:
            cred = run_plugin(spec, self.exec_timeout, cwd=str(t.base_dir))
        except ExecTimeout as exc:
            raise PluginTimeout(str(exc)) from None
        self.exec_result = cred
        self._on_secrets(_secrets_of(cred))
        cert, key = cred.client_cert_pem, cred.client_key_pem
        return cred.token, cert.encode() if cert else None, key.encode() if key else None

    def _connections(self) -> Pool:
        """Read the context once: its server, trust, TLS server name, proxy and credential, as client-go does
        (the kubernetes package's loader did this until it cost a quarter of a second of imports per run)."""
        with self._lock:
            if self._pool is None:
                t = self.target
                token, cert, key = self._credential()
                headers: dict[str, str] = {}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                elif t.credential.basic is not None:
                    headers["Authorization"] = "Basic " + _b64(":".join(t.credential.basic))
                try:
                    trust = tls_context(t.ca_pem, t.insecure, cert, key)
                except ssl.SSLError as exc:
                    raise KubeSetupError(f"the context's certificates cannot be used: {exc.reason or exc}") from None
                endpoint = Endpoint(
                    host=t.host or "",
                    port=t.port or 443,
                    base_path=urlsplit(t.server).path.rstrip("/"),
                    server_name=t.tls_server_name or t.host or "",
                    tls=trust,
                    proxy=Proxy.from_url(t.proxy_url) if t.proxy_url else None,
                    headers=headers,
                )
                self._pool = Pool(endpoint, self.connect_timeout)
            return self._pool

    def endpoint(self) -> Endpoint:
        """How this context reaches its API server."""
        return self._connections().endpoint

    def dial(self, timeout: float) -> ssl.SSLSocket:
        """A connection of one's own to the API server (a port-forward's), made as the client's are."""
        return self._connections().dial(timeout)

    def request(self, method: str, path: str, body: Any = None, read_timeout: float | None = None) -> Response:
        """One request on a kept-alive connection; the answer's JSON parsed. Transport failures raise
        TransportError."""
        pool = self._connections()
        data = json.dumps(body).encode() if body is not None else None
        status, raw = pool.request(method, path, data, _HEADERS, read_timeout or self.connect_timeout * 2)
        return Response(status, parse_body(raw))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def can(
        self, verb: str, resource: str, group: str = "", namespace: str | None = None, subresource: str = ""
    ) -> bool | None:
        """A SelfSubjectAccessReview (non-persistent, the only kind of write we send). None: no answer."""
        attrs: dict[str, str] = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        resp = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
        if not resp.ok or not isinstance(resp.body, dict):
            return None
        return bool((resp.body.get("status") or {}).get("allowed"))

    def rules(self, namespace: str) -> Any:
        """A SelfSubjectRulesReview's status for the namespace (non-persistent); None: no answer."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        }
        resp = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body=body)
        if not resp.ok or not isinstance(resp.body, dict):
            return None
        return resp.body.get("status")

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
