"""--shard: a stable partition of the selected contexts, and one-line errors for bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.engine import shard
from preflight.engine.errors import ConfigError

names = st.lists(st.text(min_size=1, max_size=40), unique=True, max_size=60)


@given(names=names, count=st.integers(min_value=1, max_value=12))
def test_shards_are_disjoint_and_their_union_is_the_selection(names: list[str], count: int) -> None:
    parts = [shard.select(names, shard.Shard(k, count), name=str) for k in range(count)]
    flat = [n for part in parts for n in part]
    assert sorted(flat) == sorted(names)
    assert len(flat) == len(set(flat))
    for part in parts:  # each shard keeps the selection's order
        assert part == [n for n in names if n in set(part)]


@given(names=names, count=st.integers(min_value=1, max_value=12))
def test_a_context_joining_the_fleet_moves_no_other(names: list[str], count: int) -> None:
    if not names:
        return
    *rest, newcomer = names
    for k in range(count):
        before = shard.select(rest, shard.Shard(k, count), name=str)
        after = shard.select(names, shard.Shard(k, count), name=str)
        assert [n for n in after if n != newcomer] == before


@settings(max_examples=5, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=20), unique=True, min_size=1, max_size=30))
def test_assignment_is_stable_across_processes(names: list[str]) -> None:
    code = (
        "import json, sys; from preflight.engine import shard; "
        "print(json.dumps([shard.of(n, 7) for n in json.load(sys.stdin)]))"
    )
    mine = [shard.of(n, 7) for n in names]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(names), capture_output=True, text=True, env=env, check=True
        )
        assert json.loads(out.stdout) == mine


def test_known_assignments_are_a_contract() -> None:
    # sha256 of the name, first 8 bytes big-endian, modulo N: pinned so a release cannot reshuffle fleets.
    import hashlib

    for name in ("prod-eu", "staging-gke", "in-cluster"):
        expected = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 5
        assert shard.of(name, 5) == expected


@pytest.mark.parametrize(
    ("spec", "env", "expected"),
    [
        ("0/1", {}, shard.Shard(0, 1)),
        ("3/4", {}, shard.Shard(3, 4)),
        (" 1 / 2 ", {}, shard.Shard(1, 2)),
        ("auto", {"JOB_COMPLETION_INDEX": "2", "PREFLIGHT_SHARDS": "3"}, shard.Shard(2, 3)),
    ],
)
def test_parse(spec: str, env: dict[str, str], expected: shard.Shard) -> None:
    assert shard.parse(spec, env) == expected


@pytest.mark.parametrize(
    ("spec", "env", "needle"),
    [
        ("4/4", {}, "shard index 4 is outside 0..3"),
        ("-1/4", {}, "outside 0..3"),
        ("1/0", {}, "at least 1"),
        ("a/4", {}, "K 'a' is not a whole number"),
        ("2", {}, "expected K/N"),
        ("auto", {}, "needs JOB_COMPLETION_INDEX and PREFLIGHT_SHARDS"),
        ("auto", {"JOB_COMPLETION_INDEX": "0"}, "needs PREFLIGHT_SHARDS"),
        ("auto", {"JOB_COMPLETION_INDEX": "5", "PREFLIGHT_SHARDS": "3"}, "outside 0..2"),
        ("auto", {"JOB_COMPLETION_INDEX": "x", "PREFLIGHT_SHARDS": "3"}, "JOB_COMPLETION_INDEX 'x'"),
    ],
)
def test_bad_values_are_one_line(spec: str, env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        shard.parse(spec, env)
    assert needle in str(info.value) and "\n" not in str(info.value)
