"""`meshery-preflight demo`: the same path as `check`, on a lab fleet with the classic failures."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from preflight.reports import json_report
from preflight.reports._common import is_command
from tests.promtools import promtool_check

EXPECTED = {
    "prod-eu": ("kube-api.latency", "pass"),
    "prod-us-exec": ("kube-api.auth", "pass"),
    "staging-client-cert": ("kube-api.auth", "pass"),
    "edge-api-refused": ("kube-api.tcp", "fail"),
    "dr-wrong-ca": ("kube-api.tls", "fail"),
    "dev-expired-token": ("kube-api.auth", "fail"),
    "ci-hung-exec-plugin": ("kube-api.auth", "error"),
    "lab-insecure-tls": ("kubeconfig.tls-verify", "fail"),
    "ops-broker-healthy": ("broker.auth", "pass"),
    "ops-broker-lb-gone": ("broker.dns", "fail"),
    "ops-broker-4222-filtered": ("broker.tcp", "fail"),
    "kind-broker-localhost": ("broker.service", "fail"),
    "ops-broker-open-to-world": ("broker.exposure", "fail"),
    "ops-broker-wrong-token": ("broker.auth", "fail"),
    "eks-no-node-watch": ("rbac.node-watch", "fail"),
    # Servers with Meshery's managed Broker port-forward on (the fleet file's broker_port_forward: true).
    "fwd-clusterip-healthy": ("broker.service", "warn"),
    "fwd-denied": ("broker.port-forward", "warn"),
    "fwd-kubelet-unreachable": ("broker.port-forward", "warn"),
    "fwd-nats-crashloop": ("broker.port-forward", "fail"),
    "fwd-endpoint-filtered": ("broker.tcp", "warn"),
    # One cluster per cloud, its Broker's 4222 blocked by a cloud rule (cloud labs on loopback).
    "eks-broker-sg-closed": ("aws.lb.security-groups", "fail"),
    "gke-broker-firewall-deny": ("gcp.firewall.broker", "fail"),
    "aks-broker-nsg-deny": ("azure.nsg.broker", "fail"),
}
# How each cloud cluster's failing message names the rule that blocks (the SG id is moto's: a pattern).
BLOCKING_RULE = {
    "eks-broker-sg-closed": r"sg-[0-9a-f]+ \(k8s-meshery-eks-broker-sg-closed-lb\): tcp 4222 from 203\.0\.113\.0/24",
    "gke-broker-firewall-deny": re.escape("blocked by firewall rule deny-nats-from-anywhere (deny, priority 900)"),
    "aks-broker-nsg-deny": re.escape("blocked by nsg nsg-aks-nodes: deny-nats-4222 (priority 200)"),
}


def test_demo_runs_writes_reports_and_exits_0(tmp_path: Path) -> None:
    # 127.70.0.1:4222 was the demo's fixed Broker address: busy now, as another lab would make it.
    with socket.socket() as busy:
        with contextlib.suppress(OSError):  # already taken by someone else: just as busy
            busy.bind(("127.70.0.1", 4222))
            busy.listen(1)
        proc = subprocess.run(
            [sys.executable, "-m", "preflight.cli", "demo", "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=180,
            env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(doc, json_report.load_schema())
    assert (tmp_path / "junit.xml").read_text().startswith("<?xml")
    assert promtool_check((tmp_path / "meshery_preflight.prom").read_text()).returncode == 0
    assert "### Problems and fixes" in (tmp_path / "summary.md").read_text()
    verdicts = {c["name"]: {r["check_id"]: r["status"] for r in c["results"]} for c in doc["clusters"]}
    assert set(verdicts) == set(EXPECTED)
    for cluster, (check_id, status) in EXPECTED.items():
        assert verdicts[cluster][check_id] == status, (cluster, check_id, verdicts[cluster])
    results = {(c["name"], r["check_id"]): r for c in doc["clusters"] for r in c["results"]}
    for cluster, pattern in BLOCKING_RULE.items():
        r = results[(cluster, EXPECTED[cluster][0])]
        assert re.search(pattern, r["message"]), r["message"]
        assert r["message"] in proc.stdout  # the console report prints it
        assert verdicts[cluster]["broker.tcp"] == "fail"  # what the network sees of the rule
        # Everything else the cloud checks read admits the origin: the rule is the one finding.
        cloud = {k: v for k, v in verdicts[cluster].items() if k.split(".")[0] in ("aws", "gcp", "azure")}
        assert [k for k, v in cloud.items() if v in ("fail", "error", "warn")] == [EXPECTED[cluster][0]], cloud
    sg = results[("eks-broker-sg-closed", "aws.lb.security-groups")]
    assert sg["evidence"]["security_groups"][0] in sg["message"]  # the id of the Broker LB's own group
    assert "--group-id " + sg["evidence"]["security_groups"][0].split()[0] in sg["remediation"]
    # The pending load balancer does not hide where the Server is being sent: localhost, reported on its own.
    pending = results[("kind-broker-localhost", "broker.endpoint")]
    assert pending["status"] == "warn" and "localhost:31222" in pending["message"], pending
    assert pending["evidence"]["independent_of"] == ["broker.service"]
    # The lab servers are gone once the demo returns: it stops everything it started.
    assert "dr-wrong-ca" in proc.stdout
    _assert_console_fits(tmp_path, proc.stdout, proc.stderr)
    messages = [r["message"] for r in results.values()] + [r["message"] for r in doc["fleet"]["results"]]
    assert bad_plurals(messages) == []
    _assert_html_in_a_browser(tmp_path, {c["name"]: c for c in doc["clusters"]})
    _assert_no_secret(tmp_path, proc.stdout + proc.stderr)


def _assert_console_fits(out: Path, stdout: str, stderr: str) -> None:
    """The default console of the 18-cluster demo is a page a person reads: at most 200 lines, plus one for
    each fix command, which stands alone on its own line so that it pastes."""
    transcript = (out / "report.txt").read_text()
    assert transcript == stdout
    lines = transcript.splitlines()
    commands = sum(1 for line in lines if is_command(line))
    assert commands >= 3  # the EKS, GKE and AKS firewall fixes
    assert len(lines) <= 200 + commands, len(lines)
    assert sum(line.startswith("cluster ") for line in lines) == len(EXPECTED)
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert summary["fail"] > 1 and summary["error"] == 1  # the hung exec plugin could not decide: an error
    assert lines[-1] == f"exit 1: {summary['fail']} failures, 1 error at or above --fail-on fail"
    assert "checks wait on kube-api.tcp" in transcript and "Fix kube-api.tcp first" not in transcript
    assert str(out / "report.txt") in stderr and str(out / "report.json") in stderr


def _assert_html_in_a_browser(out: Path, clusters: dict[str, dict]) -> None:
    """The demo's HTML report in headless Chromium: a row per cluster, passing ones filtered away, a fix
    one click away, no script error and no request beyond the file itself."""
    from tests.reports.browser import chromium, console_errors, file_url, requested_urls

    page = out / "report.html"
    with chromium() as driver:
        driver.get("about:blank")
        requested_urls(driver)
        driver.get(file_url(page))
        rows = driver.find_elements("css selector", "#matrix tbody tr")
        assert sorted(r.get_attribute("data-name") for r in rows) == sorted(clusters)
        driver.find_element("css selector", "input[name=status][value=pass]").click()
        driver.find_element("css selector", "input[name=status][value=warn]").click()
        shown = {r.get_attribute("data-name") for r in rows if r.is_displayed()}
        assert shown == {name for name, (_, status) in EXPECTED.items() if status in ("fail", "error")}
        row = driver.find_element("css selector", "tr[data-name='gke-broker-firewall-deny']")
        row.find_element("css selector", "button.open[data-category=gcp]").click()
        (item,) = driver.find_elements("css selector", "#detail-results li[data-check-id='gcp.firewall.broker']")
        command = item.find_element("css selector", ".command-text").text
        assert command.startswith("gcloud compute firewall-rules create")
        driver.save_screenshot(str(out / "report.png"))
        assert console_errors(driver) == []
        assert requested_urls(driver) == [file_url(page)]


_PLURAL_AFTER_ONE = re.compile(r"(?<![\d.:/])\b1 (?:(?:distinct|discovered|ingress|security-group|more) )?([a-z]+s)\b")
_NOT_PLURAL = {"is", "was", "has", "does", "its", "this", "pass", "process", "access", "address", "class", "status"}
_NOT_PLURAL |= {"ms"}  # a unit: 1 ms


def bad_plurals(messages: list[str]) -> list[str]:
    """Messages that count one thing in the plural, or hedge with "(s)"."""
    bad = []
    for m in messages:
        hits = [w for w in _PLURAL_AFTER_ONE.findall(m) if w not in _NOT_PLURAL]
        if hits or "(s)" in m or re.search(r"\b(?:[02-9]|\d\d+) [a-z]+ is\b", m):
            bad.append(m)
    return bad


def test_bad_plural_detector() -> None:
    assert bad_plurals(["1 distinct credentials across 1 clusters", "2 cluster(s) drift", "3 rule is"]) == [
        "1 distinct credentials across 1 clusters",
        "2 cluster(s) drift",
        "3 rule is",
    ]
    assert bad_plurals(["1 distinct credential across 2 clusters", "1 check waits", "median over 5 requests"]) == []


def _assert_no_secret(out: Path, console: str) -> None:
    """Every output format against the secrets the demo planted: kube tokens and keys, cloud credentials."""
    from preflight_lab import aws
    from preflight_lab.demo_clouds import _ARM_TOKEN

    kubeconfig = yaml.safe_load((out / "lab" / "kubeconfig.yaml").read_text())
    # The wrong-token cluster's Secret holds this one; broker.auth reads it and must never print it.
    planted = [_ARM_TOKEN, *aws._KEYS.values(), "stale-token-from-a-previous-install"]
    for user in kubeconfig["users"]:
        body = user["user"]
        planted += [str(body[k]) for k in ("token", "client-key-data") if body.get(k)]
        if body.get("client-key-data"):
            planted.append(base64.b64decode(body["client-key-data"]).decode().splitlines()[1])
    assert len(planted) > 10
    texts = {"console": console, "json": (out / "report.json").read_text(), "junit": (out / "junit.xml").read_text()}
    texts |= {"markdown": (out / "summary.md").read_text(), "prometheus": (out / "meshery_preflight.prom").read_text()}
    texts |= {"html": (out / "report.html").read_text(), "console file": (out / "report.txt").read_text()}
    for fmt, text in texts.items():
        for secret in planted:
            assert secret not in text, f"a planted secret reached the {fmt} output"
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text, fmt


def test_demo_module_imports_no_cloud_sdk() -> None:
    """The labs and SDKs load inside run_demo only: importing the CLI and the demo costs none of them."""
    code = (
        "import sys, preflight.cli, preflight.demo\n"
        "sdks = ('boto3', 'botocore', 'moto', 'azure', 'google.cloud', 'google.api_core')\n"
        "print(','.join(m for m in sys.modules if m.startswith(sdks)))"
    )  # google.auth is the kubernetes client's, which the lab's API servers import
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
