"""`meshery-preflight demo`: the same path as `check`, on a lab fleet with the classic failures."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from preflight.reports import json_report

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
    "kind-broker-localhost": ("broker.tcp", "fail"),
    "ops-broker-open-to-world": ("broker.exposure", "fail"),
    "ops-broker-wrong-token": ("broker.auth", "fail"),
    "eks-no-node-watch": ("rbac.node-watch", "fail"),
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
    # The lab servers are gone once the demo returns: it stops everything it started.
    assert "dr-wrong-ca" in proc.stdout
    _assert_no_secret(tmp_path, proc.stdout + proc.stderr)


def _assert_no_secret(out: Path, console: str) -> None:
    """Every output format against the secrets the demo planted: kube tokens and keys, cloud credentials."""
    from preflight_lab import aws
    from preflight_lab.demo_clouds import _ARM_TOKEN

    kubeconfig = yaml.safe_load((out / "lab" / "kubeconfig.yaml").read_text())
    planted = [_ARM_TOKEN, *aws._KEYS.values()]
    for user in kubeconfig["users"]:
        body = user["user"]
        planted += [str(body[k]) for k in ("token", "client-key-data") if body.get(k)]
        if body.get("client-key-data"):
            planted.append(base64.b64decode(body["client-key-data"]).decode().splitlines()[1])
    assert len(planted) > 10
    texts = {"console": console, "json": (out / "report.json").read_text(), "junit": (out / "junit.xml").read_text()}
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
