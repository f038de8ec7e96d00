"""The bot's identity (``getMe``): when to fetch it, and fetching it in a child.

aiogram costs ~170 MB resident and seconds of CPU to import, and the daemon
sleeps for most of every hour, so aiogram is never imported here: a short-lived
child (:mod:`pulsed._identity_child`) does the call and exits, and the result is
kept in the state for 24 hours, keyed by a fingerprint of the token. The token
reaches the child through its stdin pipe, never its command line or environment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path

import anyio

from pulsed._errors import IdentityError, SubprocessError
from pulsed._events import event
from pulsed._proc import run
from pulsed._redact import Redactor
from pulsed._state import Identity

log = logging.getLogger("pulsed.identity")

MAX_AGE = 24 * 3600.0
USERNAME = re.compile(r"[A-Za-z0-9_]{5,32}")
# The child imports aiogram (seconds of CPU on a small host) before it can even
# start the request; its whole life is bounded by the request timeout plus this.
IMPORT_ALLOWANCE = 30.0
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def fingerprint(token: str) -> str:
    """A stable, non-reversible name for a token, safe to keep in the state file."""
    digest = hmac.new(b"pulsed token fingerprint v1", token.encode(), hashlib.sha256)
    return "hmac-sha256:" + digest.hexdigest()[:32]


def needs_refresh(kept: Identity | None, token_fp: str | None, now: float) -> bool:
    """Whether to call ``getMe``: never without a token; else if unknown, other, stale, future."""
    if token_fp is None:
        return False
    if kept is None or kept.token_fingerprint != token_fp:
        return True
    return kept.fetched_at > now or now - kept.fetched_at >= MAX_AGE


async def fetch_usernames(
    tokens: Sequence[str],
    api_base: str,
    timeout: float,
    env: Mapping[str, str],
    *,
    python: str = sys.executable,
    allowance: float = IMPORT_ALLOWANCE,
) -> dict[str, str | IdentityError | None]:
    """``getMe``'s username for each token, through one child; a failure is its IdentityError.

    A child that fails as a whole (cannot start, hangs, answers garbage) is the same
    IdentityError for every token.
    """
    redact = Redactor(tokens)
    request = {"tokens": list(tokens), "api_base": api_base, "timeout": timeout}
    child_env = dict(env)
    child_env["PYTHONPATH"] = _PACKAGE_PARENT + (
        ":" + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else ""
    )
    try:
        done = await run(
            [python, "-m", "pulsed._identity_child"],
            timeout=timeout + allowance,
            env=child_env,
            stdin=json.dumps(request).encode(),
        )
    except SubprocessError as exc:
        failed = IdentityError("child", redact(str(exc)))
        return dict.fromkeys(tokens, failed)
    lines = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    answers = answer.get("answers") if isinstance(answer, dict) else None
    if not isinstance(answers, list) or len(answers) != len(tokens):
        tail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        detail = f"identity child exited {done.returncode}" + (f": {tail[0]}" if tail else "")
        return dict.fromkeys(tokens, IdentityError("child", redact(detail)[:300]))
    results: dict[str, str | IdentityError | None] = {}
    for token, one in zip(tokens, answers, strict=True):
        try:
            results[token] = username_of(one if isinstance(one, dict) else {}, redact)
        except IdentityError as exc:
            results[token] = exc
    return results


FetchMany = Callable[
    [Sequence[str], str, float, Mapping[str, str]],
    Awaitable[dict[str, str | IdentityError | None]],
]


class Rounds:
    """One identity child per refresh round, for every token that needs it then.

    A cycle asks :meth:`identity` for its token. If a round already got that token's
    name (a success, not yet :data:`MAX_AGE` old), that is the answer, with no child.
    Otherwise the cycle joins the next round; a round starts once no round is running,
    and takes every token asked for plus every token :attr:`wanted` lists (the other
    shops whose names are stale), so fifty shops cost one aiogram import a day, not
    fifty. Only successes are kept: a failure is retried at the shop's next heartbeat.
    """

    def __init__(
        self,
        fetch_many: FetchMany = fetch_usernames,
        wanted: Callable[[], Iterable[str]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fetch_many = fetch_many
        self.wanted = wanted
        self.clock = clock
        self.rounds = 0
        self._known: dict[str, Identity] = {}
        self._asked: dict[str, anyio.Event] = {}
        self._failed: dict[str, IdentityError] = {}
        self._lock = anyio.Lock()

    def known(self, token: str) -> Identity | None:
        """A name a round got for ``token`` that is still fresh, if any."""
        kept = self._known.get(token)
        fp = fingerprint(token)
        return None if kept is None or needs_refresh(kept, fp, self.clock()) else kept

    async def identity(
        self, token: str, api_base: str, timeout: float, env: Mapping[str, str]
    ) -> Identity:
        """The token's identity as a round fetched it; :class:`IdentityError` if it failed."""
        known = self.known(token)
        if known is not None:
            return known
        done = self._asked.get(token)
        if done is None:
            done = self._asked[token] = anyio.Event()
        async with self._lock:  # one round at a time; later askers join the next
            if not done.is_set():
                await self._round(api_base, timeout, env)
        # The round that set `done` left the token in exactly one of the two.
        failed = self._failed.get(token)
        if failed is not None:
            raise failed
        return self._known[token]

    async def _round(self, api_base: str, timeout: float, env: Mapping[str, str]) -> None:
        asked = dict(self._asked)
        self._asked.clear()
        tokens = list(dict.fromkeys([*asked, *(t for t in self.wanted() if not self.known(t))]))
        self.rounds += 1
        now = self.clock()
        results = await self.fetch_many(tokens, api_base, timeout, env)
        for token in tokens:
            result = results.get(token, IdentityError("child", "no answer in the round"))
            if isinstance(result, IdentityError):
                self._failed[token] = result
                self._known.pop(token, None)
            else:
                self._failed.pop(token, None)
                self._known[token] = Identity(result, now, fingerprint(token))
        for done in asked.values():
            done.set()

    async def username(
        self,
        token: str | None,
        kept: Identity | None,
        now: float,
        fetch: Callable[[str], Awaitable[Identity]],
    ) -> tuple[str | None, Identity | None]:
        """The bot's username for the body, and an identity to keep when one was fetched.

        The kept identity answers while it is fresh for this token; otherwise
        ``fetch`` (this round's :meth:`identity`, bound to the shop's settings) is
        asked, and a failure falls back to the kept name with one warning.
        """
        if token is None:
            log.warning(
                "telegram.bot_token is not set; bot_username is null",
                extra=event("identity.missing"),
            )
            return None, None
        if kept is not None and not needs_refresh(kept, fingerprint(token), now):
            return kept.username, None
        try:
            got = await fetch(token)
        except IdentityError as exc:
            fallback = kept.username if kept is not None else None
            log.warning(
                "getMe failed (%s); bot_username is %s",
                exc,
                f"the kept @{fallback}" if fallback else "null",
                extra=event("identity.failed", kind=exc.kind, kept=fallback),
            )
            return fallback, None
        log.info(
            "bot identity fetched: @%s",
            got.username,
            extra=event("identity.refreshed", bot_username=got.username),
        )
        return got.username, got


def username_of(answer: Mapping[str, object], redact: Redactor) -> str | None:
    """The username in the child's answer, or :class:`IdentityError` for a failure.

    A forged or broken answer must not reach the signed body, the state or a
    terminal: anything but 5-32 of ``A-Z a-z 0-9 _`` (ESC, newlines, U+2028) stops here.
    """
    if answer.get("ok") is not True:
        kind = str(answer.get("kind", "unknown"))
        raise IdentityError(kind, redact(str(answer.get("detail", "")))[:300])
    username = answer.get("username")
    if username is None:
        return None
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        shown = ascii(username)[:80]
        raise IdentityError("bad_response", f"username {shown} is not 5-32 of A-Z a-z 0-9 _")
    return username
