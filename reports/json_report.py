"""The JSON report: a public contract for dashboards and scripts, described by the shipped JSON Schema.

Field names and shapes here only change together with ``SCHEMA_VERSION`` and a new schema file.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterator, Mapping
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from preflight.engine.model import (
    CHANGES,
    STATUS_ORDER,
    BaselineInfo,
    ClusterReport,
    CredentialRef,
    FleetMember,
    Result,
    RunOrigin,
    RunReport,
    Severity,
    Status,
)

from ._common import as_utc, seconds

SCHEMA_VERSION = 1
SCHEMA_FILE = "report-v1.schema.json"
PROVIDERS = ("eks", "gke", "aks", "other", "unknown")


def schema_path() -> Path:
    """Location of the shipped JSON Schema, found through the package so it works when installed."""
    resource = resources.files("preflight.reports") / "schema" / SCHEMA_FILE
    if not isinstance(resource, Path):
        raise RuntimeError(f"{SCHEMA_FILE} is not on the file system (zipped install?); use load_schema()")
    return resource


def load_schema() -> dict[str, Any]:
    """The schema itself; unlike :func:`schema_path` this also works from a zipped install."""
    text = (resources.files("preflight.reports") / "schema" / SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def iso_utc(moment: _dt.datetime) -> str:
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """Coerce probe evidence into plain JSON values so a quirky probe can never break the report.

    Sets are sorted (naturally, or by their JSON text when mixed) so output is stable across runs;
    non-finite floats become strings because JSON has no NaN or Infinity.
    """
    return _jsonable(value, set())


# Types returned as they are; checked by exact type first, since an isinstance test against the ABCs below
# costs more than the rest of a fleet's evidence handling.
_PLAIN = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any, seen: set[int]) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict or kind is list:
        if id(value) in seen:
            return "<cycle>"
        seen = seen | {id(value)}
        if kind is dict:
            return {k if type(k) is str else _key(k): _jsonable(v, seen) for k, v in value.items()}
        return [_jsonable(v, seen) for v in value]
    if isinstance(value, Enum):
        return _jsonable(value.value, seen)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if id(value) in seen:
            return "<cycle>"
        seen = seen | {id(value)}
        if isinstance(value, Mapping):
            return {_key(k): _jsonable(v, seen) for k, v in value.items()}
        items = [_jsonable(v, seen) for v in value]
        if isinstance(value, (set, frozenset)):
            try:
                items.sort()
            except TypeError:
                items.sort(key=lambda v: json.dumps(v, sort_keys=True))
        return items
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, Enum):
        key = key.value
    return key if isinstance(key, str) else str(key)


def provider_enum(provider: str) -> str:
    """Map free-form provider names onto the schema's closed set."""
    name = provider.strip().lower()
    if not name:
        return "unknown"
    return name if name in PROVIDERS else "other"


def result_document(result: Result) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "check_id": result.check_id,
        "title": result.title,
        "category": result.category,
        # _value_ is the member's plain attribute; .value is a Python-level descriptor, 10 % of the JSON report.
        "severity": result.severity._value_,
        "status": result.status._value_,
        "message": result.message,
        "remediation": result.remediation,
        "docs_url": result.docs_url,
        "evidence": jsonable(dict(result.evidence)),
        "duration_s": seconds(result.duration_s),
    }
    if result.change is not None:
        doc["change"] = result.change
    if result.meshery_code is not None:
        doc["meshery_code"] = result.meshery_code
    if result.reason is not None:
        doc["reason"] = result.reason
    return doc


def _baseline(info: BaselineInfo) -> dict[str, Any]:
    return {
        "started_at": iso_utc(info.started_at),
        "tool_version": info.tool_version,
        "changes": {c: info.counts.get(c, 0) for c in CHANGES},
        "gone": info.gone,
    }


def _origin(origin: RunOrigin) -> dict[str, Any]:
    shard = {"index": origin.shard[0], "count": origin.shard[1]} if origin.shard else None
    return {"report": origin.report, "started_at": iso_utc(origin.started_at), "shard": shard}


def _member(m: FleetMember) -> dict[str, Any]:
    cred = m.credential
    return {
        "server": m.server,
        "mode": m.mode,
        "default_mode": m.default_mode,
        "credential": {"kind": cred.kind, "fingerprint": cred.fingerprint, "key_id": cred.key_id} if cred else None,
        "facts": jsonable(dict(m.facts)),
    }


def _read_member(name: str, doc: Any) -> FleetMember | None:
    if not doc:
        return None
    cred = doc.get("credential")
    return FleetMember(
        name=name,
        server=str(doc["server"]),
        mode=str(doc["mode"]),
        default_mode=str(doc["default_mode"]),
        credential=CredentialRef(str(cred["kind"]), str(cred["fingerprint"]), str(cred["key_id"])) if cred else None,
        facts=dict(doc["facts"]),
    )


def _summary(counts: Mapping[str, int]) -> dict[str, int]:
    return {s.value: counts.get(s.value, 0) for s in STATUS_ORDER}


def category_summary(results: list[Result]) -> dict[str, dict[str, int]]:
    """Counts per status for each category, categories in the order they first appear."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        counts = out.get(r.category)
        if counts is None:
            counts = out[r.category] = {s.value: 0 for s in STATUS_ORDER}
        counts[r.status._value_] += 1
    return out


def cluster_document(cluster: ClusterReport) -> dict[str, Any]:
    return {
        "name": cluster.name,
        "server": cluster.server,
        "provider": provider_enum(cluster.provider),
        "mode": cluster.mode,
        "summary": _summary(cluster.summary),
        "results": [result_document(r) for r in cluster.results],
        **({"origin": _origin(cluster.origin)} if cluster.origin else {}),
        **({"fleet": _member(cluster.member)} if cluster.member else {}),
    }


def _head(report: RunReport) -> dict[str, Any]:
    """The document's fields before ``clusters``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": report.tool_name, "version": report.tool_version},
        "started_at": iso_utc(report.started_at),
        "finished_at": iso_utc(report.finished_at),
        "duration_s": seconds(report.duration_s),
        "aborted": report.aborted,
        "origin": {"cidrs": list(report.origin_cidrs)},
        "summary": _summary(report.summary),
        "summary_by_category": category_summary(report.all_results),
    }


def _tail(report: RunReport) -> dict[str, Any]:
    """The document's fields after ``clusters``."""
    doc: dict[str, Any] = {"fleet": {"results": [result_document(r) for r in report.fleet_results]}}
    if report.baseline is not None:
        doc["baseline"] = _baseline(report.baseline)
    if report.shard is not None:
        doc["shard"] = {"index": report.shard[0], "count": report.shard[1]}
    return doc


def to_document(report: RunReport) -> dict[str, Any]:
    return {**_head(report), "clusters": [cluster_document(c) for c in report.clusters], **_tail(report)}


# orjson writes what json.dumps(indent=2) writes, but for these; each is put back below, or json itself encodes.
# Numbers: json writes 1e-05 and 1e-07 where orjson writes 0.00001 and 1e-7 (exponents -5 to -9 only). A number
# is the last token of its line (strings never span lines and end in a quote), after a space or at the start.
_SHORT_FLOAT = re.compile(r"(?<![^ \n])-?(?:0\.0000[0-9]*|[0-9](?:\.[0-9]*)?e-[5-9])(?=,?$)", re.M)
# Looked for first, each pattern with a literal prefix (sre scans for it fast; one alternation is 6 times slower).
_SHORT_FLOAT_HINTS = (re.compile(r"e-[5-9](?=,?$)", re.M), re.compile(r"0\.0000"))
# Text: json escapes DEL and everything beyond ASCII (\uXXXX, a surrogate pair above U+FFFF); orjson writes UTF-8.
_NOT_ASCII = re.compile("[\x7f-\U0010ffff]")


def _float_repr(match: re.Match[str]) -> str:
    return repr(float(match.group()))


def _ascii_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
    return f"\\u{code:04x}"


def _encode(value: Any, level: int) -> str:
    """``value`` as ``json.dumps(value, indent=2, allow_nan=False)`` writes it ``level`` levels deep in a
    document: JSON text has newlines only between tokens (a string's are escaped), so shifting every line
    by the depth gives the whole document's bytes while encoding one cluster at a time.

    orjson does the encoding (json's indenting encoder is pure Python, a tenth of a second per 200 clusters);
    what it cannot encode as json does (an int beyond 64 bits, a lone surrogate, a key that is no str) falls
    back to json. Non-finite floats must not reach here (orjson writes them as null): ``jsonable`` and
    ``seconds`` turn them into strings and 0.
    """
    import orjson  # here, not at the top: --help, list-checks and explain never write a report

    try:
        # Dates and dataclasses raise, as in json, rather than take orjson's own form.
        options = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        text = orjson.dumps(value, option=options).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        text = json.dumps(value, indent=2, allow_nan=False)
    else:
        if not text.isascii() or "\x7f" in text:
            text = _NOT_ASCII.sub(_ascii_escape, text)
        if any(hint.search(text) for hint in _SHORT_FLOAT_HINTS):
            text = _SHORT_FLOAT.sub(_float_repr, text)
    return text.replace("\n", "\n" + "  " * level) if level else text


def chunks(report: RunReport) -> Iterator[str]:
    """:func:`render`'s text, byte for byte, one cluster at a time: the whole document is never built."""
    sep = "{\n  "
    for key, value in _head(report).items():
        yield f"{sep}{_encode(key, 0)}: {_encode(value, 1)}"
        sep = ",\n  "
    yield ',\n  "clusters": [' if report.clusters else ',\n  "clusters": []'
    for i, cluster in enumerate(report.clusters):
        yield ("\n    " if i == 0 else ",\n    ") + _encode(cluster_document(cluster), 2)
    if report.clusters:
        yield "\n  ]"
    for key, value in _tail(report).items():
        yield f",\n  {_encode(key, 0)}: {_encode(value, 1)}"
    yield "\n}\n"


def render(report: RunReport) -> str:
    return "".join(chunks(report))


def _time(text: Any) -> _dt.datetime:
    return _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _result(doc: Mapping[str, Any]) -> Result:
    cause = doc.get("reason")
    return Result(
        check_id=str(doc["check_id"]),
        title=str(doc["title"]),
        category=str(doc["category"]),
        severity=Severity(doc["severity"]),
        status=Status(doc["status"]),
        message=str(doc["message"]),
        remediation=str(doc["remediation"]),
        docs_url=str(doc["docs_url"]),
        evidence=dict(doc["evidence"]),
        duration_s=float(doc["duration_s"]),
        change=doc.get("change"),
        meshery_code=doc.get("meshery_code"),
        reason=cause,
    )


def from_document(doc: Mapping[str, Any]) -> RunReport:
    """The report a document of this schema version describes; ``ValueError`` when it is not one.

    Read back for `merge`: ``baseline`` is dropped (a merged report compares anew), ``shard`` is kept.
    """
    try:
        clusters = [
            ClusterReport(
                name=str(c["name"]),
                server=str(c["server"]),
                provider=str(c["provider"]),
                mode=str(c["mode"]),
                results=[_result(r) for r in c["results"]],
                origin=_read_origin(c.get("origin")),
                member=_read_member(str(c["name"]), c.get("fleet")),
            )
            for c in doc["clusters"]
        ]
        shard = doc.get("shard")
        return RunReport(
            tool_name=str(doc["tool"]["name"]),
            tool_version=str(doc["tool"]["version"]),
            started_at=_time(doc["started_at"]),
            finished_at=_time(doc["finished_at"]),
            origin_cidrs=[str(c) for c in doc["origin"]["cidrs"]],
            clusters=clusters,
            fleet_results=[_result(r) for r in doc["fleet"]["results"]],
            aborted=doc.get("aborted"),
            shard=(int(shard["index"]), int(shard["count"])) if shard else None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a report of schema version {SCHEMA_VERSION}: {type(exc).__name__} {exc}") from None


def _read_origin(doc: Any) -> RunOrigin | None:
    if not doc:
        return None
    shard = doc.get("shard")
    return RunOrigin(str(doc["report"]), _time(doc["started_at"]), (shard["index"], shard["count"]) if shard else None)
