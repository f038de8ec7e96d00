"""Moments are written and read in UTC whatever the host's time zone, and a time that
cannot be read says why."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pulsed import _timefmt as tf

MOMENT = 1_795_000_000.25  # 2026-11-18T11:06:40.250Z


@pytest.fixture(autouse=True)
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # +05:45: no whole-hour slip hides
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("precision", "text"),
    [("s", "2026-11-18T11:06:40Z"), ("ms", "2026-11-18T11:06:40.250Z")],
)
def test_a_moment_is_written_in_utc_on_a_host_in_another_zone(precision: str, text: str) -> None:
    assert tf.rfc3339(MOMENT, precision) == text  # type: ignore[arg-type]


def test_a_file_names_moment_is_utc_on_a_host_in_another_zone() -> None:
    assert tf.compact(MOMENT) == "20261118T110640Z"


def test_a_time_that_cannot_be_read_says_so() -> None:
    with pytest.raises(ValueError, match=r"^is not an RFC 3339 time$"):
        tf.parse("yesterday")


def test_a_time_without_a_zone_says_so() -> None:
    with pytest.raises(ValueError, match=r"^has no time zone$"):
        tf.parse("2026-11-19T05:46:40")
