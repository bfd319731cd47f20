"""The one session shape (cloud/session.py): a read computes once, remembers a failure the same way as an
answer, re-raises it fresh, translates SDK errors, and counts calls per cloud."""

from __future__ import annotations

import pytest

from preflight.cloud import errors
from preflight.cloud.session import CloudSession
from preflight.engine.model import Stop, skip
from preflight.engine.runstate import CloudReads
from preflight.engine.settings import Settings


class ToySession(CloudSession):
    cloud = "toy"

    def translate(self, exc: Exception, call: str) -> errors.CloudError:
        return errors.Throttled(f"{call}: {exc}", call=call)


def test_a_failure_is_fetched_once_translated_and_raised_fresh_each_time() -> None:
    session = ToySession(Settings(), CloudReads(), ("acct", "region"))
    attempts: list[int] = []

    def fetch() -> str:
        attempts.append(1)
        session.count("things.List")
        raise RuntimeError("429 Too Many Requests")

    raised = []
    for _ in range(3):
        with pytest.raises(errors.Throttled) as exc:
            session.read(("things",), fetch, call="things.List")
        raised.append(exc.value)
    assert attempts == [1] and session.calls() == {"things.List": 1}
    assert raised[0] is not raised[1] and raised[0].message == "things.List: 429 Too Many Requests"


def test_answers_are_shared_by_sessions_of_one_scope_only() -> None:
    reads = CloudReads()
    one, same, other = (
        ToySession(Settings(), reads, ("a",)),
        ToySession(Settings(), reads, ("a",)),
        ToySession(Settings(), reads, ("b",)),
    )
    assert one.read(("k",), lambda: 1) == 1
    assert same.read(("k",), lambda: 2) == 1
    assert other.read(("k",), lambda: 3) == 3


def test_a_checks_final_answer_passes_through_and_is_not_remembered() -> None:
    session = ToySession(Settings(), CloudReads())

    def stop() -> str:
        raise Stop(skip("not applicable"))

    with pytest.raises(Stop):
        session.read(("k",), stop)
    assert session.read(("k",), lambda: "value") == "value"
