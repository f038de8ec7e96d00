"""Verifying a heartbeat, for the people who run the receiver.

This is the function pulsed's own tests use to check what it sends, and the one
``docs/protocol.md`` documents: verify the HMAC over the raw body bytes with a
constant-time compare, then reject a timestamp more than 300 s from the
receiver's clock. It depends on the standard library only, so a receiver can
copy this file as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import Any

SIGNATURE_HEADER = "X-Pulse-Signature"
SIGNATURE_PREFIX = "sha256="
MAX_SKEW_SECONDS = 300.0
FIELDS = (
    "domain",
    "bot_username",
    "php_version",
    "module_version",
    "ecommerce_version",
    "ecommerce_core_version",
    "timestamp",
)


class VerificationError(ValueError):
    """The heartbeat must be rejected; ``reason`` is one stable word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def signature(secret: str | bytes, body: bytes) -> str:
    """The ``X-Pulse-Signature`` value for ``body``: ``sha256=`` + lowercase hex."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_heartbeat(
    secret: str | bytes,
    body: bytes,
    signature_header: str | None,
    *,
    now: datetime | None = None,
    max_skew: float = MAX_SKEW_SECONDS,
) -> dict[str, Any]:
    """Return the heartbeat as a dict, or raise :class:`VerificationError`.

    The signature is checked over ``body`` exactly as received, before it is
    parsed; only then is the JSON read and its ``timestamp`` compared with
    ``now`` (the receiver's clock, timezone.utc).
    """
    if not signature_header:
        raise VerificationError("unsigned", "no X-Pulse-Signature header")
    expected = signature(secret, body)
    if not hmac.compare_digest(expected.encode("ascii"), signature_header.encode("utf-8")):
        raise VerificationError("bad_signature", "HMAC does not match the body")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError("malformed", f"body is not UTF-8 JSON ({exc})") from exc
    if not isinstance(payload, dict) or set(payload) != set(FIELDS):
        raise VerificationError("malformed", f"body must hold exactly the keys {FIELDS}")
    stamp = payload["timestamp"]
    if not isinstance(stamp, str) or not stamp.endswith("Z"):
        raise VerificationError("malformed", "timestamp must be RFC 3339 UTC ending in Z")
    try:
        sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise VerificationError("malformed", f"timestamp {stamp!r} is not RFC 3339") from exc
    clock = now if now is not None else datetime.now(timezone.utc)
    skew = abs((clock - sent).total_seconds())
    if skew > max_skew:
        raise VerificationError("stale", f"timestamp is {skew:.0f} s from the receiver's clock")
    return payload
