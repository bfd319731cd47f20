"""merge: reports read back from JSON, combined with their origins; conflicts name both files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import jsonschema
import pytest

from preflight import app
from preflight.engine import merge
from preflight.engine.errors import ConfigError
from preflight.engine.fingerprint import FingerprintKey
from preflight.engine.model import ClusterReport, CredentialRef, FleetMember, Result, RunReport, Status
from preflight.reports import json_report
from tests.report_samples import DOTTED_CLUSTER, PLAIN_CLUSTER, result, sample_report


def test_json_reads_back_to_the_same_document() -> None:
    for report in (sample_report(), dataclasses.replace(sample_report(), shard=(1, 3))):
        doc = json_report.to_document(report)
        assert json_report.to_document(json_report.from_document(doc)) == doc


def test_from_document_rejects_what_is_not_a_report() -> None:
    with pytest.raises(ValueError, match="not a report of schema version 1"):
        json_report.from_document({"tool": {"name": "x", "version": "1"}})


def _split() -> tuple[tuple[str, RunReport], tuple[str, RunReport]]:
    whole = sample_report()
    a = dataclasses.replace(whole, clusters=whole.clusters[:1], shard=(0, 2))
    later = whole.started_at + dt.timedelta(minutes=5)
    b = dataclasses.replace(
        whole,
        clusters=whole.clusters[1:],
        shard=(1, 2),
        started_at=later,
        finished_at=later + dt.timedelta(seconds=30),
        origin_cidrs=["172.16.0.0/12"],
    )
    return ("a.json", a), ("b.json", b)


def test_two_shards_make_one_fleet_report() -> None:
    (pa, a), (pb, b) = _split()
    merged = merge.merge([(pa, a), (pb, b)])
    assert [c.name for c in merged.clusters] == [DOTTED_CLUSTER, PLAIN_CLUSTER]
    origins = {c.name: c.origin for c in merged.clusters}
    assert origins[DOTTED_CLUSTER] is not None and origins[DOTTED_CLUSTER].report == "a.json"
    assert origins[PLAIN_CLUSTER] is not None and origins[PLAIN_CLUSTER].shard == (1, 2)
    assert merged.started_at == sample_report().started_at and merged.finished_at > sample_report().finished_at
    assert merged.origin_cidrs == ["10.0.0.0/8", "192.168.7.0/24", "172.16.0.0/12"]
    assert merged.shard is None
    assert {r.status for r in merged.fleet_results} == {Status.SKIP}
    # The samples carry no fleet records (like reports of older versions): the fleet checks cannot be rerun.
    assert all("a.json, b.json carries no fleet records" in r.message for r in merged.fleet_results)
    doc = json.loads(json_report.render(merged))
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)
    assert doc["clusters"][1]["origin"] == {
        "report": "b.json",
        "started_at": "2026-11-24T01:07:03.456Z",
        "shard": {"index": 1, "count": 2},
    }


def test_the_same_cluster_and_server_twice_keeps_the_later_run() -> None:
    (pa, a), (pb, b) = _split()
    again = dataclasses.replace(
        b,
        clusters=[
            dataclasses.replace(
                a.clusters[0],
                server="https://PROD.example.com:6443/",
                results=[],
            )
        ],
    )
    merged = merge.merge([(pa, a), (pb, again)])
    assert len(merged.clusters) == 1 and merged.clusters[0].results == []
    assert merged.clusters[0].origin is not None and merged.clusters[0].origin.report == "b.json"


def test_the_same_cluster_name_with_two_servers_names_both_files() -> None:
    (pa, a), (pb, b) = _split()
    clash = dataclasses.replace(b, clusters=[dataclasses.replace(a.clusters[0], server="https://10.9.9.9")])
    with pytest.raises(ConfigError) as info:
        merge.merge([(pa, a), (pb, clash)])
    message = str(info.value)
    assert "a.json" in message and "b.json" in message and DOTTED_CLUSTER in message and "\n" not in message


def test_one_report_merges_to_itself() -> None:
    report = sample_report()
    assert merge.merge([("only.json", report)]) is report


def test_the_inputs_own_changes_are_dropped() -> None:
    (pa, a), (pb, b) = _split()
    marked = dataclasses.replace(
        a,
        clusters=[
            dataclasses.replace(a.clusters[0], results=[dataclasses.replace(a.clusters[0].results[0], change="new")])
        ],
    )
    merged = merge.merge([(pa, marked), (pb, b)])
    assert merged.baseline is None and all(r.change is None for r in merged.all_results)


FLEET_IDS = {
    "fleet.shared-credential",
    "fleet.duplicate-cluster",
    "fleet.broker-endpoint-collision",
    "fleet.mode-consistency",
}
KEY, OTHER = FingerprintKey(b"k" * 32, "k"), FingerprintKey(b"o" * 32, "o")


def _member(name: str, server: str, token_fp: str, key: FingerprintKey, **facts: object) -> FleetMember:
    return FleetMember(name, server, "operator", "embedded", CredentialRef("token", token_fp, key.id), facts)


def _with_members(pair: tuple[str, RunReport], *members: FleetMember) -> tuple[str, RunReport]:
    path, report = pair
    clusters = [ClusterReport(m.name, m.server, "other", m.mode, report.clusters[0].results, member=m) for m in members]
    # The fleet checks a run selected (by id) are the ones merge reruns.
    fleet = [result(c, Status.SKIP, category="fleet") for c in sorted(FLEET_IDS)]
    return path, dataclasses.replace(report, clusters=clusters, fleet_results=fleet)


def _fleet(merged: RunReport) -> dict[str, Result]:
    return {r.check_id: r for r in merged.fleet_results}


def test_merge_reruns_the_real_fleet_checks_over_the_records() -> None:
    (pa, a), (pb, b) = _split()
    published = {"broker.published": "10.0.0.9:4222", "meshery.deployed": {"operator": True}}
    one = _with_members((pa, a), _member("x", "https://10.0.0.1:6443", "f1", KEY, **published))
    two = _with_members(
        (pb, b),
        _member("y", "https://10.0.0.2:6443", "f1", KEY, **published),
        _member("z", "https://10.0.0.1:6443", "f2", KEY),
    )
    merged = merge.merge([one, two], app._fleet_rerun(app.load_registry()))
    fleet = _fleet(merged)
    assert set(fleet) == FLEET_IDS
    assert fleet["fleet.shared-credential"].status is Status.FAIL
    assert fleet["fleet.shared-credential"].evidence["shared"] == [
        {"credential_id": "f1", "kind": "token", "clusters": ["x", "y"]}
    ]
    assert fleet["fleet.duplicate-cluster"].status is Status.FAIL and "x, z" in fleet["fleet.duplicate-cluster"].message
    collide = fleet["fleet.broker-endpoint-collision"]
    assert collide.status is Status.FAIL and collide.evidence["collisions"][0]["clusters"] == ["x", "y"]
    assert fleet["fleet.mode-consistency"].status is Status.PASS


def test_fingerprints_of_different_keys_are_not_compared() -> None:
    (pa, a), (pb, b) = _split()
    one = _with_members((pa, a), _member("x", "https://10.0.0.1:6443", "f1", KEY))
    two = _with_members((pb, b), _member("y", "https://10.0.0.2:6443", "f1", OTHER))
    shared = _fleet(merge.merge([one, two], app._fleet_rerun(app.load_registry())))["fleet.shared-credential"]
    assert shared.status is Status.SKIP
    assert shared.message == "runs used different fingerprint keys (give every run --fingerprint-key-file)"
    assert shared.evidence["key_ids"] == sorted([KEY.id, OTHER.id])


def test_fleet_records_read_back_from_json() -> None:
    (pa, a), _ = _split()
    _, report = _with_members((pa, a), _member("x", "https://10.0.0.1:6443", "f1", KEY, **{"broker.published": ""}))
    doc = json_report.to_document(report)
    jsonschema.Draft202012Validator(json_report.load_schema()).validate(doc)
    assert doc["clusters"][0]["fleet"]["credential"] == {"kind": "token", "fingerprint": "f1", "key_id": KEY.id}
    assert json_report.from_document(doc).clusters[0].member == report.clusters[0].member


def test_missing_shards_are_named_per_shard_count() -> None:
    from preflight.engine.merge import missing_shards

    def shard(k: int, n: int) -> tuple[str, RunReport]:
        return (f"s{k}of{n}.json", dataclasses.replace(sample_report(), shard=(k, n)))

    assert missing_shards([shard(0, 2)]) == ["1/2"]
    assert missing_shards([shard(0, 2), shard(1, 2)]) == []
    assert missing_shards([shard(2, 4), shard(0, 4), shard(0, 1)]) == ["1/4", "3/4"]
    assert missing_shards([("whole.json", sample_report())]) == []


def test_one_shard_alone_is_no_fleet_verdict() -> None:
    """`merge` of shard 0 of 2 alone: the fleet checks are errors naming shard 1/2, not the shard's skips."""
    (pa, a), _ = _split()
    merged = merge.merge([(pa, a)], lambda members, ids: [])
    assert merged.fleet_results and {r.status for r in merged.fleet_results} == {Status.ERROR}
    assert all("lacks shard 1/2" in r.message for r in merged.fleet_results)
    assert merge.missing_in(merged) == ["1/2"]
