"""Reading YAML nobody reviewed: bounded in size and nesting, so a hostile kubeconfig or fleet file
ends in one line naming the file instead of a RecursionError and a page of traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 32 * 1024 * 1024
# Real kubeconfigs nest about six levels deep; the composer recurses once per level.
MAX_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
