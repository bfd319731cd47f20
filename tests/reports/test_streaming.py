"""Reports are written as they are rendered: each format comes in pieces of about a cluster, the pieces
join into exactly the text the whole-document renderers made, and every place `-o` can write to takes them
(real files, a symlink, a FIFO, a descriptor, /dev/full)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import gc
import json
import math
import os
import re
import stat
import threading
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.utils import htmlsafe_json_dumps
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from preflight import TOOL_NAME, app
from preflight.engine import baseline
from preflight.engine.model import CredentialRef, FleetMember, RunOrigin, RunReport, Status
from preflight.reports import json_report, junit, prometheus, writer
from preflight.reports.options import RenderOptions
from tests.report_samples import empty_aborted_report, sample_report, synthetic_fleet

STREAMED = ("json", "junit", "console", "html", "prometheus")


def _fleet_with_everything(tmp_path: Path) -> RunReport:
    """A realistic fleet compared with a baseline, merged from shards: every optional field of the JSON."""
    before = tmp_path / "before.json"
    before.write_text(json_report.render(synthetic_fleet(60)), encoding="utf-8")
    snap = baseline.load(str(before), tool_name=TOOL_NAME, schema_version=json_report.SCHEMA_VERSION)
    worse = synthetic_fleet(60)
    worse.clusters[0] = dataclasses.replace(
        worse.clusters[0],
        results=[dataclasses.replace(r, status=Status.FAIL) for r in worse.clusters[0].results],
    )
    report = baseline.compare(worse, snap)
    origin = RunOrigin("shard-1.json", dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.timezone.utc), (1, 4))
    member = FleetMember(
        "m", "https://10.0.0.1:6443", "operator", "embedded", CredentialRef("token", "ab12", "k1"), {"uid": {1, 2}}
    )
    report.clusters[2] = dataclasses.replace(report.clusters[2], origin=origin, member=member)
    return dataclasses.replace(report, shard=(1, 4))


def _old_json(report: RunReport) -> str:
    """How the JSON report was made before it streamed: the whole document, then one json.dumps."""
    return json.dumps(json_report.to_document(report), indent=2, allow_nan=False) + "\n"


def test_streamed_json_file_is_byte_for_byte_the_whole_document(tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json_report.load_schema())
    for i, report in enumerate([_fleet_with_everything(tmp_path), sample_report(), empty_aborted_report()]):
        path = tmp_path / f"r{i}.json"
        app.emit(report, [("json", str(path))])
        written = path.read_text(encoding="utf-8")
        assert written == _old_json(report)
        validator.validate(json.loads(written))
    first = json.loads((tmp_path / "r0.json").read_text())
    assert first["baseline"]["changes"]["new"] > 0 and first["shard"] == {"index": 1, "count": 4}
    assert first["clusters"][2]["origin"]["shard"] == {"index": 1, "count": 4}
    assert first["clusters"][2]["fleet"]["facts"] == {"uid": [1, 2]}


def test_streamed_junit_is_what_indenting_the_whole_tree_gives() -> None:
    for report in (synthetic_fleet(30), sample_report(aborted="SIGTERM"), empty_aborted_report()):
        for fail_on in ("fail", "warn"):
            text = junit.render(report, fail_on=fail_on)
            root = ET.fromstring(text.encode("utf-8"))
            ET.indent(root)
            assert text == '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def test_streamed_html_data_is_what_tojson_writes_for_the_whole() -> None:
    text = writer.render("html", synthetic_fleet(30))
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert match
    raw = match.group(1)
    data = json.loads(raw)
    assert len(data["clusters"]) == 30 and data["strings"] and data["checks"]
    assert raw == str(htmlsafe_json_dumps(data, sort_keys=True))


def test_streamed_metrics_are_the_libraries_exposition_of_the_whole_run() -> None:
    good = synthetic_fleet(250)
    previous = prometheus.render(good)
    later = dataclasses.replace(good, finished_at=good.finished_at + dt.timedelta(hours=1))
    expected = generate_latest(prometheus.registry(later, prometheus.previous_successes(previous))).decode()
    assert "".join(prometheus.chunks(later, previous)) == expected
    assert len(good.clusters) > 2 * prometheus.SLICE  # the per-cluster families came in slices


@pytest.mark.parametrize("fmt", STREAMED)
def test_no_piece_holds_much_of_the_fleet(fmt: str) -> None:
    report = synthetic_fleet(250)
    pieces = list(writer.stream(fmt, report, options=RenderOptions(verbose=True)))
    total = sum(len(p) for p in pieces)
    assert "".join(pieces) == writer.render(fmt, report, options=RenderOptions(verbose=True))
    assert max(len(p) for p in pieces) < total / 10, f"a piece of {max(map(len, pieces))} of {total} characters"


def _traced_peak(fmt: str, report: RunReport, path: Path) -> int:
    def write() -> None:
        writer.write_report(str(path), writer.stream(fmt, report, path=str(path), options=RenderOptions(verbose=True)))

    write()  # warm: imports load, and the metrics find a previous file as in a scheduled run
    gc.collect()
    tracemalloc.start()
    try:
        write()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["json", "junit", "console", "prometheus"])
def test_writing_memory_does_not_grow_with_the_fleet(fmt: str, tmp_path: Path) -> None:
    """Ten times the clusters, about the same peak: only a piece and a block are held, never the report."""
    small = _traced_peak(fmt, synthetic_fleet(30), tmp_path / "small")
    large = _traced_peak(fmt, synthetic_fleet(300), tmp_path / "large")
    assert large < 2 * small + 512 * 1024, (small, large)


def _chunks_then_fail() -> Iterator[str]:
    yield "x" * (writer.BLOCK_BYTES + 1)
    raise RuntimeError("renderer bug")


def test_a_regular_file_is_replaced_only_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    path.chmod(0o640)
    with pytest.raises(RuntimeError, match="renderer bug"):
        writer.write_report(str(path), _chunks_then_fail())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "the temp file is left behind"
    writer.write_report(str(path), iter(["new ", "✔", "\n"]))
    assert path.read_text(encoding="utf-8") == "new ✔\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640, "an existing file keeps its mode"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_symlink_stays_and_its_target_gets_the_chunks(tmp_path: Path) -> None:
    target = tmp_path / "real.xml"
    link = tmp_path / "link.xml"
    link.symlink_to(target)
    report = synthetic_fleet(12)
    writer.write_report(str(link), writer.stream("junit", report))
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == junit.render(report)


def test_a_fifo_gets_each_block_as_it_is_made(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    first_read = threading.Event()
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as handle:
            got.append(handle.read(1))
            first_read.set()
            got.append(handle.read())

    def chunks() -> Iterator[str]:
        yield "a" * writer.BLOCK_BYTES
        # Not yet at the end of the report, and the reader already has its start.
        yield "seen" if first_read.wait(60) else "not-seen"

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    writer.write_report(str(fifo), chunks())
    thread.join(60)
    assert b"".join(got) == b"a" * writer.BLOCK_BYTES + b"seen"
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced by a file"


def test_a_descriptor_is_written_in_place() -> None:
    read_end, write_end = os.pipe()
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(os.fdopen(read_end, "rb").read()), daemon=True)
    thread.start()
    report = synthetic_fleet(20)
    try:
        writer.write_report(f"/dev/fd/{write_end}", writer.stream("json", report))
    finally:
        os.close(write_end)
    thread.join(60)
    assert got[0].decode("utf-8") == _old_json(report)


def test_a_full_device_fails_with_enospc_and_stays_a_device() -> None:
    with pytest.raises(OSError) as info:
        writer.write_report("/dev/full", writer.stream("json", synthetic_fleet(20)))
    assert info.value.errno == errno.ENOSPC
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_previous_metrics_are_read_before_the_file_is_touched(tmp_path: Path) -> None:
    """In place (a writable file in a locked directory) the file is truncated before the first chunk: the
    last-success timestamps must already be read by then."""
    path = tmp_path / "m.prom"
    good = synthetic_fleet(6)
    path.write_text(prometheus.render(good))
    bad = dataclasses.replace(
        good,
        clusters=[
            dataclasses.replace(c, results=[r for r in c.results if r.status is Status.FAIL]) for c in good.clusters
        ],
        finished_at=good.finished_at + dt.timedelta(hours=1),
    )
    pieces = writer.stream("prometheus", bad, path=str(path))
    path.write_text("")
    last = {
        s.labels["cluster"]: s.value
        for family in text_string_to_metric_families("".join(pieces))
        for s in family.samples
        if s.name == prometheus.LAST_SUCCESS
    }
    assert last == {c.name: good.finished_at.timestamp() for c in good.clusters if prometheus.succeeded(c)}
    assert last, "the sample fleet has healthy clusters"


def test_a_fifo_or_a_descriptor_is_never_read_for_previous_metrics(tmp_path: Path) -> None:
    """Reading them would wait forever: a FIFO for a writer, /dev/stdout on a pipe for data."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read_end, write_end = os.pipe()
    done = threading.Event()

    def stream() -> None:
        for target in (str(fifo), f"/dev/fd/{write_end}"):
            "".join(writer.stream("prometheus", sample_report(), path=target))
        done.set()

    threading.Thread(target=stream, daemon=True).start()
    try:
        assert done.wait(60), "stream() blocked reading a previous metrics file"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_emit_streams_to_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = synthetic_fleet(15)
    assert app.emit(report, [("junit", None), ("json", "/dev/full"), ("console", str(tmp_path / "c.txt"))]) == [
        "-o json=/dev/full: cannot write: No space left on device"
    ]
    assert capsys.readouterr().out == junit.render(report)
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") == writer.render("console", report)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(value=_JSON_VALUES, level=st.integers(min_value=0, max_value=3))
def test_the_document_encoder_writes_what_json_dumps_writes(value: Any, level: int) -> None:
    expected = json.dumps(value, indent=2, allow_nan=False).replace("\n", "\n" + "  " * level)
    assert json_report._encode(value, level) == expected


@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text()
        | st.binary(max_size=4)
        | st.sampled_from(list(Status))
        | st.datetimes(),
        lambda children: (
            st.lists(children, max_size=3)
            | st.tuples(children, children)
            | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
            | st.dictionaries(st.text(max_size=3) | st.integers() | st.sampled_from(list(Status)), children, max_size=3)
        ),
        max_leaves=15,
    )
)
def test_evidence_of_any_shape_encodes_as_json_dumps_does(value: Any) -> None:
    plain = json_report.jsonable({"evidence": value})
    assert json_report._encode(plain, 1) == json.dumps(plain, indent=2, allow_nan=False).replace("\n", "\n  ")


_TRICKY_EVIDENCE: dict[str, Any] = {
    "text": "naïve — 東京 😀 \u2028\u2029 \x7f \x00\x1f\x1b[31m \t\n\r\b\f",
    "quotes": 'say "hi" \\ back\\slash / and \\"',
    "a line that ends like a number": "took 1e-7",
    "key: 1e-7": "key with a colon",
    "nested": {"empty": {}, "list": [], "deep": [[{"a": [None, True, False]}]], "": ""},
    "floats": [0.1, 1e-7, -1e-7, 1.5e-5, 0.0001, 1e-4, 1e-10, 1e16, -1e16, 1e22, 5e-324, 0.0, -0.0, 3.0],
    "scalars": [None, True, False, 0, -1, 2**63 - 1, -(2**63)],
    "latency_s": 2.5e-6,
    "not finite": [math.nan, math.inf, -math.inf],
}


def _with_evidence(evidence: dict[str, Any]) -> RunReport:
    report = sample_report()
    first = report.clusters[0]
    results = [dataclasses.replace(first.results[0], evidence=evidence), *first.results[1:]]
    report.clusters[0] = dataclasses.replace(first, results=results)
    return report


def test_tricky_evidence_is_written_as_json_dumps_wrote_it() -> None:
    """orjson writes UTF-8, DEL raw, 0.00001 and 1e-7: the report still has json.dumps's bytes, ASCII only."""
    report = _with_evidence(_TRICKY_EVIDENCE)
    text = json_report.render(report)
    assert text == _old_json(report)
    assert text.isascii() and "\\u6771\\u4eac \\ud83d\\ude00 \\u2028\\u2029 \\u007f" in text
    assert '"latency_s": 2.5e-06' in text and "-1e-07," in text and "1.5e-05," in text
    evidence = json.loads(text)["clusters"][0]["results"][0]["evidence"]
    assert evidence["not finite"] == ["nan", "inf", "-inf"]
    assert evidence["text"] == _TRICKY_EVIDENCE["text"]


def test_what_orjson_cannot_encode_is_encoded_by_json() -> None:
    """Ints beyond 64 bits, lone surrogates (undecodable bytes) and big nesting make orjson raise; json writes them."""
    deep: Any = "bottom"
    for _ in range(300):
        deep = [deep]
    evidence = {"huge": 2**64, "negative": -(10**30), "surrogate": "\udcff", "deep": deep, "then": "é"}
    report = _with_evidence(evidence)
    assert json_report.render(report) == _old_json(report)
    assert json.loads(json_report.render(report))["clusters"][0]["results"][0]["evidence"]["huge"] == 2**64


@pytest.mark.parametrize("value", [1e-5, -1e-5, 1.25e-9, 9.99e-6, 1e-10, 1e-4, 1e16, 123456.789, 0.1 + 0.2])
def test_floats_are_written_as_python_writes_them(value: float) -> None:
    for doc in (value, [value, value], {"x": value, "y": [value]}, {"s": f"{value!r}", "t": f" {value}"}):
        assert json_report._encode(doc, 2) == json.dumps(doc, indent=2, allow_nan=False).replace("\n", "\n    ")
