"""The baseline processes the benchmark compares ``pulsed run`` with.

``floor``: the least a Python heartbeat agent built on pulsed's libraries can
cost. It imports anyio, httpx, tenacity and python-json-logger (the daemon's
whole dependency set), opens one ``httpx.AsyncClient``, says ``READY=1`` on
``$NOTIFY_SOCKET`` when set, POSTs one request, prints ``sent <status>`` and
then sleeps for ever without a timer, exactly as an idle daemon should.

``naive``: the same, plus what a daemon that calls ``getMe`` in-process pays:
it imports aiogram and fetches the bot through it before idling.

The request comes as one JSON object on stdin: ``{"url", "body", "headers"}``
(and ``"api_base"``, ``"token"`` for ``naive``), so nothing secret is on the
command line. Run by ``bench/bench.py``; not meant to be started by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import Any

# The floor's imports are the measurement: these four, nothing else of pulsed's.
import anyio
import httpx
import tenacity  # noqa: F401 -- imported for its footprint, as the daemon does
from pythonjsonlogger.json import JsonFormatter  # noqa: F401 -- same


def _notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


async def _naive_get_me(api_base: str, token: str) -> str | None:
    # Imported here so that the floor never pays for it; the naive design pays on start.
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))
    try:
        me = await bot.get_me()
    finally:
        await bot.session.close()
    return me.username


async def _main(mode: str, request: dict[str, Any]) -> None:
    client = httpx.AsyncClient(
        follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0), timeout=2.0
    )
    _notify("READY=1")
    if mode == "naive":
        await _naive_get_me(request["api_base"], request["token"])
    response = await client.post(
        request["url"], content=request["body"].encode(), headers=request["headers"]
    )
    print(f"sent {response.status_code} at {time.monotonic():.6f}", flush=True)
    # Idle like the daemon: the client stays open, no timer is armed.
    await anyio.sleep_forever()


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "floor"
    if mode not in ("floor", "naive"):
        print("usage: floor.py [floor|naive] < request.json", file=sys.stderr)
        return 2
    request = json.loads(sys.stdin.read())
    # SIGINT is how a terminal stops it; SIGTERM (the benchmark's way) ends it outright.
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_main, mode, request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
