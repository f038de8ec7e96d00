"""The loop of ``pulsed run``: when to run a cycle, and what a signal means.

:class:`Supervisor` only schedules. It sleeps until the cycle says it is due,
wakes for a stop or a reload, runs the cycle, and never exits because a cycle
failed. Signals arrive through anyio's signal receiver and only set a flag and
wake the loop (:meth:`Supervisor.request_stop`, :meth:`Supervisor.request_reload`);
the loop decides what happens next. While a cycle runs it carries a deadline,
the cycle's own allowance: the watchdog pings systemd only while the loop meets
it, so a stuck cycle gets the daemon restarted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterable, Awaitable, Callable

import anyio

from pulsed._config import Config
from pulsed._cycle import Cycle, Prepared, Sender
from pulsed._notify import Notifier

Waiter = Callable[[float, anyio.Event], Awaitable[bool]]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)


async def wait_or_wake(delay: float, wake: anyio.Event) -> bool:
    """Sleep ``delay`` s on the monotonic clock; ``True`` when ``wake`` cut it short."""
    with anyio.move_on_after(max(delay, 0.0)):
        await wake.wait()
        return True
    return False


class Supervisor:
    """Runs one :class:`~pulsed._cycle.Cycle` whenever it is due, until stopped."""

    def __init__(
        self,
        cycle: Cycle,
        sender: Sender,
        notifier: Notifier,
        *,
        reload_config: Callable[[], Config | None],
        wait: Waiter = wait_or_wake,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cycle = cycle
        self.sender = sender
        self.notifier = notifier
        self.reload_config = reload_config
        self.wait = wait
        self.monotonic = monotonic
        self._wake = anyio.Event()
        self._stop = False
        self._reload = False
        # The monotonic time by which the running cycle must be done; None between cycles.
        self.deadline: float | None = None

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
        return self.deadline is None or self.monotonic() <= self.deadline

    async def watchdog(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            if self.healthy():
                self.notifier.watchdog()

    async def run(self) -> None:
        self.notifier.ready()
        self.notifier.status(self.cycle.summary())
        while not self._stop:
            if self._reload:
                self._apply_reload()
                continue
            delay = self.cycle.wait_time()
            if delay > 0 and await self.wait(delay, self._wake):
                self._wake = anyio.Event()  # the flags, not the event, say what was asked
                continue
            await self._run_cycle()
        self.notifier.stopping()
        self.cycle.save()

    async def _run_cycle(self) -> None:
        self.deadline = self.monotonic() + self.cycle.allowance
        try:
            prepared = await self._unless_stopped(self.cycle.prepare)
            if prepared is None:
                return
            # A started delivery finishes, or gives up, within its own 2 s budget.
            with anyio.CancelScope(shield=True):
                await self.cycle.deliver(prepared, self.sender)
        except Exception as exc:  # noqa: BLE001 -- a bug in one cycle must not end the daemon
            self.cycle.crashed(exc)
        finally:
            self.deadline = None
        self.notifier.status(self.cycle.summary())

    async def _unless_stopped(self, work: Callable[[], Awaitable[Prepared]]) -> Prepared | None:
        """Run ``work``, abandoning it if a stop is requested meanwhile.

        A reload asked for meanwhile waits for the cycle's end: its flag stays set.
        """
        result: list[Prepared] = []

        async def body(scope: anyio.CancelScope) -> None:
            result.append(await work())
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(body, tg.cancel_scope)
            while not self._stop:
                await self._wake.wait()
                self._wake = anyio.Event()
            tg.cancel_scope.cancel()
        return result[0] if result else None

    def _apply_reload(self) -> None:
        self._reload = False
        self.notifier.reloading()
        cfg = self.reload_config()
        if cfg is not None:
            self.cycle.reconfigure(cfg)
        self.notifier.ready()
