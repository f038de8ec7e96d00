"""The one way pulsed writes and reads a moment: UTC, RFC 3339, ``Z``.

Moments are POSIX seconds (floats) everywhere inside pulsed; text appears only
here. The heartbeat and every operator-facing time use whole seconds
(``2026-11-29T05:42:28Z``), log lines milliseconds, the state file microseconds
(so a due time survives a restart exactly), and a file name the compact form.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

Precision = Literal["s", "ms", "us"]
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(moment: float, precision: Precision = "s") -> str:
    """``2026-11-29T05:42:28Z``; ``.123Z`` or ``.123456Z`` with a finer precision."""
    if precision == "s":
        return datetime.fromtimestamp(int(moment), timezone.utc).strftime(_SECONDS)
    text = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[:-3] if precision == "ms" else text) + "Z"


def maybe(moment: float | None) -> str | None:
    """:func:`rfc3339`, passing ``None`` through."""
    return None if moment is None else rfc3339(moment)


def compact(moment: float) -> str:
    """``20261129T054228Z``: for file names."""
    return datetime.fromtimestamp(int(moment), timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def parse(text: str) -> float:
    """Any RFC 3339 time with a zone (``Z`` or an offset); ``ValueError`` otherwise."""
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError("is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError("has no time zone")
    return moment.timestamp()
