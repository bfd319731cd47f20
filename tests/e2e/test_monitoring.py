"""deploy/monitoring: alert rules checked and unit-tested by Debian's promtool (every alert firing and not
firing), the PrometheusRule identical to the plain rules file, manifests validated offline, and the
Deployment's arguments accepted by the CLI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from preflight.app import load_registry
from tests.promtools import tool

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "deploy" / "monitoring"
RULES = MON / "rules" / "meshery-preflight.rules.yml"
RULE_TESTS = MON / "rules" / "meshery-preflight.rules.test.yml"
VERSIONS = sorted({v for v in all_versions() if (1, 25) <= tuple(int(x) for x in v.split(".")[:2]) <= (1, 34)})
# Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them (they are not part
# of Kubernetes), so they are skipped there and checked against the shape below instead.
CRDS = {"ServiceMonitor", "PrometheusRule"}
_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": {"type": "object"}},
}
_RULE = {
    "type": "object",
    "required": ["alert", "expr", "labels", "annotations"],
    "additionalProperties": False,
    "properties": {
        "alert": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]*$"},
        "expr": {"type": "string"},
        "for": {"type": "string", "pattern": "^[0-9]+[smh]$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {
            "type": "object",
            "required": ["summary", "description", "runbook_url"],
            "additionalProperties": {"type": "string"},
        },
    },
}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": {
                        "type": "object",
                        "required": ["matchLabels"],
                        "properties": {"matchLabels": {"type": "object"}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "rules": {"type": "array", "items": _RULE}},
                        },
                    }
                },
            },
        },
    },
}


def documents() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((MON / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((MON / name).read_text()):
            if doc:
                docs.append((f"{name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


def by_kind(kind: str) -> dict[str, Any]:
    return next(d for _, d in documents() if d["kind"] == kind)


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules() -> None:
    proc = subprocess.run(
        [tool("promtool", "prometheus"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_unit_tests_pass_and_cover_every_alert_firing_and_not() -> None:
    proc = subprocess.run(
        [tool("promtool", "prometheus"), "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for alert in (r["alert"] for r in rules()):
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no test where it stays silent"


def test_alerts_carry_cluster_check_and_reason_and_a_runbook_that_exists() -> None:
    registry = load_registry()
    docs = (ROOT / "docs" / "checks.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        if "cluster" in rule["expr"] or "check_result" in rule["expr"]:
            grouped = re.search(r"by \(([^)]*)\)", rule["expr"])
            assert grouped and {"cluster", "check", "reason"} <= {x.strip() for x in grouped.group(1).split(",")}
            assert url.endswith('#{{ $labels.check | reReplaceAll "\\\\." "-" }}'), url
            pattern = re.search(r'check=~"([^"]+)"', rule["expr"])
            assert pattern
            matched = [c for c in registry.all() if re.fullmatch(pattern.group(1).replace("\\\\", "\\"), c.id)]
            assert matched, rule["alert"]
            for chk in matched:  # the anchor the template makes is the check's docs anchor
                assert chk.docs_anchor == chk.id.replace(".", "-") and f'id="{chk.docs_anchor}"' in docs
        else:
            assert {"check", "reason"} <= set(rule["labels"]), rule["alert"]
            assert url.endswith("README.md#monitoring") and "\n## Monitoring\n" in readme
    assert {r["alert"] for r in rules()} >= {
        "MesheryBrokerUnreachable",
        "MesheryKubeAPIUnreachable",
        "MesheryPreflightProberFailing",
        "MesheryPreflightResultsStale",
    }
    broker = next(r for r in rules() if r["alert"] == "MesheryBrokerUnreachable")
    assert broker["for"] == "15m"


def test_the_prometheusrule_holds_exactly_the_plain_rules() -> None:
    plain = yaml.safe_load(RULES.read_text())["groups"]
    assert by_kind("PrometheusRule")["spec"]["groups"] == plain


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_offline(version: str) -> None:
    docs = documents()
    assert {d["kind"] for _, d in docs} == {"Deployment", "Service"} | CRDS
    for where, doc in docs:
        if doc["kind"] in CRDS:
            jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is not valid for Kubernetes {version}: {exc.message}")


def test_the_deployment_is_locked_down_probed_and_scraped() -> None:
    deployment, service, monitor = by_kind("Deployment"), by_kind("Service"), by_kind("ServiceMonitor")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    sec = container["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = container["ports"][0]
    assert container["livenessProbe"]["httpGet"]["port"] == port["name"] == "metrics"
    assert f"--listen=:{port['containerPort']}" in container["args"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["name"] == monitor["spec"]["endpoints"][0]["port"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The alert rules select job="meshery-preflight": the Prometheus Operator names the job after the Service.
    assert service["metadata"]["name"] == "meshery-preflight"
    assert all('job="meshery-preflight"' in r["expr"] for r in rules() if "up{" in r["expr"])


def test_the_deployments_arguments_are_ones_serve_accepts() -> None:
    from preflight.cli import serve_cmd

    args = by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "serve"
    ctx = serve_cmd.make_context("serve", list(args[1:]))
    assert ctx.params["in_cluster"] is True and ctx.params["interval"] == 300.0
    assert ctx.params["log_format"] == "json" and ctx.params["cloud_cache_ttl"] == 600.0


def test_the_readme_monitoring_commands_use_real_flags() -> None:
    from tests.e2e.test_examples import assert_real, commands

    section = (ROOT / "README.md").read_text().split("\n## Monitoring\n", 1)[1].split("\n## ", 1)[0]
    found = [argv for script in re.findall(r"```sh\n(.*?)```", section, flags=re.S) for argv in commands(script)]
    assert any(argv[1] == "serve" for argv in found)
    for argv in found:
        assert_real(argv)
