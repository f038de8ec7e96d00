"""A hostile host, on real processes: the scenarios of :mod:`tests.support.scenarios.hostile`.

``make soak`` runs the same scenarios in rounds; here each runs once.
"""

from __future__ import annotations

import pytest

from tests.support.lab import Lab
from tests.support.scenarios import hostile


def test_a_state_folder_others_can_write_is_refused_for_writing_but_read(lab: Lab) -> None:
    assert hostile.check_open_state_folder(lab) == {"refused": 2, "read": 3}


@pytest.mark.parametrize("where", ["file", "folder", "owner"])
def test_a_config_another_user_could_change_is_refused(lab: Lab, where: str) -> None:
    assert hostile.check_untrusted_config(lab, where) == {"refused": 3}


def test_a_secret_in_a_readable_file_shadowed_by_a_variable_is_warned_about(lab: Lab) -> None:
    assert hostile.check_shadowed_secret(lab)["warnings"] >= 2


def test_a_planted_pending_body_is_never_signed_and_sent(lab: Lab) -> None:
    assert hostile.check_planted_pending(lab) == {"planted": 2, "sent_fresh": 2}


def test_a_hanging_php_leaves_no_grandchild_and_no_traceback(lab: Lab) -> None:
    assert hostile.check_hanging_php(lab)["stderr_lines"] >= 1


def test_a_forged_bot_username_goes_nowhere(lab: Lab) -> None:
    assert hostile.check_forged_username(lab) == {"refused": 1}


def test_status_shows_escapes_in_the_state_without_obeying_them(lab: Lab) -> None:
    assert hostile.check_escapes_in_state(lab) == {"escaped": 3}


def test_a_50_mb_state_file_is_moved_aside_and_a_heartbeat_sent(lab: Lab) -> None:
    assert hostile.check_oversized_state(lab) == {"state_mib": 50}


def test_a_date_that_overflows_never_turns_a_delivery_into_a_failure(lab: Lab) -> None:
    assert hostile.check_unreadable_date(lab) == {"sent": 1}


def test_a_retry_after_of_odd_digits_is_no_number_and_one_too_long_is_clamped(lab: Lab) -> None:
    assert hostile.check_hostile_retry_after(lab) == {"retried": 1, "clamped": 1}


def test_a_receiver_echoing_the_body_or_a_long_location_reaches_no_public_file(lab: Lab) -> None:
    assert hostile.check_echoing_receiver(lab) == {"public": 2, "cut": 2}


def test_a_one_letter_secret_is_refused_in_words_that_keep_their_letters(lab: Lab) -> None:
    assert hostile.check_short_secret(lab) == {"refused": 3}


@pytest.mark.parametrize("which", ["status", "metrics"])
@pytest.mark.parametrize("how", ["link", "owned", "open"])
def test_a_public_files_folder_a_tenant_could_choose_is_refused(
    lab: Lab, how: str, which: str
) -> None:
    assert hostile.check_public_folder(lab, how, which) == {"refused": 2}


@pytest.mark.parametrize("which", ["status", "metrics"])
def test_a_public_file_in_the_state_folder_is_refused(lab: Lab, which: str) -> None:
    assert hostile.check_public_file_in_state(lab, which) == {"refused": 6}


def test_a_shop_name_that_is_no_shop_name_is_refused_before_any_read(lab: Lab) -> None:
    assert hostile.check_shop_outside_state(lab) == {"refused": 24}


def test_shop_names_from_file_names_are_printed_escaped(lab: Lab) -> None:
    assert hostile.check_escaped_shop_names(lab)["escaped"] >= 1


def test_discover_never_reads_a_config_php_linked_to_another_tenants(lab: Lab) -> None:
    assert hostile.check_discover_linked_config(lab) == {"listed": 0}
