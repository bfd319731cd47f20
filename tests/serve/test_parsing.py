"""The small parsers of `serve`: the scrape deadline, --listen and durations."""

from __future__ import annotations

import click
import pytest

from preflight.cli import Duration
from preflight.serve.command import parse_listen
from preflight.serve.probe import DEFAULT_TIMEOUT_S, MIN_TIMEOUT_S, deadline_from


@pytest.mark.parametrize(
    ("header", "margin", "cap", "want"),
    [
        ("10", 0.5, 60.0, 9.5),  # the scrape's timeout minus the margin
        ("10", 0.5, 4.0, 4.0),  # capped by the cluster budget
        (None, 0.5, 60.0, DEFAULT_TIMEOUT_S - 0.5),  # no header: a default scrape timeout
        ("soon", 0.5, 60.0, DEFAULT_TIMEOUT_S - 0.5),
        ("nan", 0.5, 60.0, DEFAULT_TIMEOUT_S - 0.5),
        ("-3", 0.5, 60.0, DEFAULT_TIMEOUT_S - 0.5),
        ("0.2", 0.5, 60.0, MIN_TIMEOUT_S),  # never less than the least a probe is given
    ],
)
def test_the_probe_deadline_comes_from_the_scrape(header: str | None, margin: float, cap: float, want: float) -> None:
    assert deadline_from(header, margin, cap) == pytest.approx(want)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        (":9464", ("0.0.0.0", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_listen_addresses(text: str, want: tuple[str, int]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["9464", "host", "::1:9464", "[::1]9464", "h:99999", "h:-1", "h:port"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1m30s", 90.0), ("1.5m", 90.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert Duration(1, 86400).convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 m", "m5", "5mm", "0", "2d", "inf", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(click.BadParameter):
        Duration(1, 86400).convert(text, None, None)
