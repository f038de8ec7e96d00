"""When the next heartbeat is due: pure decisions over the persisted state.

Nothing here reads a clock or draws a random number by itself; the caller passes
``now`` (UTC epoch seconds) and a :class:`random.Random`. The daemon, ``once`` and
``status`` all ask these functions, so they agree on what "due" means.

The back-off after failures follows contract §4: one retry after 2–10 minutes
(never more than one interval), then one interval ±10 %; a ``Retry-After`` too
long for the 2 s budget sets the next try instead, clamped to 60 s … interval.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FUTURE_TOLERANCE = 300.0
FIRST_RETRY_MIN = 120.0
FIRST_RETRY_MAX = 600.0
JITTER = 0.10
RETRY_AFTER_MIN = 60.0
# A pending body older than this is not re-sent: the receiver rejects timestamps
# more than 300 s off, and a margin covers clock differences and the send itself.
RESEND_WINDOW = 240.0


@dataclass(frozen=True, slots=True)
class Due:
    """When to send, and why it is not simply ``last_success + interval``."""

    at: float
    clock_went_back: bool = False


def due_at(
    last_success: float | None,
    next_due: float | None,
    now: float,
    interval: float,
) -> Due:
    """The moment the next heartbeat may be sent.

    ``last_success + interval`` is the floor: no start, restart or reload sends
    earlier. A persisted ``next_due`` (set by a back-off) may push it later, but
    only as far as a back-off could have: a value beyond ``now`` plus the longest
    back-off is a clock that went back, and is ignored. A ``last_success`` more
    than 5 minutes in the future also means the clock went back: it counts as
    none, and the heartbeat is due now.
    """
    if last_success is not None and last_success > now + FUTURE_TOLERANCE:
        return Due(at=now, clock_went_back=True)
    floor = now if last_success is None else last_success + interval
    longest = interval * (1 + JITTER) + FUTURE_TOLERANCE
    if next_due is not None and next_due <= now + longest:
        return Due(at=max(floor, next_due))
    return Due(at=floor)


def after_success(now: float, interval: float) -> float:
    return now + interval


def after_failure(
    failures_in_a_row: int,
    now: float,
    interval: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Next try after the ``failures_in_a_row``-th failure in a row (1 for the first)."""
    if retry_after is not None:
        # An interval shorter than 60 s (tests, demos) caps the wait too: never
        # more than one interval, as for every other back-off.
        return now + min(max(retry_after, min(RETRY_AFTER_MIN, interval)), interval)
    if failures_in_a_row <= 1:
        return now + min(rng.uniform(FIRST_RETRY_MIN, FIRST_RETRY_MAX), interval)
    return now + interval * rng.uniform(1 - JITTER, 1 + JITTER)


def should_resend(pending_timestamp: float, now: float) -> bool:
    """Whether an interrupted delivery's body is still fresh enough to send again as is."""
    return abs(now - pending_timestamp) <= RESEND_WINDOW
