"""Hand-built RunReports for the renderer tests: every status, a dotted cluster name, fleet results,
evidence no JSON encoder accepts as-is, and the hostile text remote servers can put in messages."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from preflight.engine.model import DOCS_BASE_URL, ClusterReport, Result, RunReport, Severity, Status

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


# The shipped cluster checks (id, category), for fleets that look like real runs.
CLUSTER_CHECKS: tuple[tuple[str, str], ...] = tuple(
    (cid, cid.split(".")[0])
    for cid in [
        "kubeconfig.context",
        "kubeconfig.credential",
        "kubeconfig.tls-verify",
        "kube-api.dns",
        "kube-api.tcp",
        "kube-api.tls",
        "kube-api.auth",
        "kube-api.version",
        "kube-api.latency",
        "meshery.mode",
        "meshery.operator",
        "meshery.broker-resource",
        "meshery.meshsync",
        "broker.service",
        "broker.endpoint",
        "broker.dns",
        "broker.tcp",
        "broker.nats",
        "broker.auth",
        "broker.token",
        "broker.exposure",
        "rbac.discovery",
        "rbac.operator-deploy",
        "rbac.node-watch",
        "rbac.least-privilege",
        "aws.eks.endpoint-access",
        "aws.lb.scheme",
        "aws.lb.security-groups",
        "aws.nodes.security-groups",
        "aws.network-acl",
        "gcp.gke.endpoint-access",
        "gcp.firewall.broker",
        "azure.aks.endpoint-access",
        "azure.aks.private-dns",
        "azure.nsg.broker",
        # Added with Meshery's managed Broker port-forward; last, so the positions above stay what tests index.
        "broker.port-forward",
        "broker.transport",
        # Added with the cloud checks that name the rule between the control plane and the kubelet.
        "aws.kubelet-path",
        "gcp.kubelet-path",
    ]
)
_AFTER_API = {cid for cid, _ in CLUSTER_CHECKS[5:]}
_BROKER_AFTER_TCP = {"broker.nats", "broker.auth"}
SCENARIOS = ("healthy", "api-refused", "broker-filtered", "token-warn", "muted", "probe-error")


def _fleet_result(cid: str, category: str, status: Status, message: str, **extra: Any) -> Result:
    base = result(cid, status, message=message, category=category, duration_s=0.01)
    fields: dict[str, Any] = {"title": f"{cid} works", **extra}
    if status in (Status.PASS, Status.SKIP) and "remediation" not in extra:
        fields["remediation"] = ""
    return dataclasses.replace(base, **fields)


def synthetic_cluster(i: int, name: str | None = None) -> ClusterReport:
    """One cluster of a realistic fleet; the scenario cycles with ``i`` (see SCENARIOS)."""
    scenario = SCENARIOS[i % len(SCENARIOS)]
    provider = ("eks", "gke", "aks", "unknown")[i % 4]
    mode = "operator" if i % 3 else "embedded"
    server = f"https://10.{i // 250 % 250}.{i % 250}.1:6443"
    results = []
    for cid, category in CLUSTER_CHECKS:
        cloud = cid.split(".")[0]
        if cloud in ("aws", "gcp", "azure") and {"aws": "eks", "gcp": "gke", "azure": "aks"}[cloud] != provider:
            message = f"not applicable: the cluster does not run on {cloud}"
            results.append(_fleet_result(cid, category, Status.SKIP, message))
        elif cid.endswith(".kubelet-path"):
            message = "the port-forward works: the control plane reaches the node's kubelet on 10250"
            results.append(_fleet_result(cid, category, Status.SKIP, message))
        elif scenario == "api-refused" and cid == "kube-api.tcp":
            results.append(
                _fleet_result(
                    cid,
                    category,
                    Status.FAIL,
                    f"{server[8:]} is refused: connection refused (RST)",
                    evidence={"state": "refused", "attempts": [{"address": server[8:], "ms": 0.4}]},
                )
            )
        elif scenario == "api-refused" and cid in _AFTER_API:
            results.append(
                _fleet_result(
                    cid,
                    category,
                    Status.SKIP,
                    "skipped: kube-api.tcp did not pass (fail)",
                    remediation="Fix kube-api.tcp first; this check runs once it passes.",
                    evidence={"blocked_by": "kube-api.tcp"},
                )
            )
        elif scenario == "broker-filtered" and cid == "broker.tcp":
            results.append(
                _fleet_result(
                    cid,
                    category,
                    Status.FAIL,
                    f"10.70.{i % 250}.9:4222 is filtered: no answer within 1s (SYN dropped)",
                    remediation="Allow the origin:\naws ec2 authorize-security-group-ingress --group-id sg-0abc "
                    "--protocol tcp --port 4222 --cidr 10.0.0.0/8",
                    evidence={"state": "filtered"},
                )
            )
        elif scenario == "broker-filtered" and cid in _BROKER_AFTER_TCP:
            results.append(
                _fleet_result(
                    cid,
                    category,
                    Status.SKIP,
                    "skipped: broker.tcp did not pass (fail)",
                    remediation="Fix broker.tcp first; this check runs once it passes.",
                    evidence={"blocked_by": "broker.tcp"},
                )
            )
        elif scenario in ("token-warn", "broker-filtered") and cid == "kubeconfig.credential":
            results.append(_fleet_result(cid, category, Status.WARN, "static bearer token with no expiry: long-lived"))
        elif scenario == "muted" and cid == "kube-api.latency":
            results.append(_fleet_result(cid, category, Status.MUTED, MUTE_REASON))
        elif scenario == "probe-error" and cid == "rbac.discovery":
            results.append(_fleet_result(cid, category, Status.ERROR, "SelfSubjectAccessReview timed out after 2s"))
        else:
            # About as much evidence as a real pass carries (the demo's average is ~80 bytes of JSON).
            evidence = {"ms": i % 97, "host": server[8:], "addresses": [{"address": server[8:-5], "class": "private"}]}
            results.append(_fleet_result(cid, category, Status.PASS, f"{cid} fine", evidence=evidence))
    return ClusterReport(
        name=name or f"cluster-{i:04d}-{scenario}", server=server, provider=provider, mode=mode, results=results
    )


def synthetic_fleet(n: int, *, names: dict[int, str] | None = None) -> RunReport:
    """A fleet of ``n`` clusters in every scenario, with passing fleet checks; ``names`` overrides some."""
    names = names or {}
    clusters = [synthetic_cluster(i, names.get(i)) for i in range(n)]
    fleet = [
        _fleet_result(
            "fleet.shared-credential",
            "fleet",
            Status.PASS,
            f"{n} distinct credentials",
            remediation="Give every cluster its own credential.",  # the runner keeps a check's fix on a pass
        ),
        _fleet_result(
            "fleet.duplicate-cluster",
            "fleet",
            Status.FAIL,
            "two contexts reach one API server: https://10.0.0.1:6443",
            evidence={"duplicates": [{"server": "https://10.0.0.1:6443", "clusters": ["a", "b"]}]},
        ),
    ]
    return RunReport(
        tool_name="meshery-preflight",
        tool_version="0.1.0",
        started_at=STARTED,
        finished_at=FINISHED,
        origin_cidrs=["10.0.0.0/8"],
        clusters=clusters,
        fleet_results=fleet,
    )
