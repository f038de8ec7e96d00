"""Hostile configuration (contract §1), the fast suite's share of
:mod:`tests.support.scenarios.config`: what cannot work is one line and exit 78; what is
risky starts, with warnings."""

from __future__ import annotations

import pytest

from tests.support.lab import Lab
from tests.support.scenarios.config import BAD, check_bad, check_risky_but_workable

# The fast suite's share (tests/test_config.py checks every value in-process); `make soak`
# runs every case as a process.
FAST_BAD = [
    "garbage-bytes",
    "broken-toml",
    "interval-absurd",
    "api-host-a-number",
    "http-with-loopback-userinfo",
    "secret-whitespace",
    "secret-padded",
    "token-malformed",
]


@pytest.mark.parametrize("name", FAST_BAD)
def test_a_configuration_that_cannot_work_is_one_line_and_exit_78(lab: Lab, name: str) -> None:
    figures = check_bad(lab, name)
    assert (figures["code"], figures["stderr_lines"]) == (78, 1)
    assert figures["setting"] == BAD[name].setting


def test_risky_but_workable_configuration_starts_with_warnings(lab: Lab) -> None:
    figures = check_risky_but_workable(lab)
    assert figures["heartbeats"] == 1  # it started and sent
    (unknown,) = figures["unknown_warnings"]
    assert "pulse.api_hots" in unknown
    assert len(figures["readable_warnings"]) == 1
