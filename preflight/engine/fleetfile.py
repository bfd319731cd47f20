"""The fleet file: the version-controlled description of a Meshery connection set.

Parsed from YAML nodes rather than plain data so every error can name the file, the line and the
field; unknown fields are errors because a typo'd mute or mode must not be silently ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from preflight.engine import yamlfile
from preflight.engine.errors import ConfigError

MODES = ("embedded", "operator")
PROVIDERS = ("eks", "gke", "aks", "other")
TIMEOUT_KEYS = ("connect", "check", "cluster", "exec")
MAX_NUMBER = 86400.0


@dataclass(frozen=True)
class Mute:
    check: str
    cluster: str
    reason: str
    # Where it is written, for errors found later (a check id that matches nothing).
    line: int = field(default=0, compare=False)


@dataclass
class ClusterEntry:
    context: str
    meshsync_mode: str | None = None
    # Whether this cluster's Server uses the managed Broker port-forward (None: the run's policy).
    broker_port_forward: bool | None = None
    provider: str | None = None
    aws: dict[str, str] = field(default_factory=dict)
    gcp: dict[str, str] = field(default_factory=dict)
    azure: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    line: int = field(default=0, compare=False)


@dataclass
class FleetFile:
    path: Path
    kubeconfig: list[Path] = field(default_factory=list)
    origin_cidrs: list[str] = field(default_factory=list)
    clusters: list[ClusterEntry] = field(default_factory=list)
    mutes: list[Mute] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    # context -> entry, rebuilt when clusters changes size (contexts are unique: load checks)
    _by_context: dict[str, ClusterEntry] = field(default_factory=dict, repr=False, compare=False)

    def cluster(self, context: str) -> ClusterEntry | None:
        if len(self._by_context) != len(self.clusters):
            self._by_context = {c.context: c for c in reversed(self.clusters)}
        return self._by_context.get(context)

    def where(self, line: int, field: str) -> str:
        """``file:line: field`` for an error found after loading (plan time)."""
        return f"{self.path}:{line}: {field}"


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def err(self, node: yaml.Node, where: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.path}:{node.start_mark.line + 1}: {where or 'top level'}: {msg}")

    def mapping(self, node: yaml.Node, where: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            if not where:
                raise self.err(node, where, f"must be a mapping of {', '.join(allowed)}, not a {_kind(node)}")
            raise self.err(node, where, "must be a mapping")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = str(k.value)
            shown = key if key.isprintable() and key.strip() == key and key else repr(key)
            name = f"{where}.{shown}" if where else shown
            if key not in allowed:
                raise self.err(k, name, f"unknown field (allowed: {', '.join(allowed)})")
            if key in out:  # YAML keeps the last one: an earlier `mutes:` would vanish without a word
                raise self.err(k, name, "is given twice")
            out[key] = v
        return out

    def seq(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, where, "must be a list")
        return list(node.value)

    def string(self, node: yaml.Node, where: str, choices: tuple[str, ...] = ()) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null") or not str(node.value).strip():
            raise self.err(node, where, "must be a non-empty string")
        value = str(node.value)
        if choices and value not in choices:
            raise self.err(node, where, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, node: yaml.Node, where: str) -> float:
        try:
            value = float(node.value) if isinstance(node, yaml.ScalarNode) else -1.0
        except ValueError:
            value = -1.0
        if not (0 < value <= MAX_NUMBER):  # nan, inf and 1e300 would crash the runner's waits
            raise self.err(
                node, where, f"must be a positive number up to {MAX_NUMBER:g}, got {getattr(node, 'value', '?')!r}"
            )
        return value

    def boolean(self, node: yaml.Node, where: str) -> bool:
        """YAML's true or false only: a quoted "false" or a 0 is a typo that must not read as on."""
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":bool"):
            return str(node.value).lower() in ("true", "yes", "on")
        raise self.err(node, where, f"must be true or false, got {getattr(node, 'value', '?')!r}")

    def cidr(self, node: yaml.Node, where: str) -> str:
        text = self.string(node, where)
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise self.err(node, where, f"not a CIDR: {text!r}") from None

    def strings_map(self, node: yaml.Node, where: str, allowed: tuple[str, ...]) -> dict[str, str]:
        return {k: self.string(v, f"{where}.{k}") for k, v in self.mapping(node, where, allowed).items()}

    def timeouts(self, node: yaml.Node, where: str) -> dict[str, float]:
        return {k: self.number(v, f"{where}.{k}") for k, v in self.mapping(node, where, TIMEOUT_KEYS).items()}


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "mapping" if isinstance(node, yaml.MappingNode) else "single value"


def _each(r: _Reader, node: yaml.Node, where: str, fn: Callable[[yaml.Node, str], Any]) -> list[Any]:
    return [fn(item, f"{where}[{i}]") for i, item in enumerate(r.seq(node, where))]


def load(path: Path) -> FleetFile:
    try:
        text = yamlfile.read_text(path)
    except (OSError, ValueError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{path}: cannot read fleet file: {reason}") from None
    try:
        root = yamlfile.compose(text)
    except yaml.YAMLError as exc:
        line, problem = yamlfile.describe(exc, text)
        raise ConfigError(f"{path}{f':{line}' if line else ''}: malformed fleet file: {problem}") from None
    fleet = FleetFile(path=path)
    if root is None:
        # An empty file is a mistake (a wrong path, a failed checkout), not "check everything".
        raise ConfigError(f"{path}:1: the fleet file is empty (expected version, kubeconfig, clusters, ...)")
    r = _Reader(path)
    top = r.mapping(root, "", ("version", "kubeconfig", "origin", "defaults", "clusters", "mutes", "thresholds"))
    if "version" in top and str(top["version"].value) != "1":
        raise r.err(top["version"], "version", f"unsupported version {top['version'].value!r} (supported: 1)")
    defaults: dict[str, Any] = {}
    if "defaults" in top:
        d = r.mapping(top["defaults"], "defaults", ("meshsync_mode", "broker_port_forward", "timeouts"))
        if "meshsync_mode" in d:
            defaults["meshsync_mode"] = r.string(d["meshsync_mode"], "defaults.meshsync_mode", MODES)
        if "broker_port_forward" in d:
            defaults["broker_port_forward"] = r.boolean(d["broker_port_forward"], "defaults.broker_port_forward")
        if "timeouts" in d:
            defaults["timeouts"] = r.timeouts(d["timeouts"], "defaults.timeouts")
    if "kubeconfig" in top:
        fleet.kubeconfig = [
            (path.parent / Path(p).expanduser()).resolve() for p in _each(r, top["kubeconfig"], "kubeconfig", r.string)
        ]
    if "origin" in top:
        o = r.mapping(top["origin"], "origin", ("cidrs",))
        if "cidrs" in o:
            fleet.origin_cidrs = _each(r, o["cidrs"], "origin.cidrs", r.cidr)
    if "thresholds" in top:
        th = r.mapping(top["thresholds"], "thresholds", ("latency_warn_ms", "latency_fail_ms"))
        fleet.thresholds = {k: r.number(v, f"thresholds.{k}") for k, v in th.items()}
        warn_ms, fail_ms = fleet.thresholds.get("latency_warn_ms"), fleet.thresholds.get("latency_fail_ms")
        if warn_ms is not None and fail_ms is not None and warn_ms > fail_ms:
            raise r.err(
                th["latency_warn_ms"], "thresholds.latency_warn_ms", f"{warn_ms:g} exceeds latency_fail_ms {fail_ms:g}"
            )

    def cluster(node: yaml.Node, where: str) -> ClusterEntry:
        m = r.mapping(
            node,
            where,
            ("context", "meshsync_mode", "broker_port_forward", "provider", "aws", "gcp", "azure", "timeouts"),
        )
        if "context" not in m:
            raise r.err(node, f"{where}.context", "is required")
        entry = ClusterEntry(context=r.string(m["context"], f"{where}.context"), line=m["context"].start_mark.line + 1)
        entry.meshsync_mode = defaults.get("meshsync_mode")
        entry.timeouts = dict(defaults.get("timeouts", {}))
        if "meshsync_mode" in m:
            entry.meshsync_mode = r.string(m["meshsync_mode"], f"{where}.meshsync_mode", MODES)
        entry.broker_port_forward = defaults.get("broker_port_forward")
        if "broker_port_forward" in m:
            entry.broker_port_forward = r.boolean(m["broker_port_forward"], f"{where}.broker_port_forward")
        if "provider" in m:
            entry.provider = r.string(m["provider"], f"{where}.provider", PROVIDERS)
        if "aws" in m:
            entry.aws = r.strings_map(m["aws"], f"{where}.aws", ("profile", "region", "cluster_name", "account"))
        if "gcp" in m:
            entry.gcp = r.strings_map(m["gcp"], f"{where}.gcp", ("project", "location", "cluster"))
        if "azure" in m:
            entry.azure = r.strings_map(m["azure"], f"{where}.azure", ("subscription", "resource_group", "cluster"))
        if "timeouts" in m:
            entry.timeouts.update(r.timeouts(m["timeouts"], f"{where}.timeouts"))
        return entry

    def mute(node: yaml.Node, where: str) -> Mute:
        m = r.mapping(node, where, ("check", "cluster", "reason"))
        for req in ("check", "reason"):
            if req not in m:
                raise r.err(node, f"{where}.{req}", "is required (a mute must say why)")
        return Mute(
            check=r.string(m["check"], f"{where}.check"),
            cluster=r.string(m["cluster"], f"{where}.cluster") if "cluster" in m else "*",
            reason=r.string(m["reason"], f"{where}.reason"),
            line=m["check"].start_mark.line + 1,
        )

    if "clusters" in top:
        fleet.clusters = _each(r, top["clusters"], "clusters", cluster)
        seen: set[str] = set()
        for node, entry in zip(r.seq(top["clusters"], "clusters"), fleet.clusters, strict=True):
            if entry.context in seen:
                raise r.err(node, "clusters", f"context {entry.context!r} is listed twice")
            seen.add(entry.context)
    if "mutes" in top:
        fleet.mutes = _each(r, top["mutes"], "mutes", mute)
    return fleet
