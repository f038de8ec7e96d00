"""The one redactor: every shape a secret takes in text is replaced."""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsed import _redact
from pulsed._redact import REDACTED, Redactor, replace_each, shapes

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


def test_a_secret_registered_again_does_not_stop_the_new_ones_after_it() -> None:
    redact = Redactor(["first-secret"])
    redact.register(["first-secret", "second-secret"])
    assert redact("first-secret second-secret") == f"{REDACTED} {REDACTED}"


def test_each_half_of_a_token_has_its_spellings_when_the_other_needs_none() -> None:
    # The bot id needs no escaping; the key after it still has its URL spelling.
    key = "AAH/key+value"
    out = Redactor([f"12345678:{key}"])(f"GET /{quote(key, safe='')}/x")
    assert out == f"GET /{REDACTED}/x"


def test_overlapping_needles_of_one_length_are_taken_in_the_same_order_every_time() -> None:
    # Otherwise which one wins would follow a set's order, which the hash seed sets.
    needles = ["bcdefgh", "abcdefg"]
    assert Redactor(needles)("abcdefgh") == f"{REDACTED}h"
    assert _many(needles)("abcdefgh") == f"{REDACTED}h"


def _many(secrets: list[str]) -> Redactor:
    """A redactor that searches through its index: enough other secrets to pass the mark."""
    filler = [f"filler-{n:06d}" for n in range(_redact.INDEXED_ABOVE + 1)]
    redact = Redactor([*filler, *secrets])
    assert redact.indexed
    return redact


def test_few_needles_are_looked_for_in_turn_and_one_more_than_the_mark_through_the_index() -> None:
    secrets = [f"secret-{n:06d}" for n in range(_redact.INDEXED_ABOVE + 1)]
    redact = Redactor(secrets[:-1])
    assert not redact.indexed
    assert redact(secrets[0]) == REDACTED
    redact.register(secrets[-1:])
    assert redact.indexed
    assert redact(f"{secrets[0]} {secrets[-1]}") == f"{REDACTED} {REDACTED}"


@pytest.mark.parametrize("where", ["{}", "at the start: {}", "{} at the end", "x{}y", "a{}bc"])
def test_the_index_finds_a_needle_wherever_it_starts(where: str) -> None:
    # Each text position mod 3 (the stride of the index's lookup), and either end.
    assert _many(["needle"])(where.format("needle")) == where.format(REDACTED)


def test_the_index_takes_a_whole_token_before_its_halves() -> None:
    assert _many([TOKEN])(f"({TOKEN})") == f"({REDACTED})"


def test_the_index_finds_a_needle_that_a_replacement_completes() -> None:
    # "[redacted]" in place of the first, longer secret ends with "d]", which with the
    # text after it is the second: the loop finds it, so the index must too.
    text = "secret-one" + "tail-1"
    assert Redactor(["secret-one", "d]tail-1"])(text) == f"[redacte{REDACTED}"
    assert _many(["secret-one", "d]tail-1"])(text) == f"[redacte{REDACTED}"


def test_the_index_does_not_look_again_for_a_needle_earlier_in_the_order() -> None:
    # The loop takes "d]tail-1000" (longest) before "secret-one", when it is not there
    # yet; after "secret-one" is replaced it is, but the loop has passed it.
    text = "secret-onetail-1000"
    want = f"{REDACTED}tail-1000"
    assert Redactor(["d]tail-1000", "secret-one"])(text) == want
    assert _many(["d]tail-1000", "secret-one"])(text) == want


def test_a_needle_that_its_own_replacement_completes_again_is_left_as_the_loop_leaves_it() -> None:
    # "[redacted]" ends in "d]", which with the "abcd" after it is the needle again; the
    # loop has passed that needle by then.
    assert Redactor(["d]abcd"])("d]abcdabcd") == f"{REDACTED}abcd"
    assert _many(["d]abcd"])("d]abcdabcd") == f"{REDACTED}abcd"


def test_a_reload_that_registers_the_same_secrets_computes_none_of_their_spellings_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed: list[str] = []

    def counted(secret: str) -> set[str]:
        computed.append(secret)
        return shapes(secret)

    monkeypatch.setattr(_redact, "shapes", counted)
    redact = Redactor(["first-secret", "second-secret"])
    redact.register(["second-secret", "first-secret", "third-secret"])
    assert computed == ["first-secret", "second-secret", "third-secret"]
    assert redact("third-secret") == REDACTED


def test_text_shorter_than_any_needle_is_unchanged_through_the_index() -> None:
    assert _many(["needle"])("needl") == "needl"


EXAMPLES = int(os.environ.get("PULSED_HYPOTHESIS_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Few letters, so secrets overlap each other and the text often; "[", "]", "d" and "e"
# are in "[redacted]", so a replacement can complete another needle.
LETTERS = 'ab1:/ %"d[]e\u00e4'
A_SECRET = st.one_of(
    st.text(LETTERS, min_size=6, max_size=14),
    st.builds(
        "{}:{}".format,
        st.text("0123456789", min_size=1, max_size=9),
        st.text(LETTERS.replace(" ", ""), min_size=1, max_size=12),
    ),
    # One that begins where "[redacted]" ends or ends where it begins: a replacement
    # beside it can complete it.
    st.builds(
        "{}{}".format,
        st.sampled_from([REDACTED[cut:] for cut in range(4, 10)]),
        st.text(LETTERS, min_size=1, max_size=8),
    ),
    st.builds(
        "{}{}".format,
        st.text(LETTERS, min_size=1, max_size=8),
        st.sampled_from([REDACTED[:cut] for cut in range(1, 7)]),
    ),
)


@st.composite
def text_with_secrets(draw: st.DrawFn) -> tuple[list[str], str]:
    secrets = draw(st.lists(A_SECRET, min_size=1, max_size=4))
    forms = sorted(set().union(*(shapes(s) for s in secrets)) | set(secrets))
    piece = st.one_of(
        st.sampled_from(forms),
        # a part of one, so that two shapes overlap or one is cut short
        st.builds(
            lambda f, a, b: f[min(a, b) : max(a, b)],
            st.sampled_from(forms),
            st.integers(0, 40),
            st.integers(0, 40),
        ),
        # one without its first characters, which a "[redacted]" before it can stand for
        st.builds(lambda f, cut: f[cut:], st.sampled_from(forms), st.integers(1, 4)),
        st.text(LETTERS, max_size=6),
        st.just(REDACTED),
    )
    return secrets, "".join(draw(st.lists(piece, max_size=12)))


@PROPERTY
@given(text_with_secrets())
def test_the_index_gives_what_looking_for_each_in_turn_gives(case: tuple[list[str], str]) -> None:
    secrets, text = case
    needles = sorted(set().union(*(shapes(s) for s in secrets)), key=lambda n: (-len(n), n))
    assert _many(secrets)(text) == replace_each(needles, text)
    assert Redactor(secrets)(text) == replace_each(needles, text)


def every_spelling(secret: str) -> set[str]:
    """The shapes as the first redactor wrote them, with no shortcut for plain ones."""
    if len(secret) < 6:
        return set()
    forms = {secret}
    if re.fullmatch(r"\d+:\S+", secret):
        forms.update(half for half in secret.split(":", 1) if len(half) >= 6)
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
        forms.update(quote(form, safe=safe) for safe in ("", "/", ":", ":/"))
        forms.add(quote_plus(form))
    return forms


@PROPERTY
@given(
    st.one_of(
        A_SECRET,
        st.text("aZ9_.~-", min_size=6, max_size=20),
        st.text("aZ9_.~-:/+ ", min_size=6, max_size=20),
        st.builds("{}:{}".format, st.text("0123456789", min_size=6), st.text("aZ9_.~-/")),
        st.text(min_size=6, max_size=20),
    )
)
def test_skipping_what_needs_no_escaping_leaves_every_spelling_there_was(secret: str) -> None:
    assert shapes(secret) == every_spelling(secret)
    assert all(len(needle) >= 6 for needle in shapes(secret))
