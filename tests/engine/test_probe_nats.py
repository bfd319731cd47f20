"""The NATS probe against a real nats-server and the lab's imposters."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from preflight.engine.probes import nats
from preflight_lab.addresses import allocate
from preflight_lab.broker import make_broker

TOKEN = "broker-token-" + "x" * 24


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("nats")
    made = {
        "auth": make_broker("nats", allocate(), 0, token=TOKEN, directory=d / "a"),
        "open": make_broker("nats", allocate(), 0, directory=d / "b"),
        "not-nats": make_broker("not-nats", allocate(), 0),
        "silent": make_broker("silent", allocate(), 0),
    }
    for b in made.values():
        b.start()
    yield made
    for b in made.values():
        b.stop()


def test_info_from_a_real_broker_with_auth(brokers) -> None:
    b = brokers["auth"]
    info = nats.read_info(b.host, b.port, 2.0)
    assert info.auth_required is True and info.version and info.version.startswith("2.")


def test_token_gets_pong_and_wrong_token_gets_err(brokers) -> None:
    b = brokers["auth"]
    assert nats.authenticate(b.host, b.port, TOKEN, 2.0).startswith("PONG")
    answer = nats.authenticate(b.host, b.port, "not-the-token", 2.0)
    assert answer.startswith("-ERR") and "Authorization" in answer


def test_broker_without_auth(brokers) -> None:
    b = brokers["open"]
    assert nats.read_info(b.host, b.port, 2.0).auth_required is False
    assert nats.authenticate(b.host, b.port, None, 2.0).startswith("PONG")


def test_http_service_is_not_nats(brokers) -> None:
    b = brokers["not-nats"]
    with pytest.raises(nats.NotNats) as exc:
        nats.read_info(b.host, b.port, 2.0)
    assert exc.value.kind == "not-nats" and "HTTP" in str(exc.value)


def test_silent_port_costs_one_deadline(brokers) -> None:
    b = brokers["silent"]
    t0 = time.monotonic()
    with pytest.raises(nats.NotNats) as exc:
        nats.read_info(b.host, b.port, 0.5)
    assert exc.value.kind == "silent"
    assert time.monotonic() - t0 >= 0.45


def test_endless_garbage_is_cut_at_the_size_bound() -> None:
    host = allocate()
    srv = socket.socket()
    srv.bind((host, 0))
    srv.listen()
    stop = threading.Event()

    def spew() -> None:
        conn, _ = srv.accept()
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"x" * 4096)
                except OSError:
                    return

    threading.Thread(target=spew, daemon=True).start()
    try:
        with pytest.raises(nats.NotNats) as exc:
            nats.read_info(host, srv.getsockname()[1], 5.0)
        assert exc.value.kind == "oversized"
    finally:
        stop.set()
        srv.close()
