"""TLS handshake inspection: does the chain verify against the kubeconfig's CA, does the name match."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass, field

from preflight.engine.apiconn import tls_context
from preflight.engine.probes.proxy import Proxy, ProxyError, tunnel


@dataclass
class TlsInspection:
    verified: bool
    verify_error: str | None
    hostname_ok: bool | None
    not_after: dt.datetime | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: list[str] = field(default_factory=list)
    tls_version: str | None = None
    handshake_error: str | None = None
    # The connection was accepted and then nothing answered the handshake in time: nothing could be decided.
    timed_out: bool = False
    # Set when the proxy, not the server, stopped the handshake.
    proxy_error: ProxyError | None = None


def _context(ca_pem: bytes | None, check_hostname: bool) -> ssl.SSLContext:
    """The client's trust (the kubeconfig's CA, else the system's), verification always on."""
    ctx = tls_context(ca_pem, insecure=False)
    ctx.check_hostname = check_hostname
    return ctx


def _open(address: str, port: int, timeout: float, proxy: Proxy | None) -> socket.socket:
    """A TCP connection to the server, direct or through an HTTP CONNECT tunnel."""
    if proxy is None:
        return socket.create_connection((address, port), timeout=timeout)
    return tunnel(proxy, address, port, timeout)


def _handshake(
    address: str, port: int, server_name: str, ctx: ssl.SSLContext, timeout: float, proxy: Proxy | None
) -> tuple[bytes | None, str | None]:
    with _open(address, port, timeout, proxy) as raw, ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        return tls.getpeercert(binary_form=True), tls.version()


def _describe(der: bytes, out: TlsInspection) -> None:
    from cryptography import x509  # lazily: list-checks and explain import the probes

    cert = x509.load_der_x509_certificate(der)
    out.not_after = cert.not_valid_after_utc
    out.subject = cert.subject.rfc4514_string()
    out.issuer = cert.issuer.rfc4514_string()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out.sans = [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
            str(v) for v in san.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        pass


def inspect(
    address: str,
    port: int,
    server_name: str,
    ca_pem: bytes | None,
    timeout: float,
    proxy: Proxy | None = None,
) -> TlsInspection:
    """Handshake with verification; on failure, find out whether the chain or only the name is wrong."""
    try:
        der, version = _handshake(address, port, server_name, _context(ca_pem, True), timeout, proxy)
        out = TlsInspection(verified=True, verify_error=None, hostname_ok=True, tls_version=version)
        if der:
            _describe(der, out)
        return out
    except ProxyError as exc:
        return TlsInspection(False, None, None, handshake_error=str(exc), proxy_error=exc)
    except ssl.SSLCertVerificationError as exc:
        first_error = exc.verify_message or str(exc)
        name_mismatch = exc.verify_code == 62 or "mismatch" in first_error
    except TimeoutError:
        return TlsInspection(False, None, None, handshake_error="the handshake timed out", timed_out=True)
    except ssl.SSLError as exc:
        return TlsInspection(False, None, None, handshake_error=f"{exc.reason or exc}")
    except (OSError, ValueError) as exc:
        return TlsInspection(False, None, None, handshake_error=str(exc) or type(exc).__name__)
    # `verified` speaks of the chain: a name mismatch means the chain itself was trusted.
    out = TlsInspection(
        verified=name_mismatch,
        verify_error=None if name_mismatch else first_error,
        hostname_ok=False if name_mismatch else None,
    )
    try:
        insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # only to read the certificate for evidence, never to trust it
        der, version = _handshake(address, port, server_name, insecure, timeout, proxy)
        out.tls_version = version
        if der:
            _describe(der, out)
    except (OSError, ssl.SSLError, ValueError):
        pass
    return out
