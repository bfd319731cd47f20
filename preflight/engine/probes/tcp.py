"""Classify a TCP connect the way an SRE reads it: open, refused, filtered or unreachable."""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass

OPEN, REFUSED, FILTERED, UNREACHABLE, FAILED = "open", "refused", "filtered", "unreachable", "error"

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class TcpOutcome:
    state: str
    address: str
    port: int
    elapsed_ms: float
    detail: str

    def as_evidence(self) -> dict[str, object]:
        return {
            "address": self.address,
            "port": self.port,
            "state": self.state,
            "elapsed_ms": self.elapsed_ms,
            "detail": self.detail,
        }


def connect(address: str, port: int, timeout: float) -> TcpOutcome:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    t0 = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        state, detail = OPEN, "connected"
    except TimeoutError:
        state, detail = FILTERED, f"no answer within {timeout:g}s (SYN dropped)"
    except ConnectionRefusedError:
        state, detail = REFUSED, "connection refused (RST)"
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "error")
        state = UNREACHABLE if exc.errno in _UNREACHABLE else FAILED
        detail = f"{name}: {exc.strerror or exc}"
    finally:
        sock.close()
    return TcpOutcome(state, address, port, round((time.monotonic() - t0) * 1000, 1), detail)
