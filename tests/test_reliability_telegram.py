"""Bot API and identity-child faults through the daemon (contract §2), the fast suite's
share of :mod:`tests.support.scenarios.telegram`: the heartbeat still goes.

The real child imports aiogram (seconds of CPU), so this runs one real failure (no
answer: a timeout, read live from /proc) and the cheap child faults, with and without a
kept identity; ``make soak`` runs every mode both ways.
"""

from __future__ import annotations

import pytest

from tests.support.lab import BOT, Lab
from tests.support.scenarios.telegram import check_telegram


def test_bot_api_that_never_answers_means_the_kept_name_and_a_clean_child(lab: Lab) -> None:
    figures = check_telegram(lab, "timeout", kept=True, credentials=True)
    assert figures["bot_username"] == BOT  # the kept name
    assert figures["live_children_read"] >= 1  # the child, read while alive, and scanned


@pytest.mark.parametrize(("name", "kept"), [("child-exits", False), ("child-dies", True)])
def test_an_identity_child_that_dies_costs_only_the_name(lab: Lab, name: str, kept: bool) -> None:
    figures = check_telegram(lab, name, kept=kept)
    assert figures["identity_failed"] == "child"
    assert figures["bot_username"] == (BOT if kept else None)  # sent all the same
