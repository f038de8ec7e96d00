"""Redaction: the one place that knows every shape a secret can take in text.

A secret reaches text whole, JSON-escaped (a log line, the state file),
URL-encoded (a URL in an error message) and, for a bot token
``<bot id>:<key>``, as either half (aiohttp prints the path; some errors print
the key alone). :class:`Redactor` replaces all of them; the daemon keeps one,
:data:`REDACT`, that every path which writes text (log lines, ``state.json``,
``STATUS=``) goes through, and the identity child keeps its own for the token.

A daemon of thousands of shops registers thousands of secrets, and every line it
writes is searched for all of them: with more than a few dozen, a line is searched
through an index of short slices (:class:`_Index`), whose cost does not grow with
their number, and the result is the same as looking for each in turn.
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
# What neither JSON nor URL escaping changes: quote() always leaves these unescaped.
_AS_IS = re.compile(r"[A-Za-z0-9_.~-]*")
# The index's lookup (:class:`_Index`): ``_GRAM`` characters at every ``_STRIDE``-th
# position of a text. Together they span ``_MIN_HALF``, the shortest shape there is.
_GRAM = 4
_STRIDE = _MIN_HALF - _GRAM + 1
# Above this many needles the index is the faster: on a 200-character line it takes
# about 11 us whatever their number, looking for each in turn about 0.08 us a needle.
INDEXED_ABOVE = 150


def shapes(secret: str) -> set[str]:
    """Every form in which ``secret`` can appear in text that pulsed writes."""
    if len(secret) < _MIN_HALF:
        # Too short to tell from ordinary text: redacting it would cut that letter out of
        # every line, the refusal of that very secret included. It is never used (a
        # heartbeat secret under 16 bytes is refused), so nothing is left to hide.
        return set()
    forms = [secret]
    if _TOKEN_SHAPE.fullmatch(secret):
        forms += [half for half in secret.split(":", 1) if len(half) >= _MIN_HALF]
    found = set(forms)
    for form in forms:
        if _AS_IS.fullmatch(form):
            # Nothing below changes it (a bot id, a key, a hex secret): skipping the
            # seven spellings keeps registering thousands of secrets quick.
            continue
        found.add(json.dumps(form)[1:-1])
        found.add(json.dumps(form, ensure_ascii=False)[1:-1])
        # URL quoting differs by what a library leaves unescaped: try the usual sets.
        found.update(quote(form, safe=safe) for safe in ("", "/", ":", ":/"))
        found.add(quote_plus(form))  # its default escapes "/" and ":" too
    return found


def replace_each(needles: Iterable[str], text: str) -> str:
    """``text`` with each of ``needles``, taken in that order, replaced wherever it is.

    The order is :func:`_order`'s; this is what :class:`Redactor` does for few needles,
    and what its index must give for many.
    """
    for needle in needles:
        if needle in text:
            text = text.replace(needle, REDACTED)
    return text


def _order(needle: str) -> tuple[int, str]:
    # Longest first, so a token is replaced whole before its key half is looked for;
    # equal lengths by their text, so two that overlap are taken in the same order in
    # every process (a set's order changes with the hash seed).
    return (-len(needle), needle)


class _Index:
    """Needles found by looking up a few slices of the text, however many there are.

    Every needle is at least ``_GRAM + _STRIDE - 1`` characters long, so wherever one
    occurs, a text position that is a multiple of ``_STRIDE`` falls within its first
    ``_STRIDE`` characters, and the ``_GRAM`` characters there lie inside it. Each
    needle is filed under its grams at offsets ``0 .. _STRIDE - 1``; a text is looked
    up at every ``_STRIDE``-th position only, and a needle filed under a gram it holds
    is then checked whole.
    """

    def __init__(self) -> None:
        self._by_gram: dict[str, list[str]] = {}

    def add(self, needle: str) -> None:
        for offset in range(_STRIDE):
            self._by_gram.setdefault(needle[offset : offset + _GRAM], []).append(needle)

    def found(self, text: str) -> set[str]:
        """Every needle in ``text``."""
        # The last slices may be short: they match no key, every key being _GRAM long.
        grams = self._by_gram.keys() & {
            text[at : at + _GRAM] for at in range(0, len(text), _STRIDE)
        }
        return {needle for gram in grams for needle in self._by_gram[gram] if needle in text}

    def replace(self, text: str) -> str:
        """What :func:`replace_each` gives with every needle in :func:`_order`.

        That loop replaces the first needle in its order that is in the text, then the
        next one after it that is in the text as it now is, and so on; this finds the
        same ones through the index. The text is looked up again after each
        replacement, which is rare: ``[redacted]`` beside what was there can complete
        a needle that was not there before.
        """
        found = self.found(text)
        while found:
            needle = min(found, key=_order)
            text = text.replace(needle, REDACTED)
            after = _order(needle)
            found = {other for other in self.found(text) if _order(other) > after}
        return text


class Redactor:
    """Replaces every registered secret, in every shape, with ``[redacted]``.

    Secrets stay registered for the process's life: one a reload removed may still be
    in text on its way out (an error of the last heartbeat, a line being written).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._needles: set[str] = set()
        self._index = _Index()
        # Few needles: each looked for in turn, cheaper than the index's lookups.
        self._plain: tuple[str, ...] | None
        self.register(secrets)

    def register(self, secrets: Iterable[str]) -> None:
        """Add ``secrets``: all of one load in one call, which builds once.

        A reload registers while worker threads may be writing lines: the index only
        grows and ``_plain`` is replaced whole, so a line meanwhile is searched for every
        secret registered before, and for none, some or all of those being added.
        """
        for secret in secrets:
            if secret in self._secrets:
                continue  # a reload registers the same secrets again
            self._secrets.add(secret)
            for needle in shapes(secret) - self._needles:
                self._needles.add(needle)
                self._index.add(needle)
        self._plain = (
            tuple(sorted(self._needles, key=_order))
            if len(self._needles) <= INDEXED_ABOVE
            else None
        )

    @property
    def indexed(self) -> bool:
        """Whether text is searched through the index (many needles) or needle by needle."""
        return self._plain is None

    def __call__(self, text: str) -> str:
        if self._plain is None:
            return self._index.replace(text)
        return replace_each(self._plain, text)


REDACT = Redactor()
