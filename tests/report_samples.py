"""Hand-built RunReports for the renderer tests: every status, a dotted cluster name, fleet results,
evidence no JSON encoder accepts as-is, and the hostile text remote servers can put in messages."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from preflight.model import DOCS_BASE_URL, ClusterReport, Result, RunReport, Severity, Status

STARTED = dt.datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=dt.timezone.utc)
FINISHED = STARTED + dt.timedelta(seconds=12.3456)
DOTTED_CLUSTER = "prod.eu-west-1.example.com"
PLAIN_CLUSTER = "staging-gke"
ANSI_MESSAGE = "\x1b[31mconnection refused\x1b[0m by \x1b]0;pwned\x07peer"
MUTE_REASON = "known MTU issue, ticket OPS-12 (muted until 2026-12-31)"
ILLEGAL_XML_MESSAGE = "bad\x00 bytes\x0b from\x1f server\ud800"


class Opaque:
    def __str__(self) -> str:
        return "opaque-object"


ODD_EVIDENCE: dict[str, Any] = {
    "ports": {443, 80, 8443},
    "pair": ("10.0.0.1", 6443),
    "status": Status.FAIL,
    "seen_at": dt.datetime(2026, 11, 24, 1, 2, 3, tzinfo=dt.timezone.utc),
    "raw": b"\x00\x01\x02\x03",
    "nested": {"inner": frozenset({"b", "a"}), 7: None},
    "opaque": Opaque(),
    "ratio": float("nan"),
}


def result(
    check_id: str,
    status: Status,
    *,
    message: str | None = None,
    category: str = "network",
    severity: Severity = Severity.HIGH,
    evidence: dict[str, Any] | None = None,
    duration_s: float = 0.1234,
) -> Result:
    return Result(
        check_id=check_id,
        title=f"Title of {check_id}",
        category=category,
        severity=severity,
        status=status,
        message=message if message is not None else f"{check_id} is {status.value}",
        remediation=f"Remediate {check_id}" if status is not Status.PASS else "",
        docs_url=f"{DOCS_BASE_URL}#{check_id.replace('.', '-')}",
        evidence=evidence if evidence is not None else {},
        duration_s=duration_s,
    )


def every_status(prefix: str) -> list[Result]:
    return [
        result(f"{prefix}.dns", Status.PASS, category="dns", evidence={"answers": ["10.0.0.10"]}),
        result(f"{prefix}.tls", Status.WARN, category="tls", severity=Severity.MEDIUM),
        result(f"{prefix}.egress", Status.FAIL, message=ANSI_MESSAGE, evidence=ODD_EVIDENCE, duration_s=1.5),
        result(f"{prefix}.nats", Status.SKIP, category="broker", severity=Severity.LOW),
        result(f"{prefix}.api", Status.ERROR, message=ILLEGAL_XML_MESSAGE, category="api"),
        result(f"{prefix}.mtu", Status.MUTED, message=MUTE_REASON, category="network"),
    ]


def sample_report(*, aborted: str | None = None) -> RunReport:
    return RunReport(
        tool_name="meshery-preflight",
        tool_version="0.1.0",
        started_at=STARTED,
        finished_at=FINISHED,
        origin_cidrs=["10.0.0.0/8", "192.168.7.0/24"],
        clusters=[
            ClusterReport(
                name=DOTTED_CLUSTER,
                server="https://prod.example.com:6443",
                provider="eks",
                mode="in-cluster",
                results=every_status("c1"),
            ),
            ClusterReport(
                name=PLAIN_CLUSTER,
                server="https://34.1.2.3",
                provider="gke",
                mode="out-of-cluster",
                results=[r for r in every_status("c2") if r.status is not Status.SKIP],
            ),
        ],
        fleet_results=[
            result("fleet.overlap", Status.FAIL, category="addressing", evidence={"cidrs": ("10.0.0.0/8",)}),
            result("fleet.versions", Status.PASS, category="versions"),
        ],
        aborted=aborted,
    )


def empty_aborted_report() -> RunReport:
    """Aborted before any check ran: renderers must still say so."""
    return dataclasses.replace(sample_report(aborted="interrupted by user (SIGINT)"), clusters=[], fleet_results=[])
