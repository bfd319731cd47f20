"""The layer contract's own guards: every module is classified, and no import cycle exists.

`lint-imports` (in `make test`) enforces the direction of the layers declared in pyproject.toml; these tests
keep that declaration honest as modules are added.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import tomllib

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = {"preflight.app", "preflight.cli", "preflight.demo", "preflight.docs", "preflight.serve"}
LINKED = {"preflight.checks", "preflight.cloud", "preflight.reports"}


def _contracts() -> list[dict[str, object]]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = doc["tool"]["importlinter"]["contracts"]
    return contracts


def test_preflight_holds_only_the_application_layer_the_engine_and_the_linked_folders() -> None:
    """The engine is a folder rule: a new module goes into preflight/engine/ (or is application code)."""
    engine = next(c for c in _contracts() if str(c["name"]).startswith("The engine"))
    assert engine["source_modules"] == ["preflight.engine"]
    found = {
        f"preflight.{p.stem}" for p in (ROOT / "preflight").iterdir() if p.suffix == ".py" and p.stem != "__init__"
    }
    found |= {f"preflight.{p.name}" for p in (ROOT / "preflight").iterdir() if (p / "__init__.py").exists()}
    unclassified = found - {"preflight.engine"} - APPLICATION - LINKED
    assert not unclassified, f"move these into preflight/engine/, or add them to APPLICATION: {unclassified}"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return out


def test_no_import_cycle() -> None:
    graph = grimp.build_graph("preflight", "preflight_lab")
    assert "preflight.checks.broker" in graph.modules, "the linked folders must be part of the graph"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]
