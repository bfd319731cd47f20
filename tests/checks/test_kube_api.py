"""Every kubeconfig and kube-API check against the lab: real TLS, real kubeconfig, the real client."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import yaml

from preflight_lab.fleet import ClusterSpec, LabFleet
from tests.runlab import result, run, statuses

NOW = dt.datetime.now(dt.timezone.utc)
KUBE_CHECKS = ["kubeconfig.*", "kube-api.*", "fleet.shared-credential", "fleet.duplicate-cluster"]

SPECS = [
    ClusterSpec(name="healthy", scenario="healthy"),
    ClusterSpec(name="client-cert", scenario="client-cert"),
    ClusterSpec(name="exec-ok", scenario="exec-ok"),
    ClusterSpec(name="hung-exec", scenario="hung-exec"),
    ClusterSpec(name="refused", scenario="refused"),
    ClusterSpec(name="wrong-ca", scenario="wrong-ca"),
    ClusterSpec(name="expired-token", scenario="expired-token"),
    ClusterSpec(name="expired-client-cert", scenario="expired-client-cert"),
    ClusterSpec(name="insecure", scenario="insecure"),
    ClusterSpec(name="slow", scenario="slow"),
    ClusterSpec(name="old-version", scenario="old-version"),
    ClusterSpec(name="new-version", version="v1.40.1-gke.100"),
    ClusterSpec(
        name="server-cert-expired",
        server_cert_not_before=NOW - dt.timedelta(days=400),
        server_cert_not_after=NOW - dt.timedelta(days=1),
    ),
    ClusterSpec(name="server-cert-expiring", server_cert_not_after=NOW + dt.timedelta(days=5)),
    ClusterSpec(name="client-cert-expiring", scenario="client-cert", client_cert_not_after=NOW + dt.timedelta(days=3)),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("lab")) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def report(lab: LabFleet):
    t0 = time.monotonic()
    rep = run(kubeconfig=[str(lab.kubeconfig_path)], exec_timeout=1.0, parallel=16, include=KUBE_CHECKS)
    rep.elapsed = time.monotonic() - t0  # type: ignore[attr-defined]
    return rep


def test_healthy_cluster_passes_everything_but_the_static_token(report) -> None:
    st = statuses(report, "healthy")
    assert st.pop("kubeconfig.credential") == "warn"
    assert set(st.values()) == {"pass"}, st
    auth = result(report, "healthy", "kube-api.auth")
    assert auth.evidence["identity"].startswith("lab-")
    tls = result(report, "healthy", "kube-api.tls")
    assert tls.evidence["verified"] is True and tls.evidence["ca"] == "kubeconfig CA"


def test_client_certificate_authenticates_and_warns_as_long_lived(report) -> None:
    assert result(report, "client-cert", "kube-api.auth").status.value == "pass"
    cred = result(report, "client-cert", "kubeconfig.credential")
    assert cred.status.value == "warn" and "static client certificate" in cred.message


def test_exec_plugin_credential_passes(report) -> None:
    assert result(report, "exec-ok", "kubeconfig.credential").status.value == "pass"
    assert result(report, "exec-ok", "kube-api.auth").status.value == "pass"


def test_hung_exec_plugin_errors_auth_within_its_deadline(report) -> None:
    auth = result(report, "hung-exec", "kube-api.auth")
    assert auth.status.value == "error"  # undecided: the README's `error`
    assert "did not answer within 1s" in auth.message
    # It was cut at its own deadline, not left to hang (the plugin sleeps an hour).
    assert auth.duration_s < 30
    assert result(report, "hung-exec", "kube-api.version").status.value == "skip"


def test_refused_port_is_named_with_its_fix(report) -> None:
    tcp = result(report, "refused", "kube-api.tcp")
    assert tcp.status.value == "fail" and tcp.evidence["state"] == "refused"
    assert "nothing listens" in tcp.remediation
    downstream = result(report, "refused", "kube-api.tls")
    assert downstream.status.value == "skip" and "kube-api.tcp" in downstream.message


def test_wrong_ca_fails_tls_and_skips_auth(report) -> None:
    tls = result(report, "wrong-ca", "kube-api.tls")
    assert tls.status.value == "fail"
    assert "does not verify against the kubeconfig" in tls.message
    assert result(report, "wrong-ca", "kube-api.auth").status.value == "skip"


def test_rejected_token_is_a_401_with_the_token_fix(report) -> None:
    auth = result(report, "expired-token", "kube-api.auth")
    assert auth.status.value == "fail" and "401" in auth.message
    assert "token was rejected" in auth.remediation


def test_expired_client_certificate(report) -> None:
    cred = result(report, "expired-client-cert", "kubeconfig.credential")
    assert cred.status.value == "fail" and "expired" in cred.message
    assert result(report, "expired-client-cert", "kube-api.auth").status.value == "fail"


def test_client_certificate_expiring_soon_warns(report) -> None:
    cred = result(report, "client-cert-expiring", "kubeconfig.credential")
    assert cred.status.value == "warn" and "expires in" in cred.message


def test_insecure_skip_verify_fails_but_is_honoured(report) -> None:
    assert result(report, "insecure", "kubeconfig.tls-verify").status.value == "fail"
    tls = result(report, "insecure", "kube-api.tls")
    assert tls.status.value == "warn" and "verification is off" in tls.message
    assert result(report, "insecure", "kube-api.auth").status.value == "pass"


def test_slow_api_warns_on_latency(report) -> None:
    lat = result(report, "slow", "kube-api.latency")
    assert lat.status.value == "warn", lat.message
    assert lat.evidence["median_ms"] >= 150
    assert "regional management plane" in lat.remediation


def test_fast_api_latency_passes(report) -> None:
    lat = result(report, "healthy", "kube-api.latency")
    assert lat.status.value == "pass" and len(lat.evidence["samples_ms"]) == 5


def test_old_version_fails_and_auth_falls_back_without_selfsubjectreview(report) -> None:
    ver = result(report, "old-version", "kube-api.version")
    assert ver.status.value == "fail" and "v1.21.0" in ver.message
    auth = result(report, "old-version", "kube-api.auth")
    assert auth.status.value == "pass" and "identity not shown" in auth.message


def test_managed_version_strings_parse_and_newer_warns(report) -> None:
    assert result(report, "healthy", "kube-api.version").evidence["minor"] == 30
    assert result(report, "new-version", "kube-api.version").status.value == "warn"


def test_server_certificate_expiry(report) -> None:
    expired = result(report, "server-cert-expired", "kube-api.tls")
    assert expired.status.value == "fail" and "expired" in expired.message
    soon = result(report, "server-cert-expiring", "kube-api.tls")
    assert soon.status.value == "warn" and "expires in" in soon.message


def test_no_mutating_request_reached_any_cluster(lab: LabFleet, report) -> None:
    assert report.clusters
    assert lab.mutating_requests() == {name: [] for name in lab.mutating_requests()}
    reviews = [r for s in lab.servers() for r in s.requests() if r.method == "POST"]
    assert reviews and all("selfsubjectreviews" in r.path for r in reviews)


def test_fleet_checks_pass_on_a_fleet_of_distinct_clusters(report) -> None:
    assert result(report, "fleet", "fleet.shared-credential").status.value == "pass"
    assert result(report, "fleet", "fleet.duplicate-cluster").status.value == "pass"


def test_shared_credential_and_duplicate_cluster(lab: LabFleet, tmp_path: Path) -> None:
    kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
    first = kc["contexts"][0]
    # A second context for the same cluster and user, and a third cluster reached with the same token.
    kc["contexts"].append({"name": "healthy-again", "context": dict(first["context"])})
    other = next(c for c in kc["contexts"] if c["name"] == "slow")
    kc["users"].append({"name": "shared-user", "user": {"token": lab.clusters["healthy"].token}})
    kc["contexts"].append(
        {"name": "slow-shared", "context": {"cluster": other["context"]["cluster"], "user": "shared-user"}}
    )
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(kc))
    rep = run(kubeconfig=[str(path)], contexts=["healthy*", "slow-shared"], include=["kubeconfig.*", "fleet.*"])
    dup = result(rep, "fleet", "fleet.duplicate-cluster")
    assert dup.status.value == "fail" and "healthy-again" in dup.message
    shared = result(rep, "fleet", "fleet.shared-credential")
    assert shared.status.value == "fail"
    assert {"healthy", "slow-shared"} <= set(shared.evidence["shared"][0]["clusters"])
    assert lab.clusters["healthy"].token not in repr(shared)


def test_broken_context_fails_its_check_and_others_still_run(lab: LabFleet, tmp_path: Path) -> None:
    kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
    kc["contexts"].append({"name": "dangling", "context": {"cluster": "nope", "user": "healthy-user"}})
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(kc))
    rep = run(kubeconfig=[str(path)], contexts=["dangling", "healthy"])
    ctx = result(rep, "dangling", "kubeconfig.context")
    assert ctx.status.value == "fail" and "'nope'" in ctx.message
    assert result(rep, "dangling", "kube-api.tcp").status.value == "skip"
    assert result(rep, "healthy", "kube-api.auth").status.value == "pass"


def test_api_that_accepts_and_never_answers_the_handshake_is_undecided(lab: LabFleet, tmp_path: Path) -> None:
    """A real listener that accepts the connection and never sends a byte (a hung API server, or a middlebox
    that swallows the ClientHello): nothing is known about the certificate, so `error`, not the CA fix."""
    from preflight_lab.broker import SilentBroker

    with SilentBroker("127.0.0.1", 0) as silent:
        kc = yaml.safe_load(Path(lab.kubeconfig_path).read_text())
        healthy = next(c for c in kc["clusters"] if c["name"] == "healthy")
        healthy["cluster"]["server"] = f"https://127.0.0.1:{silent.port}"
        path = tmp_path / "silent.yaml"
        path.write_text(yaml.safe_dump(kc))
        rep = run(kubeconfig=[str(path)], contexts=["healthy"], include=["kube-api.*"], connect_timeout=1.0)
    assert result(rep, "healthy", "kube-api.tcp").status.value == "pass"
    tls = result(rep, "healthy", "kube-api.tls")
    assert tls.status.value == "error", tls.message
    assert tls.message == f"no TLS answer from 127.0.0.1:{silent.port} within 1 s: the handshake timed out"
    assert "hung" in tls.remediation and "middlebox" in tls.remediation
    assert "certificate-authority-data" not in tls.remediation
    assert tls.evidence["handshake"] == "timeout"


def test_exec_plugin_token_is_registered_as_a_secret_when_obtained(lab: LabFleet) -> None:
    """A plugin's token exists only mid-run: the client hands it, and its Bearer header form, to the redactor."""
    from preflight.engine.kube import KubeAPI
    from preflight.engine.kubeconfig import merge
    from preflight.engine.targets import from_context

    target = from_context(merge([lab.kubeconfig_path]), "exec-ok", {})
    registered: list[str] = []
    api = KubeAPI(target, 2.0, 2.0, registered.extend)
    try:
        assert api.get("/version").ok
    finally:
        api.close()
    token = lab.clusters["exec-ok"].token
    assert token not in target.credential.secrets()  # not known before the plugin ran
    assert {token, f"Bearer {token}"} <= set(registered)
