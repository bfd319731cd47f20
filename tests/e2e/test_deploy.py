"""The deploy kit, as far as it runs offline: the manifests as kustomize renders them validate against the
Kubernetes OpenAPI schemas of each version `kube-api.version` supports (that kubernetes-validate ships); the
fleet Job's container script, taken verbatim from the rendered manifest, runs here as N parallel shard
processes plus the merge step over the same reports layout against lab clusters and gives the verdicts of one
unsharded run; the README's command sequence matches the kit; the Dockerfile parses with Docker's own parser."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from prometheus_client.parser import text_string_to_metric_families

from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.promtools import fetch, pushgateway

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# kube-api.version supports 1.24 to 1.34; kubernetes-validate ships schemas from 1.25.
VERSIONS = sorted({v for v in all_versions() if (1, 25) <= tuple(int(x) for x in v.split(".")[:2]) <= (1, 34)})


def _rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


DOCS = _rendered()


def _where(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _cronjob(name: str) -> dict[str, Any]:
    return next(d for d in DOCS if d["kind"] == "CronJob" and d["metadata"]["name"] == name)


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def test_versions_cover_the_supported_range() -> None:
    assert VERSIONS[0].startswith("1.25") and VERSIONS[-1].startswith("1.34")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_manifest_validates_strictly(version: str) -> None:
    kinds = {d["kind"] for d in DOCS}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CronJob"} <= kinds
    assert "PersistentVolumeClaim" in kinds
    for doc in DOCS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{_where(doc)} is not valid for Kubernetes {version}: {exc.message}")


def test_workloads_run_as_non_root_on_a_read_only_root_filesystem() -> None:
    for doc in (d for d in DOCS if d["kind"] == "CronJob"):
        pod = _pod(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True, _where(doc)
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, _where(doc)
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, _where(doc)
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert {"/tmp", "/reports"} <= mounts, _where(doc)


def test_every_image_is_the_one_kustomize_sets() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    [entry] = kustomization["images"]
    want = f"{entry['newName']}:{entry['newTag']}"
    images = {c["image"] for d in DOCS if d["kind"] == "CronJob" for c in _pod(d)["containers"]}
    assert images == {want}
    for path in KUBE.glob("*.yaml"):
        assert "meshery-preflight:0.1.0" not in path.read_text() or path.name == "kustomization.yaml", path


def test_findings_are_no_pod_failure_and_bad_configuration_fails_the_job() -> None:
    for doc in (d for d in DOCS if d["kind"] == "CronJob"):
        spec = doc["spec"]["jobTemplate"]["spec"]
        rules = spec["podFailurePolicy"]["rules"]
        fail_job = [r for r in rules if r["action"] == "FailJob"]
        assert fail_job and fail_job[0]["onExitCodes"]["values"] == [2], _where(doc)
        assert any(c["type"] == "DisruptionTarget" for r in rules for c in r.get("onPodConditions", ())), _where(doc)
        assert spec["backoffLimit"] <= 2 and _pod(doc)["restartPolicy"] == "Never"
        script = _pod(doc)["containers"][0]["args"][0]
        assert 'if [ "$rc" -eq 1 ]; then exit 0; fi' in script, _where(doc)


def test_the_fleet_job_has_one_more_completion_than_shards_and_keeps_reports_on_a_claim() -> None:
    job = _cronjob("meshery-preflight-fleet")
    spec = job["spec"]["jobTemplate"]["spec"]
    env = _env_of(job)
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(env["PREFLIGHT_SHARDS"]) + 1
    volumes = {v["name"]: v for v in _pod(job)["volumes"]}
    claim = volumes["reports"]["persistentVolumeClaim"]["claimName"]
    assert any(d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for d in DOCS)
    assert {volumes[n]["secret"]["secretName"] for n in ("kubeconfig", "fingerprint-key")} == {
        "fleet-kubeconfig",
        "fingerprint-key",
    }


def _env_of(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _pod(job)["containers"][0]["env"]}


def _commands(script: str) -> list[list[str]]:
    """The meshery-preflight command lines of a container script, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("meshery-preflight "):
            found.append([w for w in shlex.split(line) if not w.startswith("${")])
    return found


def test_the_containers_run_real_commands_and_flags() -> None:
    """Each container's commands are parsed by the CLI itself: an unknown flag or bad value fails here."""
    from preflight.cli import main

    seen = set()
    for doc in (d for d in DOCS if d["kind"] == "CronJob"):
        for c in _pod(doc)["containers"]:
            assert c["command"] == ["/bin/sh", "-c"]
            subprocess.run(["sh", "-n", "-c", c["args"][0]], check=True, timeout=10)  # the shell parses it
            for argv in _commands(c["args"][0]):
                main.commands[argv[1]].make_context(argv[1], list(argv[2:]))  # raises on anything unknown
                seen.add(argv[1])
    assert seen == {"check", "merge"}


def test_rbac_yaml_is_what_the_rbac_command_generates() -> None:
    from click.testing import CliRunner

    from preflight.cli import main

    # In the cluster the Server reaches the Broker by its ClusterIP: the in-cluster audit needs no port-forward.
    out = CliRunner().invoke(main, ["rbac", "--mode", "operator", "--no-broker-port-forward"])
    assert out.exit_code == 0, out.output
    assert (KUBE / "rbac.yaml").read_text() == out.output, (
        "regenerate: meshery-preflight rbac --no-broker-port-forward > deploy/kubernetes/rbac.yaml"
    )


# -- the Dockerfile -----------------------------------------------------------------------------------


def _instructions() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DOCKERFILE)))  # Docker's own (buildkit) parser


def test_the_dockerfile_parses_and_copies_what_exists() -> None:
    commands = _instructions()
    stages = [c for c in commands if c.cmd == "FROM"]
    assert [s.value[-1] for s in stages[:2]] == ["build", "plugins"] and len(stages) == 3
    for c in commands:
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
            for path in c.value[:-1]:
                assert (ROOT / path.rstrip("/")).exists(), path
        if c.cmd == "RUN":
            subprocess.run(["sh", "-n", "-c", c.value[0]], check=True, timeout=10)
    assert [c.value[0] for c in commands if c.cmd == "USER"] == ["65532:65532"]


def test_the_run_stage_installs_only_the_wheels_the_build_stage_built() -> None:
    commands = _instructions()
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    build = " ".join(c.value[0] for c in commands[:last_from] if c.cmd == "RUN")
    run = " ".join(c.value[0] for c in commands[last_from:] if c.cmd == "RUN")
    assert "pip wheel" in build and '".[${EXTRAS}]"' in build
    assert "pip install --no-cache-dir --no-index --find-links /wheels" in run
    args = {c.value[0].split("=")[0] for c in commands if c.cmd == "ARG"}
    assert {"EXTRAS", "PLUGINS", "AWS_CLI_VERSION", "KUBELOGIN_VERSION"} <= args
    assert any(c.cmd == "COPY" and "--from=plugins" in c.flags for c in commands)


def test_an_unknown_plugin_stops_the_build_with_its_name(tmp_path: Path) -> None:
    """The plugins stage's RUN, run here with a plugin it does not know: no download is attempted."""
    commands = _instructions()
    [script] = [c.value[0] for c in commands if c.cmd == "RUN" and "PLUGINS" in c.value[0]]
    script = script.replace("/opt/plugins", str(tmp_path / "plugins"))
    # Docker sets every ARG of the stage in the RUN's environment, with its default unless given.
    defaults = dict(a.value[0].partition("=")[::2] for a in commands if a.cmd == "ARG")
    args = {k: v.strip('"') for k, v in defaults.items()}
    proc = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=30, env={**os.environ, **args, "PLUGINS": "helm"}
    )
    assert proc.returncode == 1 and "unknown plugin 'helm' (known: aws gke kubelogin)" in proc.stderr
    empty = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, env={**os.environ, **args})
    assert empty.returncode == 0 and (tmp_path / "plugins" / "bin").is_dir()  # PLUGINS="": nothing to fetch


# -- the fleet Job, run here ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabFleet, Path]]:
    """Five lab clusters and a context reaching plain-b with plain-a's token: fleet.shared-credential fails."""
    names = ["plain-a", "plain-b", "plain-c", "plain-d", "plain-e"]
    with LabFleet([ClusterSpec(n) for n in names], tmp_path_factory.mktemp("deploylab")) as fleet:
        kc = yaml.safe_load(fleet.kubeconfig_path.read_text())
        kc["users"].append({"name": "shared-user", "user": {"token": fleet.clusters["plain-a"].token}})
        kc["contexts"].append({"name": "plain-b-shared", "context": {"cluster": "plain-b", "user": "shared-user"}})
        path = fleet.kubeconfig_path.with_name("fleet-kubeconfig.yaml")
        path.write_text(yaml.safe_dump(kc))
        yield fleet, path


def _local_env(job: dict[str, Any], mounts: dict[str, Path], **extra: str) -> dict[str, str]:
    """The container's env as the manifest sets it, its mount paths mapped to local folders: a
    mounted Secret's key file is the local file of the same name; PATH finds this meshery-preflight."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    for name in ("KUBECONFIG", "JOB_COMPLETION_INDEX", "PREFLIGHT_SHARDS", "MESHSYNC_DEFAULT_DEPLOYMENT_MODE"):
        env.pop(name, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    for key, value in _env_of(job).items():
        for mount, local in mounts.items():
            if value == mount or value.startswith(mount + "/"):
                value = str(local) + value[len(mount) :]
                break
        env[key] = value
    return {**env, **extra}


def _run_fleet_job(
    job: dict[str, Any], mounts: dict[str, Path], indexes: range, **extra: str
) -> list[subprocess.CompletedProcess[str]]:
    """Every index of the Indexed Job at once, as Kubernetes starts them (parallelism = completions)."""
    script = _pod(job)["containers"][0]["args"][0]
    procs = [
        subprocess.Popen(
            ["sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_local_env(job, mounts, JOB_COMPLETION_INDEX=str(k), **extra),
        )
        for k in indexes
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        if p.returncode != 0:  # a failed shard: the merge step would wait MERGE_WAIT_SECONDS for it
            for other in procs:
                other.kill()
                other.wait()
            pytest.fail(f"index {len(done) - 1} exited {p.returncode}: {err}")
    return done


def _verdicts(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    out = {(c["name"], r["check_id"]): r["status"] for c in doc["clusters"] for r in c["results"]}
    out.update({("fleet", r["check_id"]): r["status"] for r in doc["fleet"]["results"]})
    return out


def test_the_fleet_job_as_rendered_gives_the_unsharded_verdicts(lab: tuple[LabFleet, Path], tmp_path: Path) -> None:
    fleet, kubeconfig = lab
    job = _cronjob("meshery-preflight-fleet")
    pod = _pod(job)
    mount_of = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    secrets = tmp_path / "secrets"
    (secrets / "kubeconfig").mkdir(parents=True)
    (secrets / "fingerprint").mkdir()
    (secrets / "kubeconfig" / "config").write_text(kubeconfig.read_text())
    (secrets / "fingerprint" / "key").write_text(os.urandom(32).hex() + "\n")
    reports = tmp_path / "claim"  # the PersistentVolumeClaim, as every pod of the run mounts it
    reports.mkdir()
    mounts = {
        mount_of["kubeconfig"]: secrets / "kubeconfig",
        mount_of["fingerprint-key"]: secrets / "fingerprint",
        mount_of["reports"]: reports,
    }
    shards = int(_env_of(job)["PREFLIGHT_SHARDS"])
    with pushgateway() as gateway:
        done = _run_fleet_job(
            job, mounts, range(job["spec"]["jobTemplate"]["spec"]["completions"]), RUN_ID="run-1", PUSHGATEWAY=gateway
        )
        pushed = fetch(f"{gateway}/metrics")
    # Findings (the shared credential) are no pod failure: every index exits 0.
    assert [p.returncode for p in done] == [0] * (shards + 1), [p.stderr for p in done]
    run = reports / "run-1"
    assert sorted(p.name for p in run.glob("shard-*.json")) == [f"shard-{k}.json" for k in range(shards)]
    assert {"fleet.json", "fleet.html", "fleet.md", "fleet.prom"} <= {p.name for p in run.iterdir()}
    assert (reports / "latest").resolve() == run.resolve()
    merged = json.loads((run / "fleet.json").read_text())

    # The same fleet, unsharded, with the same key: the same verdict for every cluster and fleet check.
    whole = subprocess.run(
        [
            "meshery-preflight",
            "check",
            "--fingerprint-key-file",
            str(secrets / "fingerprint" / "key"),
            "--origin=203.0.113.0/24",
            "-o",
            f"json={tmp_path / 'whole.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_local_env(job, mounts),
    )
    assert whole.returncode in (0, 1), whole.stderr
    unsharded = json.loads((tmp_path / "whole.json").read_text())
    assert _verdicts(merged) == _verdicts(unsharded)
    shared = next(r for r in merged["fleet"]["results"] if r["check_id"] == "fleet.shared-credential")
    assert shared["status"] == "fail" and shared["evidence"]["shared"][0]["clusters"] == ["plain-a", "plain-b-shared"]
    # The merge step pushed the fleet's metrics once (shard=all), the fleet checks among them.
    samples = {
        (s.name, s.labels.get("check"), s.labels.get("shard"))
        for family in text_string_to_metric_families(pushed)
        for s in family.samples
    }
    assert ("meshery_preflight_fleet_check_status", "fleet.shared-credential", "all") in samples


def test_a_missing_shard_is_named_by_the_merge_step(lab: tuple[LabFleet, Path], tmp_path: Path) -> None:
    """A shard that never wrote its report: the merge step stops waiting at MERGE_WAIT_SECONDS and says so."""
    fleet, kubeconfig = lab
    job = _cronjob("meshery-preflight-fleet")
    mount_of = {m["name"]: m["mountPath"] for m in _pod(job)["containers"][0]["volumeMounts"]}
    (tmp_path / "kc").mkdir()
    (tmp_path / "kc" / "config").write_text(kubeconfig.read_text())
    (tmp_path / "key").mkdir()
    (tmp_path / "key" / "key").write_text(os.urandom(32).hex())
    mounts = {
        mount_of["kubeconfig"]: tmp_path / "kc",
        mount_of["fingerprint-key"]: tmp_path / "key",
        mount_of["reports"]: tmp_path / "claim",
    }
    shards = int(_env_of(job)["PREFLIGHT_SHARDS"])
    done = _run_fleet_job(job, mounts, range(shards - 1), RUN_ID="run-2", PUSHGATEWAY="")
    assert all(p.returncode == 0 for p in done), [p.stderr for p in done]
    [merge] = _run_fleet_job(
        job, mounts, range(shards, shards + 1), RUN_ID="run-2", PUSHGATEWAY="", MERGE_WAIT_SECONDS="1"
    )
    assert f"shard {shards - 1}/{shards} missing" in merge.stderr
    fleet_doc = json.loads((tmp_path / "claim" / "run-2" / "fleet.json").read_text())
    assert {r["status"] for r in fleet_doc["fleet"]["results"]} == {"error"}


# -- the README -------------------------------------------------------------------------------------------


def _readme_steps() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Running it in Kubernetes (`deploy/`)", 1)[1].split("\n## ", 1)[0]
    [steps] = re.findall(r"\nOne region.*?```sh\n(.*?)```", section, flags=re.S)
    return steps


def test_the_readme_steps_match_the_kit() -> None:
    steps = _readme_steps()
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    [entry] = kustomization["images"]
    image = f"{entry['newName']}:{entry['newTag']}"
    assert f"-t {image} " in steps and f"docker push {image}" in steps
    for doc in DOCS:
        if doc["kind"] == "CronJob":
            for volume in _pod(doc)["volumes"]:
                if "secret" in volume:
                    name = volume["secret"]["secretName"]
                    assert re.search(rf"create secret generic {name} ", steps), f"the README never creates {name}"
    assert "kubectl apply -k deploy/kubernetes/" in steps
    namespace = next(d for d in DOCS if d["kind"] == "Namespace")["metadata"]["name"]
    assert "kubectl apply -f deploy/kubernetes/namespace.yaml" in steps and namespace == "meshery-preflight"
    job = re.search(r"create job --from=cronjob/(\S+) (\S+)", steps)
    assert job and job.group(1) == "meshery-preflight-fleet"
    index = _cronjob("meshery-preflight-fleet")["spec"]["jobTemplate"]["spec"]["completions"] - 1
    assert f"batch.kubernetes.io/job-completion-index={index}" in steps  # the merge step's log
