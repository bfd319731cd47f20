"""Cloud reads are shared across worker processes: each describe happens once per run, whatever `--workers` is.

Three contexts per cloud name the same EKS, GKE and AKS cluster (moto, the GCP REST lab, the HTTPS ARM lab,
as the demo runs them), so their checks ask the same describes. The run happens in a fresh single-threaded
process (the labs' threads live here), with one worker and with three: the clouds must receive the same
requests, and every cluster's ``*_api_calls`` evidence counts the run's calls, not one worker's.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight_lab.demo_clouds import Cloud, start_clouds
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import LabFleet

COPIES = 3
CLOUD_CHECKS = ["aws.*", "gcp.*", "azure.*"]
EVIDENCE = {"eks": "aws_api_calls", "gke": "gcp_api_calls", "aks": "azure_api_calls"}

# Runs the app pipeline with the lab's settings; says how many worker processes the clusters were dealt to.
SCRIPT = """
import json, sys
from preflight import app
from preflight.engine import workers
from preflight.engine.plan import Request
from preflight.engine.settings import Settings
from preflight_lab.demo_clouds import _LabToken

shares = []
fan_out = workers.fan_out
def spy(parts, *args, **kwargs):
    shares.append(len(parts))
    return fan_out(parts, *args, **kwargs)
workers.fan_out = spy

fleet, settings, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
if settings.pop("azure_lab_token", False):
    settings["azure_credential"] = lambda authority: _LabToken()
report = app.run(Request(fleet=fleet), Settings(**settings, workers=count), include=sys.argv[4].split(","))
print(json.dumps({
    "shares": shares,
    "results": [
        {"cluster": c.name, "provider": c.provider, "check": r.check_id, "status": r.status.value,
         "evidence": {k: v for k, v in r.evidence.items() if k.endswith("_api_calls")}}
        for c in report.clusters for r in c.results
    ],
}))
"""


@dataclass
class World:
    fleet_file: Path
    settings: dict[str, Any]
    clouds: dict[str, Any]  # provider -> its lab (AwsLab, LabGCP, LabARM)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    out = tmp_path_factory.mktemp("workers-cloud")
    with contextlib.ExitStack() as stack:
        clouds = start_clouds(stack)
        if len(clouds) < 3:
            pytest.fail("the test extra installs every cloud SDK and lab: pip install -e '.[test]'")
        labs = {c.entry["provider"]: c.lab for c in clouds}
        lab = stack.enter_context(LabFleet([c.spec for c in clouds], out / "lab"))
        dns = stack.enter_context(LabDNS(zones=("lab.test", "amazonaws.com")))
        settings: dict[str, Any] = {}
        for c in clouds:
            for name, address in c.dns.items():
                dns.add_a(name, address)
            if c.after_fleet is not None:
                c.after_fleet(lab)
            settings.update({k: v for k, v in c.settings.items() if k != "azure_credential"})
        settings.update(
            connect_timeout=2.0, exec_timeout=2.0, cluster_timeout=60.0, dns_server=dns.address, azure_lab_token=True
        )
        yield World(_fleet_file(lab, clouds, out), settings, labs)


def _fleet_file(lab: LabFleet, clouds: list[Cloud], out: Path) -> Path:
    """Each cloud cluster under COPIES context names: one kubeconfig cluster and user, the same cloud ids."""
    kubeconfig = yaml.safe_load(lab.kubeconfig_path.read_text())
    doc = lab.fleet_document()
    doc["origin"] = {"cidrs": ["127.0.0.0/8"]}
    entries = []
    for c in clouds:
        context = next(x for x in kubeconfig["contexts"] if x["name"] == c.spec.name)
        original = next(e for e in doc["clusters"] if e["context"] == c.spec.name)
        for i in range(COPIES):
            name = f"{c.spec.name}-{i}"
            kubeconfig["contexts"].append({"name": name, "context": dict(context["context"])})
            entries.append({**original, **c.entry, "context": name})
    kubeconfig_path = out / "kubeconfig.yaml"
    kubeconfig_path.write_text(yaml.safe_dump(kubeconfig))
    kubeconfig_path.chmod(0o600)
    doc["kubeconfig"] = [str(kubeconfig_path)]
    doc["clusters"] = entries
    path = out / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _requests(world: World) -> dict[str, Counter[str]]:
    return {
        "eks": Counter(world.clouds["eks"].requests()),
        "gke": Counter(r.path for r in world.clouds["gke"].api_requests()),
        "aks": Counter(r.path.lower() for r in world.clouds["aks"].requests()),
    }


def _run(world: World, workers: int) -> tuple[dict[str, Any], dict[str, Counter[str]]]:
    world.clouds["eks"].clear_requests()
    world.clouds["gke"].clear_log()
    world.clouds["aks"].clear_requests()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(world.fleet_file),
            json.dumps(world.settings),
            str(workers),
            ",".join(CLOUD_CHECKS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), _requests(world)


@pytest.fixture(scope="module")
def runs(world: World) -> dict[int, tuple[dict[str, Any], dict[str, Counter[str]]]]:
    return {workers: _run(world, workers) for workers in (1, 3)}


def test_each_describe_happens_once_per_run_whatever_the_worker_count(runs: dict[int, Any]) -> None:
    (one, one_requests), (three, three_requests) = runs[1], runs[3]
    assert one["shares"] == [] and three["shares"] == [3]  # in-process, then really three forked workers
    for provider in EVIDENCE:
        assert one_requests[provider], f"no {provider} request: the cloud checks did not reach the lab"
        assert three_requests[provider] == one_requests[provider], provider
    # The verdicts are the same too.
    verdicts = {(r["cluster"], r["check"]): r["status"] for r in one["results"]}
    assert {(r["cluster"], r["check"]): r["status"] for r in three["results"]} == verdicts


def test_api_call_evidence_counts_the_run_not_one_worker(runs: dict[int, Any]) -> None:
    run, requests = runs[3]
    for provider, key in EVIDENCE.items():
        counts = [r["evidence"][key] for r in run["results"] if r["provider"] == provider and key in r["evidence"]]
        assert len(counts) >= COPIES and min(counts) >= 1, (provider, run["results"])
        sent = sum(requests[provider].values())
        if provider == "aks":  # one ARM read may take several pages
            assert max(counts) <= sent
        else:
            # A copy's last check runs after every describe its copy needs, whichever worker sent it: it counts
            # every request the cloud received, not one worker's share of them.
            assert max(counts) == sent, (provider, counts, requests[provider])
