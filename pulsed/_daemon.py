"""The heartbeat cycle and the supervisor loop that schedules it.

:class:`Heartbeater` does one cycle — identity, facts, body, signature, delivery,
state — and is shared by ``pulsed run`` and ``pulsed once``. :class:`Supervisor`
decides when to run it: it sleeps until the next heartbeat is due, wakes for a
stop or a reload, and never exits because a cycle failed. Clock, sleep,
randomness, the sender and the identity fetcher are all passed in, so the
schedule is tested on an injected clock without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import anyio

from pulsed import _collect, _identity, _schedule
from pulsed import _state as st
from pulsed._config import Config
from pulsed._delivery import Delivered
from pulsed._errors import DeliveryError, IdentityError, StateError
from pulsed._logging import Redactor
from pulsed._notify import Notifier
from pulsed._proc import child_environ
from pulsed._signing import Heartbeat, decode_body, encode_body, headers_for, rfc3339

log = logging.getLogger("pulsed.daemon")


class SenderLike(Protocol):
    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered: ...


FetchUsername = Callable[[str, str, float, Mapping[str, str]], Awaitable[str | None]]
Collect = Callable[..., Awaitable[_collect.ShopFacts]]


def _iso(moment: float | None) -> str | None:
    return None if moment is None else rfc3339(moment)


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: bool
    next_due: float
    error: str | None = None


class Heartbeater:
    """Builds, signs and delivers one heartbeat, and keeps the state that follows."""

    def __init__(
        self,
        cfg: Config,
        store: st.StateStore,
        state: st.State,
        sender: SenderLike,
        *,
        environ: Mapping[str, str],
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        fetch_username: FetchUsername = _identity.fetch_username,
        collect: Collect = _collect.collect,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.state = state
        self.sender = sender
        self.environ = environ
        self.wall = wall
        self.rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self.fetch_username = fetch_username
        self.collect = collect
        self.state_saved = True
        self._warned_future: float | None = None

    # --- state --------------------------------------------------------------

    def save(self) -> None:
        try:
            self.store.save(self.state)
            self.state_saved = True
        except StateError as exc:
            self.state_saved = False
            log.warning(
                "state cannot be written (%s); kept in memory, so a restart now could send "
                "before the heartbeat is due",
                exc,
                extra={"event": "state.unwritable", "path": str(self.store.path)},
            )

    def due(self) -> _schedule.Due:
        now = self.wall()
        due = _schedule.due_at(self.state.last_success, self.state.next_due, now, self.cfg.interval)
        if due.clock_went_back and self._warned_future != self.state.last_success:
            self._warned_future = self.state.last_success  # once per state, not per look
            log.warning(
                "last success %s is in the future: the clock went back; sending now",
                _iso(self.state.last_success),
                extra={
                    "event": "state.clock_future",
                    "last_success": _iso(self.state.last_success),
                },
            )
        return due

    # --- building the body --------------------------------------------------

    async def username(self, now: float, *, keep: bool = True) -> str | None:
        token = self.cfg.bot_token
        if token is None:
            log.warning(
                "telegram.bot_token is not set; bot_username is null",
                extra={"event": "identity.missing"},
            )
            return None
        fp = _identity.fingerprint(token.reveal())
        kept = self.state.identity
        if not _identity.needs_refresh(kept, fp, now):
            return kept.username if kept is not None else None
        env = child_environ(self.environ, self.cfg.secrets())
        try:
            name = await self.fetch_username(
                token.reveal(), self.cfg.telegram_api_base, self.cfg.timeout, env
            )
        except IdentityError as exc:
            fallback = kept.username if kept is not None else None
            log.warning(
                "getMe failed (%s); bot_username is %s",
                exc,
                f"the kept @{fallback}" if fallback else "null",
                extra={"event": "identity.failed", "kind": exc.kind, "kept": fallback},
            )
            return fallback
        if keep:
            self.state = replace(self.state, identity=st.Identity(name, now, fp))
        log.info(
            "bot identity fetched: @%s",
            name,
            extra={"event": "identity.refreshed", "bot_username": name},
        )
        return name

    async def build(self, *, keep_identity: bool = True) -> tuple[bytes, float]:
        """A fresh body and its timestamp."""
        username = await self.username(self.wall(), keep=keep_identity)
        facts = await self.collect(
            self.cfg.shop_root,
            self.cfg.composer_json,
            self.cfg.php_binary,
            self.cfg.timeout,
            child_environ(self.environ, self.cfg.secrets()),
        )
        now = self.wall()
        beat = Heartbeat(
            domain=self.cfg.domain,
            bot_username=username,
            php_version=facts.php_version,
            module_version=facts.module_version,
            ecommerce_version=facts.ecommerce_version,
            ecommerce_core_version=facts.ecommerce_core_version,
            timestamp=rfc3339(now),
        )
        return encode_body(beat), float(int(now))

    def resumable(self) -> tuple[bytes, float] | None:
        """The body of a delivery that a stop or kill interrupted, if it may still be sent."""
        pending = self.state.pending
        if pending is None:
            return None
        body = pending.body.encode("utf-8")
        decoded = decode_body(body)
        if decoded is None or decoded.get("domain") != self.cfg.domain:
            log.warning(
                "dropping an interrupted delivery that is not a heartbeat of %s",
                self.cfg.domain,
                extra={"event": "heartbeat.interrupted", "timestamp": _iso(pending.timestamp)},
            )
            self.state = replace(self.state, pending=None)
            return None
        if _schedule.should_resend(pending.timestamp, self.wall()):
            log.info(
                "re-sending the interrupted heartbeat of %s",
                _iso(pending.timestamp),
                extra={"event": "heartbeat.resumed", "timestamp": _iso(pending.timestamp)},
            )
            return body, pending.timestamp
        log.warning(
            "a delivery of %s was interrupted and its outcome is unknown; sending a fresh one",
            _iso(pending.timestamp),
            extra={"event": "heartbeat.interrupted", "timestamp": _iso(pending.timestamp)},
        )
        self.state = replace(self.state, pending=None)
        return None

    # --- delivering ---------------------------------------------------------

    async def deliver(self, body: bytes, timestamp: float) -> Outcome:
        """Send ``body``; record the pending body first, the outcome after."""
        self.state = st.with_pending(self.state, body, timestamp)
        self.save()
        headers = headers_for(body, self.cfg.heartbeat_secret.reveal())
        try:
            done = await self.sender.send(body, headers)
        except DeliveryError as exc:
            return self._failed(exc)
        now = self.wall()
        next_due = _schedule.after_success(now, self.cfg.interval)
        self.state = st.succeeded(self.state, now, done.status, next_due)
        self.save()
        log.info(
            "heartbeat sent",
            extra={
                "event": "heartbeat.sent",
                "status": done.status,
                "attempts": done.attempts,
                "elapsed_ms": round(done.elapsed * 1000),
                "next_due": rfc3339(next_due),
            },
        )
        return Outcome(sent=True, next_due=next_due)

    def broken_cycle(self, exc: Exception) -> Outcome:
        """A cycle that failed in a way nothing mapped: logged, then backed off like a failure."""
        log.error(
            "heartbeat cycle failed unexpectedly",
            exc_info=exc,
            extra={"event": "heartbeat.error"},
        )
        return self._failed(DeliveryError("internal", type(exc).__name__))

    def _failed(self, exc: DeliveryError) -> Outcome:
        now = self.wall()
        failures = self.state.consecutive_failures + 1
        next_due = _schedule.after_failure(
            failures, now, self.cfg.interval, self.rng, exc.retry_after
        )
        # The error keeps a snippet of the receiver's answer, and goes to state.json and
        # systemd's STATUS=: an answer that echoes a secret must not carry it there (§7).
        redact = Redactor()
        redact.register(self.cfg.secrets())
        self.state = st.failed(self.state, now, redact(str(exc)), exc.status, next_due)
        self.save()
        log.warning(
            "heartbeat failed: %s",
            exc,
            extra={
                "event": "heartbeat.failed",
                "reason": exc.reason,
                "status": exc.status,
                "attempts": exc.attempts,
                "elapsed_ms": round(exc.elapsed * 1000),
                "failures_in_a_row": failures,
                "retry_after": exc.retry_after,
                "next_due": rfc3339(next_due),
            },
        )
        return Outcome(sent=False, next_due=next_due, error=str(exc))

    def summary(self) -> str:
        s = self.state
        nxt = _iso(s.next_due) or "now"
        if s.last_error is None and s.last_success is not None:
            return f"last heartbeat {_iso(s.last_success)} (HTTP {s.last_status}); next {nxt}"
        if s.last_error is not None:
            failing = f"{s.consecutive_failures} in a row: {s.last_error}"
            return f"heartbeat failing ({failing}); next try {nxt}"
        return f"no heartbeat yet; next {nxt}"


Waiter = Callable[[float, anyio.Event], Awaitable[bool]]


async def wait_or_wake(delay: float, wake: anyio.Event) -> bool:
    """Sleep ``delay`` s on the monotonic clock; ``True`` when ``wake`` cut it short."""
    with anyio.move_on_after(max(delay, 0.0)):
        await wake.wait()
        return True
    return False


class Supervisor:
    """The loop of ``pulsed run``.

    Signal handlers only call :meth:`request_stop` or :meth:`request_reload`, which
    set a flag and wake the loop; the loop decides what happens next.
    """

    def __init__(
        self,
        beater: Heartbeater,
        notifier: Notifier,
        *,
        reload_config: Callable[[], Config | None],
        wait: Waiter = wait_or_wake,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.beater = beater
        self.notifier = notifier
        self.reload_config = reload_config
        self.wait = wait
        self.monotonic = monotonic
        self._wake = anyio.Event()
        self._stop = False
        self._reload = False
        self.cycles = 0
        # The watchdog pings only while the loop meets its own deadlines.
        self.busy_until: float | None = None

    def request_stop(self) -> None:
        self._stop = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload = True
        self._wake.set()

    def healthy(self) -> bool:
        return self.busy_until is None or self.monotonic() <= self.busy_until

    def _cycle_allowance(self) -> float:
        cfg = self.beater.cfg
        return _identity.IMPORT_ALLOWANCE + 2 * cfg.timeout + 2.0 + 10.0

    async def _until_stopped(
        self, work: Callable[[], Awaitable[tuple[bytes, float]]]
    ) -> tuple[bytes, float] | None:
        """Run ``work``, abandoning it if a stop is requested meanwhile."""
        result: list[tuple[bytes, float]] = []

        async def body(scope: anyio.CancelScope) -> None:
            result.append(await work())
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(body, tg.cancel_scope)
            while not self._stop:
                await self._wake.wait()
                if not self._stop:
                    self._wake = anyio.Event()  # a reload waits for the cycle's end
                    self._reload = True
            tg.cancel_scope.cancel()
        return result[0] if result else None

    async def run_cycle(self) -> None:
        self.busy_until = self.monotonic() + self._cycle_allowance()
        try:
            prepared = self.beater.resumable() or await self._until_stopped(self.beater.build)
            if prepared is None:
                return
            # A started delivery finishes, or gives up, within its own 2 s budget.
            with anyio.CancelScope(shield=True):
                await self.beater.deliver(*prepared)
            self.cycles += 1
            self.notifier.status(self.beater.summary())
        finally:
            self.busy_until = None

    def _apply_reload(self) -> None:
        self._reload = False
        self._wake = anyio.Event()  # the flags, not the event, say what was asked
        self.notifier.reloading()
        cfg = self.reload_config()
        if cfg is not None:
            self.beater.cfg = cfg
        self.notifier.ready()

    async def run(self) -> None:
        self.notifier.ready()
        self.notifier.status(self.beater.summary())
        while not self._stop:
            if self._reload:
                self._apply_reload()
                continue
            due = self.beater.due()
            delay = due.at - self.beater.wall()
            pending = self.beater.state.pending is not None
            if delay > 0 and not pending and await self.wait(delay, self._wake):
                self._wake = anyio.Event()
                continue
            try:
                await self.run_cycle()
            except Exception as exc:  # noqa: BLE001 -- a bug in one cycle must not end the daemon
                self.beater.broken_cycle(exc)
        self.notifier.stopping()
        self.beater.save()

    async def watchdog(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            if self.healthy():
                self.notifier.watchdog()
