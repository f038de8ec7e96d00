"""The bot identity: when to refresh it, and the aiogram child against a stand-in Bot API."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_telegram import FakeTelegram
from pulsed import _identity as ident
from pulsed._errors import IdentityError
from pulsed._redact import Redactor
from pulsed._state import Identity

NOW = 1_800_000_000.0
TOKEN = "123456:ABC-secret"
FP = ident.fingerprint(TOKEN)


def test_fingerprint_is_stable_and_not_the_token() -> None:
    assert ident.fingerprint(TOKEN) == FP
    assert TOKEN not in FP and "ABC-secret" not in FP
    assert ident.fingerprint("123456:other") != FP


@pytest.mark.parametrize(
    ("kept", "fp", "refresh"),
    [
        (None, None, False),  # no token: nothing to fetch
        (None, FP, True),
        (Identity("bot", NOW - 3600, FP), FP, False),
        (Identity("bot", NOW - 86399, FP), FP, False),
        (Identity("bot", NOW - 86400, FP), FP, True),  # 24 h old
        (Identity("bot", NOW + 60, FP), FP, True),  # dated in the future
        (Identity("bot", NOW - 10, "hmac-sha256:other"), FP, True),  # token changed
    ],
)
def test_needs_refresh(kept: Identity | None, fp: str | None, refresh: bool) -> None:
    assert ident.needs_refresh(kept, fp, NOW) is refresh


@pytest.mark.parametrize(
    "forged",
    ["evil\x1b[31mbot", "line\nbreak_bot", "sep\u2028arator", "abc", "x" * 33, 42, "bot name"],
    ids=["escape", "newline", "u2028", "too-short", "too-long", "number", "space"],
)
def test_a_username_that_is_not_a_telegram_username_is_refused(forged: object) -> None:
    with pytest.raises(IdentityError) as caught:
        ident.username_of({"ok": True, "username": forged}, Redactor())
    assert caught.value.kind == "bad_response"
    assert all(ch.isprintable() for ch in str(caught.value))


def test_a_refused_username_is_shown_escaped_and_cut_to_80_characters() -> None:
    with pytest.raises(IdentityError) as caught:
        ident.username_of({"ok": True, "username": "\x1b" + "b" * 100}, Redactor())
    shown = ascii("\x1b" + "b" * 100)[:80]
    assert caught.value.detail == f"username {shown} is not 5-32 of A-Z a-z 0-9 _"


@pytest.mark.parametrize("name", ["abcde", "A" * 32, "acme_shop_bot", "Bot_2026"])
def test_a_telegram_username_is_taken(name: str) -> None:
    assert ident.username_of({"ok": True, "username": name}, Redactor()) == name


def test_a_failure_answer_is_an_identity_error_with_the_token_redacted() -> None:
    answer = {"ok": False, "kind": "unauthorized", "detail": f"401 for /bot{TOKEN}/getMe"}
    with pytest.raises(IdentityError, match="unauthorized") as caught:
        ident.username_of(answer, Redactor([TOKEN]))
    assert TOKEN not in str(caught.value)


pytestmark = pytest.mark.anyio


async def fetch_one(
    token: str, api_base: str, timeout: float, env: dict[str, str], **kwargs: Any
) -> str | None:
    """One token's round: its username, or its IdentityError raised."""
    result = (await ident.fetch_usernames([token], api_base, timeout, env, **kwargs))[token]
    if isinstance(result, IdentityError):
        raise result
    return result


async def fetch(telegram: FakeTelegram, token: str = TOKEN, limit: float = 5.0) -> str | None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return await fetch_one(token, telegram.url, limit, env)


async def test_child_fetches_the_username_through_aiogram(telegram: FakeTelegram) -> None:
    assert await fetch(telegram) == "acme_shop_bot"
    assert telegram.calls == [TOKEN]


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("unauthorized", "unauthorized"), ("server_error", "server"), ("malformed", "bad_response")],
)
async def test_child_maps_bot_api_failures(telegram: FakeTelegram, mode: str, kind: str) -> None:
    telegram.set_mode(mode)  # type: ignore[arg-type]
    with pytest.raises(IdentityError) as info:
        await fetch(telegram)
    assert info.value.kind == kind
    assert "ABC-secret" not in str(info.value)


async def test_wrong_token_is_unauthorized_and_not_echoed(telegram: FakeTelegram) -> None:
    with pytest.raises(IdentityError) as info:
        await fetch(telegram, token="654321:WRONG-key")
    assert info.value.kind == "unauthorized"
    assert "WRONG-key" not in str(info.value)


async def test_bot_api_that_never_answers_times_out(telegram: FakeTelegram) -> None:
    telegram.set_mode("hang")
    with pytest.raises(IdentityError) as info:
        await fetch(telegram, limit=1.0)
    assert info.value.kind in ("timeout", "network")


async def test_unreachable_bot_api_is_a_network_failure(free_tcp_port: int) -> None:
    env = {"PATH": os.environ["PATH"]}
    with pytest.raises(IdentityError) as info:
        await fetch_one(TOKEN, f"http://127.0.0.1:{free_tcp_port}", 2.0, env)
    assert info.value.kind == "network"
    assert "ABC-secret" not in str(info.value)


def fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


async def test_a_hanging_child_is_killed_at_its_deadline(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "exec sleep 60")
    start = time.monotonic()
    with pytest.raises(IdentityError) as info:
        await fetch_one(TOKEN, "http://127.0.0.1:9", 0.5, {}, python=python, allowance=0.5)
    assert info.value.kind == "child"
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "body",
    [
        f"echo 'Traceback: boom {TOKEN}' >&2; exit 1",
        "echo 'not json'; exit 0",
        "kill -9 $$",
        'echo \'{"ok": "maybe"}\'',
    ],
    ids=["crash", "garbage", "killed", "odd-answer"],
)
async def test_a_child_that_dies_or_babbles_is_an_identity_error(tmp_path: Path, body: str) -> None:
    python = fake_python(tmp_path, body)
    with pytest.raises(IdentityError) as info:
        await fetch_one(TOKEN, "http://127.0.0.1:9", 1.0, {}, python=python)
    assert "ABC-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "path"),
    [(None, ident._PACKAGE_PARENT), ("/opt/x", f"{ident._PACKAGE_PARENT}:/opt/x")],
)
async def test_the_child_imports_this_very_package_first(
    tmp_path: Path, given: str | None, path: str
) -> None:
    # The child must run the pulsed its parent is, not another one on the path.
    seen = tmp_path / "pythonpath"
    answer = '{"answers": [{"ok": true, "username": "acme_bot"}]}'
    python = fake_python(tmp_path, f"printf '%s' \"$PYTHONPATH\" > {seen}\necho '{answer}'")
    env = {} if given is None else {"PYTHONPATH": given}
    assert await fetch_one(TOKEN, "http://127.0.0.1:9", 1.0, env, python=python) == "acme_bot"
    assert seen.read_text() == path


async def test_token_reaches_the_child_by_pipe_only(tmp_path: Path, telegram: FakeTelegram) -> None:
    seen = tmp_path / "seen.json"
    dump = (
        "import json, os, sys; "
        f"json.dump({{'argv': open('/proc/self/cmdline','rb').read().decode(), "
        f"'env': dict(os.environ)}}, open({str(seen)!r}, 'w'))"
    )
    python = fake_python(tmp_path, f'{sys.executable} -c "{dump}"\nexec {sys.executable} "$@"')
    env = {"PATH": os.environ["PATH"], "HOME": "/root"}
    assert await fetch_one(TOKEN, telegram.url, 5.0, env, python=python) == ("acme_shop_bot")
    record = json.loads(seen.read_text())
    assert TOKEN not in json.dumps(record) and "ABC-secret" not in json.dumps(record)
