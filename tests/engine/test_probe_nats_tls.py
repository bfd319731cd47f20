"""The NATS probe's TLS upgrade against real nats-servers started with --tls, certificates from lab CAs."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from pathlib import Path

import pytest

from preflight.engine.probes import nats
from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT, NatsBroker, make_broker
from preflight_lab.certs import CertKeyPair, create_ca, utcnow

TOKEN = "broker-token-" + "t" * 24
NAME = "broker.tls.lab.test"
# Free loopback addresses from the lab allocator (the Brokers listen on 4222 of each).
A = {n: allocate(NATS_PORT) for n in (1, 2, 3, 4, 5, 9, 10)}


@pytest.fixture(scope="module")
def cas():
    return create_ca("kubernetes"), create_ca("some-other-ca")


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory, cas):
    ca, other = cas
    now = utcnow()
    certs = {
        "good": (A[1], ca.issue_server_cert("meshery-nats", ip_addresses=[A[1]], dns_names=[NAME])),
        "other-ca": (A[2], other.issue_server_cert("meshery-nats", ip_addresses=[A[2]])),
        "wrong-name": (A[3], ca.issue_server_cert("meshery-nats", dns_names=["elsewhere.lab.test"])),
        "expired": (
            A[4],
            ca.issue_server_cert(
                "meshery-nats",
                ip_addresses=[A[4]],
                not_before=now - dt.timedelta(days=60),
                not_after=now - dt.timedelta(days=1),
            ),
        ),
    }
    d = tmp_path_factory.mktemp("nats-tls")
    made = {
        k: make_broker("nats", host, 0, token=TOKEN, directory=d / k, tls=pair) for k, (host, pair) in certs.items()
    }
    for b in made.values():
        b.start()
    yield made
    for b in made.values():
        b.stop()


def plan(name: str, ca_pem: bytes | None) -> nats.TlsPlan:
    cluster = (nats.TrustSource("the cluster's CA", ca_pem),) if ca_pem else ()
    return nats.TlsPlan(name, (*cluster, nats.SYSTEM_STORE))


def test_info_says_tls_required(brokers) -> None:
    b = brokers["good"]
    info = nats.read_info(b.host, b.port, 2.0)
    assert info.tls_required is True and info.auth_required is True


def test_cert_from_the_cluster_ca_verifies_and_the_token_gets_pong(brokers, cas) -> None:
    b = brokers["good"]
    out = nats.exchange(b.host, b.port, TOKEN, 2.0, plan(b.host, cas[0].cert_pem))
    assert out.answer.startswith("PONG")
    assert out.tls is not None and out.tls.trusted_by == "the cluster's CA" and out.tls.version == "TLSv1.3"
    assert out.tls.cert is not None and NAME in out.tls.cert.names
    wrong = nats.exchange(b.host, b.port, "not-the-token", 2.0, plan(b.host, cas[0].cert_pem))
    assert wrong.answer.startswith("-ERR") and "Authorization" in wrong.answer


def test_the_published_host_name_is_verified(brokers, cas) -> None:
    b = brokers["good"]
    assert nats.authenticate(b.host, b.port, TOKEN, 2.0, plan(NAME, cas[0].cert_pem)).startswith("PONG")
    with pytest.raises(nats.TlsFailure) as exc:
        nats.exchange(b.host, b.port, TOKEN, 2.0, plan("other.lab.test", cas[0].cert_pem))
    assert exc.value.cause == "name-mismatch"


def test_cert_from_another_ca_is_an_unknown_ca_after_every_source(brokers, cas) -> None:
    b = brokers["other-ca"]
    with pytest.raises(nats.TlsFailure) as exc:
        nats.exchange(b.host, b.port, TOKEN, 2.0, plan(b.host, cas[0].cert_pem))
    failure = exc.value
    assert failure.cause == "unknown-ca"
    assert failure.tried == ("the cluster's CA", nats.SYSTEM_STORE.label)
    assert failure.cert is not None and failure.cert.issuer == "CN=some-other-ca"


def test_without_a_cluster_ca_only_the_system_store_is_tried(brokers) -> None:
    b = brokers["good"]
    with pytest.raises(nats.TlsFailure) as exc:
        nats.exchange(b.host, b.port, TOKEN, 2.0, plan(b.host, None))
    assert exc.value.cause == "unknown-ca" and exc.value.tried == (nats.SYSTEM_STORE.label,)


def test_trust_source_whose_certificates_do_not_load_is_passed_over(brokers, cas) -> None:
    b = brokers["good"]
    broken = nats.TrustSource("a broken CA", b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    good = nats.TrustSource("the cluster's CA", cas[0].cert_pem)
    out = nats.exchange(b.host, b.port, TOKEN, 2.0, nats.TlsPlan(b.host, (broken, good)))
    assert out.answer.startswith("PONG") and out.tls is not None and out.tls.trusted_by == "the cluster's CA"
    with pytest.raises(nats.TlsFailure) as exc:
        nats.exchange(b.host, b.port, TOKEN, 2.0, nats.TlsPlan(b.host, (broken, nats.SYSTEM_STORE)))
    assert exc.value.cause == "unknown-ca"
    assert exc.value.tried == ("a broken CA, whose certificates do not load,", nats.SYSTEM_STORE.label)


def test_cert_for_another_name_is_a_mismatch_naming_what_it_covers(brokers, cas) -> None:
    b = brokers["wrong-name"]
    with pytest.raises(nats.TlsFailure) as exc:
        nats.exchange(b.host, b.port, TOKEN, 2.0, plan(b.host, cas[0].cert_pem))
    assert exc.value.cause == "name-mismatch" and exc.value.tried == ("the cluster's CA",)
    assert exc.value.cert is not None and exc.value.cert.names == ("elsewhere.lab.test",)


def test_expired_cert_says_expired_with_its_end(brokers, cas) -> None:
    b = brokers["expired"]
    with pytest.raises(nats.TlsFailure) as exc:
        nats.exchange(b.host, b.port, TOKEN, 2.0, plan(b.host, cas[0].cert_pem))
    assert exc.value.cause == "expired"
    assert exc.value.cert is not None and exc.value.cert.not_after < utcnow()


def test_a_server_that_never_handshakes_costs_one_deadline_and_never_sees_the_token() -> None:
    """INFO says tls_required, then silence: the client's next bytes are a ClientHello, not CONNECT."""
    srv = socket.socket()
    srv.bind((A[9], 0))
    srv.listen()
    received: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            info = {"server_id": "x", "version": "2.10.0", "auth_required": True, "tls_required": True}
            conn.sendall(b"INFO " + json.dumps(info).encode() + b"\r\n")
            conn.settimeout(3.0)
            try:
                while chunk := conn.recv(4096):
                    received.append(chunk)
            except OSError:
                pass
        done.set()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(nats.TlsFailure) as exc:
            nats.exchange(A[9], srv.getsockname()[1], TOKEN, 0.5, plan(A[9], None))
        assert exc.value.cause == "handshake" and "within 0.5s" in exc.value.detail
        done.wait(3.0)
        sent = b"".join(received)
        assert sent[:1] == b"\x16"  # a TLS handshake record
        assert TOKEN.encode() not in sent and b"CONNECT" not in sent
    finally:
        srv.close()


class _VerifyingBroker(NatsBroker):
    """A nats-server whose tls block verifies client certificates (``verify: true``)."""

    def __init__(self, host: str, directory: Path, pair: CertKeyPair, client_ca_pem: bytes) -> None:
        super().__init__(host, 0, token=TOKEN, directory=directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.files = {
            "cert_file": directory / "s.crt",
            "key_file": directory / "s.key",
            "ca_file": directory / "ca.crt",
        }
        for key, data in (("cert_file", pair.cert_pem), ("key_file", pair.key_pem), ("ca_file", client_ca_pem)):
            self.files[key].write_bytes(data)

    def _config(self) -> str:
        block = "".join(f"  {k}: {json.dumps(str(v))}\n" for k, v in self.files.items())
        return super()._config() + "tls {\n" + block + "  verify: true\n}\n"


def test_a_broker_that_verifies_client_certificates_says_so(tmp_path: Path, cas) -> None:
    ca = cas[0]
    pair = ca.issue_server_cert("meshery-nats", ip_addresses=[A[5]])
    with _VerifyingBroker(A[5], tmp_path / "verify", pair, ca.cert_pem) as b:
        assert nats.read_info(b.host, b.port, 2.0).tls_required is True
        with pytest.raises(nats.TlsFailure) as exc:
            nats.exchange(b.host, b.port, TOKEN, 2.0, plan(b.host, ca.cert_pem))
    assert exc.value.cause == "client-cert-required", exc.value.detail


@pytest.mark.parametrize(("name", "sni"), [(NAME, NAME), (A[10], None)], ids=["dns-name", "ip-address"])
def test_sni_is_the_published_name_and_absent_for_an_address(tmp_path: Path, cas, name: str, sni: str | None) -> None:
    """A Python TLS server after a plain INFO records the SNI it gets (addresses are never sent as SNI)."""
    ca = cas[0]
    pair = ca.issue_server_cert("meshery-nats", ip_addresses=[A[10]], dns_names=[NAME])
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    (tmp_path / "k.pem").write_bytes(pair.key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    seen: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, server_name, _ctx: seen.append(server_name)
    srv = socket.socket()
    srv.bind((A[10], 0))
    srv.listen()

    def serve() -> None:
        conn, _ = srv.accept()
        conn.settimeout(3.0)
        conn.sendall(b'INFO {"server_id":"x","version":"2.10.0","tls_required":true}\r\n')
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"PONG\r\n")
        except OSError:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        out = nats.exchange(A[10], srv.getsockname()[1], None, 2.0, plan(name, ca.cert_pem))
    finally:
        srv.close()
    assert out.answer.startswith("PONG") and out.tls is not None and out.tls.server_name == name
    assert seen == [sni]
