"""One owner of cancellation: anyone may ask the run to stop, only the runner writes what a request does."""

from __future__ import annotations

import ast
import signal
from pathlib import Path

import pytest

from preflight.engine.cancel import Cancellation, Interrupted

ROOT = Path(__file__).resolve().parents[2]
RUNNER_ONLY = {"poll_from_now", "second_request_does"}
STATE = {"_signum", "_requested", "_raising", "_on_second"}
SOURCES = ["preflight", "checks", "cloud", "reports", "preflight_lab"]


def _writes(path: Path) -> list[str]:
    """Calls of the runner-only methods, and any touch of the private state, outside its own module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and (node.attr in RUNNER_ONLY or node.attr in STATE):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    return found


def test_no_module_but_the_runner_writes_the_cancellation_state() -> None:
    files = [
        p for d in SOURCES for p in (ROOT / d).rglob("*.py") if p.resolve() != (ROOT / "preflight/engine/cancel.py")
    ]
    writers = {str(p.relative_to(ROOT)) for p in files if _writes(p)}
    assert writers == {"preflight/engine/runner.py"}, [w for p in files for w in _writes(p)]


def test_asking_raises_once_while_raising_then_a_second_ask_runs_the_second_action() -> None:
    seconds: list[int] = []
    cancel = Cancellation(seconds.append)
    with pytest.raises(Interrupted):
        cancel.ask_to_stop(signal.SIGTERM)
    assert cancel.is_set() and cancel.exit_code == 128 + signal.SIGTERM and cancel.name == "SIGTERM"
    cancel.ask_to_stop(signal.SIGINT)
    assert seconds == [128 + signal.SIGTERM] and cancel.signum == signal.SIGTERM


def test_once_the_runner_polls_a_request_is_recorded_not_raised() -> None:
    cancel = Cancellation(lambda code: None)
    cancel.poll_from_now()
    cancel.ask_to_stop(signal.SIGINT)
    assert cancel.is_set() and cancel.signum == signal.SIGINT
