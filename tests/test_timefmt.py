"""The one time format: UTC, RFC 3339, Z, at the precision each use needs."""

from __future__ import annotations

import pytest

from pulsed import _timefmt as tf

MOMENT = 1_795_930_948.123456


def test_whole_seconds_truncate_and_end_in_z() -> None:
    assert tf.rfc3339(MOMENT) == "2026-11-29T05:42:28Z"


def test_milliseconds_and_microseconds() -> None:
    assert tf.rfc3339(MOMENT, "ms") == "2026-11-29T05:42:28.123Z"
    assert tf.rfc3339(MOMENT, "us") == "2026-11-29T05:42:28.123456Z"


def test_maybe_passes_none_through() -> None:
    assert tf.maybe(None) is None
    assert tf.maybe(MOMENT) == "2026-11-29T05:42:28Z"


def test_compact_is_for_file_names() -> None:
    assert tf.compact(MOMENT) == "20261129T054228Z"


@pytest.mark.parametrize(
    "text",
    ["2026-11-29T05:42:28.123456Z", "2026-11-29T07:42:28.123456+02:00"],
)
def test_parse_takes_z_or_an_offset(text: str) -> None:
    assert tf.parse(text) == pytest.approx(MOMENT)


def test_parse_refuses_a_time_without_a_zone() -> None:
    with pytest.raises(ValueError, match="zone"):
        tf.parse("2026-11-29T05:42:28")


def test_a_written_time_reads_back_exactly() -> None:
    assert tf.parse(tf.rfc3339(MOMENT, "us")) == pytest.approx(MOMENT, abs=1e-6)
