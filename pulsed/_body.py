"""The heartbeat's body: its fields, declared once, and the exact bytes sent and signed.

Pure. :class:`ShopFacts` is what the collector finds on the host; a
:class:`Heartbeat` is those facts with the shop's domain, the bot's username and
the moment it speaks for. :func:`encode` makes the compact JSON with the seven
contract keys in a fixed order, UTF-8, and :func:`signed` turns it into the
:class:`Request` that is delivered: the body and every header, the signature
computed over those bytes and nothing else, so a retry or a resumed delivery
re-sends the identical body and signature. :data:`FIELDS` follows from the two
classes; :data:`pulsed.verify.FIELDS` is the receivers' own copy of it (that file
stands alone), held equal by the tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields

from pulsed._timefmt import rfc3339
from pulsed._version import __version__
from pulsed.verify import SIGNATURE_HEADER, signature

USER_AGENT = f"pulsed/{__version__}"
VERSION_HEADER = "X-MEGAPAY-VERSION"


@dataclass(frozen=True, slots=True)
class ShopFacts:
    """What the host says of the shop; ``None`` where a value could not be had."""

    php_version: str | None
    module_version: str | None
    ecommerce_version: str | None
    ecommerce_core_version: str | None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat's content; ``timestamp`` is RFC 3339 UTC, whole seconds."""

    domain: str
    bot_username: str | None
    facts: ShopFacts
    timestamp: str


_FACTS = tuple(f.name for f in fields(ShopFacts))
FIELDS: tuple[str, ...] = ("domain", "bot_username", *_FACTS, "timestamp")


@dataclass(frozen=True, slots=True)
class Request:
    """A body ready to POST: the bytes, every header, and the moment its timestamp names."""

    body: bytes
    headers: Mapping[str, str]
    at: float

    @property
    def signature(self) -> str:
        return self.headers[SIGNATURE_HEADER]


def encode(beat: Heartbeat) -> bytes:
    obj: dict[str, str | None] = {"domain": beat.domain, "bot_username": beat.bot_username}
    obj.update((name, getattr(beat.facts, name)) for name in _FACTS)
    obj["timestamp"] = beat.timestamp
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode(body: bytes) -> Heartbeat | None:
    """The heartbeat a body holds, or ``None`` when it is not one pulsed could have made
    (a hand-edited state file, say): the seven keys in their order, each a string or
    null, the domain and the timestamp strings."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict) or tuple(obj) != FIELDS:
        return None
    if not all(value is None or isinstance(value, str) for value in obj.values()):
        return None
    domain, stamp = obj["domain"], obj["timestamp"]
    if domain is None or stamp is None:
        return None
    facts = ShopFacts(*(obj[name] for name in _FACTS))
    return Heartbeat(domain, obj["bot_username"], facts, stamp)


def headers(signed_with: str, module_version: str | None) -> dict[str, str]:
    """Every header of the POST; ``X-MEGAPAY-VERSION`` only when the module version is known."""
    found = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signed_with,
    }
    if module_version is not None:
        found[VERSION_HEADER] = module_version
    return found


def heartbeat(domain: str, username: str | None, facts: ShopFacts, at: float) -> Heartbeat:
    """The heartbeat of ``at`` (whole seconds: the body names no fraction)."""
    return Heartbeat(domain, username, facts, rfc3339(at))


def signed(beat: Heartbeat, secret: str, at: float) -> Request:
    """The request that delivers ``beat``; ``at`` is the moment its timestamp names."""
    body = encode(beat)
    return Request(body, headers(signature(secret, body), beat.facts.module_version), at)
