"""Reading YAML nobody reviewed: bounded in size and nesting, so a hostile kubeconfig or fleet file
ends in one line naming the file instead of a RecursionError and a page of traceback."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 32 * 1024 * 1024
# Real kubeconfigs nest about six levels deep; the composer recurses once per level.
MAX_DEPTH = 64
# Aliases are shared, not copied, but comparing or walking a "billion laughs" document is exponential:
# bound the size of the document as if every alias were expanded.
MAX_NODES = 2_000_000


class _Bounds:
    """The bounds, on PyYAML's composer: it pulls parser events one at a time and recurses once per level,
    so a document nested too deep stops at MAX_DEPTH, with the parser (libyaml's or PyYAML's) a few
    tokens ahead at most."""

    _depth = 0
    _total = 0  # values composed so far, every alias counted as the values it stands for
    _weights: dict[int, int]  # id(anchored node) -> its value count with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self._bound(f"nested deeper than {MAX_DEPTH} levels")
            event = self.peek_event()  # type: ignore[attr-defined]
            before = self._total
            node = yaml.composer.Composer.compose_node(self, parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1
        if isinstance(event, yaml.AliasEvent):
            self._total += self._weights.get(id(node), 1)  # an alias of a node still open counts once
        else:
            self._total += 1
            if event.anchor is not None:
                self._weights[id(node)] = self._total - before
        if self._total > MAX_NODES:
            raise self._bound(f"expands to more than {MAX_NODES} values (aliases inside aliases)")
        return node

    def _bound(self, problem: str) -> yaml.YAMLError:
        return yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)  # type: ignore[attr-defined]


if yaml.__with_libyaml__:

    class _BoundedLoader(
        _Bounds,
        yaml._yaml.CParser,
        yaml.composer.Composer,
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """libyaml's C scanner and parser (ten times PyYAML's speed on a fleet's kubeconfig) under PyYAML's
        composer, which keeps the bounds; CParser's own composer is C and could not be bounded."""

        def __init__(self, stream: str) -> None:
            _check_printable(stream)  # PyYAML's message and line; libyaml counts bytes
            yaml._yaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._weights = {}

        # CParser defines these too; the composer's must win for the bounds to apply.
        check_node = yaml.composer.Composer.check_node
        get_node = yaml.composer.Composer.get_node
        get_single_node = yaml.composer.Composer.get_single_node

else:  # pragma: no cover - PyYAML built without libyaml

    class _BoundedLoader(_Bounds, yaml.SafeLoader):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._weights = {}


def _check_printable(text: str) -> None:
    match = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if match:
        raise yaml.reader.ReaderError(
            "<unicode string>", match.start(), ord(match.group()), "unicode", "special characters are not allowed"
        )


def read_text(path: Path) -> str:
    """The file's text, at most MAX_BYTES; reads FIFOs and process substitutions once, like any file.

    OSError and UnicodeDecodeError are the caller's to word; too large raises ValueError."""
    chunks: list[bytes] = []
    size = 0
    with open(path, "rb") as handle:
        # In pieces: read(MAX_BYTES + 1) would allocate the whole bound up front for any file.
        while size <= MAX_BYTES:
            chunk = handle.read(min(1 << 20, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    data = b"".join(chunks)
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
    """yaml.safe_load with the bounds; raises yaml.YAMLError."""
    return _run(text, single_data=True)


def compose(text: str) -> yaml.Node | None:
    """yaml.compose with the bounds (the fleet file keeps nodes for their line numbers)."""
    node: yaml.Node | None = _run(text, single_data=False)
    return node


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cycle collection while a document's values are built (they hold no cycles, but for a recursive
    alias, collected later): the collector, walking every new container again and again as they pile up,
    would take half the time of a fleet's kubeconfig, and more the larger it is."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# libyaml stops at its own nesting limit (1000) when its scanner's look-ahead for a simple key runs past
# ours, as in `[[[[...`: one message for one problem, whichever parser saw it first.
_LIBYAML_DEPTH = "exceeded maximum nesting depth"


def _run(text: str, single_data: bool) -> Any:
    loader = _BoundedLoader(text)
    try:
        with paused_gc():
            return loader.get_single_data() if single_data else loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        if exc.problem != _LIBYAML_DEPTH:
            raise
        raise yaml.composer.ComposerError(
            None, None, f"nested deeper than {MAX_DEPTH} levels", exc.problem_mark
        ) from None
    finally:
        loader.dispose()
