"""The bounded set of cause codes a finding may carry (``Finding.reason``).

A reason is what a probe already classified (a TCP state, a DNS answer, a TLS cause, an HTTP status), as
one snake_case code from this table: never free text or an address, so it can be a metric label whose
series count stays clusters x checks x (a few codes). A finding without one is labelled from its status
(:func:`label`).
"""

from __future__ import annotations

from collections.abc import Mapping

REASONS: Mapping[str, str] = {
    # TCP (probes/tcp.py's classification)
    "refused": "the port answered with a reset: nothing listens there",
    "filtered": "no answer to the connect: a firewall drops the SYN",
    "unreachable": "no route to the address",
    "local_error": "the connect failed on this machine",
    # DNS (probes/dns.py)
    "nxdomain": "the name does not exist",
    "dns_no_answer": "the name exists but has no address",
    "dns_timeout": "the resolver did not answer in time",
    "dns_error": "the look-up failed",
    "private_address_unreachable": "the name answers private addresses the Server's origin cannot reach",
    # TLS
    "tls_untrusted": "the certificate chain does not verify against the trusted CA",
    "tls_name_mismatch": "the certificate does not cover the name dialled",
    "tls_expired": "the certificate has expired",
    "tls_not_yet_valid": "the certificate is not yet valid",
    "tls_expiring": "the certificate expires soon",
    "tls_handshake": "the TLS handshake failed or hung",
    "tls_client_cert_required": "the server requires a client certificate",
    # Authentication and authorization
    "credential_rejected": "the API answered 401 to the credential",
    "credential_missing": "the context has no usable credential",
    "exec_plugin_failed": "the exec credential plugin failed",
    "exec_plugin_timeout": "the exec credential plugin did not answer in time",
    "forbidden": "authenticated, but forbidden even discovery",
    "rbac_denied": "the identity lacks rights Meshery needs",
    # HTTP CONNECT proxy (probes/proxy.py)
    "proxy_unreachable": "no TCP connection to the proxy",
    "proxy_acl": "the proxy's rules forbid the destination (403)",
    "proxy_auth": "the proxy wants credentials or rejected them (407)",
    "proxy_upstream": "the proxy cannot reach the API itself (502/503/504)",
    "proxy_refused": "the proxy refused the tunnel",
    "proxy_no_answer": "the proxy did not answer as an HTTP CONNECT proxy",
    # The runner's own verdicts
    "check_timeout": "the probe did not finish within its budget",
    "cluster_budget_exhausted": "the cluster's budget was used up before the check ran",
    "dependency_failed": "skipped: a check it needs did not pass",
    "not_applicable": "skipped: the check does not apply to this cluster",
    "interrupted": "the run stopped before the check finished",
    "probe_crashed": "the probe raised or returned something that is not a finding",
}

# What a finding without a reason is labelled: `none` for a pass, `unspecified` otherwise.
NONE, UNSPECIFIED = "none", "unspecified"
LABELS: frozenset[str] = frozenset({*REASONS, NONE, UNSPECIFIED})

TCP: Mapping[str, str] = {
    "refused": "refused",
    "filtered": "filtered",
    "unreachable": "unreachable",
    "error": "local_error",
}
DNS: Mapping[str, str] = {
    "nxdomain": "nxdomain",
    "no-answer": "dns_no_answer",
    "timeout": "dns_timeout",
    "error": "dns_error",
}
TLS: Mapping[str, str] = {
    "unknown-ca": "tls_untrusted",
    "untrusted": "tls_untrusted",
    "name-mismatch": "tls_name_mismatch",
    "expired": "tls_expired",
    "not-yet-valid": "tls_not_yet_valid",
    "client-cert-required": "tls_client_cert_required",
    "handshake": "tls_handshake",
}
PROXY: Mapping[str, str] = {
    "unreachable": "proxy_unreachable",
    "acl": "proxy_acl",
    "auth": "proxy_auth",
    "upstream": "proxy_upstream",
    "refused": "proxy_refused",
    "no-answer": "proxy_no_answer",
}


class UnknownReason(ValueError):
    pass


def validate(reason: str | None) -> None:
    """A reason outside :data:`REASONS` is a bug in the check that made it: refuse it where it is made."""
    if reason is not None and reason not in REASONS:
        raise UnknownReason(f"reason {reason!r} is not declared in preflight.engine.reasons.REASONS")


def of(table: Mapping[str, str], kind: str | None) -> str | None:
    """The code for a classifier's kind (a TCP state, a DNS failure kind...), None when it has none."""
    return table.get(kind or "")


def label(reason: str | None, status: str) -> str:
    """The metric label: the reason, else derived from the status."""
    if reason is not None:
        return reason
    return NONE if status == "pass" else UNSPECIFIED
