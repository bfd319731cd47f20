"""merge: reports read back from JSON, combined with their origins; conflicts name both files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import jsonschema
import pytest

from preflight import merge
from preflight.errors import ConfigError
from preflight.model import RunReport, Status
from preflight.reports import json_report
from tests.report_samples import DOTTED_CLUSTER, PLAIN_CLUSTER, sample_report


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
    assert all("not recomputed when merging 2 runs" in r.message for r in merged.fleet_results)
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
