"""The deploy kit: every manifest validates offline against the Kubernetes OpenAPI schemas of each version
`kube-api.version` supports (that kubernetes-validate ships), and the image's build context exists."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
# kube-api.version supports 1.24 to 1.34; kubernetes-validate ships schemas from 1.25.
VERSIONS = sorted({v for v in all_versions() if (1, 25) <= tuple(int(x) for x in v.split(".")[:2]) <= (1, 34)})


def _documents() -> list[tuple[str, dict]]:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((KUBE / name).read_text()):
            if doc:
                docs.append((f"{name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


def test_versions_cover_the_supported_range() -> None:
    assert VERSIONS[0].startswith("1.25") and VERSIONS[-1].startswith("1.34")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    docs = _documents()
    kinds = {d["kind"] for _, d in docs}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CronJob"} <= kinds
    for where, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is not valid for Kubernetes {version}: {exc.message}")


def test_workloads_run_as_non_root_on_a_read_only_root_filesystem() -> None:
    for where, doc in _documents():
        if doc["kind"] != "CronJob":
            continue
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert {"/tmp", "/reports"} <= mounts, where


def test_the_fleet_job_shards_as_many_ways_as_it_has_completions() -> None:
    job = next(d for _, d in _documents() if d["metadata"]["name"] == "meshery-preflight-fleet")
    spec = job["spec"]["jobTemplate"]["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert spec["completionMode"] == "Indexed"
    assert int(env["PREFLIGHT_SHARDS"]) == spec["completions"]
    assert "--shard=auto" in container["args"]


def test_the_dockerfile_copies_what_exists_and_runs_as_non_root() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path.rstrip("/")).exists(), path
    assert re.search(r"^USER 65532", text, re.M) and text.count("FROM ") == 2
    assert 'ARG EXTRAS=""' in text


def test_rbac_yaml_is_what_the_rbac_command_generates() -> None:
    from click.testing import CliRunner

    from preflight.cli import main

    # In the cluster the Server reaches the Broker by its ClusterIP: the in-cluster audit needs no port-forward.
    out = CliRunner().invoke(main, ["rbac", "--mode", "operator", "--no-broker-port-forward"])
    assert out.exit_code == 0, out.output
    assert (KUBE / "rbac.yaml").read_text() == out.output, (
        "regenerate: meshery-preflight rbac --no-broker-port-forward > deploy/kubernetes/rbac.yaml"
    )


def test_the_workloads_run_real_commands_and_flags() -> None:
    """Each container's args are parsed by the CLI itself: an unknown flag or bad value fails here."""
    from preflight.cli import main

    jobs = [d for _, d in _documents() if d["kind"] == "CronJob"]
    assert len(jobs) == 2
    for doc in jobs:
        for c in doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
            args = c["args"]
            main.commands[args[0]].make_context(args[0], list(args[1:]))  # raises on anything unknown
