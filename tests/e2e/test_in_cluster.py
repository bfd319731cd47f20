"""--in-cluster: the pod's ServiceAccount token and CA, against a lab API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight import app
from preflight.engine.errors import ConfigError
from preflight.engine.plan import Request
from preflight.engine.settings import Settings
from preflight.engine.targets import in_cluster_target
from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.runlab import result


def test_service_account_reaches_the_api_and_its_token_is_not_long_lived_warned(tmp_path: Path) -> None:
    with LabFleet([ClusterSpec(name="self")], tmp_path / "lab") as lab:
        c = lab.clusters["self"]
        sa = tmp_path / "sa"
        sa.mkdir()
        (sa / "token").write_text(c.token + "\n")
        (sa / "ca.crt").write_bytes(lab.ca.cert_pem)
        env = {"KUBERNETES_SERVICE_HOST": c.address, "KUBERNETES_SERVICE_PORT": str(c.port)}
        target = in_cluster_target(env, sa_dir=sa)
        assert target.in_cluster and target.server == f"https://{c.address}:{c.port}"
        report = app.run(
            Request(in_cluster=True, service_account_dir=str(sa)),
            Settings(connect_timeout=2.0),
            include=["kubeconfig.*", "kube-api.*"],
            env=env,
        )
    assert result(report, "in-cluster", "kube-api.auth").status.value == "pass"
    assert result(report, "in-cluster", "kubeconfig.credential").status.value == "pass"
    assert c.token not in repr(report)


def test_outside_a_pod_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST is not set"):
        in_cluster_target({}, sa_dir=tmp_path)
    with pytest.raises(ConfigError, match="token not found|not found"):
        in_cluster_target({"KUBERNETES_SERVICE_HOST": "127.0.0.1"}, sa_dir=tmp_path)
