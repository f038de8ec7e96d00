"""Identity rounds and the child's answers, with a stand-in for the child: what a round
is asked, what it keeps, and what a shop is told when its token got no name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from pulsed import _identity as ident
from pulsed._errors import IdentityError
from pulsed._redact import Redactor

NOW = 1_800_000_000.0
TOKEN = "123456:ABC-secret"
OTHER = "654321:XYZ-other"
ENV = {"PATH": "/usr/bin"}

pytestmark = pytest.mark.anyio


class Child:
    """Answers each round from a fixed table; records what every round was asked."""

    def __init__(self, answers: Mapping[str, str | IdentityError | None]) -> None:
        self.answers = dict(answers)
        self.asked: list[tuple[list[str], str, float, dict[str, str]]] = []

    async def __call__(
        self, tokens: Sequence[str], api_base: str, timeout: float, env: Mapping[str, str]
    ) -> dict[str, str | IdentityError | None]:
        self.asked.append((list(tokens), api_base, timeout, dict(env)))
        return {t: self.answers[t] for t in tokens if t in self.answers}


async def test_a_round_is_asked_with_the_bot_api_limit_and_environment_given() -> None:
    child = Child({TOKEN: "acme_bot"})
    rounds = ident.Rounds(child, clock=lambda: NOW)
    await rounds.identity(TOKEN, "https://api.example", 7.5, ENV)
    assert child.asked == [([TOKEN], "https://api.example", 7.5, ENV)]


async def test_a_name_is_kept_with_the_time_it_was_fetched_and_the_tokens_fingerprint() -> None:
    rounds = ident.Rounds(Child({TOKEN: "acme_bot"}), clock=lambda: NOW)
    got = await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    assert (got.username, got.fetched_at, got.token_fingerprint) == (
        "acme_bot",
        NOW,
        ident.fingerprint(TOKEN),
    )


async def test_rounds_are_counted_from_none() -> None:
    now = [NOW]
    rounds = ident.Rounds(Child({TOKEN: "acme_bot"}), clock=lambda: now[0])
    assert rounds.rounds == 0
    await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    now[0] += ident.MAX_AGE
    await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    assert rounds.rounds == 2


async def test_a_token_the_round_has_no_answer_for_is_a_child_failure() -> None:
    rounds = ident.Rounds(Child({}), clock=lambda: NOW)
    with pytest.raises(IdentityError) as caught:
        await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    assert (caught.value.kind, caught.value.detail) == ("child", "no answer in the round")


async def test_a_bot_without_a_username_is_kept_as_none() -> None:
    rounds = ident.Rounds(Child({TOKEN: None}), clock=lambda: NOW)
    assert (await rounds.identity(TOKEN, "https://api", 5.0, ENV)).username is None


async def test_a_wanted_token_already_known_is_not_asked_again() -> None:
    child = Child({TOKEN: "acme_bot", OTHER: "other_bot"})
    rounds = ident.Rounds(child, wanted=lambda: [TOKEN, OTHER, TOKEN], clock=lambda: NOW)
    await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    assert sorted(child.asked[0][0]) == sorted([TOKEN, OTHER])  # once each
    assert rounds.known(OTHER) is not None


def test_a_failure_answer_without_a_kind_is_unknown() -> None:
    with pytest.raises(IdentityError) as caught:
        ident.username_of({"ok": False}, Redactor())
    assert (caught.value.kind, caught.value.detail) == ("unknown", "")


def test_a_failure_detail_is_cut_to_300_characters() -> None:
    with pytest.raises(IdentityError) as caught:
        ident.username_of({"ok": False, "kind": "api", "detail": "x" * 500}, Redactor())
    assert caught.value.detail == "x" * 300


def test_an_answer_that_is_ok_without_a_username_is_a_bot_without_one() -> None:
    assert ident.username_of({"ok": True}, Redactor()) is None
