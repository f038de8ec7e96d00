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


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-29T05:42:28Z", 1_795_930_948.0),
        ("2026-11-29T05:42:28.1Z", 1_795_930_948.1),
        ("2026-11-29T05:42:28.12345Z", 1_795_930_948.12345),
        ("2026-11-29T05:42:28.1234567Z", 1_795_930_948.123456),
        ("2026-11-29t05:42:28z", 1_795_930_948.0),
        ("2026-11-29 05:42:28Z", 1_795_930_948.0),
        ("2026-11-29T00:00:28-05:42", 1_795_930_948.0),
    ],
)
def test_parse_reads_every_rfc_3339_spelling_alike_on_every_python(
    text: str, moment: float
) -> None:
    # Python 3.10's fromisoformat reads three or six digits of fraction and no "Z".
    assert tf.parse(text) == pytest.approx(moment, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "20261129T054228Z",  # ISO 8601's basic form: Python 3.11's fromisoformat reads it
        "2026-11-29T05:42Z",
        "2026-11-29T05:42:28.Z",
        "2026-11-29T05:42:28+0100",
        "2026-11-29T05:42:28+24:00",
        "2026-13-29T05:42:28Z",
        "\u0662026-11-29T05:42:28Z",  # a digit, but not an ASCII one
        "2026-11-29T05:42:28Z ",
    ],
)
def test_parse_refuses_what_is_not_rfc_3339(text: str) -> None:
    with pytest.raises(ValueError, match=r"^is not an RFC 3339 time$"):
        tf.parse(text)


def test_parse_refuses_a_time_without_a_zone() -> None:
    with pytest.raises(ValueError, match="zone"):
        tf.parse("2026-11-29T05:42:28")


def test_a_written_time_reads_back_exactly() -> None:
    assert tf.parse(tf.rfc3339(MOMENT, "us")) == pytest.approx(MOMENT, abs=1e-6)
