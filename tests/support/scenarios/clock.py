"""The clock (contract §5): a state from the future or the distant past, and a wall clock
that is set while the daemon sleeps.

Through the process: a ``last_success`` a day ahead is a clock that went back (a
warning, a heartbeat now); one years old, or a ``next_due`` decades ahead, never
silences the shop; one 4 minutes ahead is within tolerance and respected; a bot
identity dated in the future is fetched again.

On an injected clock (the real loop, state and schedule; only sleeping is
simulated, on the monotonic clock as the daemon does): the wall clock is set back
or forward by minutes, an hour, a week while the daemon sleeps. In real (monotonic)
time no two heartbeats are further apart than one interval, and none come closer
than one interval less what §5's schedule itself allows: a clock set forward by at
most the grace keeps the hour on the wall clock (the next heartbeat is due at the
previous due time plus the interval, so that gap is shorter by the setting), and a
new schedule starts from the heartbeat's timestamp, which names whole seconds (up to
1 s shorter).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import pytest

from pulsed import _state as st
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._notify import Notifier
from pulsed._schedule import FUTURE_TOLERANCE, grace
from tests.support.lab import BOT, Lab
from tests.support.loop import Clocks, fixed_facts, loop_config, stepped
from tests.support.process import stamp

HOUR = 3600.0
DAY = 86400.0


def check_state_from_another_time(lab: Lab, case: str) -> dict[str, Any]:
    """``pulsed once`` on a state whose times are off as ``case`` says; then ``once`` again."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, case)
    now = time.time()
    identity = rig.identity()
    due = True
    if case == "last-success-a-day-ahead":
        state = st.State(last_success=now + DAY, next_due=now + DAY + HOUR, identity=identity)
    elif case == "last-success-years-ago":
        old = now - 7 * 365 * DAY
        state = st.State(last_success=old, next_due=old + HOUR, identity=identity)
    elif case == "next-due-decades-ahead":
        state = st.State(
            last_success=now - 2 * HOUR, next_due=now + 60 * 365 * DAY, identity=identity
        )
    elif case == "last-success-4-minutes-ahead":
        ahead = now + FUTURE_TOLERANCE - 60
        state = st.State(last_success=ahead, next_due=ahead + HOUR, identity=identity)
        due = False
    elif case == "identity-fetched-a-day-ahead":
        state = st.State(last_success=now - 2 * HOUR, identity=rig.identity(fetched_at=now + DAY))
    else:
        raise ValueError(case)
    rig.seed(state)
    first = rig.run("once")
    assert first.code == 0, first.err
    future = first.named("state.clock_future")
    assert bool(future) == (case == "last-success-a-day-ahead")
    if not due:
        (skipped,) = first.named("heartbeat.skipped")
        assert stamp(skipped["next_due"]) == pytest.approx((state.last_success or 0) + HOUR, abs=1)
        assert receiver.server.requests == []
        return {"sent": 0, "clock_went_back": bool(future)}
    assert len(first.named("heartbeat.sent")) == 1
    after = rig.read_state()
    assert abs(stamp(after["last_success"]) - time.time()) < 30, "the new success is now"
    assert HOUR - 5 <= stamp(after["next_due"]) - stamp(after["last_success"]) <= HOUR
    if case == "identity-fetched-a-day-ahead":  # a future fetch time is stale: fetch again
        (failed,) = first.named("identity.failed")
        assert failed["kept"] == BOT and rig.dumps("child")
    if case not in ("last-success-a-day-ahead", "last-success-years-ago"):
        return {"sent": 1, "clock_went_back": bool(future)}
    # And now it is not due: the second run sends nothing.
    second = rig.run("once")
    assert second.code == 0 and second.named("heartbeat.skipped"), second.err
    assert len(receiver.unique_accepted) == 1
    return {"sent": 1, "clock_went_back": bool(future)}


CASES = [
    "last-success-a-day-ahead",
    "last-success-years-ago",
    "next-due-decades-ahead",
    "last-success-4-minutes-ahead",
    "identity-fetched-a-day-ahead",
]


class Recorder:
    """A sender that always succeeds and notes the monotonic time of each heartbeat."""

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.sent_mono: list[float] = []

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        self.sent_mono.append(self.clocks.mono)
        return Delivered(status=200, attempts=1, elapsed=0.01)


async def run_with_jumps(state_dir: Path, jumps: Mapping[int, float], until: float) -> list[float]:
    """Run the real loop until ``until`` monotonic seconds; at the n-th sleep, set the wall
    clock by ``jumps[n]`` seconds. Return the monotonic times of the heartbeats."""
    clocks = Clocks()
    sender = Recorder(clocks)
    cycle = Cycle(
        loop_config(state_dir),
        st.StateStore(state_dir),
        st.State(),
        writable=True,
        environ={},
        wall=lambda: clocks.wall,
        rng=random.Random(5),
        collect=fixed_facts,
    )
    supervisor = stepped(cycle, sender, Notifier(None), clocks, until=until, jumps=jumps)
    await supervisor.run()
    return sender.sent_mono


JUMPS = {
    "back-10-min": -600.0,
    "back-30-min": -1800.0,
    "back-50-min": -3000.0,
    "back-an-interval-and-4-min": -(HOUR + 240),
    "back-a-day": -DAY,
    "forward-2-min": 120.0,
    "forward-30-min": 1800.0,
    "forward-a-week": 7 * DAY,
}


def shortest_gap(jump: float) -> float:
    """The shortest real-time gap §5 allows after the wall clock is set by ``jump`` during
    that gap's sleep: the whole setting when it is forward by at most the grace (the
    schedule keeps the wall clock's hour), else up to 1 s (a new schedule from a
    timestamp in whole seconds)."""
    return HOUR - (jump if 0 < jump <= grace(HOUR) else 0.0) - 1.0


def check_wall_clock_jump(state_dir: Path, jump: float) -> list[float]:
    """Gaps, in real time, between heartbeats when the clock is set at the 2nd sleep."""
    sent = anyio.run(run_with_jumps, state_dir, {2: jump}, 6 * HOUR + 1)
    gaps = [b - a for a, b in pairwise(sent)]
    assert len(sent) >= 6, sent
    # Whole seconds on both clocks here, so each gap is exact: the hour, or the hour
    # less a forward setting the schedule absorbs (within the grace).
    expected = [shortest_gap(jump) + 1.0 if n == 2 else HOUR for n in range(len(gaps))]
    assert gaps == pytest.approx(expected, abs=1e-6), f"{gaps} != {expected}"
    return gaps


def check_random_jumps(state_dir: Path, seed: int) -> int:
    """One to three settings of the wall clock, by minutes to days either way, at random
    sleeps of a 12-hour run; return how many heartbeats it sent."""
    rng = random.Random(seed)
    jumps = {
        rng.randint(1, 20): rng.choice([-1.0, 1.0]) * rng.choice([60.0, HOUR, DAY]) * rng.random()
        for _ in range(rng.randint(1, 3))
    }
    sent = anyio.run(run_with_jumps, state_dir, jumps, 12 * HOUR + 1)
    gaps = [b - a for a, b in pairwise(sent)]
    assert len(sent) == 13, (jumps, gaps)
    # The n-th sleep is the n-th gap's: a setting made then can shorten only that gap.
    for n, gap in enumerate(gaps):
        assert shortest_gap(jumps.get(n, 0.0)) - 1e-6 <= gap <= HOUR + 1e-6, (n, jumps, gaps)
    return len(sent)
