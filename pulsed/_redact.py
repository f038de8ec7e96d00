"""Redaction: the one place that knows every shape a secret can take in text.

A secret reaches text whole, JSON-escaped (a log line, the state file),
URL-encoded (a URL in an error message) and, for a bot token
``<bot id>:<key>``, as either half (aiohttp prints the path; some errors print
the key alone). :class:`Redactor` replaces all of them; the daemon keeps one,
:data:`REDACT`, that every path which writes text (log lines, ``state.json``,
``STATUS=``) goes through, and the identity child keeps its own for the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
# A half shorter than this is too likely to be an ordinary number or word in the
# text around it; a real bot id has 8-10 digits and a key 35 characters.
_MIN_HALF = 6
_TOKEN_SHAPE = re.compile(r"\d+:\S+")


def shapes(secret: str) -> set[str]:
    """Every form in which ``secret`` can appear in text that pulsed writes."""
    if len(secret) < _MIN_HALF:
        # Too short to tell from ordinary text: redacting it would cut that letter out of
        # every line, the refusal of that very secret included. It is never used (a
        # heartbeat secret under 16 bytes is refused), so nothing is left to hide.
        return set()
    forms = {secret}
    if _TOKEN_SHAPE.fullmatch(secret):
        forms.update(half for half in secret.split(":", 1) if len(half) >= _MIN_HALF)
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
        # URL quoting differs by what a library leaves unescaped: try the usual sets.
        forms.update(quote(form, safe=safe) for safe in ("", "/", ":", ":/"))
        forms.add(quote_plus(form))  # its default escapes "/" and ":" too
    return forms


class Redactor:
    """Replaces every registered secret, in every shape, with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._needles: tuple[str, ...] = ()
        self.register(secrets)

    def register(self, secrets: Iterable[str]) -> None:
        needles = set(self._needles)
        for secret in secrets:
            needles |= shapes(secret)
        # Longest first, so a token is replaced whole before its key half is looked for.
        self._needles = tuple(sorted(needles, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text


REDACT = Redactor()
