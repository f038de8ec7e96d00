"""Receiver faults through the whole daemon (contract §4), the fast suite's share.

The scenarios live in :mod:`tests.support.scenarios.faults` (``make soak`` runs all of
them, in rounds); each test here runs one and asserts the behaviour its name promises on
what the scenario observed.
"""

from __future__ import annotations

import pytest

from pulsed._delivery import BUDGET
from pulsed._schedule import FIRST_RETRY_MAX, FIRST_RETRY_MIN, JITTER
from tests.support.lab import Lab
from tests.support.scenarios.faults import (
    FAULTS,
    INTERVAL,
    LIMIT_MS,
    check_back_off_sequence,
    check_budget_end_to_end,
    check_fault,
    check_redirect,
    check_self_signed,
)

# The fast suite's share; `make soak` runs every fault, every redirect, in rounds.
FAST_FAULTS = [
    "silent",
    "50MB-error-body",
    "503-retry-after-fits",
    "503-retry-after-120",
    "429-retry-after-5-clamped-to-60s",
    "502-retry-after-30",
    "401-body-echoing-the-secret",
    "401-body-echoing-token-halves",
]
FAST_REDIRECTS = [307]


@pytest.mark.parametrize("name", FAST_FAULTS)
def test_receiver_fault_through_the_daemon(lab: Lab, name: str) -> None:
    fault = FAULTS[name]()
    figures = check_fault(lab, name)
    # What an operator sees: 0 when delivered, else 75 and the fault's reason; within budget.
    expected = (0, None) if fault.sent else (75, fault.reason)
    assert (figures["code"], figures["reason"]) == expected
    assert figures["elapsed_ms"] <= LIMIT_MS


@pytest.mark.parametrize("code", FAST_REDIRECTS)
def test_redirect_to_another_host_is_never_followed(lab: Lab, code: int) -> None:
    figures = check_redirect(lab, code)
    assert figures == {"reason": "redirect", "requests_elsewhere": 0}


def test_a_receiver_that_never_answers_costs_at_most_the_budget(lab: Lab) -> None:
    figures = check_budget_end_to_end(lab, "silent")
    assert figures["elapsed_ms"] <= BUDGET * 1000
    assert figures["server_span_ms"] <= LIMIT_MS


def test_self_signed_certificate_on_a_real_tls_listener_is_refused(lab: Lab) -> None:
    assert check_self_signed(lab) == {"reason": "tls", "requests": 0}


def test_back_off_through_the_daemon_follows_the_contract(lab: Lab) -> None:
    waits = check_back_off_sequence(lab)
    assert FIRST_RETRY_MIN <= waits["first"] <= FIRST_RETRY_MAX
    assert INTERVAL * (1 - JITTER) - 1 <= waits["second"] <= INTERVAL * (1 + JITTER) + 1
    # The recovery is due one interval and 0-10 % more: recovered shops spread out.
    assert INTERVAL <= waits["after_success"] <= INTERVAL * (1 + JITTER)
