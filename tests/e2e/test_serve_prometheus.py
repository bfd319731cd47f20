"""`serve` against the lab, scraped by a real Prometheus (Debian's): a cluster broken while it runs shows in
Prometheus within two intervals, `/probe` agrees with `check`, and SIGTERM leaves nothing behind."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.processes import children, wait_for
from tests.promtools import prometheus, query
from tests.servetools import CLI, clean_env, get, serving

INTERVAL_S = 2.0
CHECKS = ["--checks", "kube-api.*", "--connect-timeout", "1"]


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[LabFleet]:
    specs = [ClusterSpec(name="victim"), ClusterSpec(name="steady")]
    with LabFleet(specs, tmp_path / "lab") as fleet:
        yield fleet


def shipped_expressions() -> list[str]:
    """The PromQL of the Grafana dashboard (its variables given values) and of the alert rules."""
    root = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
    dashboard = json.loads((root / "grafana" / "meshery-preflight-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((root / "rules" / "meshery-preflight.rules.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    subst = {"$job": ".*", "$cluster": ".*", "$__rate_interval": "1m"}
    out = []
    for expr in exprs:
        for var, val in subst.items():
            expr = expr.replace(var, val)
        out.append(expr)
    return out


def statuses_from_metrics(text: str, cluster: str) -> dict[str, str]:
    return {
        s.labels["check"]: s.labels["status"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "meshery_preflight_check_result" and s.labels["cluster"] == cluster
    }


def check_statuses(lab: LabFleet, context: str, tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "check.json"
    argv = [*CLI, "check", "--kubeconfig", str(lab.kubeconfig_path), "--context", context, *CHECKS]
    proc = subprocess.run([*argv, "-o", f"json={out}"], capture_output=True, text=True, timeout=120, env=clean_env())
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(out.read_text())
    return {r["check_id"]: r["status"] for r in doc["clusters"][0]["results"]}


def test_a_broken_cluster_shows_in_prometheus_and_probe_agrees_with_check(lab: LabFleet, tmp_path: Path) -> None:
    args = ["--kubeconfig", str(lab.kubeconfig_path), "--interval", f"{INTERVAL_S:g}s", "--jitter", "0", *CHECKS]
    with serving(args) as served, prometheus([f"127.0.0.1:{served.port}"], str(tmp_path)) as prom:
        tcp = 'meshery_preflight_check_result{cluster="victim",check="kube-api.tcp"'

        def shows(selector: str) -> bool:
            return bool(query(prom, selector))

        wait_for(lambda: shows(tcp + ',status="pass",reason="none"}'), "Prometheus to scrape the healthy victim", 60)
        assert shows('meshery_preflight_check_result{cluster="steady",check="kube-api.tcp",status="pass"}')
        assert shows('up{job="meshery-preflight"} == 1')

        lab.clusters["victim"].server.stop()  # type: ignore[union-attr]  # nothing listens: connects are refused
        broken_at = time.monotonic()
        # Two intervals, plus a run's and a scrape's slack: the next run after the break must show it.
        window = 2 * INTERVAL_S + 20
        wait_for(lambda: shows(tcp + ',status="fail",reason="refused"}'), "the break in Prometheus", window)
        print(f"break visible in Prometheus after {time.monotonic() - broken_at:.1f}s (interval {INTERVAL_S:g}s)")
        assert shows('meshery_preflight_check_result{cluster="steady",check="kube-api.tcp",status="pass"}')
        assert shows('meshery_preflight_cluster_healthy{cluster="victim"} == 0')
        assert shows('meshery_preflight_runs_total{outcome="completed"} >= 2')
        assert not shows("meshery_preflight_prober_failures_total > 0")

        # Every expression the shipped dashboard and alert rules use runs on this Prometheus, over names
        # the prober really exposes.
        exposed = set(re.findall(r"^(meshery_preflight_\w+?)(?:\{| )", get(f"{served.url}/metrics")[1], re.M))
        for expr in shipped_expressions():
            for name in re.findall(r"meshery_preflight_\w+", expr):
                assert name in exposed, f"{name} (used by {expr!r}) is not on /metrics"
            query(prom, expr)
        assert shows('count by (reason) (meshery_preflight_check_result{status=~"fail|error"}) > 0')

        status, body = get(f"{served.url}/probe?context=victim", headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
        assert status == 200
        probed = statuses_from_metrics(body, "victim")
        assert probed == check_statuses(lab, "victim", tmp_path)
        assert probed["kube-api.tcp"] == "fail"
        assert "meshery_preflight_probe_success 0.0" in body
        healthy = statuses_from_metrics(get(f"{served.url}/probe?context=steady")[1], "steady")
        assert healthy == check_statuses(lab, "steady", tmp_path) and healthy["kube-api.tcp"] == "pass"

        pid = served.proc.pid
        code, err = served.stop()
        assert code == 0, err
        assert children(pid) == []
        lines = [line for line in err.splitlines() if "event=run " in line]
        assert len(lines) >= 2 and all("outcome=completed" in line for line in lines)
