"""Suite-wide guard: an in-process connect from the host's network namespace goes to loopback only.

Tests that need other addresses make a network namespace (tests/netlab.py); a thread that joined one
is exempt. This catches a lab object or a test that would send traffic off the machine.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge outcomes, never speed: on a shared, loaded machine a slow example is not a failure.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

_HOST_NETNS = os.readlink("/proc/self/ns/net")
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(sock: socket.socket, address: Any) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return True
    try:
        if os.readlink("/proc/thread-self/ns/net") != _HOST_NETNS:
            return True
    except OSError:
        return True
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: tests resolve through the lab DNS and connect to addresses


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _allowed(self, address):
        raise AssertionError(f"test traffic to {address!r} would leave this machine")
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _allowed(self, address):
        raise AssertionError(f"test traffic to {address!r} would leave this machine")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# Tests written before Meshery's managed Broker port-forward judge the endpoint path alone, as Servers with
# MESHERY_MANAGED_BROKER_PORTFORWARD=false do (session-wide: module fixtures run their labs before any function
# fixture). Tests of the port-forward turn it on explicitly (--broker-port-forward, or the setting).
PORT_FORWARD_ENV = "MESHERY_MANAGED_BROKER_PORTFORWARD"


@pytest.fixture(autouse=True, scope="session")
def broker_port_forward_off() -> Iterator[None]:
    before = os.environ.get(PORT_FORWARD_ENV)
    os.environ[PORT_FORWARD_ENV] = "false"
    yield
    if before is None:
        os.environ.pop(PORT_FORWARD_ENV, None)
    else:
        os.environ[PORT_FORWARD_ENV] = before
