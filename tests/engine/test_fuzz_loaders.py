"""Any bytes or values end in a plan or a ConfigError (one line, exit 2), never another exception.

Bounded (max_examples, no deadline) so `make test` stays fast; the structured strategies put hostile
values where a kubeconfig or fleet file has fields, which random bytes rarely reach.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.app import load_registry
from preflight.cli import DnsServer, Number
from preflight.engine import plan
from preflight.engine.errors import ConfigError
from preflight.engine.plan import Request
from preflight.engine.settings import Settings

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["https://[::1", "https://127.0.0.1:0", "https://h :1", "nan", "1e309", "-----BEGIN X-----"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _field(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


CLUSTER_KEYS = [
    "server",
    "certificate-authority-data",
    "certificate-authority",
    "insecure-skip-tls-verify",
    "proxy-url",
]
USER_KEYS = ["token", "tokenFile", "client-certificate-data", "client-key-data", "exec", "auth-provider", "username"]
kubeconfigs = st.fixed_dictionaries(
    {
        "clusters": st.lists(
            st.fixed_dictionaries({"name": st.just("c"), "cluster": _field(CLUSTER_KEYS)}), max_size=2
        ),
        "users": st.lists(st.fixed_dictionaries({"name": st.just("u"), "user": _field(USER_KEYS)}), max_size=2),
        "contexts": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(min_size=1, max_size=8), "context": _field(["cluster", "user", "namespace"])}
            ),
            max_size=2,
        ),
    },
    optional={"current-context": values, "kind": values, "apiVersion": values},
)
fleet_files = st.fixed_dictionaries(
    {},
    optional={
        "version": values,
        "kubeconfig": values,
        "origin": st.one_of(values, st.fixed_dictionaries({"cidrs": values})),
        "defaults": st.one_of(values, _field(["meshsync_mode", "timeouts"])),
        "thresholds": st.one_of(values, _field(["latency_warn_ms", "latency_fail_ms"])),
        "clusters": st.lists(_field(["context", "meshsync_mode", "provider", "timeouts", "aws"]), max_size=3),
        "mutes": st.lists(_field(["check", "cluster", "reason"]), max_size=3),
    },
)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _plan(registry: Any, text: str | bytes, *, fleet: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        request = Request(fleet=str(path)) if fleet else Request(kubeconfigs=[str(path)])
        try:
            plan.build(request, Settings(), registry, {"KUBECONFIG_FOLDER": tmp})
        except ConfigError as exc:
            assert "\n" not in str(exc)


def _dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return "{}"


@FUZZ
@given(data=st.binary(max_size=400))
def test_kubeconfig_bytes(registry: Any, data: bytes) -> None:
    _plan(registry, data, fleet=False)


@FUZZ
@given(doc=kubeconfigs)
def test_kubeconfig_documents(registry: Any, doc: dict[str, Any]) -> None:
    _plan(registry, _dump(doc), fleet=False)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fleet_file_bytes(registry: Any, data: bytes) -> None:
    _plan(registry, data, fleet=True)


@FUZZ
@given(doc=fleet_files)
def test_fleet_file_documents(registry: Any, doc: dict[str, Any]) -> None:
    _plan(registry, _dump(doc), fleet=True)


@FUZZ
@given(value=st.one_of(st.text(max_size=30), st.floats(allow_nan=True, allow_infinity=True).map(repr)))
def test_cli_numbers(value: str) -> None:
    for number in (Number(0.05, 86400.0), Number(0.05, 86_400_000.0)):
        try:
            got = number.convert(value, None, None)
        except click.BadParameter as exc:
            assert "\n" not in exc.format_message()
            continue
        assert math.isfinite(got) and number.low <= got <= number.high


@FUZZ
@given(value=st.one_of(st.text(max_size=30), st.ip_addresses().map(str)))
def test_cli_dns_server(value: str) -> None:
    try:
        DnsServer().convert(value, None, None)
    except click.BadParameter as exc:
        assert "\n" not in exc.format_message()
