"""Split one fleet across N workers (``--shard K/N``, ``--shard auto`` in a Kubernetes Indexed Job).

A context belongs to shard ``sha256(name) mod N``: stable across processes, machines and Python
versions (unlike the salted built-in ``hash``), and independent of the order or number of the other
contexts, so a context that joins the fleet moves no other one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from preflight.engine.errors import ConfigError
from preflight.engine.model import Check, Result, Status

T = TypeVar("T")

# Set by the Kubernetes Job controller in every pod of an Indexed Job.
INDEX_ENV = "JOB_COMPLETION_INDEX"
# Kubernetes does not pass .spec.completions to the pod: the Job's template sets this to the same number.
COUNT_ENV = "PREFLIGHT_SHARDS"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, name: str) -> bool:
        return of(name, self.count) == self.index


def of(name: str, count: int) -> int:
    """The shard (0..count-1) a context name belongs to."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def _number(text: str, what: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(f"--shard {spec}: {what} {text.strip()!r} is not a whole number") from None


def parse(spec: str, env: Mapping[str, str]) -> Shard:
    """``K/N`` (K counts from 0) or ``auto`` (from $JOB_COMPLETION_INDEX and $PREFLIGHT_SHARDS)."""
    if spec.strip().lower() == "auto":
        missing = [v for v in (INDEX_ENV, COUNT_ENV) if not env.get(v, "").strip()]
        if missing:
            raise ConfigError(
                f"--shard auto needs {' and '.join(missing)} (an Indexed Job sets {INDEX_ENV}; "
                f"set {COUNT_ENV} to its completions)"
            )
        index = _number(env[INDEX_ENV], INDEX_ENV, spec)
        count = _number(env[COUNT_ENV], COUNT_ENV, spec)
    else:
        k, sep, n = spec.partition("/")
        if not sep:
            raise ConfigError(f"--shard {spec!r}: expected K/N (K from 0, e.g. 0/4) or auto")
        index, count = _number(k, "K", spec), _number(n, "N", spec)
    if count < 1:
        raise ConfigError(f"--shard {spec}: the number of shards must be at least 1, not {count}")
    if not 0 <= index < count:
        raise ConfigError(f"--shard {spec}: shard index {index} is outside 0..{count - 1}")
    return Shard(index, count)


def select(items: Iterable[T], shard: Shard, name: Callable[[T], str]) -> list[T]:
    """The items this shard checks, in their original order."""
    return [item for item in items if shard.owns(name(item))]


def _report_names(count: int) -> str:
    names = [f"SHARD-{k}.json" for k in range(count)]
    return " ".join(names) if count <= 3 else f"{names[0]} {names[1]} ... {names[-1]}"


def skipped(chk: Check, shard: Shard) -> Result:
    """A fleet check's result in a sharded run: it needs every cluster, which no shard has."""
    return Result(
        check_id=chk.id,
        title=chk.title,
        category=chk.category,
        severity=chk.severity,
        status=Status.SKIP,
        message=f"not checked in a shard (shard {shard}): fleet checks need the whole fleet (merge reruns them)",
        # A skip with something to do: the fleet verdict comes from `merge`, never from a shard alone.
        remediation="Merge the JSON reports of every shard, which reruns the fleet checks over the whole fleet:\n"
        f"meshery-preflight merge {_report_names(shard.count)} -o console",
        docs_url=chk.docs_url,
        evidence={"shard": str(shard)},
        duration_s=0.0,
    )
