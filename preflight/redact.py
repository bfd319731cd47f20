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
# scheme://user:password@host: the user name stays (it says who), the password goes.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]+@")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# Only for text we did not write (a plugin's stderr): shapes too broad for our own messages.
_KEY_VALUE = re.compile(
    r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|session[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;&]+"
)
_AWS_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
REDACTED = "<redacted>"


def url_password(url: str) -> str | None:
    """The password in ``scheme://user:password@host``, to register as a secret; None without one."""
    m = re.match(r"(?i)[a-z][a-z0-9+.-]*://[^:/?#@\s]*:([^@/?#\s]+)@", url.strip())
    return m.group(1) if m else None


def _shapes(value: str) -> str:
    # Substring tests first: nearly every string has none of the shapes, and these cost a fraction of a regex scan.
    if "-----BEGIN " in value:
        value = _PEM.sub(REDACTED, value)
    if "eyJ" in value:
        value = _JWT.sub(REDACTED, value)
    if "://" in value:
        value = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", value)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, value)


def scrub_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """Text from outside (an exec plugin's stderr): the given secrets and anything shaped like a
    credential removed, including key=value pairs and AWS key shapes our own messages never contain."""
    for s in sorted((s.strip() for s in secrets if len(s.strip()) >= 4), key=len, reverse=True):
        text = text.replace(s, REDACTED)
    text = _shapes(text)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _AWS_ACCESS_KEY.sub(REDACTED, text)
    return _AWS_SECRET_KEY.sub(REDACTED, text)


class Redactor:
    """Scrubs every known secret from text. A fleet registers thousands (a token and the lines of each key per
    cluster), so known secrets are matched in one pass of an Aho-Corasick automaton, not one search per secret;
    secrets registered mid-run (Broker tokens) are searched directly until enough gather to rebuild it."""

    _REBUILD_AT = 16

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        # (automaton of the older secrets or None, the newest ones): one attribute, so a reader never pairs a
        # new automaton's absence of a secret with an old list that no longer holds it.
        self._index: tuple[Any, tuple[str, ...]] = (None, ())
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Thread-safe: probes register secrets they read (a Broker token) while other clusters render."""
        with self._lock:
            self._add(secrets)

    def _add(self, secrets: Iterable[str]) -> None:
        new: list[str] = []
        for s in secrets:
            s = s.strip()
            # Short strings would redact innocent text; real tokens and keys are long.
            if len(s) < 8:
                continue
            parts = [s, *(ln.strip() for ln in s.splitlines() if len(ln.strip()) >= 16 and "-----" not in ln)]
            new += [p for p in parts if p not in self._known]
            self._known.update(parts)
        if not new:
            return
        automaton, recent = self._index
        recent = (*recent, *new)
        if len(recent) < self._REBUILD_AT:
            self._index = (automaton, recent)
            return
        import ahocorasick

        automaton = ahocorasick.Automaton()
        for s in self._known:
            automaton.add_word(s, len(s))
        automaton.make_automaton()
        # Readers take the index without the lock: a built automaton is never changed, only replaced.
        self._index = (automaton, ())

    def _spans(self, value: str) -> list[tuple[int, int]]:
        automaton, recent = self._index
        spans = [(end + 1 - size, end + 1) for end, size in automaton.iter(value)] if automaton is not None else []
        for s in recent:
            at = value.find(s)
            while at >= 0:
                spans.append((at, at + len(s)))
                at = value.find(s, at + 1)
        return spans

    def text(self, value: str) -> str:
        spans = self._spans(value) if len(value) >= 8 else []
        if spans:
            # Overlapping or adjacent secrets become one marker, so no fragment of either survives.
            spans.sort()
            parts, cursor, (start, stop) = [], 0, spans[0]
            for a, b in spans[1:]:
                if a <= stop:
                    stop = max(stop, b)
                    continue
                parts += [value[cursor:start], REDACTED]
                cursor, (start, stop) = stop, (a, b)
            value = "".join([*parts, value[cursor:start], REDACTED, value[stop:]])
        return _shapes(value)

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
