"""The status document: what ``status --json`` prints and the status file holds.

:func:`document` turns each shop's state into one JSON-ready object with
``"schema": 1`` (documented in ``docs/status.md``, checked against
``docs/status.schema.json``); :func:`text` renders that same object for a person,
one block per shop. The object is :func:`header` and one :func:`shop` per shop, so
the status file can be joined from shops rendered one at a time
(:mod:`pulsed._publish`). All are pure: the caller reads the states and the clock.

The status file is readable by every tenant of a shared host, so the document is
built from an explicit list of fields and never carries a secret, the token's
fingerprint, a version string (the interrupted body holds the shop's versions) or
a file path. There is one document, so ``status --json`` cannot drift from the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pulsed import _timefmt
from pulsed._errors import REASONS
from pulsed._state import State

SCHEMA = 1
DAY = 86400.0
WINDOWS = {"24h": DAY, "7d": 7 * DAY}

Problem = Literal["unreadable", "corrupt", "disabled"]


@dataclass(frozen=True, slots=True)
class ShopView:
    """One shop as the status shows it.

    ``next_due`` is when its next heartbeat may go (the schedule's answer, which
    may differ from ``state.next_due``); ``None`` when not known. ``problem`` says
    that the state could not be read, in which case ``state`` is empty, or that the
    shop is ``disabled`` (its configuration cannot work; ``problem_setting`` names the
    setting), in which case ``state`` holds its kept figures and nothing is due.
    """

    name: str
    domain: str | None
    state: State
    next_due: float | None
    problem: Problem | None = None
    problem_setting: str | None = None


def _share(state: State, now: float, window: float) -> tuple[int, float | None]:
    recent, sent = state.history.since(now - window)
    if not recent:
        return 0, None
    return recent, round(sent / recent, 4)


def shop(view: ShopView, now: float) -> dict[str, Any]:
    """The status of one shop: the fields ``docs/status.md`` lists, and nothing else."""
    s = view.state
    ident = s.identity
    counts = s.counters
    doc: dict[str, Any] = {
        "name": view.name,
        "domain": view.domain,
        "problem": view.problem,
        "problem_setting": view.problem_setting,
        "last_success": _timefmt.maybe(s.last_success),
        "last_attempt": _timefmt.maybe(s.last_attempt),
        "last_error": s.last_error,
        "last_status": s.last_status,
        "failures_in_a_row": s.consecutive_failures,
        "next_due": _timefmt.maybe(view.next_due),
        "delivery_interrupted": s.pending is not None,
        "bot_username": ident.username if ident else None,
        "bot_fetched_at": _timefmt.maybe(ident.fetched_at) if ident else None,
        "heartbeats_sent": counts.heartbeats_sent,
        "deliveries_failed": counts.deliveries_failed,
        "delivery_attempts": counts.delivery_attempts,
        "last_delivery_elapsed_ms": s.history[-1].elapsed_ms if s.history else None,
    }
    for label, seconds in WINDOWS.items():
        doc[f"deliveries_{label}"], doc[f"delivered_share_{label}"] = _share(s, now, seconds)
    return doc


def header(now: float) -> dict[str, Any]:
    """The fields of the document before its shops, as made at ``now``."""
    return {"schema": SCHEMA, "generated_at": _timefmt.rfc3339(now)}


def document(shops: Sequence[ShopView], now: float) -> dict[str, Any]:
    """The whole status object, shops in the order given."""
    return {**header(now), "shops": [shop(view, now) for view in shops]}


def public_error(last_error: object, last_status: object) -> str | None:
    """A failure as the world-readable file tells it: the reason word and the HTTP status.

    The state keeps a snippet of the receiver's answer, and a receiver that echoes
    the request (as a 422 often does) would put the shop's versions there; only the
    word before the colon, and only when it is one of pulsed's own, goes out.
    """
    if not isinstance(last_error, str):
        return None
    word = last_error.partition(":")[0]
    reason = word if word in REASONS else "failed"
    is_status = isinstance(last_status, int) and not isinstance(last_status, bool)
    return f"{reason} HTTP {last_status}" if is_status else reason


def public_shop(shop_doc: Mapping[str, Any]) -> dict[str, Any]:
    """One shop as the status file holds it: nothing in it came from a peer."""
    return {
        **shop_doc,
        "last_error": public_error(shop_doc["last_error"], shop_doc["last_status"]),
    }


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as the status file holds it (:func:`public_shop`, shop by shop)."""
    return {**doc, "shops": [public_shop(s) for s in doc["shops"]]}


# --- for a person ---------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` safe for a terminal: what is not printable is shown escaped, not obeyed."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def ago(seconds: float) -> str:
    """``12 minutes ago``; the admin page's PHP function words it the same way."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return "less than a minute ago"
    if whole < 120 * 60:
        return _plural(whole // 60, "minute") + " ago"
    if whole < 48 * 3600:
        return _plural(whole // 3600, "hour") + " ago"
    return _plural(whole // 86400, "day") + " ago"


def percent(share: float) -> str:
    """``99.4 %``, rounded down: one failure in a thousand is never shown as 100 %."""
    if share >= 1:
        return "100 %"
    return f"{math.floor(share * 1000) / 10:.1f} %"


def _parse_time(value: object) -> float | None:
    """A time of the document in POSIX seconds; None where the document has null."""
    return _timefmt.parse(value) if isinstance(value, str) else None


def one_line(shop_doc: Mapping[str, Any], now: float) -> str:
    """The shop in one line: ``last heartbeat 12 minutes ago, 99.4 % delivered over 7 days,
    next at 14:05 UTC``; ``pulsed status`` and the admin page open with it."""
    last = _parse_time(shop_doc["last_success"])
    parts = ["no heartbeat yet" if last is None else f"last heartbeat {ago(now - last)}"]
    share = shop_doc["delivered_share_7d"]
    parts.append(
        "no delivery in 7 days" if share is None else f"{percent(share)} delivered over 7 days"
    )
    nxt = _parse_time(shop_doc["next_due"])
    if nxt is None or nxt <= now:
        parts.append("next now")
    elif nxt - now < DAY:
        parts.append(f"next at {_timefmt.rfc3339(nxt)[11:16]} UTC")
    else:
        parts.append(f"next at {_timefmt.rfc3339(nxt)[:16].replace('T', ' ')} UTC")
    return ", ".join(parts)


def _window(shop_doc: Mapping[str, Any], label: str, words: str) -> str:
    count, share = shop_doc[f"deliveries_{label}"], shop_doc[f"delivered_share_{label}"]
    if share is None:
        return f"none in {words}"
    sent = round(share * count)
    return f"{sent} of {count} in {words} ({percent(share)})"


def health(shop_doc: Mapping[str, Any]) -> str:
    """One word for a shop: ``ok``, ``failing``, ``waiting`` (nothing sent yet) or its
    problem (``disabled``, ``unreadable``, ``corrupt``)."""
    if shop_doc["problem"]:
        return str(shop_doc["problem"])
    if shop_doc["failures_in_a_row"]:
        return "failing"
    return "ok" if shop_doc["last_success"] else "waiting"


def table(doc: Mapping[str, Any], now: float) -> str:
    """One line per shop (name, domain, state, last success, next due), then a sum."""
    rows = [("SHOP", "DOMAIN", "STATE", "LAST SUCCESS", "NEXT DUE")]
    for s in doc["shops"]:
        last = _parse_time(s["last_success"])
        state = health(s)
        if s["problem_setting"]:
            state += f" ({s['problem_setting']})"
        rows.append(
            (
                s["name"],
                s["domain"] or "-",
                state,
                "never" if last is None else ago(now - last),
                "-" if s["problem"] == "disabled" else (s["next_due"] or "now"),
            )
        )
    cells = [[printable(str(cell)) for cell in row] for row in rows]
    # Every column padded to its widest cell but the last, which ends the line.
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = ["  ".join([*(row[i].ljust(widths[i]) for i in range(4)), row[4]]) for row in cells]
    counts: dict[str, int] = {}
    for s in doc["shops"]:
        counts[health(s)] = counts.get(health(s), 0) + 1
    total = len(doc["shops"])
    lines.append(
        f"{total} shop{'' if total == 1 else 's'}: "
        + ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
    )
    return "\n".join(lines) + "\n"


def _rows(s: Mapping[str, Any]) -> tuple[tuple[str, object], ...]:
    """A shop's figures for a person, a label and a value each."""
    bot = f"@{s['bot_username']} (fetched {s['bot_fetched_at']})" if s["bot_username"] else None
    status = f"HTTP {s['last_status']}" if s["last_status"] is not None else "no answer"
    took = s["last_delivery_elapsed_ms"]
    attempt = s["last_attempt"] or "never"
    if s["last_attempt"]:
        attempt += f" ({status}" + (f", {took} ms)" if took is not None else ")")
    counted = (
        f"{s['heartbeats_sent']} sent, {s['deliveries_failed']} failed, "
        f"{s['delivery_attempts']} attempts"
    )
    delivered = f"{_window(s, '24h', '24 h')}, {_window(s, '7d', '7 days')}"
    if s["problem"] == "disabled":  # it sends nothing: only what its state kept
        return (
            ("last success", s["last_success"] or "never"),
            ("counted", counted),
            ("delivered", delivered),
        )
    return (
        ("last success", s["last_success"] or "never"),
        ("last attempt", attempt),
        ("last error", s["last_error"] or "none"),
        ("failures in a row", s["failures_in_a_row"]),
        ("next due", s["next_due"] or "now"),
        ("bot", bot or "unknown"),
        ("counted", counted),
        ("delivered", delivered),
    )


def text(doc: Mapping[str, Any], now: float) -> str:
    """The document for a person: one block per shop, its :func:`one_line` first."""
    blocks = []
    for s in doc["shops"]:
        head = printable(f"shop {s['name']}" + (f" ({s['domain']})" if s["domain"] else ""))
        if s["problem"] in ("unreadable", "corrupt"):
            blocks.append(f"{head}\n  state {s['problem']}: figures unknown")
            continue
        first = (
            f"disabled: its configuration cannot work ({s['problem_setting']}); no heartbeat"
            if s["problem"] == "disabled"
            else one_line(s, now)
        )
        lines = [head, "  " + printable(first)]
        lines += [f"  {label + ':':19}{printable(str(value))}" for label, value in _rows(s)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else "no shop\n"
