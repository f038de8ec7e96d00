"""The one time format: UTC, RFC 3339, Z, at the precision each use needs."""

from __future__ import annotations

import pytest

from pulsed import _timefmt as tf

MOMENT = 1_795_930_948.123456


def test_whole_seconds_truncate_and_end_in_z() -> None:
    assert tf.rfc3339(MOMENT) == "2026-11-29T05:42:28Z"
    # Within a microsecond of the next second: a datetime rounds it up, a second truncates.
    assert tf.rfc3339(1_795_930_948.9999996) == "2026-11-29T05:42:28Z"


def test_milliseconds_and_microseconds() -> None:
    assert tf.rfc3339(MOMENT, "ms") == "2026-11-29T05:42:28.123Z"
    assert tf.rfc3339(MOMENT, "us") == "2026-11-29T05:42:28.123456Z"


def test_maybe_passes_none_through() -> None:
    assert tf.maybe(None) is None
    assert tf.maybe(MOMENT) == "2026-11-29T05:42:28Z"


def test_compact_is_for_file_names() -> None:
    assert tf.compact(MOMENT) == "20261129T054228Z"
    assert tf.compact(tf.parse("0999-06-01T12:00:00Z")) == "09990601T120000Z"


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


@pytest.mark.parametrize(
    ("text", "precision"),
    [
        ("0001-01-01T00:00:00Z", "s"),
        ("0999-06-01T12:00:00.250Z", "ms"),
        ("0042-02-28T23:59:59.500000Z", "us"),  # halves: exact in a float of any year
        ("9999-12-31T23:59:59.500000Z", "us"),
    ],
)
def test_every_year_is_written_with_four_digits_and_reads_back(
    text: str, precision: tf.Precision
) -> None:
    # glibc's strftime writes the year 999 as "999": no RFC 3339 reader takes it back.
    assert tf.rfc3339(tf.parse_us(text) / 1_000_000, precision) == text


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-11-29T05:42:28.123456Z", 1_795_930_948_123_456),
        ("2026-11-29T07:42:28.1234567+02:00", 1_795_930_948_123_456),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),  # a float rounds it up
        ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
    ],
)
def test_parse_us_is_exact_to_the_microsecond_in_any_year(text: str, micros: int) -> None:
    assert tf.parse_us(text) == micros
    assert tf.parse(text) == micros / 1_000_000  # what datetime.timestamp() says


def test_parse_us_refuses_what_parse_refuses() -> None:
    with pytest.raises(ValueError, match=r"^is not an RFC 3339 time$"):
        tf.parse_us("2026-13-29T05:42:28Z")
    with pytest.raises(ValueError, match=r"^has no time zone$"):
        tf.parse_us("2026-11-29T05:42:28")
