"""A stand-in for the Telegram Bot API's ``getMe``, reached through aiogram's own
custom-server support.

This module owns the Bot API's side of the identity fetch: which token is
accepted, what ``getMe`` returns, and the failures a test can switch on
(:meth:`FakeTelegram.set_mode`). aiogram is pointed at it with
``TelegramAPIServer.from_base(fake.url)``; it then POSTs to
``/bot<token>/getMe``, so the token arrives in the path (recorded in
:attr:`FakeTelegram.calls`) and the request body is empty.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import unquote

from devtools.faultserver import FaultServer, Reply, Request, silent, status

__all__ = ["FakeTelegram", "Mode"]

Mode = Literal["ok", "unauthorized", "server_error", "malformed", "hang"]
_MODES: tuple[str, ...] = get_args(Mode)


def _json_reply(code: int, payload: dict[str, Any]) -> Reply:
    body = json.dumps(payload).encode("utf-8")
    return status(code, {"Content-Type": "application/json"}, body)


def _error(code: int, description: str) -> Reply:
    return _json_reply(code, {"ok": False, "error_code": code, "description": description})


class FakeTelegram:
    """``getMe`` for one bot (or several), answering as the real Bot API does.

    ``valid_token`` gets ``username``; ``more_bots`` (token to username) adds bots
    the same server answers for, as when many shops' tokens are fetched in one round.
    Modes: ``"ok"`` (a valid token gets its bot, any other a 401),
    ``"unauthorized"`` (401 always), ``"server_error"`` (500, JSON error),
    ``"malformed"`` (200 with a body that is not JSON), ``"hang"`` (never
    answers). Methods other than ``getMe`` get the Bot API's 404.
    """

    def __init__(
        self,
        username: str = "acme_shop_bot",
        valid_token: str = "123456:ABC-secret",  # noqa: S107 -- a fixed test token, not a credential
        *,
        first_name: str = "Acme Shop",
        more_bots: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.username = username
        self.valid_token = valid_token
        self.bots = {**(more_bots or {}), valid_token: username}
        self.first_name = first_name
        self._cond = threading.Condition()
        self._mode: Mode = "ok"
        self._calls: list[str] = []
        self.server = FaultServer(ssl_context=ssl_context, handler=self._handle)

    def start(self) -> FakeTelegram:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def calls(self) -> list[str]:
        """The token of every Bot API call, in order."""
        with self._cond:
            return list(self._calls)

    def set_mode(self, mode: Mode) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown FakeTelegram mode {mode!r}; one of {_MODES}")
        with self._cond:
            self._mode = mode

    def wait_for_calls(self, n: int, timeout: float = 10.0) -> list[str]:
        """Block until ``n`` Bot API calls have arrived; return their tokens."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._calls) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} Bot API call(s) on {self.url} within {timeout} s, "
                    f"got {len(self._calls)}"
                )
            return list(self._calls)

    def _handle(self, request: Request) -> Reply:
        token, method = self._parse(request.path)
        if token is None:
            return _error(404, "Not Found")
        with self._cond:
            self._calls.append(token)
            self._cond.notify_all()
            mode = self._mode
        if method.lower() != "getme":
            return _error(404, "Not Found: method not found")
        if mode == "hang":
            return silent()
        if mode == "malformed":
            return status(200, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>")
        if mode == "server_error":
            return _error(500, "Internal Server Error")
        if mode == "unauthorized" or token not in self.bots:
            return _error(401, "Unauthorized")
        # A real token starts with the bot's id.
        bot_id = token.partition(":")[0]
        user = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.bots[token],
        }
        return _json_reply(200, {"ok": True, "result": user})

    @staticmethod
    def _parse(path: str) -> tuple[str | None, str]:
        parts = path.split("?", 1)[0].split("/")
        if len(parts) != 3 or parts[0] != "" or not parts[1].startswith("bot"):
            return None, ""
        return unquote(parts[1][3:]), parts[2]
