"""Credential fingerprints that spot one credential reused across clusters without revealing it.

A fingerprint is an HMAC-SHA256 of what identifies the credential, never a plain hash (a bare hash of a
token is a dictionary attack away from the token). The key is random per run unless every run is given
the same ``--fingerprint-key-file``: only then are fingerprints of different runs comparable. Reports
carry the key's id (an HMAC of a fixed label), so `merge` sees whether runs shared a key without knowing it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from preflight.engine.errors import ConfigError

_KEY_ID_LABEL = b"meshery-preflight fingerprint key id v1"
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class FingerprintKey:
    secret: bytes = field(repr=False)
    # Where it came from, for messages: a file name, or "random per-run key".
    source: str = "random per-run key"

    @property
    def id(self) -> str:
        return hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def digest(self, material: bytes) -> str:
        return hmac.new(self.secret, material, hashlib.sha256).hexdigest()[:32]


def random_key() -> FingerprintKey:
    return FingerprintKey(secrets.token_bytes(32))


def load(path: str) -> FingerprintKey:
    """The key in ``path`` (its bytes, surrounding white space stripped); :class:`ConfigError` otherwise."""
    try:
        data = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"--fingerprint-key-file {path}: {exc.strerror or exc}") from None
    if len(data) < MIN_KEY_BYTES:
        raise ConfigError(
            f"--fingerprint-key-file {path}: holds {len(data)} bytes, needs at least {MIN_KEY_BYTES} "
            "(e.g. `head -c 32 /dev/urandom | base64 > KEYFILE`)"
        )
    return FingerprintKey(data, path)
