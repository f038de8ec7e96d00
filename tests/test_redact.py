"""The one redactor: every shape a secret takes in text is replaced."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from pulsed._redact import REDACTED, Redactor

TOKEN = "12345678:AAH-key_value-secret"
SECRET = 'hb "secret" ä/1'


@pytest.mark.parametrize(
    "spelling",
    [
        TOKEN,
        "12345678%3AAAH-key_value-secret",
        "AAH-key_value-secret",
        "12345678",
    ],
    ids=["whole", "url-encoded", "key-half", "id-half"],
)
def test_a_bot_token_is_replaced_in_every_spelling(spelling: str) -> None:
    out = Redactor([TOKEN])(f"GET /bot/{spelling}/getMe failed")
    assert out == f"GET /bot/{REDACTED}/getMe failed"


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        quote(SECRET),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
    ],
    ids=["raw", "json-ascii", "json-utf8", "url-encoded", "url-encoded-slash", "form-encoded"],
)
def test_the_heartbeat_secret_is_replaced_raw_escaped_and_encoded(spelling: str) -> None:
    assert Redactor([SECRET])(f"echo: {spelling}!") == f"echo: {REDACTED}!"


def test_a_whole_token_is_replaced_once_not_half_by_half() -> None:
    assert Redactor([TOKEN])(TOKEN) == REDACTED


def test_halves_apply_only_to_a_token_and_not_to_short_pieces() -> None:
    # A heartbeat secret that happens to hold a colon is not a token; and a short
    # bot id would eat ordinary numbers in the text around it.
    assert Redactor(["abc:defghij"])("abc and defghij") == "abc and defghij"
    assert Redactor(["123:AAH-key_value"])("port 123 AAH-key_value") == f"port 123 {REDACTED}"


def test_a_six_character_half_is_long_enough_to_be_replaced() -> None:
    assert Redactor(["123456:AAH-key"])("bot 123456 refused") == f"bot {REDACTED} refused"


@pytest.mark.parametrize("spelling", ["20240101:key:with:colons", "key:with:colons"])
def test_a_token_shaped_secret_splits_at_its_first_colon_only(spelling: str) -> None:
    # The key half is whatever follows the bot id, colons and all.
    assert Redactor(["20240101:key:with:colons"])(f"[{spelling}]") == f"[{REDACTED}]"


def test_secrets_registered_later_are_added_to_the_earlier_ones() -> None:
    redact = Redactor(["first-secret"])
    redact.register(["second-secret", ""])
    assert redact("first-secret second-secret") == f"{REDACTED} {REDACTED}"


def test_text_without_a_secret_is_unchanged() -> None:
    assert Redactor([TOKEN, SECRET])("heartbeat sent") == "heartbeat sent"


@pytest.mark.parametrize("short", ["e", "ab", "12345"])
def test_a_secret_too_short_to_tell_from_text_is_never_cut_out_of_words(short: str) -> None:
    line = "e-shop.example.com: 12345 abcde"
    assert Redactor([short])(line) == line


def test_six_characters_are_still_redacted() -> None:
    assert Redactor(["123456"])("id 123456 here") == "id [redacted] here"
