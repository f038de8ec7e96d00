"""Identity rounds and the child's answers, with a stand-in for the child: what a round
is asked, what it keeps, and what a shop is told when its token got no name."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import pytest

from pulsed import _identity as ident
from pulsed._errors import IdentityError
from pulsed._redact import Redactor
from pulsed._state import Identity

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


# --- the username a shop's body names -----------------------------------------------


def fetching(
    answer: Identity | IdentityError, asked: list[str]
) -> Callable[[str], Awaitable[Identity]]:
    async def fetch(token: str) -> Identity:
        asked.append(token)
        if isinstance(answer, IdentityError):
            raise answer
        return answer

    return fetch


KEPT = Identity("kept_bot", NOW - 60, ident.fingerprint(TOKEN))
FETCHED = Identity("fetched_bot", NOW, ident.fingerprint(TOKEN))


def logged(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


async def test_without_a_token_the_username_is_null_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked: list[str] = []
    got = await ident.Rounds().username(None, KEPT, NOW, fetching(FETCHED, asked))
    assert (got, asked) == ((None, None), [])
    (line,) = logged(caplog, "identity.missing")
    assert (line.levelno, line.getMessage()) == (
        logging.WARNING,
        "telegram.bot_token is not set; bot_username is null",
    )


async def test_a_fresh_kept_identity_names_the_bot_without_a_fetch() -> None:
    asked: list[str] = []
    got = await ident.Rounds().username(TOKEN, KEPT, NOW, fetching(FETCHED, asked))
    assert (got, asked) == (("kept_bot", None), [])


async def test_a_stale_identity_is_fetched_again_and_the_new_one_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked: list[str] = []
    stale = Identity("kept_bot", NOW - ident.MAX_AGE, ident.fingerprint(TOKEN))
    with caplog.at_level(logging.INFO, logger="pulsed"):
        got = await ident.Rounds().username(TOKEN, stale, NOW, fetching(FETCHED, asked))
    assert (got, asked) == (("fetched_bot", FETCHED), [TOKEN])
    (line,) = logged(caplog, "identity.refreshed")
    assert line.getMessage() == "bot identity fetched: @fetched_bot"
    assert line.bot_username == "fetched_bot"  # type: ignore[attr-defined]


async def test_a_failed_fetch_falls_back_to_the_kept_name_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = Identity("kept_bot", NOW - 60, ident.fingerprint(OTHER))
    failure = IdentityError("network", "unreachable")
    got = await ident.Rounds().username(TOKEN, other, NOW, fetching(failure, []))
    assert got == ("kept_bot", None)
    (line,) = logged(caplog, "identity.failed")
    assert (line.levelno, line.getMessage()) == (
        logging.WARNING,
        "getMe failed (network: unreachable); bot_username is the kept @kept_bot",
    )
    assert (line.kind, line.kept) == ("network", "kept_bot")  # type: ignore[attr-defined]


async def test_a_failed_first_fetch_leaves_the_username_null(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = IdentityError("unauthorized", "")
    got = await ident.Rounds().username(TOKEN, None, NOW, fetching(failure, []))
    assert got == (None, None)
    (line,) = logged(caplog, "identity.failed")
    assert line.getMessage() == "getMe failed (unauthorized); bot_username is null"
    assert line.kept is None  # type: ignore[attr-defined]


async def test_a_token_that_failed_and_then_got_its_name_is_named() -> None:
    now = [NOW]
    child = Child({TOKEN: IdentityError("network", "down")})
    rounds = ident.Rounds(child, clock=lambda: now[0])
    with pytest.raises(IdentityError):
        await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    child.answers[TOKEN] = "acme_bot"
    got = await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    assert got.username == "acme_bot"


async def test_a_name_whose_refresh_failed_is_forgotten_even_if_the_clock_goes_back() -> None:
    # Only successes are kept: a name a round could not refresh must not come back as
    # fresh because the wall clock was set back past its age.
    now = [NOW]
    child = Child({TOKEN: "acme_bot"})
    rounds = ident.Rounds(child, clock=lambda: now[0])
    await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    now[0] += ident.MAX_AGE
    child.answers[TOKEN] = IdentityError("network", "down")
    with pytest.raises(IdentityError):
        await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    now[0] = NOW + 60
    assert rounds.known(TOKEN) is None


async def test_a_name_fetched_by_a_round_is_given_even_when_the_clock_stepped_back_since() -> None:
    # The round's answer is the answer: a clock set back between the round and the
    # look at its result must not turn a fetched name into a failure.
    times = iter([NOW, NOW - 10])
    rounds = ident.Rounds(Child({TOKEN: "acme_bot"}), clock=lambda: next(times, NOW - 10))
    got = await rounds.identity(TOKEN, "https://api", 5.0, ENV)
    assert got.username == "acme_bot"
