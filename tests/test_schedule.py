"""The schedule, on an injected clock and a seeded random source (contract §4, §5)."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from pulsed import _body
from pulsed import _schedule as sch
from pulsed import _state as st
from pulsed.verify import signature

HOUR = 3600.0
NOW = 1_800_000_000.0


def test_no_state_is_due_now() -> None:
    assert sch.due_at(None, None, NOW, HOUR).at == NOW


def test_due_is_last_success_plus_interval() -> None:
    assert sch.due_at(NOW - 10, NOW - 10 + HOUR, NOW, HOUR).at == NOW - 10 + HOUR


def test_a_short_persisted_next_due_never_pulls_the_heartbeat_forward() -> None:
    # e.g. written by a build with a shorter interval, or edited by hand
    assert sch.due_at(NOW - 10, NOW, NOW, HOUR).at == NOW - 10 + HOUR


def test_backoff_next_due_pushes_later() -> None:
    last = NOW - 2 * HOUR
    assert sch.due_at(last, NOW + 300, NOW, HOUR).at == NOW + 300


def test_last_success_slightly_in_future_is_trusted() -> None:
    assert sch.due_at(NOW + 200, None, NOW, HOUR).at == NOW + 200 + HOUR


def test_last_success_exactly_five_minutes_ahead_is_still_trusted() -> None:
    assert sch.due_at(NOW + 300, None, NOW, HOUR).at == NOW + 300 + HOUR


def test_last_success_far_in_future_counts_as_none() -> None:
    due = sch.due_at(NOW + 86400, NOW + 86400 + HOUR, NOW, HOUR)
    assert due.at == NOW
    assert due.clock_went_back


def test_next_due_beyond_any_backoff_is_ignored() -> None:
    last = NOW - 30
    assert sch.due_at(last, NOW + 10 * HOUR, NOW, HOUR).at == last + HOUR


def test_next_due_at_the_longest_backoff_is_honoured() -> None:
    # the longest back-off is one interval +10 % jitter, plus the 5 minutes of tolerance
    last = NOW - 30
    assert sch.due_at(last, NOW + 1.1 * HOUR + 300, NOW, HOUR).at == NOW + 1.1 * HOUR + 300


def test_next_due_a_second_beyond_the_longest_backoff_is_ignored() -> None:
    last = NOW - 30
    assert sch.due_at(last, NOW + 1.1 * HOUR + 301, NOW, HOUR).at == last + HOUR


def _on(at: float) -> sch.Due:
    return sch.Due(at)


def test_a_success_late_for_its_due_time_starts_a_schedule_from_its_heartbeat() -> None:
    due = _on(NOW - sch.grace(HOUR) - 1)
    assert sch.after_success(due, NOW - 2, NOW, HOUR, 0, random.Random(0)) == NOW - 2 + HOUR


@pytest.mark.parametrize("late", [0.0, 0.3, 359.0, 360.0])
def test_a_success_within_the_grace_of_its_due_time_keeps_the_schedule(late: float) -> None:
    due = _on(NOW - late)
    assert sch.after_success(due, NOW - 1, NOW, HOUR, 0, random.Random(0)) == NOW - late + HOUR


def test_a_success_before_its_due_time_forced_starts_a_schedule_from_the_2xx() -> None:
    got = sch.after_success(_on(NOW + 600), NOW - 0.7, NOW, HOUR, 0, random.Random(0))
    assert got == NOW + HOUR


def test_the_first_heartbeat_ever_starts_a_schedule_from_its_heartbeat() -> None:
    due = sch.due_at(None, None, NOW + 0.7, HOUR)
    assert due.fresh
    assert sch.after_success(due, NOW, NOW + 0.9, HOUR, 0, random.Random(0)) == NOW + HOUR


def test_a_clock_gone_back_has_no_schedule_to_keep_and_starts_from_the_2xx() -> None:
    due = sch.due_at(NOW + 86400, None, NOW, HOUR)
    assert due.fresh and due.clock_went_back
    assert sch.after_success(due, NOW - 0.7, NOW, HOUR, 0, random.Random(0)) == NOW + HOUR


@pytest.mark.parametrize(("interval", "grace"), [(HOUR, 360.0), (6 * HOUR, 900.0), (60.0, 6.0)])
def test_the_grace_is_a_tenth_of_the_interval_at_most_15_minutes(
    interval: float, grace: float
) -> None:
    assert sch.grace(interval) == grace


def test_the_first_success_after_failures_is_due_an_interval_plus_up_to_10_percent() -> None:
    delays = [
        sch.after_success(_on(NOW), NOW, NOW, HOUR, 3, random.Random(s)) - NOW for s in range(300)
    ]
    assert all(HOUR <= d <= 1.1 * HOUR for d in delays)
    assert max(delays) - min(delays) > 0.08 * HOUR  # spread, not a constant


def test_a_kept_schedule_is_due_before_last_success_plus_interval() -> None:
    last = NOW - HOUR + 0.3  # sent 0.3 s after the last due time, which next_due kept
    assert sch.due_at(last, NOW, NOW, HOUR).at == NOW


def test_a_next_due_short_of_the_grace_is_not_the_schedules_and_is_ignored() -> None:
    last = NOW - 10
    assert sch.due_at(last, last + HOUR - sch.grace(HOUR), NOW, HOUR).at == last + HOUR - 360
    assert sch.due_at(last, last + HOUR - sch.grace(HOUR) - 1, NOW, HOUR).at == last + HOUR


def cron_day(period: int, startup: tuple[float, float], seed: int) -> list[float]:
    """When ``once`` sent over three simulated days of cron every ``period`` minutes.

    Cron starts the job on the minute; ``once`` decides ``startup`` seconds later (a
    random share of it: Python's start, the config, the state), stamps the body a
    moment after, and its delivery takes a moment more.
    """
    rng = random.Random(seed)
    last: float | None = None
    next_due: float | None = None
    sent: list[float] = []
    for tick in range(3 * 86400 // (period * 60)):
        now = NOW + tick * period * 60 + rng.uniform(*startup)
        due = sch.due_at(last, next_due, now, HOUR)
        if now < due.at:
            continue
        sent.append(now)
        stamp = float(int(now + rng.uniform(0.0, 0.1)))
        last = stamp + 0.1 + rng.uniform(0.0, 0.2)
        next_due = sch.after_success(due, stamp, last, HOUR, 0, rng)
    return sent


@pytest.mark.parametrize("period", [1, 2, 5, 7, 10, 15])
@pytest.mark.parametrize("startup", [(0.05, 0.8), (0.3, 2.5)], ids=["quick", "slow-host"])
@pytest.mark.parametrize("seed", range(3))
def test_cron_every_p_minutes_keeps_the_hour(
    period: int, startup: tuple[float, float], seed: int
) -> None:
    sent = cron_day(period, startup, seed)
    days = [sum(1 for t in sent if NOW + d * 86400 <= t < NOW + (d + 1) * 86400) for d in range(3)]
    assert all(23 <= n <= 25 for n in days), days
    # interval − P apart at the least, as cron's ticks are; a start that takes longer one
    # hour than the next can bring two that close by the difference, and no more.
    spread = startup[1] - startup[0]
    assert min(b - a for a, b in pairwise(sent)) >= HOUR - period * 60 - spread


@pytest.mark.parametrize("seed", range(200))
def test_first_failure_retries_after_2_to_10_minutes(seed: int) -> None:
    delay = sch.after_failure(1, NOW, HOUR, random.Random(seed)) - NOW
    assert 120 <= delay <= 600


def test_first_retry_never_exceeds_one_interval() -> None:
    for seed in range(100):
        assert sch.after_failure(1, NOW, 60, random.Random(seed)) - NOW <= 60


@pytest.mark.parametrize("failures", [2, 3, 10])
def test_later_failures_wait_one_interval_plus_minus_ten_percent(failures: int) -> None:
    delays = [sch.after_failure(failures, NOW, HOUR, random.Random(s)) - NOW for s in range(300)]
    assert all(0.9 * HOUR <= d <= 1.1 * HOUR for d in delays)
    # randomised, not a constant: the spread covers most of the ±10 % band
    assert max(delays) - min(delays) > 0.15 * HOUR


def test_the_random_source_decides() -> None:
    a = sch.after_failure(1, NOW, HOUR, random.Random(1))
    b = sch.after_failure(1, NOW, HOUR, random.Random(2))
    assert a != b
    assert a == sch.after_failure(1, NOW, HOUR, random.Random(1))


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(30, 60), (120, 120), (7200, HOUR)],
)
def test_retry_after_sets_the_next_try_clamped(retry_after: float, expected: float) -> None:
    got = sch.after_failure(1, NOW, HOUR, random.Random(0), retry_after=retry_after)
    assert got - NOW == expected


def test_retry_after_with_an_interval_under_a_minute_waits_one_interval() -> None:
    assert sch.after_failure(1, NOW, 5, random.Random(0), retry_after=30) - NOW == 5


def test_simulated_outage_never_silent_longer_than_interval_plus_backoff() -> None:
    """A one-day outage then recovery: gaps between tries stay within the contract."""
    rng = random.Random(7)
    now, failures, tries = NOW, 0, []
    while now < NOW + 86400:
        tries.append(now)
        failures += 1
        now = sch.after_failure(failures, now, HOUR, rng)
    gaps = [b - a for a, b in pairwise(tries)]
    assert 120 <= gaps[0] <= 600
    assert all(0.9 * HOUR <= g <= 1.1 * HOUR for g in gaps[1:])


@pytest.mark.parametrize(
    ("age", "resend"),
    [(0, True), (239, True), (240, True), (241, False), (-100, True), (-240, True), (-400, False)],
)
def test_interrupted_body_is_resent_only_while_fresh(age: float, resend: bool) -> None:
    assert sch.should_resend(NOW - age, NOW) is resend


# --- the decision over a whole state ---------------------------------------------------


def _pending(body: bytes, at: float, secret: str = "s") -> st.Pending:
    return st.Pending(body.decode(), at, signature(secret, body))


BODY = _body.encode(
    _body.Heartbeat("shop.example", None, _body.ShopFacts(None, "1.4.0", None, None), "x")
)


def test_an_interrupted_delivery_is_settled_at_once_even_before_it_is_due() -> None:
    state = st.State(last_success=NOW - 60, pending=_pending(BODY, NOW - 1))
    assert sch.due(state, NOW, HOUR).at == NOW - 60 + HOUR
    assert sch.wait(state, NOW, HOUR) == 0.0


def test_wait_is_the_time_left_and_never_negative() -> None:
    assert sch.wait(st.State(last_success=NOW - 60), NOW, HOUR) == HOUR - 60
    assert sch.wait(st.State(last_success=NOW - 2 * HOUR), NOW, HOUR) == 0.0


def test_a_shop_in_back_off_waits_for_the_next_try_its_state_holds() -> None:
    state = st.State(last_success=NOW - 2 * HOUR, next_due=NOW + 300, consecutive_failures=1)
    assert sch.wait(state, NOW, HOUR) == 300


def test_status_shows_the_schedule_when_it_knows_the_interval() -> None:
    state = st.State(last_success=NOW - 60, next_due=NOW + 5)
    assert sch.shown_due(state, NOW, HOUR) == NOW - 60 + HOUR
    assert sch.shown_due(state, NOW, None) == NOW + 5


def test_a_fresh_signed_body_of_this_shop_is_resent_with_its_heartbeat() -> None:
    decided = sch.resume(_pending(BODY, NOW - 3), "shop.example", "s", NOW)
    assert decided == sch.Resume("resend", _body.decode(BODY))


@pytest.mark.parametrize(
    ("kept", "domain", "secret", "verdict"),
    [
        (_pending(BODY, NOW - 3), "other.example", "s", "foreign"),
        (st.Pending("{junk", NOW - 3, "sha256=0"), "shop.example", "s", "foreign"),
        (st.Pending(BODY.decode(), NOW - 3, None), "shop.example", "s", "unsigned"),
        (_pending(BODY, NOW - 3, secret="other"), "shop.example", "s", "unsigned"),
        (_pending(BODY, NOW - sch.RESEND_WINDOW - 1), "shop.example", "s", "stale"),
        (_pending(BODY, NOW + sch.RESEND_WINDOW + 1), "shop.example", "s", "stale"),
    ],
)
def test_an_interrupted_body_that_may_not_go_again_is_dropped_and_says_why(
    kept: st.Pending, domain: str, secret: str, verdict: sch.Verdict
) -> None:
    assert sch.resume(kept, domain, secret, NOW) == sch.Resume(verdict)


def test_a_body_exactly_at_the_edge_of_the_window_is_still_resent() -> None:
    kept = _pending(BODY, NOW - sch.RESEND_WINDOW)
    assert sch.resume(kept, "shop.example", "s", NOW).verdict == "resend"
