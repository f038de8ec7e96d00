"""The identity child's own work, in this process: its answers to aiogram's outcomes,
and its one line of JSON for a request on stdin.

``test_identity.py`` runs the child as the daemon does, as a process; these call it
directly, so each of its mappings is seen without an interpreter start per case.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from devtools.fake_telegram import FakeTelegram
from pulsed import _identity_child as child

TOKEN = "123456:ABC-secret"
OTHER = "654321:XYZ-other"

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("unauthorized", "unauthorized"), ("server_error", "server"), ("malformed", "bad_response")],
)
async def test_a_bot_api_failure_is_answered_with_its_kind(
    telegram: FakeTelegram, mode: str, kind: str
) -> None:
    telegram.set_mode(mode)  # type: ignore[arg-type]
    answer = await child._get_me(TOKEN, telegram.url, 5.0)
    assert answer["ok"] is False and answer["kind"] == kind
    assert answer["detail"] and "ABC-secret" not in answer["detail"]


async def test_a_method_the_bot_api_does_not_know_is_an_api_failure(telegram: FakeTelegram) -> None:
    answer = await child._get_me(TOKEN, telegram.url + "/prefix", 5.0)
    assert (answer["ok"], answer["kind"]) == (False, "api")
    assert "Not Found" in answer["detail"]


async def test_a_bot_api_that_never_answers_is_a_timeout(telegram: FakeTelegram) -> None:
    telegram.set_mode("hang")
    answer = await child._get_me(TOKEN, telegram.url, 0.5)
    assert answer == {"ok": False, "kind": "timeout", "detail": "no answer within 0.5 s"}


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("unauthorized", "Telegram server says - Unauthorized"),
        ("server_error", "Telegram server says - Internal Server Error"),
    ],
)
async def test_a_bot_api_failure_keeps_what_the_server_said(
    telegram: FakeTelegram, mode: str, detail: str
) -> None:
    telegram.set_mode(mode)  # type: ignore[arg-type]
    assert (await child._get_me(TOKEN, telegram.url, 5.0))["detail"] == detail


async def test_anything_else_aiogram_raises_is_unexpected_with_its_type_and_no_token(
    telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiogram import Bot

    async def broken(self: Bot) -> None:
        raise RuntimeError(f"boom near {TOKEN}")

    monkeypatch.setattr(Bot, "get_me", broken)
    answer = await child._get_me(TOKEN, telegram.url, 5.0)
    assert answer == {
        "ok": False,
        "kind": "unexpected",
        "detail": "RuntimeError: boom near [redacted]",
    }


async def test_an_unreachable_bot_api_is_a_network_failure(free_tcp_port: int) -> None:
    answer = await child._get_me(TOKEN, f"http://127.0.0.1:{free_tcp_port}", 2.0)
    assert (answer["ok"], answer["kind"]) == (False, "network")
    assert "ABC-secret" not in answer["detail"]


async def test_a_token_of_the_wrong_shape_is_refused_before_any_request(
    telegram: FakeTelegram,
) -> None:
    answer = await child._get_me("no-colon-secret", telegram.url, 5.0)
    assert answer == {"ok": False, "kind": "bad_token", "detail": "Token is invalid!"}
    assert "no-colon-secret" not in answer["detail"]
    assert telegram.calls == []


def test_a_detail_is_scrubbed_of_the_token_and_cut_to_300_characters() -> None:
    scrubbed = child._scrub(f"GET /bot{TOKEN}/getMe " + "x" * 400, TOKEN)
    assert scrubbed.startswith("GET /bot[redacted]/getMe x")
    assert len(scrubbed) == 300


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: bytes) -> Any:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = child.main()
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, "the child always exits 0; the answer says what went wrong"
    assert len(lines) == 1
    return json.loads(lines[0])


def test_the_answer_is_one_line_with_a_name_per_token_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeTelegram(more_bots={OTHER: "other_shop_bot"}) as telegram:
        request = {"tokens": [OTHER, TOKEN], "api_base": telegram.url, "timeout": 5}
        answer = _main(monkeypatch, capsys, json.dumps(request).encode())
    assert answer == {
        "answers": [
            {"ok": True, "username": "other_shop_bot"},
            {"ok": True, "username": "acme_shop_bot"},
        ]
    }


@pytest.mark.parametrize(
    ("stdin", "why"),
    [
        (b"not json", "JSONDecodeError"),
        (b'{"tokens": []}', "KeyError"),
        (b'{"tokens": 5, "api_base": "x", "timeout": 1}', "TypeError"),
        (b'{"tokens": [], "api_base": "x", "timeout": "soon"}', "ValueError"),
    ],
    ids=["not-json", "missing-key", "not-a-list", "bad-timeout"],
)
def test_a_request_it_cannot_read_is_answered_as_a_bad_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: bytes, why: str
) -> None:
    answer = _main(monkeypatch, capsys, stdin)
    assert answer == {"ok": False, "kind": "bad_request", "detail": why}


def test_a_request_over_a_mebibyte_is_read_no_further_and_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    request = {"tokens": [], "api_base": "http://127.0.0.1:9", "timeout": 1, "pad": "x" * (1 << 20)}
    answer = _main(monkeypatch, capsys, json.dumps(request).encode())
    assert answer == {"ok": False, "kind": "bad_request", "detail": "JSONDecodeError"}


def test_each_token_is_asked_within_the_requests_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeTelegram() as telegram:
        telegram.set_mode("hang")
        request = {"tokens": [TOKEN], "api_base": telegram.url, "timeout": 0.5}
        answer = _main(monkeypatch, capsys, json.dumps(request).encode())
    assert answer == {
        "answers": [{"ok": False, "kind": "timeout", "detail": "no answer within 0.5 s"}]
    }
