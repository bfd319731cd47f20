"""Broken credentials and URLs get a verdict that names the cause and its own fix, for that cluster only,
against a real lab API server (the good cluster beside them still passes)."""

from __future__ import annotations

import base64
import copy
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.engine.model import RunReport
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.processes import running
from tests.runlab import result, run

CHECKS = ["kubeconfig.*", "kube-api.auth", "fleet.duplicate-cluster"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet([ClusterSpec(name="good")], tmp_path_factory.mktemp("verdict-lab")) as fleet:
        yield fleet


def _with(lab: LabFleet, path: Path, variants: dict[str, dict[str, Any]]) -> Path:
    """The lab's kubeconfig plus one context per variant: the good cluster and user, with the variant's
    ``cluster`` and ``user`` fields laid over them."""
    doc = lab.kubeconfig()
    good_cluster = doc["clusters"][0]["cluster"]
    good_user = doc["users"][0]["user"]
    for name, change in variants.items():
        cluster = {**copy.deepcopy(good_cluster), **change.get("cluster", {})}
        user = change.get("user_exact") or {**copy.deepcopy(good_user), **change.get("user", {})}
        doc["clusters"].append({"name": name, "cluster": cluster})
        doc["users"].append({"name": name, "user": user})
        doc["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(path: Path, **settings: Any) -> RunReport:
    return run(kubeconfig=[str(path)], include=CHECKS, **settings)


def test_bad_server_urls_fail_their_own_context(lab: LabFleet, tmp_path: Path) -> None:
    url = lab.clusters["good"].url
    host = url.removeprefix("https://").rsplit(":", 1)[0]
    variants = {
        "port-zero": {"cluster": {"server": f"https://{host}:0"}},
        "space": {"cluster": {"server": f"https://{host} :6443"}},
        "open-bracket": {"cluster": {"server": "https://[::1"}},
        "bad-port": {"cluster": {"server": f"https://{host}:abc"}},
        "bad-proxy": {"cluster": {"proxy-url": "http://proxy.lab.test:0"}},
        "garbage-proxy": {"cluster": {"proxy-url": "::::"}},
    }
    report = _run(_with(lab, tmp_path / "config", variants))
    assert result(report, "good", "kubeconfig.context").status.value == "pass"
    assert result(report, "good", "kube-api.auth").status.value == "pass"
    for name in variants:
        ctx = result(report, name, "kubeconfig.context")
        assert ctx.status.value == "fail", (name, ctx.message)
        field = "proxy-url" if name.endswith("-proxy") else "server"
        assert f"cluster '{name}': {field} " in ctx.message, ctx.message
        assert result(report, name, "kube-api.auth").status.value == "skip"
    assert "port 0" in result(report, "port-zero", "kubeconfig.context").message
    assert "space" in result(report, "space", "kubeconfig.context").message
    assert result(report, "fleet", "fleet.duplicate-cluster").status.value != "error"


def test_ca_data_that_is_not_a_certificate_fails_tls_verify(lab: LabFleet, tmp_path: Path) -> None:
    not_a_cert = base64.b64encode(b"this is base64, but not a certificate at all").decode()
    report = _run(_with(lab, tmp_path / "config", {"junk-ca": {"cluster": {"certificate-authority-data": not_a_cert}}}))
    tls = result(report, "junk-ca", "kubeconfig.tls-verify")
    assert tls.status.value == "fail"
    assert "certificate-authority-data holds no PEM certificate" in tls.message
    assert "--embed-certs" in tls.remediation
    assert result(report, "good", "kubeconfig.tls-verify").status.value == "pass"


def test_broken_client_credentials_fail_with_their_cause_and_fix(lab: LabFleet, tmp_path: Path) -> None:
    junk = base64.b64encode(b"not PEM at all, just bytes").decode()
    pem_cert = lab.ca.cert_b64  # a real PEM certificate, whose key we do not give
    variants: dict[str, dict[str, Any]] = {
        "cert-not-pem": {"user_exact": {"client-certificate-data": junk, "client-key-data": junk}},
        "key-not-pem": {"user_exact": {"client-certificate-data": pem_cert, "client-key-data": junk}},
        "token-list": {"user_exact": {"token": ["one-part-of-a-token", "another-part"]}},
        "token-map": {"user_exact": {"token": {"value": "a-token-in-a-mapping"}}},
        "token-newline": {"user_exact": {"token": lab.clusters["good"].token + "\n"}},
    }
    report = _run(_with(lab, tmp_path / "config", variants))
    expected = {
        "cert-not-pem": ("not a PEM certificate", "--embed-certs"),
        "key-not-pem": ("not a PEM private key", "client-key"),
        "token-list": ("is a YAML list", "one string"),
        "token-map": ("is a YAML mapping", "one string"),
        "token-newline": ("ends with a line break", "|-"),
    }
    for name, (cause, fix) in expected.items():
        cred = result(report, name, "kubeconfig.credential")
        assert cred.status.value == "fail", (name, cred.message)
        assert cause in cred.message and fix in cred.remediation, (name, cred.message, cred.remediation)
        auth = result(report, name, "kube-api.auth")
        assert auth.status.value == "fail" and "probe raised" not in auth.message, (name, auth.message)
        # Never sent as written: the client is not even built with it.
        assert "the credential cannot be used" in auth.message, (name, auth.message)


def test_missing_exec_plugin_fails_credential_naming_it(lab: LabFleet, tmp_path: Path) -> None:
    missing = f"no-such-plugin-{uuid.uuid4().hex[:8]}"
    variants = {
        "on-path": {"user_exact": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": missing}}},
        "by-path": {
            "user_exact": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/" + missing}}
        },
    }
    report = _run(_with(lab, tmp_path / "config", variants))
    for name, where in (("on-path", "on PATH"), ("by-path", "at that path")):
        cred = result(report, name, "kubeconfig.credential")
        assert cred.status.value == "fail", cred.message
        assert missing in cred.message and where in cred.message
        assert "Install" in cred.remediation


def test_plugin_that_exits_while_its_child_holds_stdout(lab: LabFleet, tmp_path: Path) -> None:
    """The plugin printed its credential and exited; a child it started still holds stdout. The credential
    is taken when the plugin exits, and the child (its process group) is killed."""
    marker = f"lingering-{uuid.uuid4().hex}"
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)', {marker!r}])\n"
        "json.dump({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        f" 'status': {{'token': {lab.clusters['good'].token!r}}}}}, sys.stdout)\n"
    )
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(script)]}
    report = _run(_with(lab, tmp_path / "config", {"lingering": {"user_exact": {"exec": spec}}}), exec_timeout=20.0)
    auth = result(report, "lingering", "kube-api.auth")
    assert auth.status.value == "pass", auth.message
    assert not running(marker), "the plugin's child was left running"


def test_a_file_that_repeats_a_name_fails_its_contexts_only(lab: LabFleet, tmp_path: Path) -> None:
    """Go's client rejects a kubeconfig file that names a user twice: its context fails with the file, the name
    and the line; the good file beside it still connects."""
    doc = lab.kubeconfig()
    doc["contexts"] = [{"name": "twice", "context": dict(doc["contexts"][0]["context"])}]
    doc["users"].append(copy.deepcopy(doc["users"][0]))
    dup = tmp_path / "dup.yaml"
    dup.write_text(yaml.safe_dump(doc, sort_keys=False))
    lines = [i for i, text in enumerate(dup.read_text().splitlines(), 1) if text.startswith("- name: good-user")]
    line = lines[1]  # the repeat
    report = run(kubeconfig=[str(lab.kubeconfig_path), str(dup)], include=CHECKS)
    ctx = result(report, "twice", "kubeconfig.context")
    assert ctx.status.value == "fail"
    assert ctx.message == (
        f"{dup}:{line}: user name 'good-user' appears twice in this file: Go's client (kubectl, Meshery Server) "
        "rejects the whole file"
    )
    assert f"Give every cluster, user and context in {dup} a name of its own" in ctx.remediation
    assert result(report, "twice", "kube-api.auth").status.value == "skip"
    assert result(report, "good", "kube-api.auth").status.value == "pass"
    assert result(report, "good", "kubeconfig.context").status.value == "pass"  # no "first file wins" warning


@pytest.mark.parametrize(
    ("provider", "plugin", "command"),
    [
        ("gcp", "gke-gcloud-auth-plugin", "gcloud components install gke-gcloud-auth-plugin"),
        ("azure", "kubelogin", "kubelogin convert-kubeconfig"),
    ],
)
def test_removed_auth_providers_fail_naming_their_plugin(
    lab: LabFleet, tmp_path: Path, provider: str, plugin: str, command: str
) -> None:
    """client-go dropped the gcp and azure auth-providers in 1.26: even with a token the lab would accept,
    Meshery Server cannot authenticate this way, so neither does the preflight; oidc is still supported."""
    token = lab.clusters["good"].token  # the lab accepts it: only the removed provider is wrong
    ap = {"auth-provider": {"name": provider, "config": {"access-token": token, "expiry": "2099-01-01T00:00:00Z"}}}
    report = _run(_with(lab, tmp_path / "config", {"removed": {"user_exact": ap}}))
    cred = result(report, "removed", "kubeconfig.credential")
    assert cred.status.value == "fail", cred.message
    assert f"auth-provider {provider!r} was removed from client-go in Kubernetes 1.26" in cred.message
    assert plugin in cred.remediation and command in cred.remediation
    auth = result(report, "removed", "kube-api.auth")
    assert auth.status.value == "fail" and "auth-provider" in auth.message
    assert result(report, "good", "kube-api.auth").status.value == "pass"
