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


def test_the_table_word_for_word_a_disabled_shop_with_its_setting_and_nothing_due() -> None:
    ok = ShopView("a", "a.example", st.State(last_success=NOW - 3 * HOUR), NOW + 3540)
    waiting = ShopView("waiting-shop", None, st.State(), None)
    off = ShopView("off", None, st.State(), None, "disabled", "shop.domain")
    assert _status.table(_status.document([ok, waiting, off], NOW), NOW) == (
        "SHOP          DOMAIN     STATE                   LAST SUCCESS  NEXT DUE\n"
        "a             a.example  ok                      3 hours ago   2027-01-15T08:59:00Z\n"
        "waiting-shop  -          waiting                 never         now\n"
        "off           -          disabled (shop.domain)  never         -\n"
        "3 shops: 1 disabled, 1 ok, 1 waiting\n"
    )


def test_the_tables_sum_counts_shops_alike_together_and_one_shop_is_one() -> None:
    ok = ShopView("a", "a.example", st.State(last_success=NOW - 60), NOW + 3540)
    also_ok = ShopView("b", "b.example", st.State(last_success=NOW - 60), NOW + 3540)
    two = _status.table(_status.document([ok, also_ok], NOW), NOW)
    assert two.splitlines()[-1] == "2 shops: 2 ok"
    one = _status.table(_status.document([ok], NOW), NOW)
    assert one.splitlines()[-1] == "1 shop: 1 ok"


def test_a_disabled_shops_text_shows_only_what_its_state_kept() -> None:
    off = ShopView("off", None, st.State(), None, "disabled", "shop.domain")
    assert _status.text(_status.document([off], NOW), NOW) == (
        "shop off\n"
        "  disabled: its configuration cannot work (shop.domain); no heartbeat\n"
        "  last success:      never\n"
        "  counted:           0 sent, 0 failed, 0 attempts\n"
        "  delivered:         none in 24 h, none in 7 days\n"
    )


def test_a_corrupt_state_says_so_and_shows_no_figures() -> None:
    corrupt = ShopView("broken", "b.example", st.State(), None, "corrupt")
    assert _status.text(_status.document([corrupt], NOW), NOW) == (
        "shop broken (b.example)\n  state corrupt: figures unknown\n"
    )
