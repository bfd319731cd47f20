"""broker.auth against lab Brokers that require TLS (real nats-servers with --tls) and tokens that are all digits."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT, find_nats_server
from preflight_lab.dns_server import LabDNS
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import behind_load_balancer
from tests.runlab import result, run

ORIGIN = "127.0.0.0/8"
DIGITS = "2718281828459045235360287471"

# Each Broker on its own free loopback address (port 4222), from the lab allocator.
A = {n: allocate(NATS_PORT) for n in range(1, 10)}

SPECS = [
    ClusterSpec(name="tls-ok", meshery=behind_load_balancer(A[1], broker_tls="cluster-ca")),
    ClusterSpec(name="tls-other-ca", meshery=behind_load_balancer(A[2], broker_tls="other-ca")),
    ClusterSpec(name="tls-wrong-name", meshery=behind_load_balancer(A[3], broker_tls="wrong-name")),
    ClusterSpec(name="tls-expired", meshery=behind_load_balancer(A[4], broker_tls="expired")),
    ClusterSpec(
        name="tls-hostname",
        meshery=behind_load_balancer(A[5], lb_ip=None, lb_hostname="tls-broker.elb.lab.test", broker_tls="cluster-ca"),
    ),
    ClusterSpec(name="tls-no-auth", meshery=behind_load_balancer(A[6], token="", broker_tls="cluster-ca")),
    ClusterSpec(name="digits", meshery=behind_load_balancer(A[7], token=DIGITS)),
    ClusterSpec(
        name="digits-stale",
        meshery=behind_load_balancer(A[8], token="lab-nats-current-token-abcdef", secret_token=DIGITS),
    ),
    # What an unquoted all-digit token does to a real Broker: it crash-loops, and nothing listens on 4222.
    ClusterSpec(name="digits-crashloop", meshery=behind_load_balancer(A[9], broker="absent", secret_token=DIGITS)),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with LabFleet(SPECS, tmp_path_factory.mktemp("broker-tls-lab")) as lab, LabDNS(zones=("lab.test",)) as dns:
        dns.add_a("tls-broker.elb.lab.test", A[5])
        yield lab, dns


@pytest.fixture(scope="module")
def report(world):
    lab, dns = world
    return run(fleet=str(lab.fleet_path), dns_server=dns.address, origins=[ORIGIN], connect_timeout=1.0, parallel=8)


def auth(report, cluster: str):
    return result(report, cluster, "broker.auth")


def test_cert_from_the_cluster_ca_passes_over_tls(report) -> None:
    r = auth(report, "tls-ok")
    assert r.status.value == "pass", r.message
    assert "TLSv1.3" in r.message and "PONG" in r.message
    assert r.evidence["tls_trusted_by"].startswith("the cluster's CA (certificate-authority of tls-ok")
    assert r.evidence["tls_server_name"] == A[1]
    assert result(report, "tls-ok", "broker.nats").evidence["tls_required"] is True


def test_published_host_name_is_what_the_certificate_must_cover(report) -> None:
    r = auth(report, "tls-hostname")
    assert r.status.value == "pass", r.message
    assert r.evidence["tls_server_name"] == "tls-broker.elb.lab.test"


def test_cert_from_another_ca_fails_naming_the_unknown_ca(report) -> None:
    r = auth(report, "tls-other-ca")
    assert r.status.value == "fail"
    assert "unknown CA" in r.message and "issued by CN=meshery-broker-ca" in r.message
    assert "neither the cluster's CA" in r.message and "nor this machine's system trust store" in r.message
    assert r.evidence["tls_failure"] == "unknown-ca"
    assert "CA the Server trusts" in r.remediation and "Never turn verification off" in r.remediation


def test_cert_for_another_name_fails_naming_the_mismatch(report) -> None:
    r = auth(report, "tls-wrong-name")
    assert r.status.value == "fail"
    assert "name mismatch" in r.message
    assert f"covers meshery-nats.elsewhere.lab.test, not {A[3]}" in r.message
    assert f"{A[3]} in its subjectAltName" in r.remediation and "externalEndpointOverride" in r.remediation


def test_expired_cert_fails_saying_expired(report) -> None:
    r = auth(report, "tls-expired")
    assert r.status.value == "fail" and "expired on" in r.message
    assert "Renew the Broker's certificate" in r.remediation


def test_broker_without_auth_still_has_its_tls_verified(report) -> None:
    r = auth(report, "tls-no-auth")
    assert r.status.value == "warn" and "without authentication" in r.message
    assert r.evidence["tls"] is True and r.evidence["tls_trusted_by"].startswith("the cluster's CA")


def token(report, cluster: str):
    return result(report, cluster, "broker.token")


def test_all_digit_token_warns_although_the_broker_accepted_it(report) -> None:
    assert auth(report, "digits").status.value == "pass"  # PONG: the Broker loaded it (quoted in its config)
    r = token(report, "digits")
    assert r.status.value == "warn"
    assert "all digits" in r.message and "crash-loops" in r.message
    assert "non-numeric token" in r.remediation
    assert r.evidence["token_numeric"] is True
    assert token(report, "tls-ok").status.value == "pass"


def test_all_digit_token_the_broker_rejects_fails_with_both_causes(report) -> None:
    r = auth(report, "digits-stale")
    assert r.status.value == "fail"
    assert "rejected the token" in r.message and "all digits" in r.message
    assert token(report, "digits-stale").status.value == "warn"


def test_all_digit_token_is_named_while_the_broker_crash_loops(report) -> None:
    """The case that matters: no Broker answers, so the network path cannot say why; the Secret can."""
    assert result(report, "digits-crashloop", "broker.tcp").status.value == "fail"
    assert auth(report, "digits-crashloop").status.value == "skip"
    r = token(report, "digits-crashloop")
    assert r.status.value == "warn" and "crash-loops" in r.message and "non-numeric token" in r.remediation


def test_no_token_or_broker_key_reaches_the_report(world, report) -> None:
    lab, _ = world
    text = repr(report)
    for secret in lab.secrets():
        for line in secret.strip().splitlines():
            if len(line) >= 16 and "-----" not in line:
                assert line not in text


@pytest.mark.parametrize("digits", [DIGITS, "123456789012"])  # beyond int64, and within it
def test_the_crash_loop_is_real_an_unquoted_all_digit_token_breaks_nats_server_config(
    tmp_path: Path, digits: str
) -> None:
    """What the warning says, checked against the real nats-server: the interpolated number is refused."""
    conf = tmp_path / "nats.conf"
    conf.write_text("port: -1\nauthorization {\n  token: $MESHERY_NATS_TOKEN\n}\n")
    env = {**os.environ, "MESHERY_NATS_TOKEN": digits}
    out = subprocess.run([find_nats_server(), "-c", str(conf), "-t"], env=env, capture_output=True, timeout=20)
    said = (out.stdout + out.stderr).decode(errors="replace")
    assert out.returncode != 0 and ("int64, not string" in said or "out of the range" in said), said
    env["MESHERY_NATS_TOKEN"] = "lab-nats-" + digits
    ok = subprocess.run([find_nats_server(), "-c", str(conf), "-t"], env=env, capture_output=True, timeout=20)
    assert ok.returncode == 0, ok.stderr
