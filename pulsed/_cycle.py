"""One shop's heartbeat cycle: its state, when it is due, the body, the delivery.

:class:`Cycle` is what every command does with a shop. ``run`` and ``once`` open
it writable and :meth:`~Cycle.deliver` what :meth:`~Cycle.prepare` made;
``check`` and ``once --dry-run`` open it read-only and stop after
:meth:`~Cycle.build`. It decides nothing about *when* to run: ``once`` asks
:meth:`~Cycle.is_due`, the supervisor sleeps :meth:`~Cycle.wait_time`. The
clock, the randomness, the identity fetcher and the collector are passed in, so
a cycle is tested on an injected clock with stand-in edges.
"""

from __future__ import annotations

import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import anyio
import anyio.to_thread

from pulsed import _collect, _identity, _schedule
from pulsed import _state as st
from pulsed._config import Config
from pulsed._delivery import BUDGET, Delivered
from pulsed._errors import DeliveryError, IdentityError, StateError
from pulsed._proc import child_environ
from pulsed._redact import REDACT
from pulsed._signing import Heartbeat, decode_body, encode_body, headers_for
from pulsed._status import ShopView
from pulsed._timefmt import maybe, rfc3339
from pulsed.verify import SIGNATURE_HEADER, signature

log = logging.getLogger("pulsed.cycle")

# Saving the state twice (pending, then outcome) with an fsync each: a slow disk
# can take seconds, and the watchdog must not call that a hang.
STATE_WRITES_ALLOWANCE = 5.0


class Sender(Protocol):
    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered: ...


Collect = Callable[..., Awaitable[_collect.ShopFacts]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A signed-to-be body and the moment its ``timestamp`` names."""

    body: bytes
    timestamp: float


class Cycle:
    """Builds, signs and delivers one shop's heartbeat, and keeps the state that follows."""

    def __init__(
        self,
        cfg: Config,
        store: st.StateStore,
        state: st.State,
        *,
        writable: bool,
        environ: Mapping[str, str],
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        identities: _identity.Rounds | None = None,
        collect: Collect = _collect.collect,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.state = state
        self.writable = writable
        self.environ = environ
        self.wall = wall
        self.rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        # Shared by every shop of a daemon, so one identity child serves them all.
        self.identities = identities or _identity.Rounds()
        self.collect = collect
        self._warned_future: float | None = None
        REDACT.register(cfg.secrets())

    @classmethod
    def open(
        cls,
        cfg: Config,
        *,
        writable: bool,
        environ: Mapping[str, str],
        wall: Callable[[], float] = time.time,
        identities: _identity.Rounds | None = None,
        collect: Collect = _collect.collect,
    ) -> Cycle:
        """The cycle of ``cfg``'s shop with its state as on disk.

        Writable, a state file that cannot be parsed is moved aside; read-only
        (``check``, ``--dry-run``) nothing on disk changes and such a file counts
        as no state.
        """
        store = st.StateStore(cfg.state_dir)
        if writable:
            state = store.load(wall())
        else:
            try:
                state = store.read() or st.State()
            except StateError:
                state = st.State()
        return cls(
            cfg,
            store,
            state,
            writable=writable,
            environ=environ,
            wall=wall,
            identities=identities,
            collect=collect,
        )

    @property
    def name(self) -> str:
        return self.cfg.name

    def view(self) -> ShopView:
        """The shop as ``status`` and the status file show it."""
        return ShopView(self.name, self.cfg.domain, self.state, self.due().at)

    # --- schedule -------------------------------------------------------------

    @property
    def allowance(self) -> float:
        """The longest a healthy cycle takes: getMe's child, php, the delivery, two saves.

        A cycle still running past this is stuck, and the watchdog stops vouching
        for the daemon.
        """
        identity = _identity.IMPORT_ALLOWANCE + self.cfg.timeout
        php = self.cfg.timeout
        return identity + php + BUDGET + STATE_WRITES_ALLOWANCE

    def due(self) -> _schedule.Due:
        due = _schedule.due_at(
            self.state.last_success, self.state.next_due, self.wall(), self.cfg.interval
        )
        if due.clock_went_back and self._warned_future != self.state.last_success:
            self._warned_future = self.state.last_success  # once per state, not per look
            log.warning(
                "last success %s is in the future: the clock went back; sending now",
                maybe(self.state.last_success),
                extra={
                    "event": "state.clock_future",
                    "last_success": maybe(self.state.last_success),
                },
            )
        return due

    def wait_time(self) -> float:
        """Seconds until the next heartbeat; 0 when due or when a delivery was cut short."""
        if self.state.pending is not None:
            return 0.0
        return max(self.due().at - self.wall(), 0.0)

    def is_due(self) -> bool:
        return self.wait_time() <= 0.0

    def reconfigure(self, cfg: Config) -> None:
        """Take a reloaded configuration; the state folder stays the one opened.

        The reload warns, once for all shops, when ``daemon.state_dir`` changed.
        """
        self.cfg = replace(cfg, state_dir=self.cfg.state_dir)
        REDACT.register(cfg.secrets())

    # --- state ------------------------------------------------------------------

    def save(self) -> None:
        if not self.writable:
            return
        self._saved(self.state)

    async def save_aside(self) -> None:
        """:meth:`save` in a worker thread: two fsyncs on a slow disk must not hold up
        the event loop, and with it every other shop's sleep, build and delivery."""
        if self.writable:
            await anyio.to_thread.run_sync(self._saved, self.state)

    def _saved(self, state: st.State) -> None:
        try:
            self.store.save(state)
        except StateError as exc:
            log.warning(
                "state cannot be written (%s); kept in memory, so a restart now could send "
                "before the heartbeat is due",
                exc,
                extra={"event": "state.unwritable", "path": str(self.store.path)},
            )

    def summary(self) -> str:
        """One line for systemd's ``STATUS=``."""
        s = self.state
        nxt = maybe(s.next_due) or "now"
        if s.last_error is None and s.last_success is not None:
            return f"last heartbeat {maybe(s.last_success)} (HTTP {s.last_status}); next {nxt}"
        if s.last_error is not None:
            failing = f"{s.consecutive_failures} in a row: {s.last_error}"
            return f"heartbeat failing ({failing}); next try {nxt}"
        return f"no heartbeat yet; next {nxt}"

    # --- building the body --------------------------------------------------------

    def stale_token(self) -> str | None:
        """The bot token, when the kept identity needs fetching again (for a shared round)."""
        token = self.cfg.bot_token
        if token is None:
            return None
        fp = _identity.fingerprint(token.reveal())
        stale = _identity.needs_refresh(self.state.identity, fp, self.wall())
        return token.reveal() if stale else None

    async def _username(self, now: float) -> str | None:
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
        try:
            got = await self.identities.identity(
                token.reveal(), self.cfg.telegram_api_base, self.cfg.timeout, self._child_env()
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
        self.state = replace(self.state, identity=got)
        log.info(
            "bot identity fetched: @%s",
            got.username,
            extra={"event": "identity.refreshed", "bot_username": got.username},
        )
        return got.username

    def _child_env(self) -> dict[str, str]:
        return child_environ(self.environ, self.cfg.secrets())

    async def build(self) -> Prepared:
        """A fresh body, stamped now."""
        username = await self._username(self.wall())
        facts = await self.collect(
            self.cfg.shop_root,
            self.cfg.composer_json,
            self.cfg.php_binary,
            self.cfg.timeout,
            self._child_env(),
        )
        now = float(int(self.wall()))
        beat = Heartbeat(
            domain=self.cfg.domain,
            bot_username=username,
            php_version=facts.php_version,
            module_version=facts.module_version,
            ecommerce_version=facts.ecommerce_version,
            ecommerce_core_version=facts.ecommerce_core_version,
            timestamp=rfc3339(now),
        )
        return Prepared(encode_body(beat), now)

    async def prepare(self) -> Prepared:
        """The body to deliver: an interrupted one if it may still be sent, else a fresh one."""
        return self._resumable() or await self.build()

    def _resumable(self) -> Prepared | None:
        pending = self.state.pending
        if pending is None:
            return None
        body = pending.body.encode("utf-8")
        decoded = decode_body(body)
        stamp = maybe(pending.timestamp)
        if decoded is None or decoded.get("domain") != self.cfg.domain:
            log.warning(
                "dropping an interrupted delivery that is not a heartbeat of %s",
                self.cfg.domain,
                extra={"event": "heartbeat.interrupted", "timestamp": stamp},
            )
        elif not self._signed_here(body, pending.signature):
            log.warning(
                "dropping an interrupted delivery that pulsed did not sign with this secret",
                extra={"event": "heartbeat.interrupted", "timestamp": stamp},
            )
        elif _schedule.should_resend(pending.timestamp, self.wall()):
            log.info(
                "re-sending the interrupted heartbeat of %s",
                stamp,
                extra={"event": "heartbeat.resumed", "timestamp": stamp},
            )
            return Prepared(body, pending.timestamp)
        else:
            log.warning(
                "a delivery of %s was interrupted and its outcome is unknown; sending a fresh one",
                stamp,
                extra={"event": "heartbeat.interrupted", "timestamp": stamp},
            )
        self.state = replace(self.state, pending=None)
        return None

    def _signed_here(self, body: bytes, kept: str | None) -> bool:
        expected = signature(self.cfg.heartbeat_secret.reveal(), body)
        return kept is not None and hmac.compare_digest(expected, kept)

    # --- delivering -----------------------------------------------------------------

    async def deliver(self, prepared: Prepared, sender: Sender) -> bool:
        """Send; the pending body is recorded first, the outcome after. ``True`` when sent."""
        headers = headers_for(prepared.body, self.cfg.heartbeat_secret.reveal())
        signature = headers[SIGNATURE_HEADER]
        self.state = st.with_pending(self.state, prepared.body, prepared.timestamp, signature)
        await self.save_aside()
        try:
            done = await sender.send(prepared.body, headers)
        except DeliveryError as exc:
            await self._failed(exc)
            return False
        now = self.wall()
        next_due = _schedule.after_success(now, self.cfg.interval)
        self.state = st.succeeded(
            self.state, now, done.status, next_due, attempts=done.attempts, elapsed=done.elapsed
        )
        await self.save_aside()
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
        return True

    async def crashed(self, exc: Exception) -> None:
        """A cycle that failed in a way nothing mapped: logged, then backed off like a failure."""
        log.error(
            "heartbeat cycle failed unexpectedly",
            exc_info=exc,
            extra={"event": "heartbeat.error"},
        )
        await self._failed(DeliveryError("internal", type(exc).__name__))

    async def _failed(self, exc: DeliveryError) -> None:
        now = self.wall()
        failures = self.state.consecutive_failures + 1
        next_due = _schedule.after_failure(
            failures, now, self.cfg.interval, self.rng, exc.retry_after
        )
        # The error keeps a snippet of the receiver's answer and goes to state.json,
        # `status` and STATUS=: an answer that echoes a secret must not carry it there.
        self.state = st.failed(
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
