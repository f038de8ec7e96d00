"""The identity child: imports aiogram once, calls ``getMe`` for each token, prints, exits.

Run as ``python -m pulsed._identity_child`` with ``{"tokens": [...], "api_base",
"timeout"}`` as JSON on stdin. It answers one JSON line, ``{"answers": [...]}``, one
answer per token in order: ``{"ok": true, "username": ...}`` or ``{"ok": false,
"kind": ..., "detail": ...}``, and exits 0 either way. The calls run concurrently,
so a round for fifty shops costs one aiogram import and about one request's time.
aiogram's errors are mapped to a few stable kinds here, and the token is scrubbed
from every detail before it is printed, because aiogram's URLs carry it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pulsed._redact import Redactor


def _scrub(text: str, token: str) -> str:
    return Redactor([token])(text)[:300]


async def _get_me(token: str, api_base: str, timeout: float) -> dict[str, Any]:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import (
        ClientDecodeError,
        TelegramAPIError,
        TelegramNetworkError,
        TelegramServerError,
        TelegramUnauthorizedError,
    )
    from aiogram.utils.token import TokenValidationError

    kind: str
    try:
        # One limit, wait_for's below: aiohttp's own would end the same wait as a
        # "network" error instead of a "timeout".
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base))
        bot = Bot(token, session=session)
    except TokenValidationError as exc:
        return {"ok": False, "kind": "bad_token", "detail": _scrub(str(exc), token)}
    try:
        me = await asyncio.wait_for(bot.get_me(), timeout=timeout)
    except TelegramUnauthorizedError as exc:
        kind, detail = "unauthorized", str(exc)
    except TelegramServerError as exc:
        kind, detail = "server", str(exc)
    except TelegramNetworkError as exc:
        kind, detail = "network", str(exc)
    except ClientDecodeError as exc:
        kind, detail = "bad_response", exc.message
    except TelegramAPIError as exc:
        kind, detail = "api", str(exc)
    except (TimeoutError, asyncio.TimeoutError):  # wait_for raises the second before 3.11
        kind, detail = "timeout", f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 -- the parent must get an answer, never a traceback with the token
        kind, detail = "unexpected", f"{type(exc).__name__}: {exc}"
    else:
        return {"ok": True, "username": me.username}
    finally:
        await bot.session.close()
    return {"ok": False, "kind": kind, "detail": _scrub(detail, token)}


MAX_REQUEST = 1 << 20


async def _get_all(tokens: list[str], api_base: str, timeout: float) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_get_me(t, api_base, timeout) for t in tokens)))


def main() -> int:
    try:
        request = json.loads(sys.stdin.buffer.read(MAX_REQUEST))
        tokens = [str(t) for t in request["tokens"]]
        api_base, timeout = str(request["api_base"]), float(request["timeout"])
    except (ValueError, KeyError, TypeError) as exc:
        print(json.dumps({"ok": False, "kind": "bad_request", "detail": type(exc).__name__}))
        return 0
    answers = asyncio.run(_get_all(tokens, api_base, timeout))
    print(json.dumps({"answers": answers}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
