"""The status's words and edges as an operator reads them: a shop with nothing yet, an
attempt without an answer, the windows' and the summary's boundaries (contract §11)."""

from __future__ import annotations

from pulsed import _state as st
from pulsed import _status
from pulsed._status import ShopView
from tests.support.figures import HOUR, NOW, VIEWS

DAY = 24 * HOUR


def shop_doc(view: ShopView) -> dict[str, object]:
    (doc,) = _status.document([view], NOW)["shops"]
    return doc  # type: ignore[no-any-return]


def test_a_shop_with_nothing_yet_reads_never_unknown_and_now() -> None:
    assert _status.text(_status.document([VIEWS["fresh"]], NOW), NOW) == (
        "shop default (shop.example)\n"
        "  no heartbeat yet, no delivery in 7 days, next now\n"
        "  last success:      never\n"
        "  last attempt:      never\n"
        "  last error:        none\n"
        "  failures in a row: 0\n"
        "  next due:          now\n"
        "  bot:               unknown\n"
        "  counted:           0 sent, 0 failed, 0 attempts\n"
        "  delivered:         none in 24 h, none in 7 days\n"
    )


def test_an_attempt_with_no_answer_and_no_recorded_time_says_so() -> None:
    state = st.State(last_attempt=NOW - 60, last_error="connect: refused", consecutive_failures=1)
    out = _status.text(_status.document([ShopView("default", None, state, None)], NOW), NOW)
    assert "  last attempt:      2027-01-15T07:59:00Z (no answer)\n" in out


def test_the_last_attempt_is_in_the_document() -> None:
    state = st.State(last_attempt=NOW - 60, last_error="connect: refused", consecutive_failures=1)
    assert shop_doc(ShopView("default", None, state, None))["last_attempt"] == (
        "2027-01-15T07:59:00Z"
    )


def test_no_shop_is_said_in_words() -> None:
    assert _status.text(_status.document([], NOW), NOW) == "no shop\n"


def test_an_unreadable_shop_does_not_hide_the_shops_after_it() -> None:
    out = _status.text(_status.document([VIEWS["unreadable"], VIEWS["healthy"]], NOW), NOW)
    assert out.split("\n\n")[1].startswith("shop default (shop.example)\n")


def test_a_delivery_exactly_a_window_old_counts_in_it() -> None:
    state = st.succeeded(st.State(), NOW - DAY, 200, NOW, attempts=1, elapsed=0.1)
    doc = shop_doc(ShopView("default", None, state, None))
    assert (doc["deliveries_24h"], doc["delivered_share_24h"]) == (1, 1.0)


def test_two_days_ago_is_said_in_days() -> None:
    assert _status.ago(48 * HOUR) == "2 days ago"


def test_a_next_heartbeat_exactly_a_day_away_shows_its_date() -> None:
    view = ShopView("default", "shop.example", st.State(), NOW + DAY)
    assert _status.one_line(shop_doc(view), NOW).endswith("next at 2027-01-16 08:00 UTC")


def test_printable_text_outside_ascii_is_shown_as_itself() -> None:
    assert _status.printable("магазин ü") == "магазин ü"
