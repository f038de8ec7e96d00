"""How the supervisor keeps its shops' schedules: one sleep until the earliest due
shop, a task only for a cycle that runs, a cycle's end or a reload that moves a due
time earlier waking that sleep. On an injected clock that moves only when the test
moves it (:class:`~tests.support.manual.Manual`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup

from pulsed import _state as st
from pulsed._logging import SHOP
from pulsed._supervisor import Reloaded, Supervisor
from tests.support.loop import START
from tests.support.manual import Held, Manual, Notes, config, shop

pytestmark = pytest.mark.anyio
HOUR = 3600.0
SENT_AT_START = st.State(last_success=START, last_status=200)  # due an interval later


def supervised(
    tmp_path: Path,
    shops: dict[str, float],
    clock: Manual,
    *,
    reload: Reloaded | None = None,
    states: Mapping[str, st.State] | None = None,
) -> tuple[Supervisor, Held]:
    """A supervisor of ``shops`` (name: interval), each of which sent at ``START``
    unless ``states`` gives it another state."""
    sender = Held(*shops)
    cycles = []
    for name, interval in shops.items():
        cycle = shop(tmp_path, name, (states or {}).get(name, SENT_AT_START))
        cycle.reconfigure(replace(cycle.cfg, interval=interval))
        cycles.append(cycle)
    sup = Supervisor(
        cycles,
        sender,
        Notes(),
        reload_config=lambda: reload,
        wait=clock.wait,
        monotonic=clock.monotonic,
    )
    return sup, sender


async def sleeps_at_most(clock: Manual, most: float) -> None:
    """Returns once the loop sleeps ``most`` seconds or less."""
    while not any(asked <= most for asked, _, _ in clock.sleeping):
        clock.asleep = anyio.Event()
        await clock.asleep.wait()


async def reloaded_past_the_old_due_time(sup: Supervisor, clock: Manual, tg: TaskGroup) -> None:
    """Runs ``sup``, whose shop ``a`` sleeps 60 s, reloads it into an hourly interval,
    and moves the clock past the old due time."""
    tg.start_soon(sup.run)
    await clock.until_asleep(60.0)
    sup.request_reload()
    await clock.until_asleep(HOUR)
    clock.advance(60.0)
    await anyio.wait_all_tasks_blocked()


async def test_sleeping_shops_are_one_sleep_not_a_task_each(tmp_path: Path) -> None:
    # A host has thousands of shops asleep; a task each, with its frames and cancel
    # scopes, costs a few KiB a shop.
    shops = {f"s{i:03d}": HOUR for i in range(300)}
    clock = Manual()
    sup, _ = supervised(tmp_path, shops, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await clock.until_asleep(HOUR)
            assert len(clock.sleeping) == 1
            # This test, the loop, and the sleep's own watch on its wake event.
            assert len(asyncio.all_tasks()) <= 4
            sup.request_stop()


async def test_a_cycle_that_ends_due_before_the_loops_sleep_wakes_it(tmp_path: Path) -> None:
    clock = Manual()
    sup, sender = supervised(tmp_path, {"a": 60.0, "b": HOUR}, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await clock.until_asleep(60.0)
            clock.advance(60.0)
            await sender.sending["a"].wait()
            await clock.until_asleep(HOUR - 60.0)  # b is the only one planned while a runs
            sender.release["a"].set()
            await sleeps_at_most(clock, 60.0)  # a is due again before b
            sup.request_stop()
    assert not sender.sending["b"].is_set()


async def test_a_sleeping_shop_a_reload_removes_never_runs(tmp_path: Path) -> None:
    clock = Manual()
    only_b = Reloaded([replace(config(tmp_path, "b"), interval=HOUR)])
    sup, sender = supervised(tmp_path, {"a": 60.0, "b": HOUR}, clock, reload=only_b)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await reloaded_past_the_old_due_time(sup, clock, tg)
            assert [name for name, ev in sender.sending.items() if ev.is_set()] == []
            sup.request_stop()
    assert [c.name for c in sup.cycles] == ["b"]


async def test_a_reload_that_lengthens_an_interval_moves_the_sleep_later(tmp_path: Path) -> None:
    clock = Manual()
    longer = Reloaded([replace(config(tmp_path, "a"), interval=HOUR)])
    sup, sender = supervised(tmp_path, {"a": 60.0}, clock, reload=longer)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await reloaded_past_the_old_due_time(sup, clock, tg)
            assert not sender.sending["a"].is_set()
            clock.advance(HOUR - 60.0)
            await sender.sending["a"].wait()
            sender.release["a"].set()
            await clock.until_asleep(HOUR)
            sup.request_stop()


async def test_a_warning_while_the_loop_plans_a_shop_names_that_shop(tmp_path: Path) -> None:
    # A start plans every shop from the loop's own task: a clock that went back is
    # still said of the shop it concerns, as journalctl's readers filter by shop.
    named: list[str | None] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "event", None) == "state.clock_future":
                named.append(SHOP.get())

    seen = Seen()
    logging.getLogger("pulsed").addHandler(seen)
    clock = Manual()
    ahead = st.State(last_success=START + 86400.0, last_status=200)  # the clock went back
    sup, sender = supervised(tmp_path, {"a": HOUR}, clock, states={"a": ahead})
    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sup.run)
                await sender.sending["a"].wait()
                sup.request_stop()
                sender.release["a"].set()
    finally:
        logging.getLogger("pulsed").removeHandler(seen)
    assert named == ["a"]


async def test_a_shop_a_reload_removes_while_it_sends_is_not_planned_again(
    tmp_path: Path,
) -> None:
    clock = Manual()
    only_a = Reloaded([replace(config(tmp_path, "a"), interval=HOUR)])
    due_now = {"b": st.State()}
    sup, sender = supervised(tmp_path, {"a": HOUR, "b": HOUR}, clock, reload=only_a, states=due_now)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["b"].wait()
            sup.request_reload()
            await clock.until_asleep(HOUR)
            sender.release["b"].set()  # its delivery ends after its shop is gone
            await anyio.wait_all_tasks_blocked()
            sender.release["a"].set()
            clock.advance(HOUR)  # a is due, and b would be, had it been planned
            await sender.sending["a"].wait()
            await clock.until_asleep(HOUR)
            sup.request_stop()
    assert list(sup.shops) == ["a"]
