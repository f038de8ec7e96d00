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
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from pulsed._errors import IdentityError, SubprocessError
from pulsed._proc import run
from pulsed._redact import Redactor
from pulsed._state import Identity

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


async def fetch_username(
    token: str,
    api_base: str,
    timeout: float,
    env: Mapping[str, str],
    *,
    python: str = sys.executable,
    allowance: float = IMPORT_ALLOWANCE,
) -> str | None:
    """``getMe``'s username through the child; :class:`IdentityError` on any failure."""
    redact = Redactor([token])
    request = json.dumps({"token": token, "api_base": api_base, "timeout": timeout}).encode()
    child_env = dict(env)
    child_env["PYTHONPATH"] = _PACKAGE_PARENT + (
        ":" + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else ""
    )
    try:
        done = await run(
            [python, "-m", "pulsed._identity_child"],
            timeout=timeout + allowance,
            env=child_env,
            stdin=request,
        )
    except SubprocessError as exc:
        raise IdentityError("child", redact(str(exc))) from exc
    lines = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        tail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        detail = f"identity child exited {done.returncode}" + (f": {tail[0]}" if tail else "")
        raise IdentityError("child", redact(detail)[:300])
    return username_of(answer, redact)


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
