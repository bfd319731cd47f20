"""Kubeconfig checks: does each context describe a cluster Meshery Server can use safely."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from typing import Any

from preflight.engine import execcred
from preflight.engine.context import ClusterContext
from preflight.engine.model import Finding, Severity, fail, passed, warn
from preflight.engine.registry import check

EXPIRY_WARN_DAYS = 14


@check(
    id="kubeconfig.context",
    meshery_code="connection_inactive",
    title="Context resolves to a cluster, a user and a server URL",
    category="kubeconfig",
    severity=Severity.CRITICAL,
    remediation="Fix the context entry so it names a cluster and a user defined in the kubeconfig, "
    "and give the cluster an https:// server URL (kubectl config set-context / set-cluster).",
)
def context_resolves(ctx: ClusterContext) -> Finding:
    """Meshery creates one connection per context; a context that does not resolve cannot connect."""
    t = ctx.target
    evidence: dict[str, Any] = {
        "source": str(t.source) if t.source else "in-cluster",
        "cluster": t.cluster_name,
        "user": t.user_name,
        "server": t.server,
    }
    if t.shadowed:
        evidence["shadowed"] = t.shadowed
    if t.rejected_file:
        return fail(
            "; ".join(t.problems),
            remediation=f"Give every cluster, user and context in {t.rejected_file} a name of its own (rename or "
            "delete the repeat): until then kubectl and Meshery Server load nothing from that file.",
            **evidence,
        )
    if t.problems:
        return fail("; ".join(t.problems), **evidence)
    if t.shadowed:
        return warn(
            f"resolves to {t.server}, but another kubeconfig file defines "
            f"{', '.join(t.shadowed)} differently and is ignored (first file wins)",
            remediation="Remove or rename the duplicate entries so every file agrees; "
            "kubectl and Meshery use the first file in KUBECONFIG order.",
            **evidence,
        )
    return passed(f"cluster {t.cluster_name!r}, user {t.user_name!r}, server {t.server}", **evidence)


def _jwt_expiry(token: str) -> dt.datetime | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp")
    except (ValueError, AttributeError):
        return None
    return dt.datetime.fromtimestamp(exp, dt.timezone.utc) if isinstance(exp, (int, float)) else None


def _cert_finding(pem: bytes, evidence: dict[str, Any]) -> Finding:
    from cryptography import x509  # lazily: list-checks and explain import this module

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return fail("the client certificate is not valid PEM", **evidence)
    now = dt.datetime.now(dt.timezone.utc)
    not_after = cert.not_valid_after_utc
    evidence.update(subject=cert.subject.rfc4514_string(), not_after=not_after.isoformat())
    if not_after <= now:
        return fail(
            f"the client certificate expired on {not_after:%Y-%m-%d}",
            remediation="Issue a new client certificate (or switch to a provider-issued, short-lived "
            "credential) and update client-certificate-data/client-key-data.",
            **evidence,
        )
    days = (not_after - now).days
    if days < EXPIRY_WARN_DAYS:
        return warn(
            f"the client certificate expires in {days} days ({not_after:%Y-%m-%d})",
            remediation="Rotate the client certificate before it expires, or move to a short-lived credential.",
            **evidence,
        )
    return warn(
        f"static client certificate valid until {not_after:%Y-%m-%d}: long-lived and hard to revoke",
        **evidence,
    )


@check(
    id="kubeconfig.credential",
    title="Credential is short-lived and valid",
    category="kubeconfig",
    severity=Severity.MEDIUM,
    depends_on=("kubeconfig.context",),
    remediation="Prefer short-lived, provider-issued credentials (aws eks get-token, gke-gcloud-auth-plugin, "
    "kubelogin) scoped to what Meshery needs in this cluster, and rotate each cluster's credential on its own.",
)
def credential_kind(ctx: ClusterContext) -> Finding:
    """Long-lived tokens and certificates in a Server's kubeconfig folder are a standing risk."""
    cred = ctx.target.credential
    evidence: dict[str, Any] = {"kind": cred.kind}
    if cred.problem:
        return fail(cred.problem, remediation=cred.fix, **evidence)
    if cred.kind == "exec":
        spec = cred.exec_spec or {}
        command = str(spec.get("command") or "")
        evidence.update(command=os.path.basename(command), api_version=spec.get("apiVersion"))
        if not execcred.locate(spec, cwd=str(ctx.target.base_dir)):
            where = "the path" if os.path.sep in command else "PATH"
            return fail(
                execcred.not_found_message(spec),
                remediation=f"Install {os.path.basename(command) or 'the plugin'} where Meshery Server runs, "
                f"or fix users[].user.exec.command; it is looked up on {where} as kubectl does.",
                **evidence,
            )
        return passed(f"exec credential plugin {evidence['command']!r} issues short-lived credentials", **evidence)
    if cred.kind in ("oidc", "auth-provider"):
        evidence["provider"] = cred.provider
        return passed(f"auth-provider {cred.provider!r} issues short-lived tokens", **evidence)
    if cred.kind == "basic":
        return fail(
            "basic authentication (username/password) was removed in Kubernetes 1.19",
            remediation="Replace the username/password with a token, exec plugin or client certificate.",
            **evidence,
        )
    if cred.kind == "none":
        return fail("the user entry has no credential: every request will be anonymous", **evidence)
    if cred.kind == "client-cert":
        return _cert_finding(cred.client_cert_pem or b"", evidence)
    token = cred.token or ""
    expiry = _jwt_expiry(token)
    if expiry is not None:
        evidence["expires"] = expiry.isoformat()
        if expiry <= dt.datetime.now(dt.timezone.utc):
            return fail(
                f"the bearer token expired at {expiry:%Y-%m-%d %H:%M} UTC",
                remediation="Issue a fresh token (kubectl create token ...) or use an exec plugin that refreshes it.",
                **evidence,
            )
        return passed(f"bound token that expires at {expiry:%Y-%m-%d %H:%M} UTC", **evidence)
    if ctx.target.in_cluster:
        return passed("in-cluster ServiceAccount token (projected and rotated by the kubelet)", **evidence)
    return warn("static bearer token with no expiry: long-lived, and valid until someone revokes it", **evidence)


@check(
    id="kubeconfig.tls-verify",
    title="TLS verification is enabled",
    category="kubeconfig",
    severity=Severity.HIGH,
    depends_on=("kubeconfig.context",),
    remediation="Remove insecure-skip-tls-verify and set certificate-authority-data to the cluster's CA "
    "(for managed clusters, the CA the provider's console or CLI prints).",
)
def tls_verify(ctx: ClusterContext) -> Finding:
    """Without verification anyone on the path can impersonate the API server and take the credential."""
    t = ctx.target
    if t.ca_problem and not t.insecure:
        return fail(
            t.ca_problem,
            remediation="Set certificate-authority-data to the base64 of the cluster's PEM CA certificate "
            "(kubectl config set-cluster NAME --certificate-authority=ca.crt --embed-certs).",
            ca="kubeconfig CA",
        )
    if t.insecure:
        extra = " (and a CA is also set, which kubectl rejects)" if t.ca_pem else ""
        return fail(
            "insecure-skip-tls-verify is set: the API server's identity is not checked"
            + extra
            + "; still honoured for the remaining checks",
            insecure_skip_tls_verify=True,
        )
    source = "kubeconfig CA" if t.ca_pem else "system trust store"
    return passed(f"TLS verification on, against the {source}", ca=source)
