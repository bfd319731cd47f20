"""Structured log lines for `serve`: one per run, per configuration change and per lifecycle step.

``--log-format json`` writes one JSON object a line (for a log pipeline); ``text`` writes ``key=value``
pairs. Every string field is scrubbed of credential shapes first: a log line never carries a secret.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from typing import Any, TextIO

from preflight.engine.redact import scrub_credentials

FORMATS = ("text", "json")


class Log:
    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        self.fmt, self.stream = fmt, stream
        self._lock = threading.Lock()

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        clean = {k: scrub_credentials(" ".join(v.split())) if isinstance(v, str) else v for k, v in fields.items()}
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {"ts": now, "level": level, "event": event, **clean}
        if self.fmt == "json":
            line = json.dumps(record, separators=(",", ":"), default=str)
        else:
            line = " ".join(f"{k}={_text(v)}" for k, v in record.items())
        stream = self.stream or sys.stderr
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass


def _text(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text
