"""`meshery-preflight demo`: the same path as `check`, on a lab fleet with the classic failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from reports import json_report

EXPECTED = {
    "prod-eu": ("kube-api.latency", "pass"),
    "prod-us-exec": ("kube-api.auth", "pass"),
    "staging-client-cert": ("kube-api.auth", "pass"),
    "edge-api-refused": ("kube-api.tcp", "fail"),
    "dr-wrong-ca": ("kube-api.tls", "fail"),
    "dev-expired-token": ("kube-api.auth", "fail"),
    "ci-hung-exec-plugin": ("kube-api.auth", "fail"),
    "lab-insecure-tls": ("kubeconfig.tls-verify", "fail"),
    "ops-broker-healthy": ("broker.auth", "pass"),
    "ops-broker-lb-gone": ("broker.dns", "fail"),
    "ops-broker-4222-filtered": ("broker.tcp", "fail"),
    "kind-broker-localhost": ("broker.tcp", "fail"),
    "ops-broker-open-to-world": ("broker.exposure", "fail"),
    "ops-broker-wrong-token": ("broker.auth", "fail"),
    "eks-no-node-watch": ("rbac.node-watch", "fail"),
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
    # The lab servers are gone once the demo returns: it stops everything it started.
    assert "dr-wrong-ca" in proc.stdout
