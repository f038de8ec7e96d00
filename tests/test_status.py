"""The status document (contract §11): its fields, its schema, what it never holds, its text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pulsed import _state as st
from pulsed import _status, _timefmt
from pulsed._status import ShopView
from tests.support.figures import (
    FINGERPRINT,
    HOUR,
    NOW,
    SCHEMA,
    SECRET,
    TOKEN,
    VERSIONS,
    VIEWS,
)


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


@pytest.mark.parametrize("which", list(VIEWS))
def test_every_document_matches_the_published_schema(which: str) -> None:
    doc = _status.document([VIEWS[which]], NOW)
    validate(doc)
    # Plain JSON that reads back the same: nothing a PHP reader would choke on.
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_a_document_of_many_shops_matches_the_schema_in_their_order() -> None:
    doc = _status.document(list(VIEWS.values()), NOW)
    validate(doc)
    assert [s["name"] for s in doc["shops"]] == ["default", "default", "eu-shop_2", "broken"]


def test_the_schema_lists_exactly_the_fields_a_document_has() -> None:
    doc = _status.document([VIEWS["busy"]], NOW)
    assert set(doc) == set(SCHEMA["required"])
    # `errors` only in `status --json` when a state cannot be read: never in the file.
    assert set(SCHEMA["properties"]) == {*doc, "errors"}
    shop = SCHEMA["$defs"]["shop"]
    assert set(doc["shops"][0]) == set(shop["properties"]) == set(shop["required"])


def test_the_schema_refuses_what_a_reader_must_not_get() -> None:
    doc = _status.document([VIEWS["busy"]], NOW)
    for broken in (
        {**doc, "schema": 2},
        {**doc, "extra": 1},
        {**doc, "shops": [{**doc["shops"][0], "token_fingerprint": FINGERPRINT}]},
        {**doc, "shops": [{**doc["shops"][0], "last_success": "yesterday"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_a_healthy_week_in_figures() -> None:
    (shop,) = _status.document([VIEWS["healthy"]], NOW)["shops"]
    assert shop["last_success"] == "2027-01-15T07:48:00Z"
    assert shop["next_due"] == "2027-01-15T08:48:00Z"
    assert (shop["heartbeats_sent"], shop["deliveries_failed"], shop["delivery_attempts"]) == (
        168,
        0,
        168,
    )
    assert (shop["deliveries_24h"], shop["delivered_share_24h"]) == (24, 1.0)
    assert (shop["deliveries_7d"], shop["delivered_share_7d"]) == (168, 1.0)
    assert shop["last_delivery_elapsed_ms"] == 312
    assert (shop["bot_username"], shop["bot_fetched_at"]) == (
        "acme_shop_bot",
        "2027-01-15T03:00:00Z",
    )


def test_shares_count_only_the_deliveries_in_their_window() -> None:
    (shop,) = _status.document([VIEWS["busy"]], NOW)["shops"]
    # i = 0, 10, ..., 160 failed: 17 of 168 in the week; in the last 24 (i >= 144): 144 and 160.
    assert (shop["deliveries_7d"], shop["delivered_share_7d"]) == (168, round(151 / 168, 4))
    assert (shop["deliveries_24h"], shop["delivered_share_24h"]) == (24, round(22 / 24, 4))
    assert (shop["deliveries_failed"], shop["failures_in_a_row"]) == (17, 0)
    assert shop["delivery_interrupted"] is True


def test_no_deliveries_is_no_share_not_zero() -> None:
    (shop,) = _status.document([VIEWS["fresh"]], NOW)["shops"]
    assert shop["delivered_share_7d"] is None and shop["deliveries_7d"] == 0
    assert shop["last_delivery_elapsed_ms"] is None


def test_the_document_holds_no_secret_fingerprint_version_or_path(tmp_path: Path) -> None:
    """The status file is 0644 on a shared host: §11 names what it must never hold."""
    doc = _status.document(list(VIEWS.values()), NOW)
    written = json.dumps(doc)
    forbidden = [SECRET, TOKEN, FINGERPRINT, "sha256=ab", *VERSIONS, "pulsed/", "/var/lib"]
    assert [word for word in forbidden if word in written] == []
    assert "/" not in written.replace("\\/", "")  # no path of any kind: no slash at all
    assert "version" not in written


def test_text_has_one_block_per_shop_with_the_summary_line() -> None:
    out = _status.text(_status.document([VIEWS["healthy"], VIEWS["busy"]], NOW), NOW)
    blocks = out.rstrip("\n").split("\n\n")
    assert len(blocks) == 2
    first = blocks[0].splitlines()
    assert first[0] == "shop default (shop.example)"
    assert first[1] == (
        "  last heartbeat 12 minutes ago, 100 % delivered over 7 days, next at 08:48 UTC"
    )
    assert "  counted:           168 sent, 0 failed, 168 attempts" in first
    assert "  delivered:         24 of 24 in 24 h (100 %), 168 of 168 in 7 days (100 %)" in first
    assert blocks[1].splitlines()[1] == (
        "  last heartbeat 12 minutes ago, 89.8 % delivered over 7 days, next now"
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "less than a minute ago"),
        (59, "less than a minute ago"),
        (60, "1 minute ago"),
        (12 * 60 + 59, "12 minutes ago"),
        (119 * 60, "119 minutes ago"),
        (2 * HOUR, "2 hours ago"),
        (47 * HOUR, "47 hours ago"),
        (50 * HOUR, "2 days ago"),
        (-30, "less than a minute ago"),
    ],
)
def test_ago(seconds: float, words: str) -> None:
    assert _status.ago(seconds) == words


@pytest.mark.parametrize(
    ("share", "shown"),
    [(1.0, "100 %"), (0.9999, "99.9 %"), (0.994, "99.4 %"), (0.0, "0.0 %"), (151 / 168, "89.8 %")],
)
def test_percent_never_rounds_a_failure_up_to_100(share: float, shown: str) -> None:
    assert _status.percent(share) == shown


def test_text_escapes_what_a_terminal_would_obey() -> None:
    state = st.failed(
        st.State(),
        NOW - 60,
        "status: \x1b[2J boom",
        500,
        NOW + 300,
        reason="status",
        attempts=1,
        elapsed=0.1,
    )
    out = _status.text(
        _status.document([ShopView("default", "shop\x1b]0;x\x07", state, None)], NOW), NOW
    )
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J boom" in out


def test_a_next_heartbeat_a_day_away_shows_its_date() -> None:
    view = ShopView("default", "shop.example", st.State(), NOW + 3 * 86400)
    (shop,) = _status.document([view], NOW)["shops"]
    assert _status.one_line(shop, NOW).endswith("next at 2027-01-18 08:00 UTC")


def test_an_unreadable_state_says_so_and_shows_no_figures() -> None:
    out = _status.text(_status.document([VIEWS["unreadable"]], NOW), NOW)
    assert out == "shop broken\n  state unreadable: figures unknown\n"


def test_the_example_in_docs_status_is_a_valid_document() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "status.md").read_text("utf-8")
    (example,) = re.findall(r"```json\n(.*?)```", page, re.DOTALL)
    doc = json.loads(example)
    validate(doc)
    # Its text rendering is the one the page shows, summary line included.
    rendered = _status.text(doc, _timefmt.parse(doc["generated_at"]))
    assert f"```text\n{rendered}```" in page
    assert "last heartbeat 12 minutes ago, 99.4 % delivered over 7 days, next at 14:05" in page


def test_a_disabled_shop_is_listed_with_its_setting_and_kept_figures_and_nothing_due() -> None:
    kept = st.State(last_success=NOW - 7200, counters=st.Counters(5, 0, 5))
    doc = _status.document([ShopView("broken", None, kept, None, "disabled", "shop.root")], NOW)
    validate(doc)
    (shop,) = doc["shops"]
    assert (shop["problem"], shop["problem_setting"]) == ("disabled", "shop.root")
    assert shop["heartbeats_sent"] == 5 and shop["next_due"] is None
    assert _status.health(shop) == "disabled"
    text = _status.text(doc, NOW)
    assert "disabled: its configuration cannot work (shop.root); no heartbeat" in text
    assert "2 hours ago" in _status.table(doc, NOW)


def test_the_table_sums_up_each_state() -> None:
    ok = ShopView("a", "a.example", st.State(last_success=NOW - 60), NOW + 3540)
    failing = ShopView("b", "b.example", st.State(consecutive_failures=2), NOW + 60)
    waiting = ShopView("c", None, st.State(), NOW)
    table = _status.table(_status.document([ok, failing, waiting], NOW), NOW)
    lines = table.splitlines()
    assert lines[0].split() == ["SHOP", "DOMAIN", "STATE", "LAST", "SUCCESS", "NEXT", "DUE"]
    assert lines[1].split()[:3] == ["a", "a.example", "ok"]
    assert lines[2].split()[:3] == ["b", "b.example", "failing"]
    assert lines[3].split()[:3] == ["c", "-", "waiting"]
    assert lines[4] == "3 shops: 1 failing, 1 ok, 1 waiting"
