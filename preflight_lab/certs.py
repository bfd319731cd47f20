"""Certificates for the lab: a CA, server certs and client certs, all as PEM bytes.

The lab needs certificates that look like a real cluster's (SANs, key usages, chosen validity) so
the TLS and expiry checks meet the same shapes they meet in the field. EC P-256 keeps generation
cheap enough to mint hundreds per test run; callers may pass one key to many certificates.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertKeyPair",
    "CertificateAuthority",
    "create_ca",
    "generate_key",
    "key_to_pem",
    "pem_body",
    "utcnow",
]

# Backdate certificates a little so a clock that lags the lab by seconds does not see "not yet valid".
_DEFAULT_BACKDATE = _dt.timedelta(hours=1)
_DEFAULT_LIFETIME = _dt.timedelta(days=365)


def utcnow() -> _dt.datetime:
    """Timezone-aware now, the only kind ``cryptography`` accepts without warnings."""
    return _dt.datetime.now(_dt.timezone.utc)


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key: sub-millisecond, unlike RSA, so 200 clusters start fast."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """SEC1 ("EC PRIVATE KEY") PEM, the form kubeadm writes for EC keys."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def pem_body(pem: bytes | str) -> str:
    """The base64 between the BEGIN/END lines, joined to one line (a leak may be re-wrapped)."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    return "".join(line.strip() for line in text.splitlines() if line and not line.startswith("-----"))


@dataclass(frozen=True)
class CertKeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def cert_b64(self) -> str:
        """The value a kubeconfig's ``*-data`` field carries."""
        return base64.b64encode(self.cert_pem).decode()

    @property
    def key_b64(self) -> str:
        return base64.b64encode(self.key_pem).decode()


def _validity(not_before: _dt.datetime | None, not_after: _dt.datetime | None) -> tuple[_dt.datetime, _dt.datetime]:
    now = utcnow()
    start = not_before if not_before is not None else now - _DEFAULT_BACKDATE
    end = not_after if not_after is not None else max(now, start) + _DEFAULT_LIFETIME
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("certificate validity bounds must be timezone-aware")
    if end <= start:
        raise ValueError(f"not_after ({end.isoformat()}) must be later than not_before ({start.isoformat()})")
    return start, end


class CertificateAuthority:
    """A self-signed CA that issues the lab's server and client certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self._cert = cert
        self.cert_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem: bytes = key_to_pem(key)
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())

    def __repr__(self) -> str:
        return f"CertificateAuthority(subject={self._cert.subject.rfc4514_string()!r})"

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @property
    def cert_b64(self) -> str:
        """The value of a kubeconfig's ``certificate-authority-data``."""
        return base64.b64encode(self.cert_pem).decode()

    def _issue(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey | None,
        not_before: _dt.datetime | None,
        not_after: _dt.datetime | None,
        usage: x509.ObjectIdentifier,
        san: x509.SubjectAlternativeName | None,
    ) -> CertKeyPair:
        leaf_key = key if key is not None else generate_key()
        start, end = _validity(not_before, not_after)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(self._aki, critical=False)
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return CertKeyPair(cert.public_bytes(serialization.Encoding.PEM), key_to_pem(leaf_key))

    def issue_server_cert(
        self,
        common_name: str,
        *,
        ip_addresses: Iterable[str] = (),
        dns_names: Iterable[str] = (),
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> CertKeyPair:
        """A serving certificate; clients match the kubeconfig's server host against its SANs."""
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if not names:
            raise ValueError("a server certificate needs at least one IP address or DNS name SAN")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._issue(
            subject,
            key,
            not_before,
            not_after,
            ExtendedKeyUsageOID.SERVER_AUTH,
            x509.SubjectAlternativeName(names),
        )

    def issue_client_cert(
        self,
        username: str,
        groups: Sequence[str] = (),
        *,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> CertKeyPair:
        """A client certificate the way Kubernetes reads it: CN is the user, each O a group."""
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, username))
        return self._issue(x509.Name(attrs), key, not_before, not_after, ExtendedKeyUsageOID.CLIENT_AUTH, None)


def create_ca(
    common_name: str = "lab-ca",
    *,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> CertificateAuthority:
    """A new self-signed CA (default validity: from an hour ago for ten years)."""
    ca_key = key if key is not None else generate_key()
    start, end = _validity(not_before, not_after or utcnow() + 10 * _DEFAULT_LIFETIME)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return CertificateAuthority(ca_key, cert)


def server_ssl_context(pair: CertKeyPair) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving ``pair``; ssl only loads a chain from files, which live just long
    enough to be read (the key 0600 from the start)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="lab-tls-") as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(pair.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(pair.key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx
