"""Helpers shared by the renderers.

Messages and evidence often quote what a remote server said, so text bound for a terminal or an XML
file is treated as untrusted: escape sequences could recolour or retitle the reader's terminal, and
control characters make XML unparseable.
"""

from __future__ import annotations

import datetime as _dt
import math
import re

_ANSI_RE = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]             # CSI: colours, cursor movement
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)   # OSC: window title, hyperlinks
    | \x1b[PX^_][^\x1b]*\x1b\\            # DCS, SOS, PM, APC strings
    | \x1b[@-Z\\-_]                       # remaining two-byte escapes
    | \x9b[0-?]*[ -/]*[@-~]               # 8-bit CSI
    """,
    re.VERBOSE,
)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_TERMINAL_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_XML_ILLEGAL_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def terminal_safe(text: str) -> str:
    """Text a terminal shows literally: no escapes, no carriage returns, and encodable as UTF-8."""
    text = _SURROGATE_RE.sub("\ufffd", strip_ansi(text))
    return _TERMINAL_CONTROL_RE.sub("", text)


_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """A name, id or address as one visible line: a line break or escape sequence in a context name is
    shown as ``\\n`` or ``\\e``, so it can neither forge a report line nor vanish from the name."""
    return _CONTROL_RE.sub(_escape, _SURROGATE_RE.sub("\ufffd", text))


def xml_safe(text: str) -> str:
    """Text an XML 1.0 parser accepts; lone surrogates (from undecodable bytes) become U+FFFD."""
    text = _SURROGATE_RE.sub("\ufffd", strip_ansi(text))
    return _XML_ILLEGAL_RE.sub("", text)


def as_utc(moment: _dt.datetime) -> _dt.datetime:
    """Naive datetimes are taken to be UTC already, which is what the runner records."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc)


def seconds(value: float) -> float:
    """A duration fit for a report: rounded to milliseconds, never negative or NaN (clock steps)."""
    if not math.isfinite(value) or value < 0:
        return 0.0
    return round(value, 3)


def plural(n: int, singular: str, many: str | None = None) -> str:
    """``1 check``, ``2 checks``: counts in reports read as sentences."""
    return f"{n} {singular if n == 1 else (many or singular + 's')}"


# What a fix's command line starts with: the CLIs the checks tell people to run.
COMMAND_WORDS = ("aws ", "az ", "gcloud ", "kubectl ", "helm ", "mesheryctl ", "meshery-preflight ")


def is_command(line: str) -> bool:
    """Whether a line of a fix is a command to paste: it stands on its own line in every report."""
    return line.lstrip().startswith(COMMAND_WORDS)


def is_pasteable(line: str) -> bool:
    """A console line kept whole however narrow the terminal: a command, or a docs link."""
    return is_command(line) or line.lstrip().startswith("docs: ")
