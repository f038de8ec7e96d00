"""One shop's cycle: the decision, the body and the recorder, put together.

:class:`Cycle` is what every command does with a shop, in three parts each found
in a module of its own: :mod:`pulsed._schedule` decides (what is due, resume an
interrupted body or build a fresh one, the next due time after an outcome),
:mod:`pulsed._body` makes the signed request from the facts, and
:class:`~pulsed._recorder.Recorder` keeps the state that follows. ``run`` and
``once`` open a cycle writable and :meth:`~Cycle.deliver` what
:meth:`~Cycle.prepare` made; ``check`` and ``once --dry-run`` open it read-only and
stop after :meth:`~Cycle.build`. It decides nothing about *when* to run: ``once``
asks :meth:`~Cycle.is_due`, the supervisor sleeps :meth:`~Cycle.wait_time`. The
clock, the randomness, the identity round and the collector are passed in, so a
cycle is tested on an injected clock with stand-in edges.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Protocol
from urllib.parse import urlsplit

from pulsed import _body, _collect, _identity, _schedule
from pulsed._body import Request
from pulsed._config import Config
from pulsed._delivery import BUDGET, Delivered
from pulsed._errors import DeliveryError, StateError
from pulsed._events import event
from pulsed._proc import child_environ
from pulsed._recorder import Recorder
from pulsed._settings import SECRET_VARIABLES
from pulsed._state import Identity, State, StateStore
from pulsed._status import ShopView
from pulsed._timefmt import maybe

log = logging.getLogger("pulsed.cycle")

# The jitter of every shop's schedule, one for all: a Random's state is 2.5 KiB, a
# sixth of what a shop costs the daemon.
_JITTER = random.Random()  # noqa: S311 -- jitter, not a secret

# Saving the state twice (pending, then outcome) with an fsync each: a slow disk
# can take seconds, and the watchdog must not call that a hang.
STATE_WRITES_ALLOWANCE = 5.0


class Transport(Protocol):
    """What delivers a request: :class:`pulsed._delivery.Sender`, or a test's stand-in."""

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered: ...


Collect = Callable[..., Awaitable[_body.ShopFacts]]


class Cycle:
    """Builds, signs and delivers one shop's heartbeat, and records what follows."""

    def __init__(
        self,
        cfg: Config,
        store: StateStore,
        state: State,
        *,
        writable: bool,
        environ: Mapping[str, str],
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        identities: _identity.Rounds | None = None,
        collect: Collect = _collect.collect,
    ) -> None:
        self.cfg = cfg
        # Each save records whose state this is (see pulsed adopt).
        self.recorder = Recorder(store, replace(state, domain=cfg.domain), writable=writable)
        self.environ = environ
        self.wall = wall
        self.rng = rng or _JITTER
        # Shared by every shop of a daemon, so one identity child serves them all.
        self.identities = identities or _identity.Rounds()
        self.collect = collect
        self._warned_future: float | None = None

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
        store = StateStore(cfg.state_dir)
        if writable:
            state = store.load(wall())
        else:
            try:
                state = store.read() or State()
            except StateError:
                state = State()
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

    @property
    def state(self) -> State:
        return self.recorder.state

    @property
    def store(self) -> StateStore:
        return self.recorder.store

    def view(self) -> ShopView:
        """The shop as ``status`` and the status file show it."""
        return ShopView(self.name, self.cfg.domain, self.state, self.due().at)

    @property
    def allowance(self) -> float:
        """The longest a healthy cycle takes: getMe's child, php, the delivery, two saves.

        A cycle still running past this is stuck, and the watchdog stops vouching
        for the daemon.
        """
        identity = _identity.IMPORT_ALLOWANCE + self.cfg.timeout
        php = self.cfg.timeout
        return identity + php + BUDGET + STATE_WRITES_ALLOWANCE

    # --- the decision ----------------------------------------------------------------

    def due(self) -> _schedule.Due:
        due = _schedule.due(self.state, self.wall(), self.cfg.interval)
        if due.clock_went_back and self._warned_future != self.state.last_success:
            self._warned_future = self.state.last_success  # once per state, not per look
            log.warning(
                "last success %s is in the future: the clock went back; sending now",
                maybe(self.state.last_success),
                extra=event("state.clock_future", last_success=maybe(self.state.last_success)),
            )
        return due

    def wait_time(self) -> float:
        """Seconds until the next heartbeat; 0 when due or when a delivery was cut short."""
        self.due()  # says so once when the clock went back
        return _schedule.wait(self.state, self.wall(), self.cfg.interval)

    def is_due(self) -> bool:
        return self.wait_time() <= 0.0

    def reconfigure(self, cfg: Config) -> None:
        """Take a reloaded configuration; the state folder stays the one opened.

        The reload warns, once for all shops, when ``daemon.state_dir`` changed.
        """
        # Taken as it is when the folder is the same, as it is unless someone edited
        # daemon.state_dir: a copy of each shop's settings costs 13 µs, 25 ms of a
        # reload of 2,000 shops.
        same = cfg.state_dir == self.cfg.state_dir
        self.cfg = cfg if same else replace(cfg, state_dir=self.cfg.state_dir)

    # --- the body --------------------------------------------------------------------

    def stale_token(self) -> str | None:
        """The bot token, when the kept identity needs fetching again (for a shared round)."""
        token = self.cfg.bot_token
        if token is None:
            return None
        fp = _identity.fingerprint(token.reveal())
        stale = _identity.needs_refresh(self.state.identity, fp, self.wall())
        return token.reveal() if stale else None

    def _child_env(self) -> dict[str, str]:
        return child_environ(self.environ, self.cfg.secrets(), SECRET_VARIABLES)

    async def _fetch_identity(self, token: str) -> Identity:
        return await self.identities.identity(
            token, self.cfg.telegram_api_base, self.cfg.timeout, self._child_env()
        )

    async def build(self) -> Request:
        """A fresh request, stamped now."""
        token = self.cfg.bot_token
        username, fetched = await self.identities.username(
            None if token is None else token.reveal(),
            self.state.identity,
            self.wall(),
            self._fetch_identity,
        )
        if fetched is not None:
            self.recorder.keep_identity(fetched)
        facts = await self.collect(
            self.cfg.shop_root,
            self.cfg.composer_json,
            self.cfg.php_binary,
            self.cfg.timeout,
            self._child_env(),
        )
        at = float(int(self.wall()))
        beat = _body.heartbeat(self.cfg.domain, username, facts, at)
        return _body.signed(beat, self.cfg.heartbeat_secret.reveal(), at)

    async def prepare(self) -> Request:
        """The request to deliver: an interrupted one if it may still be sent, else a fresh one."""
        return self._resumed() or await self.build()

    def _resumed(self) -> Request | None:
        pending = self.state.pending
        if pending is None:
            return None
        decided = _schedule.resume(
            pending, self.cfg.domain, self.cfg.heartbeat_secret.reveal(), self.wall()
        )
        stamp = maybe(pending.timestamp)
        if decided.beat is not None and pending.signature is not None:
            log.info(
                "re-sending the interrupted heartbeat of %s",
                stamp,
                extra=event("heartbeat.resumed", timestamp=stamp),
            )
            module = decided.beat.facts.module_version
            headers = _body.headers(pending.signature, module)
            return Request(pending.body.encode("utf-8"), headers, pending.timestamp)
        if decided.verdict == "foreign":
            log.warning(
                "dropping an interrupted delivery that is not a heartbeat of %s",
                self.cfg.domain,
                extra=event("heartbeat.interrupted", timestamp=stamp),
            )
        elif decided.verdict == "unsigned":
            log.warning(
                "dropping an interrupted delivery that pulsed did not sign with this secret",
                extra=event("heartbeat.interrupted", timestamp=stamp),
            )
        else:
            log.warning(
                "a delivery of %s was interrupted and its outcome is unknown; sending a fresh one",
                stamp,
                extra=event("heartbeat.interrupted", timestamp=stamp),
            )
        self.recorder.drop_pending()
        return None

    # --- delivering and recording ------------------------------------------------------

    async def deliver(
        self, request: Request, transport: Transport, *, must_keep: bool = False
    ) -> bool:
        """Send; the pending body is recorded first, the outcome after. ``True`` when sent.

        ``must_keep``: nothing is sent unless the pending body could be saved
        (:class:`~pulsed._errors.StateUnwritableError`), as ``once`` needs.
        """
        due, failures = self.due(), self.state.consecutive_failures
        await self.recorder.started(request, must_keep=must_keep)
        try:
            done = await transport.send(request.body, request.headers)
        except DeliveryError as exc:
            await self._failed(exc)
            return False
        now = self.wall()
        next_due = _schedule.after_success(
            due, request.at, now, self.cfg.interval, failures, self.rng
        )
        await self.recorder.sent(done, now, next_due)
        return True

    async def crashed(self, exc: Exception) -> None:
        """A cycle that failed in a way nothing mapped: logged, then backed off like a failure."""
        log.error(
            "heartbeat cycle failed unexpectedly",
            exc_info=exc,
            extra=event("heartbeat.error"),
        )
        await self._failed(DeliveryError("internal", type(exc).__name__))

    async def _failed(self, exc: DeliveryError) -> None:
        now = self.wall()
        failures = self.state.consecutive_failures + 1
        next_due = _schedule.after_failure(
            failures, now, self.cfg.interval, self.rng, exc.retry_after
        )
        await self.recorder.failed(exc, now, next_due, urlsplit(self.cfg.api_host).hostname)
