"""Kills, restarts and a second instance (contract §5, §8), the fast suite's share of
:mod:`tests.support.scenarios.restarts`: small counts here, large ones in ``make soak``."""

from __future__ import annotations

from tests.support.lab import Lab
from tests.support.scenarios.restarts import crash_consistency, restart_storm, two_instances


def test_sigkill_at_random_instants_never_breaks_or_rewinds_the_state(lab: Lab) -> None:
    figures = crash_consistency(lab, daemons=2, kills=3, seed=1)
    assert figures.kills == 6
    assert figures.writes >= figures.heartbeats >= 2


def test_a_restart_storm_within_an_interval_stores_one_heartbeat(lab: Lab) -> None:
    figures = restart_storm(lab, restarts=6, seed=3)
    assert figures.restarts == 6 and figures.unique == 1
    assert figures.sigterm and figures.sigkill


def test_two_instances_started_together_one_refuses_and_nothing_doubles(lab: Lab) -> None:
    figures = two_instances(lab, rounds=1)
    assert figures.refused == 1 and figures.via_symlink == 1 and figures.once_races == 1
