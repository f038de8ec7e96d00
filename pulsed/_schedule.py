"""The decision of a cycle: what is due, resume or start fresh, and the next due time.

Pure. Nothing here reads a clock or draws a random number by itself; the caller
passes ``now`` (UTC epoch seconds) and a :class:`random.Random`. The daemon,
``once`` and ``status`` all ask these functions, so they agree on what "due" means.

A success on time keeps the schedule (contract §5): one that comes at most a grace
period after its own due time makes the next one due a whole interval after that
due time, not after the success, so a timer or cron that runs ``once`` keeps the
hour instead of drifting by its period. The back-off after failures follows
contract §4: one retry after 2–10 minutes (never more than one interval), then one
interval ±10 %; a ``Retry-After`` too long for the 2 s budget sets the next try
instead, clamped to 60 s … interval. The first success after failures is due again
one interval plus 0–10 % later, so shops that recovered together spread out.
"""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass
from typing import Literal

from pulsed import _body
from pulsed._state import Pending, State
from pulsed.verify import signature

FUTURE_TOLERANCE = 300.0
FIRST_RETRY_MIN = 120.0
FIRST_RETRY_MAX = 600.0
JITTER = 0.10
# How late a success may come after its due time and still keep the schedule: 10 % of
# the interval, at most 15 minutes (a cron period is at most that).
GRACE_SHARE = 0.10
GRACE_MAX = 900.0
RETRY_AFTER_MIN = 60.0
# A pending body older than this is not re-sent: the receiver rejects timestamps
# more than 300 s off, and a margin covers clock differences and the send itself.
RESEND_WINDOW = 240.0


@dataclass(frozen=True, slots=True)
class Due:
    """When to send, and why it is not simply ``last_success + interval``.

    ``fresh`` when there is no schedule to keep: no success and no back-off yet, or
    a clock that went back; the heartbeat is then due now.
    """

    at: float
    clock_went_back: bool = False
    fresh: bool = False


def due_at(
    last_success: float | None,
    next_due: float | None,
    now: float,
    interval: float,
) -> Due:
    """The moment the next heartbeat may be sent.

    ``last_success + interval`` is the floor, less the grace that a success on time
    keeps (:func:`after_success`): no start, restart or reload sends earlier. A
    persisted ``next_due`` is the schedule when it lies between that and ``now`` plus
    the longest back-off; one beyond is a clock that went back, one short of it was
    not written by this schedule, and either is ignored. A ``last_success`` more
    than 5 minutes in the future also means the clock went back: it counts as
    none, and the heartbeat is due now.
    """
    if last_success is not None and last_success > now + FUTURE_TOLERANCE:
        return Due(at=now, clock_went_back=True, fresh=True)
    floor = now if last_success is None else last_success + interval
    longest = interval * (1 + JITTER) + FUTURE_TOLERANCE
    if next_due is not None and floor - grace(interval) <= next_due <= now + longest:
        return Due(at=next_due)
    return Due(at=floor, fresh=last_success is None)


def grace(interval: float) -> float:
    return min(interval * GRACE_SHARE, GRACE_MAX)


def after_success(
    due: Due, at: float, now: float, interval: float, failures_before: int, rng: random.Random
) -> float:
    """Next due after a 2xx at ``now`` for the heartbeat made at ``at`` (its timestamp's
    moment, whole seconds), which was ``due``.

    On time (at most the grace after its due time), the schedule is kept: one interval
    after that due time. Sent before its due time (``--force``, a clock set back) or
    after a clock went back, a new schedule starts from the 2xx. Later than the
    grace, or with no schedule yet, a new schedule starts from the heartbeat that
    succeeded: one interval after the moment it names. That moment, not the 2xx's,
    because it is whole seconds: ``once`` from cron decides a moment after the minute
    begins, and the tick one interval later must find the heartbeat due, not miss it
    by a fraction of a second and send a whole cron period late. The first success
    after ``failures_before`` failures spreads out instead: one interval plus a random
    0–10 % of it after the success, later and never earlier.
    """
    if failures_before:
        return now + interval * (1 + rng.uniform(0, JITTER))
    if due.clock_went_back or now < due.at:  # --force, or a clock set back: from the 2xx
        return now + interval
    if due.fresh or now > due.at + grace(interval):
        return at + interval
    return due.at + interval


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


def due(state: State, now: float, interval: float) -> Due:
    """:func:`due_at` of a shop's state."""
    return due_at(state.last_success, state.next_due, now, interval)


def shown_due(state: State, now: float, interval: float | None) -> float | None:
    """The due time ``status`` shows: the schedule's answer when the interval is known
    (the configuration loaded), else only what the state says."""
    return state.next_due if interval is None else due(state, now, interval).at


def wait(state: State, now: float, interval: float) -> float:
    """Seconds until the next cycle; 0 when due, or when a delivery was cut short: an
    interrupted body is settled (re-sent or dropped) at once, whatever the schedule."""
    if state.pending is not None:
        return 0.0
    return max(due(state, now, interval).at - now, 0.0)


Verdict = Literal["resend", "foreign", "unsigned", "stale"]


@dataclass(frozen=True, slots=True)
class Resume:
    """What to do with an interrupted delivery: ``resend`` its body as it is (with the
    heartbeat it holds), or drop it because it is ``foreign`` (not a heartbeat of this
    shop), ``unsigned`` (pulsed did not sign it with this secret) or ``stale``."""

    verdict: Verdict
    beat: _body.Heartbeat | None = None


def resume(pending: Pending, domain: str, secret: str, now: float) -> Resume:
    """Whether the body of an interrupted delivery may still be sent as it is."""
    body = pending.body.encode("utf-8")
    beat = _body.decode(body)
    if beat is None or beat.domain != domain:
        return Resume("foreign")
    kept = pending.signature
    if kept is None or not hmac.compare_digest(signature(secret, body), kept):
        return Resume("unsigned")
    if not should_resend(pending.timestamp, now):
        return Resume("stale")
    return Resume("resend", beat)
