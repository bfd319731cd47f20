"""The default console view for fleets: problems only, waiting checks folded, a worst-first table, the exit
line, and nothing wider than the terminal."""

from __future__ import annotations

import dataclasses
import re

import pytest

from preflight import cli
from preflight.engine.model import Status
from preflight.reports import console
from preflight.reports._common import is_command, is_pasteable
from preflight.reports.options import verdict
from tests.report_samples import CLUSTER_CHECKS, sample_report, synthetic_fleet


def _text(n: int = 12, **kw: object) -> str:
    return console.render(synthetic_fleet(n), **kw)  # type: ignore[arg-type]


def _section(text: str, cluster: str) -> list[str]:
    """A cluster's header and the lines under it, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"cluster {cluster} "))
    end = lines.index("", start)
    return lines[start:end]


def test_one_header_per_cluster_with_its_worst_status_and_counts() -> None:
    text = _text()
    headers = [line for line in text.splitlines() if line.startswith("cluster ")]
    assert len(headers) == 12
    assert _section(text, "cluster-0000-healthy") == [
        "cluster cluster-0000-healthy  ✔ pass  (32 pass, 7 not applicable)  provider=eks mode=embedded"
        " server=https://10.0.0.1:6443"
    ]
    assert _section(text, "cluster-0001-api-refused")[0].startswith(
        "cluster cluster-0001-api-refused  ✖ fail  (4 pass, 1 fail, 24 waiting, 10 not applicable)"
    )
    assert "? error  (28 pass, 1 error" in _section(text, "cluster-0005-probe-error")[0]
    assert "~ muted  (31 pass, 1 muted" in _section(text, "cluster-0004-muted")[0]


def test_only_problems_are_listed_each_with_its_fix() -> None:
    text = _text()
    assert "✔ pass   " not in text.split("\nfleet: ")[0], "passing results are counts, not lines"
    assert "not applicable" not in text.replace("not applicable)", "").replace("not applicable,", "")
    muted = _section(text, "cluster-0004-muted")
    assert re.match(r"\s+~ muted\s+kube-api.latency\s+known MTU issue", muted[1])
    assert muted[2].strip() == "fix: Remediate kube-api.latency"
    error = _section(text, "cluster-0005-probe-error")
    assert error[1].split() == [
        "?",
        "error",
        "rbac.discovery",
        "SelfSubjectAccessReview",
        "timed",
        "out",
        "after",
        "2s",
    ]
    assert error[2].strip() == "fix: Remediate rbac.discovery"
    assert error[3].strip().startswith("docs: https://")


def test_checks_waiting_on_a_failure_fold_into_one_line_under_it() -> None:
    section = _section(_text(), "cluster-0001-api-refused")
    assert re.match(r"\s+✖ fail\s+kube-api.tcp\s+10.0.1.1:6443 is refused", section[1])
    assert section[2].strip() == "fix: Remediate kube-api.tcp"
    assert section[4].strip().startswith("24 checks wait on kube-api.tcp: kube-api.tls, kube-api.auth, ")
    assert section[4].endswith("more")
    assert len(section) == 5, "the 21 skipped checks are one line, not 21 pairs of lines"
    assert "Fix kube-api.tcp first" not in "\n".join(section)


def test_a_single_waiting_check_reads_in_the_singular() -> None:
    report = synthetic_fleet(3)
    cluster = report.clusters[2]  # broker-filtered: broker.nats and broker.auth wait on broker.tcp
    cluster.results = [r for r in cluster.results if r.check_id != "broker.auth"]
    section = _section(console.render(report), cluster.name)
    assert "      1 check wait on broker.tcp: broker.nats" not in section
    assert any(line.strip() == "1 check waits on broker.tcp: broker.nats" for line in section), section


def test_a_fix_repeated_across_clusters_is_printed_once() -> None:
    text = _text()
    assert text.count("fix: Remediate kubeconfig.credential") == 1
    later = _section(text, "cluster-0003-token-warn")
    assert later[2].strip() == "fix: same as for kubeconfig.credential on cluster-0002-broker-filtered above"
    verbose = _text(verbose=True)
    assert verbose.count("fix: Remediate kubeconfig.credential") == 4


def test_fleet_table_lists_clusters_worst_first() -> None:
    lines = _text().splitlines()
    start = lines.index("fleet: 12 clusters, worst first")
    assert lines[start + 1].split() == ["STATUS", "CLUSTER", "PROVIDER", "MODE", "CHECKS"]
    rows = lines[start + 2 : start + 14]
    statuses = [row.split()[1] for row in rows]
    assert statuses == ["fail"] * 4 + ["error"] * 2 + ["warn"] * 2 + ["muted"] * 2 + ["pass"] * 2
    first = rows[0].split()
    assert first == ["✖", "fail", "cluster-0001-api-refused", "gke", "operator", "kube-api.tcp"]
    assert rows[-1].split()[-1] == "-"


def test_failing_ids_in_the_table_include_errors() -> None:
    report = synthetic_fleet(2)
    results = report.clusters[1].results
    results[5] = dataclasses.replace(results[5], status=Status.ERROR)
    row = next(line for line in console.render(report).splitlines() if line.startswith("  ✖ fail   cluster-0001"))
    assert row.endswith("kube-api.tls, kube-api.tcp") or row.endswith("kube-api.tcp, kube-api.tls")


@pytest.mark.parametrize(
    ("fail_on", "line"),
    [
        ("fail", "exit 1: 4 failures, 2 errors at or above --fail-on fail"),
        ("error", "exit 1: 4 failures, 2 errors at or above --fail-on error"),
        ("warn", "exit 1: 4 failures, 2 errors, 4 warnings at or above --fail-on warn"),
    ],
)
def test_last_line_states_the_exit_code_and_why(fail_on: str, line: str) -> None:
    report = synthetic_fleet(12)
    report.fleet_results = report.fleet_results[:1]
    text = console.render(report, fail_on=fail_on)
    assert text.splitlines()[-1] == line
    assert verdict(report, fail_on).code == cli.exit_code(report, fail_on)


def test_exit_line_for_a_run_with_only_warnings() -> None:
    report = synthetic_fleet(4)
    report.clusters = [report.clusters[0], report.clusters[3]]
    report.fleet_results = report.fleet_results[:1]
    assert console.render(report).splitlines()[-1] == "exit 0: nothing at or above --fail-on fail (1 warning below it)"
    assert console.render(report, fail_on="warn").splitlines()[-1] == "exit 1: 1 warning at or above --fail-on warn"
    assert cli.exit_code(report, "fail") == 0 and cli.exit_code(report, "warn") == 1


def test_aborted_run_says_it_exits_130() -> None:
    lines = console.render(sample_report(aborted="interrupted by user (SIGINT)")).splitlines()
    assert lines[-2] == "exit 130: the run was aborted (interrupted by user (SIGINT)); results are incomplete"


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_no_line_is_wider_than_the_terminal(width: int) -> None:
    report = synthetic_fleet(12, names={1: "very-long-context-name-" * 8})
    victim = report.clusters[2].results[16]
    report.clusters[2].results[16] = dataclasses.replace(victim, message="word " * 400 + "\nsecond paragraph")
    for verbose in (False, True):
        text = console.render(report, width=width, verbose=verbose, color=True)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
        # Commands and links are the exception: whole on their line (the terminal folds them), never cut.
        prose = [line for line in plain.splitlines() if not is_pasteable(line)]
        assert max(len(line) for line in prose) <= width
        assert any(is_command(line) for line in plain.splitlines())


def test_wrapping_on_a_terminal_keeps_every_word() -> None:
    report = synthetic_fleet(3)
    fix = report.clusters[2].results[16].remediation
    text = console.render(report, width=50)
    assert " ".join(text.split()).count(" ".join(fix.split())) == 1


def test_long_lists_stop_with_a_count_without_a_terminal() -> None:
    report = synthetic_fleet(2)
    report.clusters[1].results = [
        *report.clusters[1].results,
        *[
            dataclasses.replace(r, check_id=f"extra.check-{i:03d}", evidence={"blocked_by": "kube-api.tcp"})
            for i, r in enumerate([report.clusters[1].results[6]] * 300)
        ],
    ]
    line = next(line for line in console.render(report).splitlines() if "wait on kube-api.tcp" in line)
    assert len(line) <= console.LIST_WIDTH
    assert re.search(r"\+\d+ more$", line)
    assert "324 checks wait on" in line


def test_verbose_keeps_every_result() -> None:
    report = synthetic_fleet(6)
    verbose = console.render(report, verbose=True)
    default = console.render(report)
    for cid, _ in CLUSTER_CHECKS[:24]:
        assert verbose.count(f" {cid} ") >= 6, cid
    assert len(default.splitlines()) < len(verbose.splitlines()) / 3


def test_default_view_of_a_large_fleet_stays_proportionate() -> None:
    """Healthy clusters cost two lines, and no line grows with the fleet."""
    text = console.render(synthetic_fleet(600))
    lines = text.splitlines()
    assert len(lines) < 600 * 6
    assert max(len(line) for line in lines) <= 2 * console.LIST_WIDTH


def test_the_synthetic_fleet_runs_the_shipped_checks() -> None:
    """The fleets these tests and bench/report_size.py build stay shaped like real runs."""
    from preflight.app import load_registry
    from preflight.engine.model import Scope

    registry = load_registry()
    shipped = [c.id for c in registry.ordered(registry.all(), Scope.CLUSTER)]
    assert sorted(cid for cid, _ in CLUSTER_CHECKS) == sorted(shipped)
    assert all(registry.get(cid).category == category for cid, category in CLUSTER_CHECKS)
