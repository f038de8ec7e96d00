"""The loop of ``pulsed run``: when each shop's cycle runs, and what a signal means.

:class:`Supervisor` only schedules. Each shop has a task of its own that sleeps
until its cycle says it is due, runs it, and sleeps again, so one shop's slow
receiver, broken tree or failure never delays another's heartbeat; at most
:data:`CONCURRENT` cycles run at once, so two hundred shops due together never open
two hundred connections or children. Signals arrive through anyio's signal receiver
and only set a flag and wake the loop (:meth:`Supervisor.request_stop`,
:meth:`Supervisor.request_reload`); the loop decides what happens next. A reload
adds, removes and changes shops without moving the others' schedules.

While a cycle runs it carries a deadline, the cycle's own allowance: the watchdog
pings systemd only while every running cycle meets it, so a stuck cycle gets the
daemon restarted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from pulsed._config import Config
from pulsed._cycle import Cycle, Transport
from pulsed._logging import SHOP
from pulsed._notify import Notifier
from pulsed._status import ShopView
from pulsed._timefmt import maybe

Waiter = Callable[[float, anyio.Event], Awaitable[bool]]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)
# Cycles running at once: enough that a slow receiver for some shops leaves room for
# the rest, few enough that a host's due shops never open a connection (or a php
# child) each at the same instant.
CONCURRENT = 8


async def wait_or_wake(delay: float, wake: anyio.Event) -> bool:
    """Sleep ``delay`` s on the monotonic clock; ``True`` when ``wake`` cut it short."""
    with anyio.move_on_after(max(delay, 0.0)):
        await wake.wait()
        return True
    return False


class Opener(Protocol):
    """Opens the cycle of a shop a reload adds, and forgets one a reload removes."""

    def open(self, cfg: Config) -> Cycle: ...

    def close(self, name: str) -> None: ...


def status_line(cycles: Sequence[Cycle], disabled: Sequence[str] = ()) -> str:
    """One line for systemd's ``STATUS=``: the shop's own, or a sum over all shops.

    ``disabled`` names the shops whose configuration cannot work: they stay in the sum.
    """
    if len(cycles) == 1 and not disabled:
        return _one_shop_line(cycles[0])
    failing = sorted(c.name for c in cycles if c.state.consecutive_failures)
    waiting = [c.name for c in cycles if c.state.last_success is None and c.name not in failing]
    ok = len(cycles) - len(failing) - len(waiting)
    dues = [c.state.next_due for c in cycles if c.state.next_due is not None]
    parts = [f"{len(cycles) + len(disabled)} shops: {ok} ok"]
    if failing:
        parts.append(f"{len(failing)} failing ({', '.join(failing[:5])})")
    if waiting:
        parts.append(f"{len(waiting)} not sent yet")
    if disabled:
        parts.append(f"{len(disabled)} disabled ({', '.join(sorted(disabled)[:5])})")
    nxt = maybe(min(dues)) if dues else "now"
    return ", ".join(parts) + f"; next {nxt}"


@dataclass(frozen=True)
class Reloaded:
    """What a reload brings: every shop that can work, and the views of those that cannot."""

    shops: Sequence[Config]
    disabled: Sequence[ShopView] = ()


def _one_shop_line(cycle: Cycle) -> str:
    s = cycle.state
    nxt = maybe(s.next_due) or "now"
    if s.last_error is None and s.last_success is not None:
        return f"last heartbeat {maybe(s.last_success)} (HTTP {s.last_status}); next {nxt}"
    if s.last_error is not None:
        failing = f"{s.consecutive_failures} in a row: {s.last_error}"
        return f"heartbeat failing ({failing}); next try {nxt}"
    return f"no heartbeat yet; next {nxt}"


@dataclass
class _Shop:
    cycle: Cycle
    wake: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    deadline: float | None = None  # monotonic; while its cycle runs


class Supervisor:
    """Runs every shop's :class:`~pulsed._cycle.Cycle` whenever it is due, until stopped.

    ``reload_config`` returns the shops' new configurations (``None``: refused, keep
    the running ones); ``disabled`` are the views of the shops that cannot work, kept
    in every listing (``STATUS=``, the published files) until a reload drops them;
    ``shops`` opens the cycle of a shop a reload adds (without it, a reload only
    changes and removes shops).
    """

    def __init__(
        self,
        cycles: Sequence[Cycle],
        transport: Transport,
        notifier: Notifier,
        *,
        reload_config: Callable[[], Reloaded | None],
        shops: Opener | None = None,
        publish: Callable[[Sequence[ShopView]], object] = lambda _: None,
        disabled: Sequence[ShopView] = (),
        wait: Waiter = wait_or_wake,
        monotonic: Callable[[], float] = time.monotonic,
        concurrent: int = CONCURRENT,
    ) -> None:
        self.shops = {cycle.name: _Shop(cycle) for cycle in cycles}
        self.transport = transport
        self.notifier = notifier
        self.reload_config = reload_config
        self.opener = shops
        self.publish = publish
        self.disabled = {view.name: view for view in disabled}
        self.wait = wait
        self.monotonic = monotonic
        self._limiter = anyio.CapacityLimiter(concurrent)
        self._wake = anyio.Event()
        self._stop = False
        self._reload = False

    @property
    def cycles(self) -> list[Cycle]:
        return [shop.cycle for shop in self.shops.values()]

    def views(self) -> list[ShopView]:
        """Every configured shop as the status shows it, disabled ones included, by name."""
        views = [c.view() for c in self.cycles] + list(self.disabled.values())
        return sorted(views, key=lambda v: v.name)

    def request_stop(self) -> None:
        self._stop = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload = True
        self._wake.set()

    async def handle_signals(self, signals: AsyncIterable[int]) -> None:
        """Turn each received signal into a request; the loop acts on it."""
        async for signum in signals:
            if signum in STOP_SIGNALS:
                self.request_stop()
            else:
                self.request_reload()

    def healthy(self) -> bool:
        now = self.monotonic()
        return all(s.deadline is None or now <= s.deadline for s in self.shops.values())

    async def watchdog(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            if self.healthy():
                self.notifier.watchdog()

    def _cycled(self) -> None:
        """After start and after cycles (never on a timer): STATUS=, and the files.

        Shops due together end their cycles together: the files are written once the
        last of them is done, not once per shop.
        """
        if any(s.deadline is not None for s in self.shops.values()):
            return
        # The files first: once STATUS= tells of a change, the files already hold it.
        self.publish(self.views())
        self.notifier.status(status_line(self.cycles, list(self.disabled)))

    async def run(self) -> None:
        self.notifier.ready()
        self._cycled()
        async with anyio.create_task_group() as tg:
            for shop in self.shops.values():
                tg.start_soon(self._shop_loop, shop)
            while not self._stop:
                await self._wake.wait()
                self._wake = anyio.Event()  # the flags, not the event, say what was asked
                if self._reload and not self._stop:
                    self._apply_reload(tg)
            tg.cancel_scope.cancel()  # sleeps and builds end; deliveries finish (shielded)
        self.notifier.stopping()
        for cycle in self.cycles:
            cycle.recorder.save()

    async def _shop_loop(self, shop: _Shop) -> None:
        SHOP.set(shop.cycle.name)  # this task's log lines name their shop
        with shop.scope:
            while True:
                # A checkpoint each turn: a stand-in wait that never blocks must still
                # let a stop through.
                await anyio.lowlevel.checkpoint()
                delay = shop.cycle.wait_time()
                # Slept on the monotonic clock, then sent: a wall clock set back while
                # asleep must not stretch the interval (nor set forward, shorten it).
                if delay > 0 and await self.wait(delay, shop.wake):
                    shop.wake = anyio.Event()  # reconfigured: look again
                    continue
                async with self._limiter:
                    await self._run_cycle(shop)

    async def _run_cycle(self, shop: _Shop) -> None:
        cycle = shop.cycle
        shop.deadline = self.monotonic() + cycle.allowance
        try:
            prepared = await cycle.prepare()
            # A started delivery finishes, or gives up, within its own 2 s budget.
            with anyio.CancelScope(shield=True):
                await cycle.deliver(prepared, self.transport)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # noqa: BLE001 -- a bug in one cycle must not end the daemon
            with anyio.CancelScope(shield=True):
                await cycle.crashed(exc)
        finally:
            shop.deadline = None
        self._cycled()

    def _apply_reload(self, tg: TaskGroup) -> None:
        self._reload = False
        self.notifier.reloading()
        reloaded = self.reload_config()
        if reloaded is not None:
            wanted = {cfg.name: cfg for cfg in reloaded.shops}
            for name in [n for n in self.shops if n not in wanted]:
                # Its sleep or build ends now; a delivery in flight finishes first.
                self.shops.pop(name).scope.cancel()
                if self.opener is not None:
                    self.opener.close(name)
            for name, cfg in wanted.items():
                if name in self.shops:
                    shop = self.shops[name]
                    shop.cycle.reconfigure(cfg)
                    shop.wake.set()  # its interval may have changed: it looks again
                elif self.opener is not None:
                    added = self.shops[name] = _Shop(self.opener.open(cfg))
                    tg.start_soon(self._shop_loop, added)
            self.disabled = {view.name: view for view in reloaded.disabled}
        self.notifier.ready()
        self._cycled()
