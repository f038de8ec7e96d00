"""A supervisor on a clock that moves only when the test moves it: :class:`Manual`
(its monotonic clock and its sleep), shops whose deliveries wait for the test
(:class:`Held`), and a notifier that keeps what it was told."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import anyio

from pulsed import _state as st
from pulsed._config import Config
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._notify import Notifier
from tests.support.loop import Clocks, fixed_facts, loop_config


class Manual:
    """The loop's monotonic clock and its sleep: time moves only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0
        self.asked: list[float] = []  # every sleep asked for, in order
        self.sleeping: list[tuple[float, float, anyio.Event]] = []  # asked, until, done
        self.asleep = anyio.Event()

    def monotonic(self) -> float:
        return self.now

    async def wait(self, delay: float, wake: anyio.Event) -> bool:
        done = anyio.Event()
        sleeper = (delay, self.now + delay, done)
        self.asked.append(delay)
        self.sleeping.append(sleeper)
        self.asleep.set()
        woken = False

        async def on_wake() -> None:
            nonlocal woken
            await wake.wait()
            woken = True
            done.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(on_wake)
                await done.wait()
                tg.cancel_scope.cancel()
        finally:
            self.sleeping.remove(sleeper)
        return woken

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for _, until, done in self.sleeping:
            if until <= self.now:
                done.set()

    async def until_asleep(self, delay: float) -> None:
        """Returns once a task sleeps ``delay`` seconds."""
        while not any(asked == delay for asked, _, _ in self.sleeping):
            self.asleep = anyio.Event()
            await self.asleep.wait()


class Held:
    """Each shop's delivery waits until the test lets it through; then a 200."""

    def __init__(self, *names: str) -> None:
        self.sending = {name: anyio.Event() for name in names}
        self.release = {name: anyio.Event() for name in names}

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        name = json.loads(body)["domain"].split(".")[0]
        self.sending[name].set()
        # The delivery is shielded from a stop: a test that fails must not hang on it.
        with anyio.fail_after(5):
            await self.release[name].wait()
        return Delivered(status=200, attempts=1, elapsed=0.01)


class Notes(Notifier):
    def __init__(self) -> None:
        super().__init__(None)
        self.messages: list[str] = []

    def notify(self, *lines: str) -> None:
        self.messages.append("\n".join(lines))


def config(tmp_path: Path, name: str) -> Config:
    """A shop named ``name`` whose heartbeat names ``<name>.example``."""
    return replace(loop_config(tmp_path / name, name=name), domain=f"{name}.example")


def shop(tmp_path: Path, name: str, state: st.State | None = None) -> Cycle:
    return Cycle(
        config(tmp_path, name),
        st.StateStore(tmp_path / name),
        state or st.State(),  # due now
        writable=True,
        environ={},
        wall=Clocks().now,
        collect=fixed_facts,
    )
