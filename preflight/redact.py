"""Last line of defence against leaking secrets: scrub every string a Result carries.

Checks are written never to put secrets in evidence; this catches the ones that slip through an
exception message or a server's echo.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.S)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
REDACTED = "<redacted>"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Thread-safe: probes register secrets they read (a Broker token) while other clusters render."""
        with self._lock:
            self._add(secrets)

    def _add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            s = s.strip()
            # Short strings would redact innocent text; real tokens and keys are long.
            if len(s) >= 8 and s not in self._secrets:
                self._secrets.append(s)
                for line in s.splitlines():
                    if len(line.strip()) >= 16 and "-----" not in line:
                        self._secrets.append(line.strip())
        self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        with self._lock:
            known = list(self._secrets)
        for s in known:
            if s in value:
                value = value.replace(s, REDACTED)
        value = _PEM.sub(REDACTED, value)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v) for v in value]
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        return value
