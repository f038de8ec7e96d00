"""The persisted state (``<state_dir>/state.json``) and the one-daemon-per-dir lock.

:class:`State` is an immutable value; the transitions a cycle makes are pure
functions here too, and so is :func:`encoded`, the bytes of the file. A state's
:class:`History` keeps its last deliveries packed, 16 bytes each, since a daemon
holds one per shop, and the file holds those same bytes (base64). :class:`StateStore`
is the file edge: it writes through :func:`pulsed._files.write_atomic` (temp file in
the same folder, fsync, rename, fsync of the folder) so a kill at any instant leaves
the old or the new file, and it moves a file it cannot parse aside instead of failing.
:class:`StateLock` is a ``flock`` on the state folder itself, so it works on a
read-only folder too and needs no pid file; the holder is named from ``/proc/locks``.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import logging
import os
import struct
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeGuard

from pulsed import _timefmt
from pulsed._errors import (
    REASONS,
    ConfigError,
    FileError,
    LockHeldError,
    Reason,
    StateError,
    StateUnwritableError,
)
from pulsed._events import event
from pulsed._files import (
    check_owner_only,
    read_regular,
    remove_leftovers,
    write_atomic,
)

log = logging.getLogger("pulsed.state")

# 2 added the counters and the delivery history; a version-1 file is read as one
# whose counting starts now (nothing in it is lost). 3 writes the history as rows of
# numbers, its times in epoch microseconds: 2's objects with RFC 3339 times cost seven
# times the CPU to write, twice at every heartbeat. 4 writes it as the bytes a History
# holds, in base64: 3's rows still cost a sixth of a heartbeat's CPU to encode, and
# reading them was most of a start with thousands of shops. Older files are written
# back as 4.
STATE_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
# A week of hourly heartbeats: enough for the 7-day share, and it keeps the file
# small (each delivery is 16 bytes, 22 characters as written) however long it runs.
HISTORY_LIMIT = 168
# What each row of a version-3 history holds, in order; the file names them too.
HISTORY_COLUMNS = ("at_us", "outcome", "status", "attempts", "elapsed_ms", "reason")
# How a version-4 file's entries are laid out, in Python's struct notation; the file
# names it too (docs/status.md says it in words).
HISTORY_LAYOUT = "<qBHBI"
STATE_FILE = "state.json"
DEFAULT_SHOP = "default"
SHOPS_FOLDER = "shops"
# A real state file is under 16 KiB, history included (version 2's was under 40); one
# far larger was not written by pulsed, and reading it whole would cost the daemon its
# memory.
MAX_STATE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Identity:
    """The bot identity as last fetched. ``token_fingerprint`` is never the token."""

    username: str | None
    fetched_at: float
    token_fingerprint: str


@dataclass(frozen=True, slots=True)
class Pending:
    """A body whose delivery started and whose outcome is not yet known.

    ``signature`` is the ``X-Pulse-Signature`` pulsed sent it with: only a body
    that verifies against the secret is ever sent again, so a body planted in the
    state file is never signed and sent.
    """

    body: str
    timestamp: float
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    """Totals since the state began counting; they survive restarts and only grow."""

    heartbeats_sent: int = 0
    deliveries_failed: int = 0
    delivery_attempts: int = 0  # HTTP requests made, retries included


Outcome = Literal["sent", "failed"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One finished delivery. ``reason`` is the failure's stable word, never its text."""

    at: float
    outcome: Outcome
    status: int | None
    attempts: int
    elapsed_ms: int
    reason: Reason | None = None


# One delivery in memory: its time (epoch microseconds), one byte for its outcome
# (bit 0: failed) and its reason (above it: the index in REASONS plus one, 0 for none),
# its HTTP status (0 for none), attempts and elapsed ms. 16 bytes where a Delivery
# object with its float and strings takes about 130: a week's history is 2.7 KiB.
# Little-endian on every machine, so the file holds these bytes as they are. The
# reasons' numbers are in files: a reason is only ever added at the end of REASONS.
_ENTRY = struct.Struct(HISTORY_LAYOUT)
_FAILED_BIT = bytes(kind & 1 for kind in range(256))
_OUTCOMES: tuple[Outcome, ...] = ("sent", "failed")
_REASONS: tuple[Reason | None, ...] = (None, *REASONS)
# The bounds of what an entry holds: a status is HTTP's three digits, and a time one
# that RFC 3339 writes (years 1 to 9999, in microseconds from the epoch; the end is
# not one), so every history can be written in version 2's times as well.
FIRST_STATUS, LAST_STATUS = 100, 999
MOST_ATTEMPTS = 0xFF
MOST_ELAPSED_MS = 0xFFFF_FFFF
FIRST_US, END_US = -62_135_596_800_000_000, 253_402_300_800_000_000


# The bytes of a whole history; and one field of each of its entries, read in one call so
# that it stays in C: the times (the first eight bytes) and the statuses (two bytes after
# the kind's). A shorter history is read padded with zeros, and only its own entries kept.
_FULL = _ENTRY.size * HISTORY_LIMIT
_TIMES = struct.Struct("<" + "q8x" * HISTORY_LIMIT)
_STATUSES = struct.Struct("<" + "9xH5x" * HISTORY_LIMIT)


def _column(column: struct.Struct, packed: bytes) -> list[int]:
    return list(column.unpack(packed.ljust(_FULL, b"\0"))[: len(packed) // _ENTRY.size])


def _http_status(status: int | None) -> bool:
    return status is not None and FIRST_STATUS <= status <= LAST_STATUS


def _fit(count: int, most: int) -> int:
    return min(max(count, 0), most)


def _entry(
    at_us: int,
    outcome: Outcome,
    status: int | None,
    attempts: int,
    elapsed_ms: int,
    reason: Reason | None,
) -> bytes:
    return _ENTRY.pack(
        at_us,
        _OUTCOMES.index(outcome) | _REASONS.index(reason) << 1,
        status if _http_status(status) else 0,
        _fit(attempts, MOST_ATTEMPTS),
        _fit(elapsed_ms, MOST_ELAPSED_MS),
    )


def _unpacked(at_us: int, kind: int, status: int, attempts: int, elapsed_ms: int) -> Delivery:
    outcome, reason = _OUTCOMES[kind & 1], _REASONS[kind >> 1]
    return Delivery(at_us / 1_000_000, outcome, status or None, attempts, elapsed_ms, reason)


@dataclass(frozen=True, slots=True)
class History:
    """The last deliveries in the order they ended (oldest first, unless the clock went
    back), at most :data:`HISTORY_LIMIT`, packed in one ``bytes`` value; each is a
    :class:`Delivery` again when read.

    A delivery's time is kept to the microsecond, as the file writes it, so a history
    read back from the file equals the one written. A count beyond what an entry
    holds is kept as its bound (it never happens: a delivery makes at most 3 attempts
    within 2 s), and a status that is not HTTP's three digits as none.
    """

    packed: bytes = b""

    @classmethod
    def of(cls, deliveries: Iterable[Delivery]) -> History:
        history = cls()
        for delivery in deliveries:
            history = history.added(delivery)
        return history

    def added(self, delivery: Delivery) -> History:
        """This history with ``delivery`` after the others; the oldest goes past the limit."""
        entry = _entry(
            round(delivery.at * 1_000_000),
            delivery.outcome,
            delivery.status,
            delivery.attempts,
            delivery.elapsed_ms,
            delivery.reason,
        )
        return History((self.packed + entry)[-_FULL:])

    def __len__(self) -> int:
        return len(self.packed) // _ENTRY.size

    def __iter__(self) -> Iterator[Delivery]:
        return (_unpacked(*fields) for fields in _ENTRY.iter_unpack(self.packed))

    def __getitem__(self, index: int) -> Delivery:
        count = len(self)
        if not -count <= index < count:
            raise IndexError("history index out of range")
        return _unpacked(*_ENTRY.unpack_from(self.packed, index % count * _ENTRY.size))

    def since(self, moment: float) -> tuple[int, int]:
        """How many deliveries ended at or after ``moment`` (both to the microsecond), and
        how many of them were sent.

        The status asks this of every shop it renders, so it stays in C where it can:
        each entry's time is its first eight bytes, and its next byte the outcome's.
        """
        cut = round(moment * 1_000_000)
        times = _column(_TIMES, self.packed)
        failed = self.packed[8 :: _ENTRY.size].translate(_FAILED_BIT)  # 1 or 0 each
        if times == sorted(times):  # oldest first, unless the clock went back
            recent = failed[bisect_left(times, cut) :]
        else:
            recent = bytes(bit for at_us, bit in zip(times, failed, strict=True) if at_us >= cut)
        return len(recent), recent.count(0)

    def rows(self) -> list[tuple[int, Outcome, int | None, int, int, Reason | None]]:
        """One row per delivery, as the state file writes them (:data:`HISTORY_COLUMNS`)."""
        return [
            (at_us, _OUTCOMES[kind & 1], status or None, attempts, elapsed_ms, _REASONS[kind >> 1])
            for at_us, kind, status, attempts, elapsed_ms in _ENTRY.iter_unpack(self.packed)
        ]


@dataclass(frozen=True, slots=True)
class State:
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    last_status: int | None = None
    consecutive_failures: int = 0
    next_due: float | None = None
    identity: Identity | None = None
    pending: Pending | None = None
    counters: Counters = Counters()
    history: History = History()
    # The domain of the shop this state belongs to, so that moving a state to another
    # shop (`pulsed adopt`) can check it is that shop's; None in a state written before.
    domain: str | None = None


# --- pure transitions -------------------------------------------------------


def with_pending(state: State, body: bytes, timestamp: float, signature: str) -> State:
    return replace(state, pending=Pending(body.decode("utf-8"), timestamp, signature))


def _recorded(state: State, delivery: Delivery, sent: int, failed: int) -> tuple[Counters, History]:
    counters = state.counters
    return (
        Counters(
            counters.heartbeats_sent + sent,
            counters.deliveries_failed + failed,
            counters.delivery_attempts + delivery.attempts,
        ),
        state.history.added(delivery),
    )


def succeeded(
    state: State, now: float, status: int, next_due: float, *, attempts: int, elapsed: float
) -> State:
    """A delivery got a 2xx after ``attempts`` requests and ``elapsed`` seconds."""
    counters, history = _recorded(
        state, Delivery(now, "sent", status, attempts, round(elapsed * 1000)), 1, 0
    )
    return replace(
        state,
        last_success=now,
        last_attempt=now,
        last_error=None,
        last_status=status,
        consecutive_failures=0,
        next_due=next_due,
        pending=None,
        counters=counters,
        history=history,
    )


def failed(
    state: State,
    now: float,
    error: str,
    status: int | None,
    next_due: float,
    *,
    reason: Reason,
    attempts: int,
    elapsed: float,
) -> State:
    """A delivery ended without a 2xx; ``reason`` is the stable word of its failure."""
    delivery = Delivery(now, "failed", status, attempts, round(elapsed * 1000), reason)
    counters, history = _recorded(state, delivery, 0, 1)
    return replace(
        state,
        last_attempt=now,
        last_error=error,
        last_status=status,
        consecutive_failures=state.consecutive_failures + 1,
        next_due=next_due,
        pending=None,
        counters=counters,
        history=history,
    )


# --- serialisation ----------------------------------------------------------


def _rfc3339_us(moment: float | None) -> str | None:
    """``moment`` as the state file writes it, to the microsecond; None stays None."""
    return None if moment is None else _timefmt.rfc3339(moment, "us")


def parse_stamp(value: object, field: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} is not a time string")
    try:
        seconds = _timefmt.parse(value)
    except ValueError as exc:
        raise ValueError(f"{field} {exc}") from exc
    try:
        _rfc3339_us(seconds)  # a time that cannot be written back (past 9999 in UTC) is corrupt too
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"{field} is out of range") from exc
    return seconds


def to_json(state: State) -> dict[str, Any]:
    identity = state.identity
    pending = state.pending
    return {
        "version": STATE_VERSION,
        "domain": state.domain,
        "last_success": _rfc3339_us(state.last_success),
        "last_attempt": _rfc3339_us(state.last_attempt),
        "last_error": state.last_error,
        "last_status": state.last_status,
        "consecutive_failures": state.consecutive_failures,
        "next_due": _rfc3339_us(state.next_due),
        "identity": None
        if identity is None
        else {
            "username": identity.username,
            "fetched_at": _rfc3339_us(identity.fetched_at),
            "token_fingerprint": identity.token_fingerprint,
        },
        "pending": None
        if pending is None
        else {
            "body": pending.body,
            "timestamp": _rfc3339_us(pending.timestamp),
            "signature": pending.signature,
        },
        "counters": {
            "heartbeats_sent": state.counters.heartbeats_sent,
            "deliveries_failed": state.counters.deliveries_failed,
            "delivery_attempts": state.counters.delivery_attempts,
        },
        "history": {
            "entries": base64.b64encode(state.history.packed).decode(),
            "layout": HISTORY_LAYOUT,
        },
    }


def encoded(state: State) -> bytes:
    """``state`` as ``state.json`` holds it: compact sorted JSON and a newline."""
    # Compact: the C encoder; the history is one string, its entries' own bytes.
    text = json.dumps(to_json(state), separators=(",", ":"), sort_keys=True)
    return f"{text}\n".encode()


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(raw: dict[str, Any], key: str, where: str = "") -> int:
    value = raw.get(key, 0)
    if not _is_int(value) or value < 0:
        raise ValueError(f"{where}{key} is not a count")
    return value


def _opt_status(raw: dict[str, Any], key: str, where: str = "") -> int | None:
    value = raw.get(key)
    if value is not None and not _is_int(value):
        raise ValueError(f"{where}{key} is not a number")
    return value


def _counters(raw: object) -> Counters:
    if raw is None:
        return Counters()
    if not isinstance(raw, dict):
        raise ValueError("counters is not an object")
    keys = ("heartbeats_sent", "deliveries_failed", "delivery_attempts")
    return Counters(*(_count(raw, key, "counters.") for key in keys))


def _reason(raw: dict[str, Any]) -> Reason | None:
    value = _opt_str(raw, "reason")
    if value is None:
        return None
    for reason in REASONS:
        if value == reason:
            return reason
    raise ValueError("history.reason is not a failure reason")


def _bounded(raw: dict[str, Any], key: str, most: int) -> int:
    value = _count(raw, key, "history.")
    if value > most:
        raise ValueError(f"history.{key} is over {most}")
    return value


def _packed(at_us: int, raw: dict[str, Any]) -> bytes:
    """One delivery of the file (its fields but the time in ``raw``), checked and packed."""
    outcome = raw.get("outcome")
    if outcome not in _OUTCOMES:
        raise ValueError("history.outcome is neither sent nor failed")
    status = _opt_status(raw, "status", "history.")
    if status is not None and not _http_status(status):
        raise ValueError("history.status is not an HTTP status")
    return _entry(
        at_us,
        "sent" if outcome == "sent" else "failed",
        status,
        _bounded(raw, "attempts", MOST_ATTEMPTS),
        _bounded(raw, "elapsed_ms", MOST_ELAPSED_MS),
        _reason(raw),
    )


def _v2_delivery(raw: object) -> bytes:
    if not isinstance(raw, dict):
        raise ValueError("a history entry is not an object")
    at = raw.get("at")
    if at is None or "outcome" not in raw:
        raise ValueError("a history entry lacks its time or outcome")
    if not isinstance(at, str):
        raise ValueError("history.at is not a time string")
    try:
        at_us = _timefmt.parse_us(at)  # exact: a float of year 9999 is not
    except ValueError as exc:
        raise ValueError(f"history.at {exc}") from exc
    if not FIRST_US <= at_us < END_US:
        raise ValueError("history.at is out of range")
    return _packed(at_us, raw)


def _row(raw: object) -> bytes:
    if not isinstance(raw, list) or len(raw) != len(HISTORY_COLUMNS):
        raise ValueError(f"a history row is not a list of {len(HISTORY_COLUMNS)} values")
    fields = dict(zip(HISTORY_COLUMNS, raw, strict=True))
    at_us = fields["at_us"]
    if not _is_int(at_us) or not FIRST_US <= at_us < END_US:
        raise ValueError("history.at_us is not a time in microseconds")
    return _packed(at_us, fields)


_KINDS = {
    (outcome, reason): i | j << 1
    for i, outcome in enumerate(_OUTCOMES)
    for j, reason in enumerate(_REASONS)
}
_NONE = type(None)


def _columns(rows: list[Any]) -> History | None:
    """Version 3's rows checked a column at a time and packed in C: what a start does
    for every shop's week (2,000 shops' rows one at a time took seconds). ``None`` when
    a value is anything but what pulsed writes, for :func:`_row` to name.

    Each column's types are checked before its values, so that ``True`` or ``200.0``
    cannot pass as the int it equals, nor a list reach a set."""
    width = len(HISTORY_COLUMNS)
    if not all(type(row) is list and len(row) == width for row in rows):
        return None
    if not rows:
        return History()
    at, outcomes, statuses, attempts, elapsed, reasons = zip(*rows, strict=True)
    if not (
        set(map(type, at)) == set(map(type, attempts)) == set(map(type, elapsed)) == {int}
        and set(map(type, outcomes)) == {str}
        and set(map(type, statuses)) <= {int, _NONE}
        and set(map(type, reasons)) <= {str, _NONE}
    ):
        return None
    if not (
        FIRST_US <= min(at) <= max(at) < END_US
        and 0 <= min(attempts) <= max(attempts) <= MOST_ATTEMPTS
        and 0 <= min(elapsed) <= max(elapsed) <= MOST_ELAPSED_MS
        and set(outcomes) <= set(_OUTCOMES)
        and set(reasons) <= set(_REASONS)
        and all(status is None or _http_status(status) for status in set(statuses))
    ):
        return None
    kinds = map(_KINDS.__getitem__, zip(outcomes, reasons, strict=True))
    codes = (status or 0 for status in statuses)
    return History(b"".join(map(_ENTRY.pack, at, kinds, codes, attempts, elapsed)))


_KIND_COUNT = 2 * len(_REASONS)  # a kind byte is below it: outcome bit, reason above


def _entries(raw: dict[str, Any]) -> History:
    """A version-4 history: the entries' bytes in base64, each checked in C."""
    if raw.get("layout") != HISTORY_LAYOUT:
        raise ValueError(f"history.layout is not {HISTORY_LAYOUT}")
    text = raw.get("entries")
    if not isinstance(text, str):
        raise ValueError("history.entries is not a string")
    try:
        packed = base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error, or a character beyond ASCII
        raise ValueError("history.entries is not base64") from exc
    if len(packed) % _ENTRY.size:
        raise ValueError(f"history.entries is not a whole number of {_ENTRY.size}-byte entries")
    # A longer one was not written by pulsed; its newest entries are still true.
    packed = packed[-_FULL:]
    if not packed:
        return History()
    times = _column(_TIMES, packed)
    if not FIRST_US <= min(times) <= max(times) < END_US:
        raise ValueError("history.entries holds a time out of range")
    if max(packed[8 :: _ENTRY.size]) >= _KIND_COUNT:
        raise ValueError("history.entries holds a reason pulsed does not know")
    statuses = set(_column(_STATUSES, packed))
    if not all(status == 0 or _http_status(status) for status in statuses):
        raise ValueError("history.entries holds a status that is not HTTP's")
    return History(packed)


def _history(raw: object, version: int) -> History:
    """The history of a version-2 file (a list of objects), a version-3 one (rows) or a
    version-4 one (packed entries)."""
    if raw is None:
        return History()
    if version == 2:
        if not isinstance(raw, list):
            raise ValueError("history is not a list")
        return _kept(raw, _v2_delivery)
    if not isinstance(raw, dict):
        raise ValueError("history is not an object")
    if version >= 4:
        return _entries(raw)
    if raw.get("columns") != list(HISTORY_COLUMNS):
        raise ValueError(f"history.columns are not {', '.join(HISTORY_COLUMNS)}")
    rows = raw.get("rows")
    if not isinstance(rows, list):
        raise ValueError("history.rows is not a list")
    if (history := _columns(rows[-HISTORY_LIMIT:])) is not None:
        return history
    return _kept(rows, _row)


def _kept(entries: list[Any], read: Callable[[object], bytes]) -> History:
    # A longer list was not written by pulsed; its newest entries are still true.
    return History(b"".join(read(entry) for entry in entries[-HISTORY_LIMIT:]))


def from_json(raw: object) -> State:
    """Parse a state document of any readable version; ``ValueError`` names what is wrong.

    A version-1 document has no counters and no history: it is read with both
    empty, every other field as it was, so an upgrade loses nothing and sends
    nothing early. A version-2 one has its history as objects with RFC 3339
    times: it is read whole, to the microsecond.
    """
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ValueError(f"unknown version {version!r}")
    failures = _count(raw, "consecutive_failures")
    status = _opt_status(raw, "last_status")
    identity = None
    if (ident := raw.get("identity")) is not None:
        if not isinstance(ident, dict):
            raise ValueError("identity is not an object")
        fetched = parse_stamp(ident.get("fetched_at"), "identity.fetched_at")
        fingerprint = _opt_str(ident, "token_fingerprint")
        if fetched is None or fingerprint is None:
            raise ValueError("identity lacks fetched_at or token_fingerprint")
        identity = Identity(_opt_str(ident, "username"), fetched, fingerprint)
    pending = None
    if (pend := raw.get("pending")) is not None:
        if not isinstance(pend, dict):
            raise ValueError("pending is not an object")
        body = _opt_str(pend, "body")
        stamp = parse_stamp(pend.get("timestamp"), "pending.timestamp")
        if body is None or stamp is None:
            raise ValueError("pending lacks body or timestamp")
        pending = Pending(body, stamp, _opt_str(pend, "signature"))
    return State(
        last_success=parse_stamp(raw.get("last_success"), "last_success"),
        last_attempt=parse_stamp(raw.get("last_attempt"), "last_attempt"),
        last_error=_opt_str(raw, "last_error"),
        last_status=status,
        consecutive_failures=failures,
        next_due=parse_stamp(raw.get("next_due"), "next_due"),
        identity=identity,
        pending=pending,
        domain=_opt_str(raw, "domain"),
        counters=_counters(raw.get("counters")) if version >= 2 else Counters(),
        history=_history(raw.get("history"), version) if version >= 2 else History(),
    )


# --- the file edge ----------------------------------------------------------


class StateStore:
    """``state.json`` in one folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        # What the file held when :meth:`read` last parsed it, if it was in today's
        # version: a state equal to it need not be written again (see Recorder.save).
        self.held: State | None = None

    def read(self) -> State | None:
        """The state as it is on disk, or ``None`` when there is none; never changes a file.

        Raises :class:`StateError` when the file exists but cannot be read or parsed.
        A symlink, a FIFO or anything but a regular file is never read through, and a
        file over :data:`MAX_STATE_BYTES` is corrupt without being read into memory.
        """
        try:
            got = read_regular(self.path, MAX_STATE_BYTES, follow=False)
        except FileError as exc:
            if exc.kind == "missing":
                return None
            if exc.kind in ("symlink", "not_regular"):
                raise self._corrupt(exc.reason) from exc
            raise StateError(str(exc)) from exc.__cause__
        if got.cut:
            raise self._corrupt(f"over {MAX_STATE_BYTES} bytes")
        try:
            raw = json.loads(got.data)
            state = from_json(raw)
        except (ValueError, RecursionError) as exc:
            raise self._corrupt(str(exc)) from exc
        self.held = state if raw.get("version") == STATE_VERSION else None
        return state

    def _corrupt(self, why: str) -> StateError:
        return StateError(f"{self.path}: cannot be parsed ({why})", corrupt=True)

    def load(self, now: float) -> State:
        """The state to run with; never raises.

        A file that cannot be parsed is moved aside with a warning; one that cannot
        be read at all is warned about and left alone. Either way the daemon goes on
        as with no state.
        """
        try:
            return self.read() or State()
        except StateError as exc:
            if not exc.corrupt:
                log.warning(
                    "state cannot be read; starting without state",
                    extra=event("state.unreadable", error=str(exc)),
                )
                return State()
            aside = self.path.with_name(f"{STATE_FILE}.corrupt-{_timefmt.compact(now)}")
            try:
                self.path.replace(aside)
            except OSError as move_exc:
                log.warning(
                    "state file cannot be parsed and cannot be moved aside; starting without state",
                    extra=event("state.corrupt", error=str(exc), move_error=move_exc.strerror),
                )
            else:
                log.warning(
                    "state file cannot be parsed; moved aside, starting without state",
                    extra=event("state.corrupt", error=str(exc), moved_to=str(aside)),
                )
            return State()

    def save(self, state: State) -> None:
        """Write ``state`` atomically (:func:`~pulsed._files.write_atomic`, mode 0600).

        :class:`StateError` when the folder or disk refuses.
        """
        self.write(encoded(state))

    def write(self, data: bytes) -> None:
        """:meth:`save` of a state already :func:`encoded`, making the folder (0700) if
        it is missing. What a worker thread runs: the waits for the disk, no encoding."""
        try:
            write_atomic(self.path, data, 0o600)
        except FileError as exc:
            if exc.kind != "missing":
                raise self._unwritable(exc.reason) from exc
        else:
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, data, 0o600)
        except OSError as exc:
            raise self._unwritable(exc.strerror or type(exc).__name__) from exc
        except FileError as exc:
            raise self._unwritable(exc.reason) from exc

    def _unwritable(self, why: str) -> StateError:
        return StateError(f"{self.path}: cannot be written ({why})", why=why)

    def sweep(self) -> None:
        """Remove temp files a killed writer left; call only while holding the lock."""
        remove_leftovers(self.path)


def shop_state_dir(top: Path, name: str) -> Path:
    """Where a shop's state lives under ``daemon.state_dir``.

    The one-shop configuration's shop, ``default``, keeps ``top/state.json`` where it
    always was, so an upgrade moves nothing; every other shop has ``top/shops/<name>/``.
    """
    return top if name == DEFAULT_SHOP else top.joinpath(SHOPS_FOLDER, name)


def shops_on_disk(top: Path) -> list[str]:
    """The shops with a state under ``top``; ``["default"]`` when there are none yet."""
    try:
        found = sorted(p.name for p in (top / SHOPS_FOLDER).iterdir())
    except OSError:
        found = []
    names = [n for n in found if _may_exist(top / SHOPS_FOLDER / n / STATE_FILE)]
    if _may_exist(top / STATE_FILE) or not names:
        names.insert(0, DEFAULT_SHOP)
    return names


def _may_exist(path: Path) -> bool:
    """Whether ``path`` exists; when that cannot be told, yes: reading it will say why."""
    try:
        return path.exists()
    except OSError:
        return True


def check_private(directory: Path, euid: int | None = None) -> None:
    """Refuse a state folder another user could change (see :func:`check_owner_only`).

    :class:`ConfigError` naming ``daemon.state_dir``. A folder that does not exist
    yet is fine: pulsed creates it 0700.
    """
    try:
        info = directory.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError("daemon.state_dir", f"{directory}: {exc.strerror}") from exc
    check_owner_only(directory, info, "daemon.state_dir", use="keep state there", euid=euid)


def check_writable(directory: Path) -> None:
    """Make the state folder if it is missing, and make sure this process can write it.

    :class:`StateUnwritableError` naming the folder otherwise: a user's ``once``
    pointed at root's ``/var/lib/pulsed``, a read-only file system. Only the folder
    is checked here; a save that fails later says so in its turn.
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateUnwritableError(str(directory), exc.strerror or type(exc).__name__) from exc
    if os.access(directory, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    why = "Read-only file system" if read_only else "Permission denied"
    raise StateUnwritableError(str(directory), why)


def _lock_holder(directory_fd: int) -> str:
    """Name the process holding an flock on the folder, from ``/proc/locks``."""
    info = os.fstat(directory_fd)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; a blocked waiter has "->".
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != wanted:
            continue
        pid = fields[4]
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            name = " ".join(part.decode(errors="replace") for part in cmd[:4] if part)
        except OSError:
            name = ""
        return f"pid {pid} ({name})" if name else f"pid {pid}"
    return "another process"


class StateLock:
    """An exclusive, non-blocking ``flock`` on the state folder, held until :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            if not self.directory.is_dir():
                raise StateError(f"{self.directory}: cannot be created ({exc.strerror})") from exc
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise StateError(f"{self.directory}: cannot be opened ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _lock_holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else ""
            os.close(fd)
            if holder:
                raise LockHeldError(str(self.directory), holder) from exc
            raise StateError(f"{self.directory}: cannot be locked ({exc.strerror})") from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
