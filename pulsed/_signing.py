"""The heartbeat body and its signature: the exact bytes that are sent and signed.

Pure functions. The body is compact JSON with the seven contract keys in a fixed
order, UTF-8; the signature is computed over those bytes and nothing else, so a
retry re-sends the identical body and signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from pulsed._version import __version__
from pulsed.verify import FIELDS, SIGNATURE_HEADER, signature

USER_AGENT = f"pulsed/{__version__}"
VERSION_HEADER = "X-MEGAPAY-VERSION"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What was collected for one heartbeat; ``None`` where a value could not be had."""

    domain: str
    bot_username: str | None
    php_version: str | None
    module_version: str | None
    ecommerce_version: str | None
    ecommerce_core_version: str | None
    timestamp: str


def encode_body(beat: Heartbeat) -> bytes:
    obj = {name: getattr(beat, name) for name in FIELDS}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_body(body: bytes) -> dict[str, object] | None:
    """A body as sent, or ``None`` when it is not one (e.g. a hand-edited state file)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or list(obj) != list(FIELDS):
        return None
    return obj


def module_version_of(body: bytes) -> str | None:
    obj = decode_body(body)
    value = obj.get("module_version") if obj is not None else None
    return value if isinstance(value, str) else None


def headers_for(body: bytes, secret: str) -> Mapping[str, str]:
    """Every header of the POST; ``X-MEGAPAY-VERSION`` only when the module version is known."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret, body),
    }
    version = module_version_of(body)
    if version is not None:
        headers[VERSION_HEADER] = version
    return headers
