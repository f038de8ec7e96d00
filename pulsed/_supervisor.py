"""The loop of ``pulsed run``: when each shop's cycle runs, and what a signal means.

:class:`Supervisor` only schedules. It keeps every idle shop's next due time on the
monotonic clock in one heap and sleeps until the earliest; a shop that comes due
gets a task for that one cycle, so one shop's slow receiver, broken tree or failure
never delays another's heartbeat, and a sleeping shop is a heap entry, not a task
(a task, its frames and its cancel scopes cost a few KiB, and a host has thousands
of shops asleep). At most :data:`CONCURRENT` cycles run at once, so two hundred
shops due together never open two hundred connections or children. Signals arrive
through anyio's signal receiver and only set a flag and wake the loop
(:meth:`Supervisor.request_stop`, :meth:`Supervisor.request_reload`); the loop
decides what happens next. A reload adds, removes and changes shops without moving
the others' schedules.

While a cycle runs it carries a deadline, the cycle's own allowance: the watchdog
pings systemd only while every running cycle meets it, so a stuck cycle gets the
daemon restarted.

What a cycle changes is kept shop by shop, so nothing after a cycle walks every
shop: the shop's pieces of the status and metrics files (:class:`Files`) and its
part of ``STATUS=`` (:class:`Tally`). The files are written at start and after a
reload at once, and after cycles once for all the cycles that end within a window
of the first (:func:`publish_window`), or once the shops due together are done, but
never later than :data:`PUBLISH_LATEST` after the first change; no timer runs while
nothing changed.
"""

from __future__ import annotations

import bisect
import heapq
import math
import signal
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from pulsed._config import Config
from pulsed._cycle import Cycle, Transport
from pulsed._logging import SHOP
from pulsed._notify import Notifier
from pulsed._state import State
from pulsed._status import ShopView
from pulsed._timefmt import maybe

Waiter = Callable[[float, anyio.Event], Awaitable[bool]]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)
# Cycles running at once: enough that a slow receiver for some shops leaves room for
# the rest, few enough that a host's due shops never open a connection (or a php
# child) each at the same instant.
CONCURRENT = 8
# Cycles that end within the window after the first change share one write of the
# files. The window is at least a second and grows with what a write costs, so that
# writing takes at most a thousandth of the time however many shops there are (the
# files grow with them, and so does the number of cycles an hour); it is never
# longer than PUBLISH_LATEST, which also bounds the wait for shops due together.
PUBLISH_WINDOW = 1.0
PUBLISH_SHARE = 0.001
PUBLISH_LATEST = 5.0
# Replaced due times kept beyond twice the shops, before STATUS='s heap is made again.
SPARE_DUES = 64


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


def publish_window(cost: float) -> float:
    """How long after the first change the files are written, when the last write took
    ``cost`` seconds."""
    return min(max(PUBLISH_WINDOW, cost / PUBLISH_SHARE), PUBLISH_LATEST)


class Files(Protocol):
    """The status and metrics files: each shop's pieces kept, joined at each write
    (:class:`pulsed._publish.Publisher`)."""

    def update(self, views: Iterable[ShopView]) -> None: ...

    def sync(self, views: Sequence[ShopView]) -> None: ...

    def write(self) -> object: ...


class Tally:
    """``STATUS=`` of every shop, kept as each shop's state changes: a line is a sum of
    kept counts, never a walk over the shops.

    ``states`` are the running shops' states by name; ``disabled`` names the shops whose
    configuration cannot work: they stay in the sum.
    """

    def __init__(self, states: Mapping[str, State], disabled: Iterable[str] = ()) -> None:
        self._states: dict[str, State] = {}
        self._failing: list[str] = []  # by name
        self._waiting = 0
        # (next due, name) of each state kept; one a newer state replaced is dropped
        # when it comes to the top.
        self._dues: list[tuple[float, str]] = []
        self._disabled = sorted(disabled)
        for name, state in states.items():
            self.keep(name, state)

    def keep(self, name: str, state: State) -> None:
        """The shop's state now (its cycle ended)."""
        self.drop(name)
        self._states[name] = state
        if state.consecutive_failures:
            bisect.insort(self._failing, name)
        elif state.last_success is None:
            self._waiting += 1
        if state.next_due is not None:
            heapq.heappush(self._dues, (state.next_due, name))
            # Replaced ones leave only from the top: a state kept again with the same
            # due time (a failure's pending body, then its outcome) stays below it.
            if len(self._dues) > 2 * len(self._states) + SPARE_DUES:
                self._dues = [
                    (s.next_due, n) for n, s in self._states.items() if s.next_due is not None
                ]
                heapq.heapify(self._dues)

    def drop(self, name: str) -> None:
        """The shop is gone (a reload removed it)."""
        old = self._states.pop(name, None)
        if old is None:
            return
        if old.consecutive_failures:
            del self._failing[bisect.bisect_left(self._failing, name)]
        elif old.last_success is None:
            self._waiting -= 1

    def _next_due(self) -> float | None:
        while self._dues:
            due, name = self._dues[0]
            state = self._states.get(name)
            if state is not None and state.next_due == due:
                return due
            heapq.heappop(self._dues)
        return None

    def line(self) -> str:
        """The shop's own line when there is one shop, else the sum over all shops."""
        if len(self._states) == 1 and not self._disabled:
            (state,) = self._states.values()
            return _one_shop_line(state)
        running, failing, waiting = len(self._states), len(self._failing), self._waiting
        parts = [f"{running + len(self._disabled)} shops: {running - failing - waiting} ok"]
        if failing:
            parts.append(f"{failing} failing ({', '.join(self._failing[:5])})")
        if waiting:
            parts.append(f"{waiting} not sent yet")
        if self._disabled:
            parts.append(f"{len(self._disabled)} disabled ({', '.join(self._disabled[:5])})")
        due = self._next_due()
        return ", ".join(parts) + f"; next {'now' if due is None else maybe(due)}"


def status_line(cycles: Sequence[Cycle], disabled: Sequence[str] = ()) -> str:
    """One line for systemd's ``STATUS=``: the shop's own, or a sum over all shops
    (:class:`Tally`, made for this line alone)."""
    return Tally({cycle.name: cycle.state for cycle in cycles}, disabled).line()


@dataclass(frozen=True)
class Reloaded:
    """What a reload brings: every shop that can work, and the views of those that cannot."""

    shops: Sequence[Config]
    disabled: Sequence[ShopView] = ()


def _one_shop_line(s: State) -> str:
    nxt = maybe(s.next_due) or "now"
    if s.last_error is None and s.last_success is not None:
        return f"last heartbeat {maybe(s.last_success)} (HTTP {s.last_status}); next {nxt}"
    if s.last_error is not None:
        failing = f"{s.consecutive_failures} in a row: {s.last_error}"
        return f"heartbeat failing ({failing}); next try {nxt}"
    return f"no heartbeat yet; next {nxt}"


@dataclass(slots=True)
class _Shop:
    cycle: Cycle
    scope: anyio.CancelScope | None = None  # while its cycle runs
    deadline: float | None = None  # monotonic; while its cycle runs


class Supervisor:
    """Runs every shop's :class:`~pulsed._cycle.Cycle` whenever it is due, until stopped.

    ``reload_config`` returns the shops' new configurations (``None``: refused, keep
    the running ones); ``disabled`` are the views of the shops that cannot work, kept
    in every listing (``STATUS=``, the published files) until a reload drops them;
    ``shops`` opens the cycle of a shop a reload adds (without it, a reload only
    changes and removes shops); ``files`` are the status and metrics files (``None``:
    neither is written). ``wait`` and ``monotonic`` are the sleep and the clock of the
    shops' schedules and of the files' window.
    """

    def __init__(
        self,
        cycles: Sequence[Cycle],
        transport: Transport,
        notifier: Notifier,
        *,
        reload_config: Callable[[], Reloaded | None],
        shops: Opener | None = None,
        files: Files | None = None,
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
        self.files = files
        self.disabled = {view.name: view for view in disabled}
        self.wait = wait
        self.monotonic = monotonic
        self.tally = self._tallied()
        self._limiter = anyio.CapacityLimiter(concurrent)
        self._wake = anyio.Event()
        # (due, name) of every sleeping shop, the earliest first: one entry each, as a
        # start and a reload make it again and a cycle's end adds its shop's next.
        self._dues: list[tuple[float, str]] = []
        self._until = -math.inf  # when the loop's sleep ends
        self._stop = False
        self._reload = False
        self._running = 0  # cycles running now
        self._unwritten = False  # a change that the files and STATUS= do not show yet
        self._changed = anyio.Event()  # set by the first such change
        self._idle = anyio.Event()  # set when the last running cycle ends
        self._window = PUBLISH_WINDOW

    @property
    def cycles(self) -> list[Cycle]:
        return [shop.cycle for shop in self.shops.values()]

    def views(self) -> list[ShopView]:
        """Every configured shop as the status shows it, disabled ones included, by name."""
        views = [c.view() for c in self.cycles] + list(self.disabled.values())
        return sorted(views, key=lambda v: v.name)

    def _tallied(self) -> Tally:
        return Tally({c.name: c.state for c in self.cycles}, self.disabled)

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

    def _publish_all(self) -> None:
        """Every shop's view given again (a start, a reload), and the files written now."""
        if self.files is not None:
            self.files.sync(self.views())
        self._publish()

    def _publish(self) -> None:
        """The files, then STATUS=: once STATUS= tells of a change, the files hold it."""
        self._unwritten = False
        if self.files is not None:
            began = self.monotonic()
            self.files.write()
            self._window = publish_window(self.monotonic() - began)
        self.notifier.status(self.tally.line())

    def _ended(self, shop: _Shop) -> None:
        """A shop's cycle ended: its part of STATUS= and of the files now, the write soon."""
        cycle = shop.cycle
        if self.shops.get(cycle.name) is shop:  # else a reload removed it as it delivered
            self.tally.keep(cycle.name, cycle.state)
            self._unwritten = True
            if self.files is not None:
                self.files.update([cycle.view()])
                self._changed.set()
        # No file to write: STATUS= alone, once the shops due together are done.
        if self.files is None and self._unwritten and not self._running:
            self._publish()

    async def _write_later(self) -> None:
        """Writes the files after cycles: once for every cycle that ends within the
        window of the first change, or once the shops due together are done, but never
        later than :data:`PUBLISH_LATEST` after the first change. While nothing changed
        it waits on an event, with no timer."""
        while True:
            await self._changed.wait()
            first = self.monotonic()
            await self.wait(self._window, anyio.Event())  # nothing cuts the window short
            while self._running and (left := first + PUBLISH_LATEST - self.monotonic()) > 0:
                self._idle = anyio.Event()
                await self.wait(left, self._idle)
            self._changed = anyio.Event()
            if self._unwritten:
                self._publish()

    async def run(self) -> None:
        self.notifier.ready()
        self._publish_all()
        async with anyio.create_task_group() as tg:
            if self.files is not None:
                tg.start_soon(self._write_later)
            self._plan_all()
            while not self._stop:
                if self._reload:
                    self._apply_reload()
                self._start_due(tg)
                # Made before the next due time is read, with no await between: a cycle
                # that ends, or a signal, from here on sets this one.
                self._wake = anyio.Event()
                self._until = self._dues[0][0] if self._dues else math.inf
                # A checkpoint each turn: a stand-in wait that never blocks must still
                # let a stop through and the started cycles run.
                await anyio.lowlevel.checkpoint()
                # The flags too: a stop or reload asked before the event was made.
                if self._stop or self._reload or self._wake.is_set():
                    continue
                if self._dues:
                    # Slept on the monotonic clock: a wall clock set back while asleep
                    # must not stretch the interval (nor set forward, shorten it).
                    await self.wait(self._until - self.monotonic(), self._wake)
                else:  # every shop runs, or there is none: only an event brings work
                    await self._wake.wait()
            tg.cancel_scope.cancel()  # builds end; deliveries finish (shielded)
        if self._unwritten:  # cycles that ended within the window before the stop
            self._publish()
        self.notifier.stopping()
        for cycle in self.cycles:
            cycle.recorder.save()

    def _plan(self, shop: _Shop) -> None:
        """The shop's next due time, from its schedule now; the loop wakes if it is the
        earliest."""
        due = self._due(shop)
        heapq.heappush(self._dues, (due, shop.cycle.name))
        if due < self._until:
            self._wake.set()

    def _plan_all(self) -> None:
        """Every idle shop's due time looked at again (a start, a reload); a running one
        is planned when its cycle ends."""
        self._dues = [(self._due(s), name) for name, s in self.shops.items() if s.scope is None]
        heapq.heapify(self._dues)

    def _due(self, shop: _Shop) -> float:
        """When the shop's next cycle is due, on the monotonic clock."""
        # What its schedule says here (a clock that went back) names the shop, as its
        # cycle's lines do: a start or a reload plans every shop from the loop's task.
        named = SHOP.set(shop.cycle.name)
        try:
            return self.monotonic() + shop.cycle.wait_time()
        finally:
            SHOP.reset(named)

    def _start_due(self, tg: TaskGroup) -> None:
        """A task for the cycle of every shop due now, in the order they came due."""
        now = self.monotonic()
        while self._dues and self._dues[0][0] <= now:
            shop = self.shops[heapq.heappop(self._dues)[1]]
            shop.scope = anyio.CancelScope()
            tg.start_soon(self._shop_cycle, shop, shop.scope)

    async def _shop_cycle(self, shop: _Shop, scope: anyio.CancelScope) -> None:
        SHOP.set(shop.cycle.name)  # this task's log lines name their shop
        with scope:  # a reload that removes the shop cancels it
            async with self._limiter:
                await self._run_cycle(shop)
        shop.scope = None
        if self.shops.get(shop.cycle.name) is shop and not self._stop:
            self._plan(shop)

    async def _run_cycle(self, shop: _Shop) -> None:
        cycle = shop.cycle
        shop.deadline = self.monotonic() + cycle.allowance
        self._running += 1
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
            self._running -= 1
            if not self._running:
                self._idle.set()
        self._ended(shop)

    def _apply_reload(self) -> None:
        self._reload = False
        self.notifier.reloading()
        reloaded = self.reload_config()
        if reloaded is not None:
            wanted = {cfg.name: cfg for cfg in reloaded.shops}
            for name in [n for n in self.shops if n not in wanted]:
                # Its build ends now; a delivery in flight finishes first.
                scope = self.shops.pop(name).scope
                if scope is not None:
                    scope.cancel()
                if self.opener is not None:
                    self.opener.close(name)
            for name, cfg in wanted.items():
                if name in self.shops:
                    self.shops[name].cycle.reconfigure(cfg)
                elif self.opener is not None:
                    self.shops[name] = _Shop(self.opener.open(cfg))
            self.disabled = {view.name: view for view in reloaded.disabled}
            self.tally = self._tallied()
            # Their intervals may have changed: each looks again.
            self._plan_all()
        self.notifier.ready()
        self._publish_all()  # at once, whatever runs: the files show what it changed
