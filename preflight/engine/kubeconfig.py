"""Kubeconfig discovery and merging with kubectl's semantics.

kubectl merges a KUBECONFIG path list so that the first file to define a name wins; users are
surprised when a later file's entry is silently ignored, so shadowed duplicates are recorded.
A name given twice within one file is another matter: Go's client rejects that whole file, so its
entries take part in no merge, and its contexts (where no other file defines them) fail with the cause.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from preflight.engine import yamlfile
from preflight.engine.errors import ConfigError

_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
_FOLDER_SUFFIXES = (".yaml", ".yml", ".conf", ".config", ".kubeconfig")


@dataclass
class Entry:
    name: str
    body: dict[str, Any]
    source: Path
    # Why Go's client rejects the file this context comes from (a name given twice in it); None when it loads.
    rejected: str | None = None


@dataclass
class MergedKubeconfig:
    clusters: dict[str, Entry] = field(default_factory=dict)
    users: dict[str, Entry] = field(default_factory=dict)
    contexts: dict[str, Entry] = field(default_factory=dict)
    current_context: str | None = None
    files: list[Path] = field(default_factory=list)
    # (section, name, shadowed file, winning file, whether the ignored body differs)
    shadowed: list[tuple[str, str, Path, Path, bool]] = field(default_factory=list)
    # (section, name) -> positions in shadowed, for the first _indexed entries (the list only grows)
    _shadowed_at: dict[tuple[str, str], list[int]] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=0, repr=False, compare=False)

    def shadowed_of(self, keys: Iterable[tuple[str, str | None]]) -> list[tuple[str, str, Path, Path, bool]]:
        """The shadowed entries of these (section, name) pairs, in order: every context of a fleet asks."""
        for i in range(self._indexed, len(self.shadowed)):
            self._shadowed_at.setdefault(self.shadowed[i][:2], []).append(i)
        self._indexed = len(self.shadowed)
        found = {i for section, name in keys if name is not None for i in self._shadowed_at.get((section, name), ())}
        return [self.shadowed[i] for i in sorted(found)]


def _yaml_error(path: Path, exc: yaml.YAMLError, text: str) -> ConfigError:
    line, problem = yamlfile.describe(exc, text)
    return ConfigError(f"{path}{f':{line}' if line else ''}: malformed kubeconfig: {problem}")


def load_file(path: Path) -> dict[str, Any]:
    try:
        text = yamlfile.read_text(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # a binary file is unreadable too, not a traceback
        reason = getattr(exc, "strerror", None) or exc
        if isinstance(exc, UnicodeDecodeError):
            reason = "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read kubeconfig: {reason}") from None
    try:
        data = yamlfile.load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc, text) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: malformed kubeconfig: the top level must be a mapping")
    for section, _ in _SECTIONS:
        value = data.get(section)
        if value is not None and not isinstance(value, list):
            raise ConfigError(f"{path}: malformed kubeconfig: field '{section}' must be a list")
    return data


def looks_like_kubeconfig(data: Mapping[str, Any]) -> bool:
    return data.get("kind") == "Config" or any(isinstance(data.get(s), list) for s, _ in _SECTIONS)


def _folder_kubeconfig(path: Path) -> bool:
    """In a folder scan, YAML that is not shaped like a kubeconfig is someone else's file: skip it.

    Malformed YAML is still reported (by load_file, from merge): it may be a broken kubeconfig.
    """
    try:
        data = yamlfile.load(yamlfile.read_text(path))
    except (OSError, UnicodeDecodeError):
        return False
    except (yaml.YAMLError, ValueError):  # too large: still reported
        return True
    return isinstance(data, dict) and looks_like_kubeconfig(data)


def _entries(path: Path, data: Mapping[str, Any]) -> dict[str, list[Entry]]:
    """Each section's entries, in file order, checked for shape."""
    out: dict[str, list[Entry]] = {}
    for section, key in _SECTIONS:
        entries = out[section] = []
        for i, item in enumerate(data.get(section) or []):
            if not isinstance(item, dict) or not item.get("name"):
                raise ConfigError(f"{path}: malformed kubeconfig: {section}[{i}] has no 'name'")
            body = item.get(key) or {}
            if not isinstance(body, dict):
                raise ConfigError(
                    f"{path}: malformed kubeconfig: {section}[{i}] ({item['name']!r}): field '{key}' must be a mapping"
                )
            entries.append(Entry(str(item["name"]), body, path))
    return out


def _duplicate(path: Path, entries: Mapping[str, list[Entry]]) -> str | None:
    """Why Go's client rejects the file: the first name given twice in one section, at the line of its repeat."""
    for section, _ in _SECTIONS:
        seen: set[str] = set()
        for i, entry in enumerate(entries[section]):
            if entry.name in seen:
                line = _item_line(path, section, i)
                return (
                    f"{path}{f':{line}' if line else ''}: {section[:-1]} name {entry.name!r} appears twice in this "
                    "file: Go's client (kubectl, Meshery Server) rejects the whole file"
                )
            seen.add(entry.name)
    return None


def _item_line(path: Path, section: str, index: int) -> int | None:
    """The 1-based line of ``section[index]``, read again from the file (only ever for a rejected file)."""
    try:
        root = yamlfile.compose(yamlfile.read_text(path))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value == section and isinstance(value, yaml.SequenceNode) and index < len(value.value):
            return int(value.value[index].start_mark.line) + 1
    return None


def merge(paths: Iterable[Path]) -> MergedKubeconfig:
    merged = MergedKubeconfig()
    rejected: dict[str, Entry] = {}
    for path in paths:
        data = load_file(path)
        merged.files.append(path)
        entries = _entries(path, data)
        cause = _duplicate(path, entries)
        if cause is not None:
            for entry in entries["contexts"]:
                rejected.setdefault(entry.name, Entry(entry.name, entry.body, path, cause))
            continue
        if merged.current_context is None and data.get("current-context"):
            merged.current_context = str(data["current-context"])
        for section, _ in _SECTIONS:
            target: dict[str, Entry] = getattr(merged, section)
            for entry in entries[section]:
                name = entry.name
                if name in target:
                    differs = entry.body != target[name].body
                    merged.shadowed.append((section, name, path, target[name].source, differs))
                    continue
                target[name] = entry
    for name, entry in rejected.items():
        merged.contexts.setdefault(name, entry)
    return merged


def discover_paths(explicit: list[str], env: Mapping[str, str]) -> list[Path]:
    """--kubeconfig wins, then KUBECONFIG, then every kubeconfig file in KUBECONFIG_FOLDER."""
    if explicit:
        paths = [Path(p).expanduser() for p in explicit]
        for p in paths:
            # Any readable non-directory: a FIFO or `<(vault read ...)` keeps the secrets off the disk.
            if p.is_dir():
                raise ConfigError(f"{p}: is a directory, not a kubeconfig file")
            if not p.exists():
                raise ConfigError(f"{p}: kubeconfig file not found")
        return paths
    if env.get("KUBECONFIG"):
        # kubectl ignores missing entries in KUBECONFIG; so do we.
        listed = [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
        found = [p for p in listed if p.is_file()]
        if not found:
            folders = [p for p in listed if p.is_dir()]
            if folders:
                raise ConfigError(
                    f"KUBECONFIG={env['KUBECONFIG']}: {folders[0]} is a directory; KUBECONFIG lists kubeconfig "
                    f"files (for a folder of them, set KUBECONFIG_FOLDER={folders[0]} instead)"
                )
            raise ConfigError(f"KUBECONFIG={env['KUBECONFIG']}: none of these files exist")
        return found
    folder = Path(env.get("KUBECONFIG_FOLDER") or "~/.kube").expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: kubeconfig folder not found (set KUBECONFIG_FOLDER or --kubeconfig)")
    candidates = sorted(
        p for p in folder.iterdir() if p.is_file() and (p.name == "config" or p.name.endswith(_FOLDER_SUFFIXES))
    )
    found = [p for p in candidates if _folder_kubeconfig(p)]
    if not found:
        raise ConfigError(f"{folder}: no kubeconfig files found")
    return found


def decode_data(value: Any, what: str) -> bytes:
    try:
        # Like kubectl (Go's decoder), ignore line breaks in wrapped base64 (a YAML block scalar).
        return base64.b64decode(str(value).replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def read_file_or_data(body: Mapping[str, Any], file_key: str, data_key: str, base: Path) -> bytes | None:
    """Kubeconfig fields come as inline base64 `*-data` or as a path relative to the file."""
    if body.get(data_key):
        return decode_data(body[data_key], data_key)
    if body.get(file_key):
        p = Path(str(body[file_key])).expanduser()
        if not p.is_absolute():
            p = base / p
        try:
            return p.read_bytes()
        except OSError as exc:
            raise ValueError(f"{file_key} {p}: {exc.strerror or exc}") from None
    return None
