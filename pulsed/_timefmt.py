"""The one way pulsed writes and reads a moment: UTC, RFC 3339, ``Z``.

Moments are POSIX seconds (floats) everywhere inside pulsed; text appears only
here. The heartbeat and every operator-facing time use whole seconds
(``2026-11-29T05:42:28Z``), log lines milliseconds, the state file microseconds
(so a due time survives a restart exactly), and a file name the compact form.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Literal

Precision = Literal["s", "ms", "us"]
_TIMESPEC = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# RFC 3339's date-time (ASCII digits only), its zone left optional to be named as missing.
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def rfc3339(moment: float, precision: Precision = "s") -> str:
    """``2026-11-29T05:42:28Z``; ``.123Z`` or ``.123456Z`` with a finer precision.

    The year has its four digits whatever it is: ``strftime`` writes the year 999 as
    ``999`` on glibc, which no reader takes for RFC 3339, so a state holding such a
    time (a hand-edited one) was written back unreadable. ``isoformat`` pads it, and
    costs two thirds of ``strftime``'s CPU, up to five times at each save."""
    whole = int(moment) if precision == "s" else moment
    stamp = datetime.fromtimestamp(whole, timezone.utc).isoformat(timespec=_TIMESPEC[precision])
    return stamp.removesuffix("+00:00") + "Z"


def maybe(moment: float | None) -> str | None:
    """:func:`rfc3339`, passing ``None`` through."""
    return None if moment is None else rfc3339(moment)


def compact(moment: float) -> str:
    """``20261129T054228Z``: for file names; :func:`rfc3339` without its separators."""
    return rfc3339(moment).replace("-", "").replace(":", "")


def parse(text: str) -> float:
    """Any RFC 3339 time with a zone (``Z`` or an offset); ``ValueError`` otherwise."""
    # What datetime.timestamp() gives for it: the whole microseconds over 10**6.
    return parse_us(text) / 1_000_000


def parse_us(text: str) -> int:
    """:func:`parse` in whole microseconds, exact whatever the year (a float is not)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError("is not an RFC 3339 time")
    date, time, fraction, zone = m.groups(default="")
    if not zone:
        raise ValueError("has no time zone")
    # The one spelling every Python's fromisoformat reads (3.10's reads no other):
    # six digits of fraction, the zone as an offset. So one text is one moment on each.
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{date}T{time}.{fraction[:6]:0<6}{zone}")
    except ValueError:
        raise ValueError("is not an RFC 3339 time") from None
    return (moment - _EPOCH) // _MICROSECOND
