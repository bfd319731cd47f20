"""The lab's broker_tls knob: a real nats-server that requires TLS, its certificate issued as asked."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet
from preflight_lab.meshery import MesherySetup, behind_load_balancer


@pytest.mark.parametrize(
    "setup", [MesherySetup(broker_tls="self-signed"), MesherySetup(broker="silent", broker_tls="cluster-ca")]
)
def test_broker_tls_takes_a_known_kind_for_a_real_broker(setup: MesherySetup) -> None:
    with pytest.raises(ValueError, match="broker_tls"):
        setup.resolved()


def _info_and_cert(host: str, port: int, name: str, ca_pem: bytes) -> tuple[dict, x509.Certificate]:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    with socket.create_connection((host, port), timeout=2) as raw:
        info = json.loads(raw.recv(4096).split(b"\r\n", 1)[0][5:])
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der
    return info, x509.load_der_x509_certificate(der)


def test_cluster_ca_broker_verifies_with_the_kubeconfig_ca_and_its_key_is_planted(tmp_path: Path) -> None:
    spec = ClusterSpec(
        "c0", meshery=behind_load_balancer(allocate(NATS_PORT), lb_hostname="b.elb.lab.test", broker_tls="cluster-ca")
    )
    with LabFleet([spec], tmp_path) as lab:
        broker = lab.clusters["c0"].broker
        assert lab.ca is not None and broker is not None
        info, cert = _info_and_cert(broker.host, broker.port, "b.elb.lab.test", lab.ca.cert_pem)
        assert info["tls_required"] is True
        assert cert.issuer == lab.ca.certificate.subject
        key_file = tmp_path / "brokers" / "cluster-0000-nats.key"
        assert key_file.stat().st_mode & 0o077 == 0
        assert key_file.read_text() in lab.secrets()


def test_other_ca_and_wrong_name_brokers(tmp_path: Path) -> None:
    specs = [
        ClusterSpec("other", meshery=behind_load_balancer(allocate(NATS_PORT), broker_tls="other-ca")),
        ClusterSpec("name", meshery=behind_load_balancer(allocate(NATS_PORT), broker_tls="wrong-name")),
    ]
    with LabFleet(specs, tmp_path) as lab:
        assert lab.ca is not None and lab.broker_other_ca is not None
        other, name = lab.clusters["other"].broker, lab.clusters["name"].broker
        assert other is not None and name is not None
        with pytest.raises(ssl.SSLCertVerificationError):
            _info_and_cert(other.host, other.port, other.host, lab.ca.cert_pem)
        _info, cert = _info_and_cert(other.host, other.port, other.host, lab.broker_other_ca.cert_pem)
        assert cert.issuer == lab.broker_other_ca.certificate.subject
        with pytest.raises(ssl.SSLCertVerificationError) as exc:
            _info_and_cert(name.host, name.port, name.host, lab.ca.cert_pem)
        assert exc.value.verify_code == 64  # IP address mismatch
