"""The clock (contract §5), the fast suite's share of :mod:`tests.support.scenarios.clock`:
a state from the future or the distant past through the process, and the wall clock set
while the daemon sleeps, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsed._schedule import grace
from tests.support.lab import Lab
from tests.support.scenarios.clock import (
    CASES,
    HOUR,
    JUMPS,
    check_random_jumps,
    check_state_from_another_time,
    check_wall_clock_jump,
)


@pytest.mark.parametrize("case", [c for c in CASES if c != "last-success-4-minutes-ahead"])
def test_a_state_from_another_time(lab: Lab, case: str) -> None:
    figures = check_state_from_another_time(lab, case)
    # Whatever the times say, the shop is not silenced: a heartbeat goes now.
    assert figures["sent"] == 1
    assert figures["clock_went_back"] == (case == "last-success-a-day-ahead")


@pytest.mark.parametrize("name", list(JUMPS))
def test_wall_clock_set_while_asleep_neither_doubles_nor_silences(
    tmp_path: Path, name: str
) -> None:
    gaps = check_wall_clock_jump(tmp_path, JUMPS[name])
    assert max(gaps) <= HOUR + 1e-6, f"a silence longer than the interval: {gaps}"
    # Only a forward setting within the grace shortens a gap (the wall clock's hour kept).
    shortened = JUMPS[name] if 0 < JUMPS[name] <= grace(HOUR) else 0.0
    assert min(gaps) == pytest.approx(HOUR - shortened), f"a double ping: {gaps}"


# 0-4, and two that set the clock forward within the grace (2026112900001: 9.2 s) and by
# hours and a fraction of a second (2026112900008: 43531.04 s), the cases §5's schedule
# keeps on the wall clock's hour and restarts from a timestamp in whole seconds.
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 2026112900001, 2026112900008])
def test_random_settings_of_the_wall_clock(tmp_path: Path, seed: int) -> None:
    # 12 hours and 1 s on the monotonic clock: the first heartbeat and one an hour.
    assert check_random_jumps(tmp_path, seed) == 13
