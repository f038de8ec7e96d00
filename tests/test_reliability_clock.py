"""The clock (contract §5), the fast suite's share of :mod:`tests.support.scenarios.clock`:
a state from the future or the distant past through the process, and the wall clock set
while the daemon sleeps, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert min(gaps) >= HOUR - 1e-6, f"a double ping: {gaps}"
    assert max(gaps) <= HOUR + 1e-6, f"a silence longer than the interval: {gaps}"


def test_random_settings_of_the_wall_clock(tmp_path: Path) -> None:
    for seed in range(5):
        folder = tmp_path / str(seed)
        folder.mkdir()
        # 12 hours and 1 s on the monotonic clock: the first heartbeat and one an hour.
        assert check_random_jumps(folder, seed) == 13
