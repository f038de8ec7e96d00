"""The state folder when the disk misbehaves (contract §5), the fast suite's share of
:mod:`tests.support.scenarios.disk`: keep running, warn, lose nothing.

Mounting needs root with CAP_SYS_ADMIN; those cases are skipped without it.
"""

from __future__ import annotations

import pytest

from tests.support.lab import Lab, can_mount
from tests.support.scenarios.disk import (
    CORRUPT,
    SOAK_ONLY_CORRUPT,
    check_corrupt_state,
    check_file_size_limit,
    check_full_disk,
    check_read_only_state_dir,
    check_state_dir_cannot_be_created,
    check_state_file_is_a_directory,
)

needs_mount = pytest.mark.skipif(not can_mount(), reason="mounting needs root and CAP_SYS_ADMIN")


@needs_mount
def test_read_only_state_dir_keeps_running_and_warns_each_cycle(lab: Lab) -> None:
    figures = check_read_only_state_dir(lab)
    assert figures["heartbeats"] >= 3 and figures["warnings"] >= 3


@needs_mount
def test_full_file_system_keeps_running_and_recovers_when_space_returns(lab: Lab) -> None:
    figures = check_full_disk(lab)
    assert figures["sent"] >= 4  # two before the space returned, two after
    assert figures["rewritten_when_space_returned"]


def test_file_size_limit_keeps_running_and_warns(lab: Lab) -> None:
    figures = check_file_size_limit(lab)
    assert figures["sent"] >= 2 and figures["warnings"] >= 2


@needs_mount
def test_state_dir_that_cannot_be_created_stops_once_and_is_a_warning_when_forced(
    lab: Lab,
) -> None:
    figures = check_state_dir_cannot_be_created(lab)
    assert (figures["code"], figures["forced_code"], figures["heartbeats"]) == (75, 0, 1)
    assert "state.unwritable" in figures["warnings"]


@pytest.mark.parametrize("kind", [k for k in CORRUPT if k not in SOAK_ONLY_CORRUPT])
def test_corrupt_state_is_moved_aside_and_the_heartbeat_goes(lab: Lab, kind: str) -> None:
    figures = check_corrupt_state(lab, kind)
    assert figures["aside"] == CORRUPT[kind]
    assert "state.corrupt" in figures["warnings"]
    assert figures["heartbeats"] == 1


def test_state_file_that_is_a_directory_is_moved_aside(lab: Lab) -> None:
    figures = check_state_file_is_a_directory(lab)
    assert (figures["code"], figures["heartbeats"]) == (0, 1)
    assert "state.corrupt" in figures["warnings"]
