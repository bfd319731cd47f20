"""The CLI's public contract: flags, exit codes, report files, one-line errors, no leaked secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from lxml import etree

from preflight.reports import json_report
from preflight_lab.fleet import ClusterSpec, LabFleet

TESTS = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "preflight.cli"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    base["NO_COLOR"] = "1"
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    specs = [
        ClusterSpec(name="good", scenario="healthy"),
        ClusterSpec(name="good-exec", scenario="exec-ok"),
        ClusterSpec(name="good-cert", scenario="client-cert"),
        ClusterSpec(name="bad-token", scenario="expired-token"),
        ClusterSpec(name="bad-ca", scenario="wrong-ca"),
        ClusterSpec(name="hung", scenario="hung-exec"),
        ClusterSpec(name="insecure", scenario="insecure"),
    ]
    with LabFleet(specs, tmp_path_factory.mktemp("cli-lab")) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def full_run(lab: LabFleet, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    proc = cli(
        "check",
        "--kubeconfig",
        str(lab.kubeconfig_path),
        "--connect-timeout",
        "1",
        "--exec-timeout",
        "1",
        "-o",
        "console",
        "-o",
        f"json={out / 'r.json'}",
        "-o",
        f"junit={out / 'j.xml'}",
    )
    return proc, out


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, preflight.cli\n"
        "heavy = [m for m in ('kubernetes', 'boto3', 'google.cloud', 'azure', 'preflight.checks')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == ""


@pytest.mark.parametrize("args", [["list-checks"], ["explain", "kube-api.tcp"], ["explain", "aws.lb.security-groups"]])
def test_metadata_commands_load_no_client_or_sdk(args: list[str]) -> None:
    """list-checks and explain import every check, but neither the kubernetes client nor a cloud SDK."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['meshery-preflight', *{args!r}]\n"
        "try:\n    runpy.run_module('preflight.cli', run_name='__main__')\nexcept SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert 'preflight.checks.rbac' in sys.modules\n"
        "heavy = sorted({m for m in sys.modules if m.split('.')[0] in"
        " ('kubernetes', 'boto3', 'botocore', 'google', 'azure', 'cryptography', 'urllib3')})\n"
        "print('HEAVY:' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert ("kube-api.tcp" if args[0] == "list-checks" else args[-1]) in out.stdout
    assert out.stdout.splitlines()[-1] == "HEAVY:"


def test_findings_exit_1_and_every_format_is_written(full_run) -> None:
    proc, out = full_run
    assert proc.returncode == 1, proc.stderr
    assert "bad-token" in proc.stdout and "kube-api.auth" in proc.stdout
    assert "Traceback" not in proc.stderr
    doc = json.loads((out / "r.json").read_text())
    jsonschema.validate(doc, json_report.load_schema())
    assert doc["schema_version"] == 1
    assert {c["name"] for c in doc["clusters"]} == {
        "good",
        "good-exec",
        "good-cert",
        "bad-token",
        "bad-ca",
        "hung",
        "insecure",
    }
    xsd = etree.XMLSchema(etree.parse(str(TESTS / "data" / "junit.xsd")))
    xml = etree.parse(str(out / "j.xml"))
    assert xsd.validate(xml), xsd.error_log
    failures = xml.xpath("//testcase[failure]/@name")
    assert "kube-api.auth: Authenticated request succeeds" in failures


def test_no_secret_in_any_report_format(lab: LabFleet, full_run) -> None:
    proc, out = full_run
    texts = {
        "console": proc.stdout + proc.stderr,
        "json": (out / "r.json").read_text(),
        "junit": (out / "j.xml").read_text(),
    }
    secrets = lab.secrets()
    assert len(secrets) >= 7
    for fmt, text in texts.items():
        for secret in secrets:
            for line in secret.strip().splitlines():
                if len(line) >= 16 and "-----" not in line:
                    assert line not in text, f"a planted secret leaked into the {fmt} report"
        assert "BEGIN" not in text, f"a PEM block leaked into the {fmt} report"


def test_no_mutating_request_from_a_full_run(lab: LabFleet, full_run) -> None:
    assert all(not reqs for reqs in lab.mutating_requests().values())


def test_fail_on_threshold_and_check_selection(lab: LabFleet) -> None:
    ok = cli(
        "check",
        "--kubeconfig",
        str(lab.kubeconfig_path),
        "--context",
        "good",
        "--skip-checks",
        "kubeconfig.credential",
        "--skip-checks",
        "kube-api.latency",
    )
    assert ok.returncode == 0, ok.stdout
    strict = cli("check", "--kubeconfig", str(lab.kubeconfig_path), "--context", "good", "--fail-on", "warn")
    assert strict.returncode == 1  # the static token warns


def test_mute_from_fleet_file_keeps_exit_0_and_shows_reason(lab: LabFleet, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "kubeconfig": [str(lab.kubeconfig_path)],
                "clusters": [{"context": "insecure"}],
                "mutes": [{"check": "kubeconfig.tls-verify", "cluster": "insec*", "reason": "lab only, ticket LAB-1"}],
            }
        )
    )
    proc = cli("check", "--fleet", str(fleet), "-o", "json")
    doc = json.loads(proc.stdout)
    res = {r["check_id"]: r for r in doc["clusters"][0]["results"]}
    assert res["kubeconfig.tls-verify"]["status"] == "muted"
    assert "LAB-1" in res["kubeconfig.tls-verify"]["message"]
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--context", "nope"], "unknown context 'nope'"),
        (["-o", "yaml"], "yaml"),
        (["--origin", "not-a-cidr"], "not a CIDR"),
        (["--checks", "nothing.*"], "leave no check"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(lab: LabFleet, args: list[str], needle: str) -> None:
    proc = cli("check", "--kubeconfig", str(lab.kubeconfig_path), *args)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_malformed_kubeconfig_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("apiVersion: v1\nclusters:\n  - name: a\n    cluster: {server: [unclosed\n")
    proc = cli("check", "--kubeconfig", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:" in proc.stderr and "malformed kubeconfig" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_malformed_fleet_file_names_file_line_and_field(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("version: 1\nclusters:\n  - context: a\n    meshsync_mode: opertor\n")
    proc = cli("check", "--fleet", str(fleet))
    assert proc.returncode == 2
    assert f"{fleet}:4: clusters[0].meshsync_mode" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kubeconfig_folder_is_the_default(lab: LabFleet, tmp_path: Path) -> None:
    folder = tmp_path / "kube"
    folder.mkdir()
    (folder / "config").write_text(Path(lab.kubeconfig_path).read_text())
    (folder / "notes.yaml").write_text("hello: world\n")
    proc = cli("check", "--context", "good", "-o", "json", env={"KUBECONFIG_FOLDER": str(folder)})
    doc = json.loads(proc.stdout)
    assert [c["name"] for c in doc["clusters"]] == ["good"]


def test_list_checks_and_explain() -> None:
    listed = json.loads(cli("list-checks", "--json").stdout)
    ids = {c["id"] for c in listed}
    assert {"kubeconfig.context", "kube-api.tcp", "fleet.shared-credential"} <= ids
    explained = cli("explain", "kube-api.tcp")
    assert explained.returncode == 0 and "filtered" in explained.stdout and "How to fix" in explained.stdout
    unknown = cli("explain", "nope.nope")
    assert unknown.returncode == 2 and "unknown check id" in unknown.stderr


def test_checks_reference_is_generated_from_the_registry() -> None:
    committed = (TESTS.parent / "docs" / "checks.md").read_text()
    assert cli("gen-docs").stdout == committed, "docs/checks.md is stale: run meshery-preflight gen-docs"
