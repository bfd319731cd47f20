"""Reading YAML nobody reviewed: bounded in size and nesting, so a hostile kubeconfig or fleet file
ends in one line naming the file instead of a RecursionError and a page of traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 32 * 1024 * 1024
# Real kubeconfigs nest about six levels deep; the composer recurses once per level.
MAX_DEPTH = 64
# Aliases are shared, not copied, but comparing or walking a "billion laughs" document is exponential:
# bound the size of the document as if every alias were expanded.
MAX_NODES = 2_000_000


class _BoundedLoader(yaml.SafeLoader):
    _depth = 0

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._weights: dict[int, int] = {}  # id(node) -> its node count with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self._bound(f"nested deeper than {MAX_DEPTH} levels")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return node
        weight = self._weights.get(id(node))
        if weight is None:
            weight = 1
            for child in _children(node):
                weight += self._weights.get(id(child), 1)
            self._weights[id(node)] = weight
        if weight > MAX_NODES:
            raise self._bound(f"expands to more than {MAX_NODES} values (aliases inside aliases)")
        return node

    def _bound(self, problem: str) -> yaml.YAMLError:
        return yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_text(path: Path) -> str:
    """The file's text, at most MAX_BYTES; reads FIFOs and process substitutions once, like any file.

    OSError and UnicodeDecodeError are the caller's to word; too large raises ValueError."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return data.decode("utf-8")


def describe(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The line (1-based, when known) and a one-line problem for a YAML error."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line: int | None = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
    else:
        line = None
    if isinstance(exc, yaml.reader.ReaderError):
        problem = (
            f"unacceptable character #x{ord(exc.character) if isinstance(exc.character, str) else exc.character:04x}"
        )
    else:
        problem = str(getattr(exc, "problem", None) or exc)
    return line, " ".join(problem.split())


def load(text: str) -> Any:
    """yaml.safe_load with the nesting bound; raises yaml.YAMLError."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    """yaml.compose with the nesting bound (the fleet file keeps nodes for their line numbers)."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()
