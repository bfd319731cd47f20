"""`serve` as users run it (a subprocess on loopback) against lab clusters: endpoints, hung clusters,
concurrent scrapes and probes, configuration edits, SIGTERM mid-run, and no secret on any endpoint or log."""

from __future__ import annotations

import gzip
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.processes import running, wait_for
from tests.promtools import promtool_check
from tests.servetools import CLI, clean_env, get, serving

FAST = ["--connect-timeout", "1", "--jitter", "0"]


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def value(text: str, name: str, **labels: str) -> float | None:
    found = [v for got, v in samples(text, name) if all(got.get(k) == w for k, w in labels.items())]
    return found[0] if found else None


def metrics(url: str) -> str:
    status, body = get(f"{url}/metrics")
    assert status == 200
    return body


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    specs = [
        ClusterSpec(name="good"),
        ClusterSpec(name="cert", scenario="client-cert"),
        ClusterSpec(name="expired", scenario="expired-token"),
        ClusterSpec(name="slow", scenario="slow"),
        ClusterSpec(name="exec", scenario="exec-ok"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("serve-lab")) as fleet:
        yield fleet


def test_every_endpoint_answers_and_none_leaks_a_secret(lab: LabFleet) -> None:
    args = ["--kubeconfig", str(lab.kubeconfig_path), "--interval", "1h", *FAST, "--log-format", "json"]
    with serving(args) as served:
        bodies = {}
        for path in ("/", "/report.json", "/metrics", "/healthz", "/readyz", "/probe?context=expired", "/nope"):
            bodies[path] = get(served.url + path)
        assert {p: s for p, (s, _) in bodies.items()} == {
            "/": 200,
            "/report.json": 200,
            "/metrics": 200,
            "/healthz": 200,
            "/readyz": 200,
            "/probe?context=expired": 200,
            "/nope": 404,
        }
        assert "<html" in bodies["/"][1].lower() and '"clusters"' in bodies["/report.json"][1]
        assert get(served.url + "/probe?context=missing")[0] == 404
        assert get(served.url + "/probe")[0] == 400
        text = bodies["/metrics"][1]
        assert value(text, "meshery_preflight_check_result", cluster="expired", check="kube-api.auth") == 1
        auth = [lab for lab, _ in samples(text, "meshery_preflight_check_result") if lab["check"] == "kube-api.auth"]
        assert {(a["cluster"], a["status"], a["reason"]) for a in auth} >= {
            ("expired", "fail", "credential_rejected"),
            ("good", "pass", "none"),
        }
        for path in ("/metrics", "/probe?context=expired"):
            check = promtool_check(bodies[path][1])
            assert check.returncode == 0, check.stdout + check.stderr
        # As Prometheus asks for it: gzip, the same exposition.
        request = urllib.request.Request(served.url + "/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            unzipped = gzip.decompress(resp.read()).decode()
        assert samples(unzipped, "meshery_preflight_check_result") == samples(text, "meshery_preflight_check_result")
        code, log = served.stop()
        assert code == 0, log
    secrets = [s for s in lab.secrets() if len(s) >= 8]
    assert secrets
    everything = "\n".join(body for _, body in bodies.values()) + log
    for secret in secrets:
        for line in secret.splitlines():
            if len(line.strip()) >= 16:
                assert line.strip() not in everything
    runs = [line for line in log.splitlines() if '"event":"run"' in line]
    assert len(runs) == 1 and '"outcome":"completed"' in runs[0]


@pytest.fixture()
def hung_lab(tmp_path: Path) -> Iterator[LabFleet]:
    specs = [ClusterSpec(name="quick"), ClusterSpec(name="stuck", scenario="hung-exec")]
    with LabFleet(specs, tmp_path / "lab") as fleet:
        yield fleet


def test_a_hung_cluster_blocks_neither_metrics_nor_probes_and_sigterm_mid_run_exits_0(hung_lab: LabFleet) -> None:
    script = str(hung_lab.clusters["stuck"].exec_script)
    args = ["--kubeconfig", str(hung_lab.kubeconfig_path), "--exec-timeout", "120", "--cluster-timeout", "300"]
    args += ["--checks", "kube*", "--interval", "1h", *FAST]
    with serving(args, ready=False) as served:
        wait_for(lambda: bool(running(script, parent=served.proc.pid)), "the hung plugin to start")
        # The scheduled run is stuck on one cluster: the server still answers, and has no run to show yet.
        assert get(served.url + "/readyz")[0] == 503
        assert get(served.url + "/")[0] == 503
        text = metrics(served.url)
        assert value(text, "meshery_preflight_runs_total", outcome="completed") == 0
        assert value(text, "process_cpu_seconds_total") is not None
        assert promtool_check(text).returncode == 0
        # The other cluster is probed at once, while its neighbour hangs.
        status, body = get(served.url + "/probe?context=quick", headers={"X-Prometheus-Scrape-Timeout-Seconds": "15"})
        assert status == 200 and value(body, "meshery_preflight_probe_success") == 1
        assert value(body, "meshery_preflight_check_result", check="kube-api.auth", status="pass") == 1
        # A probe of the hung cluster is bounded by the scrape's deadline (header minus the margin), not by the
        # plugin's 120 s: it answers, undecided.
        status, body = get(served.url + "/probe?context=stuck", headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"})
        assert status == 200 and value(body, "meshery_preflight_probe_success") == 0
        auth = [lab for lab, _ in samples(body, "meshery_preflight_check_result") if lab["check"] == "kube-api.auth"]
        assert [(a["status"], a["reason"]) for a in auth] == [("error", "exec_plugin_timeout")]
        assert (value(metrics(served.url), "meshery_preflight_plugin_timeouts_total") or 0) >= 1
        code, log = served.stop()
    assert code == 0, log
    assert "event=stopping signal=SIGTERM" in log and "event=stopped" in log and "Traceback" not in log
    wait_for(lambda: not running(script), "the hung exec plugin to be gone", 10)


def test_concurrent_scrapes_and_probes_share_one_run_per_cluster(lab: LabFleet) -> None:
    args = ["--kubeconfig", str(lab.kubeconfig_path), "--interval", "1h", "--checks", "kube-api.*", *FAST]
    with serving(args) as served:
        server = lab.clusters["slow"].server
        assert server is not None
        server.clear_requests()
        results: list[tuple[int, str]] = []
        start = threading.Barrier(24)

        def hit(path: str) -> None:
            start.wait()
            results.append(get(served.url + path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "20"}))

        paths = ["/probe?context=slow"] * 12 + ["/metrics"] * 8 + ["/probe?context=good"] * 4
        threads = [threading.Thread(target=hit, args=(p,)) for p in paths]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 24 and all(status == 200 for status, _ in results)
        probes = [body for _, body in results if "meshery_preflight_probe_success" in body]
        assert len(probes) == 16
        slow = [b for b in probes if value(b, "meshery_preflight_check_result", cluster="slow") is not None]
        assert len(slow) == 12 and all(value(b, "meshery_preflight_probe_success") == 1 for b in slow)
        text = metrics(served.url)
        ran = value(text, "meshery_preflight_probes_total", outcome="completed")
        shared = value(text, "meshery_preflight_probes_total", outcome="shared")
        assert ran is not None and shared is not None and ran + shared == 16 and shared >= 1
        # A shared probe answers with its run's results; each run asked the cluster once who it is.
        slow_runs = len({value(b, "meshery_preflight_run_start_timestamp_seconds") for b in slow})
        reviews = [r for r in server.requests() if "selfsubjectreviews" in r.path]
        assert len(reviews) == slow_runs < 12


def test_fleet_file_edits_are_picked_up_and_a_bad_edit_keeps_the_last_good(lab: LabFleet, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    doc = lab.fleet_document()
    doc["kubeconfig"] = [str(lab.kubeconfig_path)]
    doc["clusters"] = [c for c in doc["clusters"] if c["context"] in ("good", "expired")]
    fleet.write_text(yaml.safe_dump(doc))
    args = ["--fleet", str(fleet), "--interval", "1", "--checks", "kube-api.tcp", *FAST]
    with serving(args) as served:
        clusters = {lab["cluster"] for lab, _ in samples(metrics(served.url), "meshery_preflight_check_result")}
        assert clusters == {"good", "expired"}
        # A good edit: one cluster leaves, its series with it.
        doc["clusters"] = [c for c in doc["clusters"] if c["context"] == "good"]
        fleet.write_text(yaml.safe_dump(doc))

        def clusters_now() -> set[str]:
            return {lab["cluster"] for lab, _ in samples(metrics(served.url), "meshery_preflight_check_result")}

        wait_for(lambda: clusters_now() == {"good"}, "the removed cluster's series to go", 30)
        # A bad edit: the last good configuration keeps running, and /metrics and the log say so.
        fleet.write_text("clusters: [ {context: good, meshsync_mode: sideways} ]\n")
        wait_for(lambda: value(metrics(served.url), "meshery_preflight_config_valid") == 0, "config_valid 0", 30)
        before = value(metrics(served.url), "meshery_preflight_runs_total", outcome="completed") or 0
        wait_for(
            lambda: (value(metrics(served.url), "meshery_preflight_runs_total", outcome="completed") or 0) > before,
            "another run on the last good configuration",
            30,
        )
        text = metrics(served.url)
        assert clusters_now() == {"good"} and (value(text, "meshery_preflight_config_errors_total") or 0) >= 1
        assert (value(text, "meshery_preflight_prober_failures_total") or 0) >= 1
        fleet.write_text(yaml.safe_dump(doc))
        wait_for(lambda: value(metrics(served.url), "meshery_preflight_config_valid") == 1, "config_valid 1", 30)
        code, log = served.stop()
    assert code == 0
    invalid = [line for line in log.splitlines() if "event=config_invalid" in line]
    assert len(invalid) == 1 and "sideways" in invalid[0] and "last good" in invalid[0]
    assert re.search(r"event=config_valid clusters=1", log)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--listen", "nowhere"], "--listen"),
        (["--interval", "soon"], "--interval"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "/nonexistent/kubeconfig"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = subprocess.run([*CLI, "serve", *args], capture_output=True, text=True, timeout=60, env=clean_env())
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_kubeconfig_edits_are_picked_up_and_a_broken_one_keeps_the_last_good(lab: LabFleet, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    doc = yaml.safe_load(lab.kubeconfig_path.read_text())
    kubeconfig.write_text(yaml.safe_dump(doc))
    args = ["--kubeconfig", str(kubeconfig), "--interval", "1", "--checks", "kube-api.tcp", *FAST]
    args += ["--log-format", "json"]
    with serving(args) as served:

        def clusters_now() -> set[str]:
            return {lab["cluster"] for lab, _ in samples(metrics(served.url), "meshery_preflight_check_result")}

        assert clusters_now() == {"good", "cert", "expired", "slow", "exec"}
        doc["contexts"] = [c for c in doc["contexts"] if c["name"] in ("good", "cert")]
        kubeconfig.write_text(yaml.safe_dump(doc))
        wait_for(lambda: clusters_now() == {"good", "cert"}, "the kubeconfig edit to be picked up", 30)
        kubeconfig.write_text("contexts: [unclosed\n")
        wait_for(lambda: value(metrics(served.url), "meshery_preflight_config_valid") == 0, "config_valid 0", 30)
        assert clusters_now() == {"good", "cert"}
        assert get(served.url + "/probe?context=cert")[0] == 200  # probes keep the last good plan too
        code, log = served.stop()
    assert code == 0
    assert sum('"event":"config_invalid"' in line for line in log.splitlines()) == 1
