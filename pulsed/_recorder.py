"""The recorder of a cycle: each outcome into one shop's state, its file and its log line.

A :class:`Recorder` holds the shop's :class:`~pulsed._state.State` and is the only
thing that changes it. It applies the pure transitions of :mod:`pulsed._state` —
the body recorded as in flight before it is sent, then its outcome with the
counters and the delivery history — writes each through the state's store (in a
worker thread, so two fsyncs on a slow disk never hold up the event loop and the
other shops; the state is encoded before, in the loop's own thread, so the worker
handles bytes only), and logs ``heartbeat.sent`` or ``heartbeat.failed``. Read-only (``check``,
``--dry-run``) it changes the state in memory and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import anyio.to_thread

from pulsed import _state
from pulsed._body import Request
from pulsed._delivery import Delivered
from pulsed._errors import DeliveryError, StateError, StateUnwritableError
from pulsed._events import event
from pulsed._redact import REDACT
from pulsed._timefmt import rfc3339

log = logging.getLogger("pulsed.cycle")


def failing_since(state: _state.State) -> float:
    """When the failures that ``state`` counts began: the first of the failed deliveries at
    the end of its history (the oldest one kept, when the history is shorter)."""
    first = state.last_attempt or 0.0
    for delivery in reversed(state.history):
        if delivery.outcome != "failed":
            break
        first = delivery.at
    return first


def _duration(seconds: float) -> str:
    whole = max(int(seconds), 0)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


class Recorder:
    """One shop's state, and every change to it, kept on disk when writable."""

    def __init__(self, store: _state.StateStore, state: _state.State, *, writable: bool) -> None:
        self.store = store
        self.state = state
        self.writable = writable
        # The state its file holds, as far as this process knows: what the store read
        # (when in today's version) or what was last written. A stop saves only a state
        # that differs, so an idle daemon of 2,000 shops stops without 4,000 fsyncs.
        # Taken from the store, not shared: kept there, the state read at start (a
        # week of history) would outlive the first save, 2.7 KiB a shop.
        self._saved, store.held = store.held, None

    def keep_identity(self, identity: _state.Identity) -> None:
        self.state = replace(self.state, identity=identity)

    def drop_pending(self) -> None:
        self.state = replace(self.state, pending=None)

    async def started(self, request: Request, *, must_keep: bool = False) -> None:
        """The body is in flight: saved first, so a kill now can neither lose it nor
        let a restart send a second, fresh one before it is due.

        ``must_keep`` (``once``): a save that fails is :class:`StateUnwritableError`
        and the body is not in flight, instead of a warning and a state kept in
        memory, which a process that ends at once would lose.
        """
        before = self.state
        self.state = pending = _state.with_pending(
            self.state, request.body, request.at, request.signature
        )
        if not (must_keep and self.writable):
            await self.save_aside()
            return
        try:
            await anyio.to_thread.run_sync(self.store.write, _state.encoded(pending))
        except StateError as exc:
            self.state = before
            raise StateUnwritableError(str(self.store.directory), exc.why) from exc
        self._saved = pending

    async def sent(self, done: Delivered, now: float, next_due: float) -> None:
        before = self.state
        self.state = _state.succeeded(
            self.state, now, done.status, next_due, attempts=done.attempts, elapsed=done.elapsed
        )
        await self.save_aside()
        log.info(
            "heartbeat sent",
            extra=event(
                "heartbeat.sent",
                status=done.status,
                attempts=done.attempts,
                elapsed_ms=round(done.elapsed * 1000),
                next_due=rfc3339(next_due),
            ),
        )
        if before.consecutive_failures:
            since = failing_since(before)
            log.info(
                "heartbeat delivered again after %d failed deliveries over %s",
                before.consecutive_failures,
                _duration(now - since),
                extra=event(
                    "heartbeat.recovered",
                    failed_deliveries=before.consecutive_failures,
                    failing_for_s=round(now - since),
                ),
            )

    async def failed(
        self, exc: DeliveryError, now: float, next_due: float, host: str | None = None
    ) -> None:
        # The error keeps a snippet of the receiver's answer and goes to state.json,
        # `status` and STATUS=: an answer that echoes a secret must not carry it there.
        self.state = _state.failed(
            self.state,
            now,
            REDACT(str(exc)),
            exc.status,
            next_due,
            reason=exc.reason,
            attempts=exc.attempts,
            elapsed=exc.elapsed,
        )
        await self.save_aside()
        log.warning(
            "heartbeat to %s failed: %s",
            host or "the receiver",
            exc,
            extra=event(
                "heartbeat.failed",
                host=host,
                reason=exc.reason,
                status=exc.status,
                attempts=exc.attempts,
                elapsed_ms=round(exc.elapsed * 1000),
                failures_in_a_row=self.state.consecutive_failures,
                retry_after=exc.retry_after,
                next_due=rfc3339(next_due),
            ),
        )

    def save(self) -> None:
        """Write the state unless its file already holds it (a stop's save)."""
        if self.writable and self.state != self._saved:
            self._write(self.state, _state.encoded(self.state))

    async def save_aside(self) -> None:
        """:meth:`save` in a worker thread, which gets the encoded bytes.

        Encoding holds the GIL wherever it runs, so it costs the loop nothing here
        that it did not cost from the worker; and no state's JSON is then made and
        dropped in a worker thread's own malloc arena, only the writes wait there.
        """
        if self.writable:
            state = self.state
            data = _state.encoded(state)
            await anyio.to_thread.run_sync(self._write, state, data)

    def _write(self, state: _state.State, data: bytes) -> None:
        try:
            self.store.write(data)
            self._saved = state
        except StateError as exc:
            log.warning(
                "state cannot be written (%s); kept in memory, so a restart now could send "
                "before the heartbeat is due",
                exc,
                extra=event("state.unwritable", path=str(self.store.path)),
            )
