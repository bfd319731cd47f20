"""Last line of defence against leaking secrets: scrub every string a Result carries.

Checks are written never to put secrets in evidence; this catches the ones that slip through an
exception message or a server's echo.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.S)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# An Authorization or Proxy-Authorization header a peer echoed back, in any of HTTP's usual schemes.
_AUTH_HEADER = re.compile(
    r"(?i)(authorization\s*:\s*(?:basic|bearer|digest|negotiate|ntlm|token|aws4-hmac-sha256)\s+)[^\s\"'<>]+"
)
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


def basic_credential(user: str, password: str) -> str:
    """The base64 of ``user:password`` that HTTP Basic (and so Proxy-Authorization) carries."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def credential_forms(user: str | None, password: str) -> list[str]:
    """Every form the tool derives from a user and password, to register as secrets where it derives them:
    the password as written, percent-decoded and percent-encoded, and the base64 of ``user:password`` with the
    ``Basic`` header value built from it. (Not the pair itself: the user name stays readable, it says who.)"""
    forms = {password, unquote(password), quote(unquote(password), safe="")}
    if user is not None:
        for pw in {password, unquote(password)}:
            basic = basic_credential(unquote(user), pw)
            forms |= {basic, f"Basic {basic}"}
    return sorted(f for f in forms if f)


def bearer_forms(token: str) -> list[str]:
    """A bearer token and the Authorization header value the client builds from it."""
    return [token, f"Bearer {token}"] if token else []


def _shapes(value: str) -> str:
    # Substring tests first: nearly every string has none of the shapes, and these cost a fraction of a regex scan.
    if "-----BEGIN " in value:
        value = _PEM.sub(REDACTED, value)
    if "eyJ" in value:
        value = _JWT.sub(REDACTED, value)
    if "://" in value:
        value = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", value)
    if "uthorization" in value or "UTHORIZATION" in value:
        value = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, value)
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
    cluster), so known secrets are matched in one pass of an Aho-Corasick automaton per level, not one search
    per secret.

    Secrets registered mid-run (Broker tokens, exec-plugin tokens: one or two per cluster) are searched directly
    until enough gather to make a level; levels merge like a binary counter (a new level absorbs every level no
    larger than it). Rebuilding one automaton of every secret instead cost each addition the size of the whole
    fleet: 2.8 s for 500 additions to 3000 secrets, a quarter of a 1000-cluster run's CPU."""

    _REBUILD_AT = 16

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._levels: list[tuple[set[str], Any]] = []  # (its secrets, its automaton), larger first
        # (the levels' automatons, the newest secrets): one attribute, so a reader never pairs a new level's
        # absence of a secret with an old list that no longer holds it.
        self._index: tuple[tuple[Any, ...], tuple[str, ...]] = ((), ())
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
        automatons, recent = self._index
        recent = (*recent, *new)
        if len(recent) < self._REBUILD_AT:
            self._index = (automatons, recent)
            return
        import ahocorasick

        words = set(recent)
        while self._levels and len(self._levels[-1][0]) <= len(words):
            words |= self._levels.pop()[0]
        automaton = ahocorasick.Automaton()
        for s in words:
            automaton.add_word(s, len(s))
        automaton.make_automaton()
        self._levels.append((words, automaton))
        # Readers take the index without the lock: a built automaton is never changed, only replaced.
        self._index = (tuple(a for _, a in self._levels), ())

    @property
    def levels(self) -> int:
        return len(self._levels)

    def _spans(self, value: str) -> list[tuple[int, int]]:
        automatons, recent = self._index
        spans = [(end + 1 - size, end + 1) for automaton in automatons for end, size in automaton.iter(value)]
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
