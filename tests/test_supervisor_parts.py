"""The supervisor's smaller parts: its sleep, its one-shop status line, the signals it
turns into requests, the watchdog's edge, and a reload that adds or removes a shop."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
import pytest

from pulsed import _state as st
from pulsed._body import ShopFacts
from pulsed._config import Config
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._logging import SHOP
from pulsed._notify import Notifier
from pulsed._supervisor import (
    SPARE_DUES,
    Reloaded,
    Supervisor,
    Tally,
    Waiter,
    status_line,
    wait_or_wake,
)
from pulsed._timefmt import maybe
from tests.support.loop import START, Clocks, fixed_facts, loop_config, stepped

pytestmark = pytest.mark.anyio
HOUR = 3600.0


class Quiet(Notifier):
    def __init__(self) -> None:
        super().__init__(None)


class Counted:
    """Answers 200; ``sent[n]`` is set once ``n + 1`` bodies were sent."""

    def __init__(self, expected: int) -> None:
        self.count = 0
        self.sent = [anyio.Event() for _ in range(expected)]

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        self.count += 1
        if self.count <= len(self.sent):
            self.sent[self.count - 1].set()
        return Delivered(status=200, attempts=1, elapsed=0.01)


def a_cycle(tmp_path: Path, name: str, state: st.State | None = None) -> Cycle:
    cfg = loop_config(tmp_path / name, name=name)
    return Cycle(
        cfg,
        st.StateStore(cfg.state_dir),
        state or st.State(),
        writable=True,
        environ={},
        collect=fixed_facts,
    )


class ScriptedTimes:
    """Answers 200 and notes the wall clock of each send."""

    def __init__(self, clock: Clocks) -> None:
        self.clock = clock
        self.sent_at: list[float] = []

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        self.sent_at.append(self.clock.wall)
        return Delivered(status=200, attempts=1, elapsed=0.01)


class Shops:
    """Opens the cycle of a shop a reload adds, and notes which it was told to forget."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.opened: list[str] = []
        self.closed: list[str] = []

    def open(self, cfg: Config) -> Cycle:
        self.opened.append(cfg.name)
        return a_cycle(self.tmp_path, cfg.name)

    def close(self, name: str) -> None:
        self.closed.append(name)


async def signals(*received: int) -> AsyncIterator[int]:
    for signum in received:
        yield signum


# --- the sleep -----------------------------------------------------------------------


async def test_a_sleep_cut_short_by_its_wake_says_so() -> None:
    wake = anyio.Event()
    wake.set()
    with anyio.fail_after(5):
        assert await wait_or_wake(HOUR, wake) is True


async def test_a_sleep_that_runs_its_course_says_it_was_not_woken() -> None:
    assert await wait_or_wake(0.001, anyio.Event()) is False


async def test_a_sleep_of_a_few_milliseconds_is_not_stretched_to_a_second() -> None:
    start = anyio.current_time()
    assert await wait_or_wake(0.001, anyio.Event()) is False
    assert anyio.current_time() - start < 0.5  # a second would be a rounded-up sleep


# --- STATUS= of one shop ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "line"),
    [
        (st.State(), "no heartbeat yet; next now"),
        (
            st.State(last_success=START, last_status=202, next_due=START + HOUR),
            "last heartbeat 2027-01-15T08:00:00Z (HTTP 202); next 2027-01-15T09:00:00Z",
        ),
        (
            st.State(
                last_success=START - HOUR,
                last_error="timeout: no answer",
                consecutive_failures=2,
                next_due=START + 300,
            ),
            "heartbeat failing (2 in a row: timeout: no answer); next try 2027-01-15T08:05:00Z",
        ),
    ],
    ids=["never", "ok", "failing-after-a-success"],
)
def test_the_status_line_of_one_shop(tmp_path: Path, state: st.State, line: str) -> None:
    assert status_line([a_cycle(tmp_path, "default", state)]) == line


def test_a_shop_failing_before_it_ever_succeeded_counts_as_failing_only(tmp_path: Path) -> None:
    ok = st.State(last_success=START, next_due=START + HOUR)
    failing = st.State(consecutive_failures=1, last_error="timeout", next_due=START + 300)
    cycles = [a_cycle(tmp_path, "a", ok), a_cycle(tmp_path, "b", failing)]
    assert status_line(cycles) == "2 shops: 1 ok, 1 failing (b); next 2027-01-15T08:05:00Z"


def test_the_status_line_names_five_failing_shops_at_most(tmp_path: Path) -> None:
    failing = st.State(consecutive_failures=1, last_error="timeout", next_due=START + 300)
    cycles = [a_cycle(tmp_path, name, failing) for name in "abcdef"]
    assert status_line(cycles) == (
        "6 shops: 0 ok, 6 failing (a, b, c, d, e); next 2027-01-15T08:05:00Z"
    )


def test_the_status_line_names_five_disabled_shops_at_most(tmp_path: Path) -> None:
    cycles = [a_cycle(tmp_path, "a", st.State(last_success=START, next_due=START + HOUR))]
    assert status_line(cycles, list("gfedcb")) == (
        "7 shops: 1 ok, 6 disabled (b, c, d, e, f); next 2027-01-15T09:00:00Z"
    )


def test_shops_with_no_due_time_yet_are_next_now(tmp_path: Path) -> None:
    cycles = [a_cycle(tmp_path, "a"), a_cycle(tmp_path, "b")]
    assert status_line(cycles) == "2 shops: 0 ok, 2 not sent yet; next now"


# --- STATUS= kept as shops change ------------------------------------------------------


def summed(states: dict[str, st.State], disabled: list[str]) -> str:
    """STATUS= made from every shop at once, the way it was before it was kept."""
    if len(states) == 1 and not disabled:
        return Tally(states).line()
    failing = sorted(name for name, s in states.items() if s.consecutive_failures)
    waiting = [n for n, s in states.items() if s.last_success is None and n not in failing]
    dues = [s.next_due for s in states.values() if s.next_due is not None]
    parts = [f"{len(states) + len(disabled)} shops: {len(states) - len(failing) - len(waiting)} ok"]
    if failing:
        parts.append(f"{len(failing)} failing ({', '.join(failing[:5])})")
    if waiting:
        parts.append(f"{len(waiting)} not sent yet")
    if disabled:
        parts.append(f"{len(disabled)} disabled ({', '.join(sorted(disabled)[:5])})")
    return ", ".join(parts) + f"; next {maybe(min(dues)) if dues else 'now'}"


def a_state(rng: random.Random) -> st.State:
    kind = rng.choice(["ok", "failing", "failing-never-sent", "waiting", "no-due"])
    due = START + rng.randrange(-3, 30) * 60.0
    if kind == "ok":
        return st.State(last_success=START - HOUR, next_due=due)
    if kind == "failing":
        return st.State(last_success=START - HOUR, consecutive_failures=2, next_due=due)
    if kind == "failing-never-sent":
        return st.State(consecutive_failures=1, next_due=due)
    return st.State(next_due=due if kind == "waiting" else None)


@pytest.mark.parametrize("seed", range(20))
def test_the_kept_line_is_the_line_made_from_every_shop(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(rng.randrange(1, 12))]
    disabled = rng.sample(["d1", "d2", "d3", "d4", "d5", "d6", "d7"], rng.randrange(0, 8))
    states = {name: a_state(rng) for name in names if rng.random() < 0.7}
    tally = Tally(states, disabled)
    for _ in range(60):
        name = rng.choice(names)
        if rng.random() < 0.2:
            tally.drop(name)
            states.pop(name, None)
        else:
            states[name] = a_state(rng)
            tally.keep(name, states[name])
        assert tally.line() == summed(states, disabled)


def test_a_due_time_that_moved_or_left_is_not_the_next() -> None:
    tally = Tally(
        {
            "a": st.State(last_success=START, next_due=START + 60),
            "b": st.State(last_success=START, next_due=START + 120),
        }
    )
    assert tally.line().endswith("; next 2027-01-15T08:01:00Z")
    tally.keep("a", st.State(last_success=START, next_due=START + 600))  # a sent again
    assert tally.line().endswith("; next 2027-01-15T08:02:00Z")
    tally.drop("b")
    tally.keep("c", st.State(last_success=START, last_status=200))
    assert tally.line() == "2 shops: 2 ok; next 2027-01-15T08:10:00Z"
    tally.drop("a")
    tally.drop("a")  # gone already: nothing changes
    assert tally.line() == "last heartbeat 2027-01-15T08:00:00Z (HTTP 200); next now"


# --- signals ----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_ends_the_loop(tmp_path: Path, signum: int) -> None:
    sup = Supervisor(
        [a_cycle(tmp_path, "default")], Counted(1), Quiet(), reload_config=lambda: None
    )
    await sup.handle_signals(signals(signum))
    with anyio.fail_after(5):
        await sup.run()
    assert sup.cycles[0].recorder.state == st.State(domain="shop.example")  # saved, not sent


async def test_a_hangup_reloads_the_configuration(tmp_path: Path) -> None:
    reloaded: list[bool] = []

    def reload() -> Reloaded | None:
        reloaded.append(True)
        sup.request_stop()
        return None

    sup = Supervisor([a_cycle(tmp_path, "default")], Counted(1), Quiet(), reload_config=reload)
    await sup.handle_signals(signals(signal.SIGHUP))
    with anyio.fail_after(5):
        await sup.run()
    assert reloaded == [True]


async def test_a_stop_with_a_reload_pending_ends_without_reloading(tmp_path: Path) -> None:
    reloaded: list[bool] = []

    def reload() -> Reloaded | None:
        reloaded.append(True)
        return None

    sup = Supervisor([a_cycle(tmp_path, "default")], Counted(1), Quiet(), reload_config=reload)
    await sup.handle_signals(signals(signal.SIGHUP, signal.SIGTERM))
    with anyio.fail_after(5):
        await sup.run()
    assert reloaded == []


async def test_a_stop_and_a_reload_arriving_together_end_without_reloading(
    tmp_path: Path,
) -> None:
    # Both reach the loop while it waits (above, both came before it started): stopping
    # wins, and the configuration is not read on the way out.
    reloaded: list[bool] = []

    def reload() -> Reloaded | None:
        reloaded.append(True)
        return None

    sup = Supervisor([a_cycle(tmp_path, "default")], Counted(1), Quiet(), reload_config=reload)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await anyio.wait_all_tasks_blocked()
            sup.request_reload()
            sup.request_stop()
    assert reloaded == []


async def test_a_stop_while_a_crash_is_recorded_lets_the_record_finish(tmp_path: Path) -> None:
    recording, release = anyio.Event(), anyio.Event()
    cycle = a_cycle(tmp_path, "default")
    record = cycle.crashed

    async def prepare() -> object:
        raise LookupError("a bug")

    async def held_crash(exc: Exception) -> None:
        recording.set()
        await release.wait()
        await record(exc)

    cycle.prepare = prepare  # type: ignore[method-assign,assignment]
    cycle.crashed = held_crash  # type: ignore[method-assign]
    sup = Supervisor([cycle], Counted(1), Quiet(), reload_config=lambda: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await recording.wait()
            sup.request_stop()
            await anyio.wait_all_tasks_blocked()  # the stop has cancelled the shop's task
            release.set()
    saved = st.StateStore(cycle.cfg.state_dir).read()
    assert saved is not None and saved.last_error == "internal: LookupError"


# --- the watchdog's edge --------------------------------------------------------------------


async def test_a_cycle_exactly_at_its_allowance_is_still_healthy(tmp_path: Path) -> None:
    clock = Clocks()
    started, release = anyio.Event(), anyio.Event()

    async def slow_facts(*_: object) -> ShopFacts:
        started.set()
        await release.wait()
        return await fixed_facts()

    cycle = a_cycle(tmp_path, "default")
    cycle.collect = slow_facts
    sup = Supervisor(
        [cycle], Counted(1), Quiet(), reload_config=lambda: None, monotonic=lambda: clock.mono
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await started.wait()
            clock.mono = cycle.allowance
            healthy = sup.healthy()
            release.set()
            sup.request_stop()
    assert healthy


# --- a reload that adds or removes a shop ---------------------------------------------------


async def test_a_shop_a_reload_adds_is_opened_and_sends(tmp_path: Path) -> None:
    shops = Shops(tmp_path)
    sender = Counted(2)
    configs = [loop_config(tmp_path / n, name=n) for n in ("a", "b")]
    sup = Supervisor(
        [a_cycle(tmp_path, "a")],
        sender,
        Quiet(),
        reload_config=lambda: Reloaded(configs),
        shops=shops,
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sent[0].wait()
            sup.request_reload()
            await sender.sent[1].wait()  # the added shop's first heartbeat
            sup.request_stop()
    assert shops.opened == ["b"]
    assert [c.name for c in sup.cycles] == ["a", "b"]


async def test_a_shop_a_reload_removes_is_stopped_and_forgotten(tmp_path: Path) -> None:
    shops = Shops(tmp_path)
    sender = Counted(2)
    reloaded = anyio.Event()

    def reload() -> Reloaded | None:
        reloaded.set()
        return Reloaded([loop_config(tmp_path / "a", name="a")])

    cycles = [a_cycle(tmp_path, "a"), a_cycle(tmp_path, "b")]
    sup = Supervisor(cycles, sender, Quiet(), reload_config=reload, shops=shops)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sent[1].wait()
            sup.request_reload()
            await reloaded.wait()
            sup.request_stop()
    assert shops.closed == ["b"]
    assert [c.name for c in sup.cycles] == ["a"]


# --- a shop's own task ------------------------------------------------------------------


def one_sleep(sup_box: list[Supervisor]) -> Waiter:
    """A sleep that moves no clock and stops the loop at the first sleep."""

    async def wait(delay: float, wake: anyio.Event) -> bool:
        sup_box[0].request_stop()
        return True

    return wait


async def test_a_shops_work_runs_with_its_name_for_the_log_lines(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def facts(*_: object) -> ShopFacts:
        seen.append(SHOP.get())
        return await fixed_facts()

    cycle = a_cycle(tmp_path, "eu-shop")
    cycle.collect = facts
    box: list[Supervisor] = []
    box.append(
        Supervisor([cycle], Counted(1), Quiet(), reload_config=lambda: None, wait=one_sleep(box))
    )
    with anyio.fail_after(5):
        await box[0].run()
    assert seen == ["eu-shop"]


async def test_a_shop_due_in_half_a_second_waits_for_it(tmp_path: Path) -> None:
    clock = Clocks()
    sender = ScriptedTimes(clock)
    cycle = a_cycle(tmp_path, "default", st.State(last_success=START - HOUR + 0.5))
    cycle.wall = clock.now
    sup = stepped(cycle, sender, Quiet(), clock, until=1.0)
    await sup.run()
    assert sender.sent_at == [START + 0.5]


async def test_a_cycle_that_crashes_records_the_kind_of_error(tmp_path: Path) -> None:
    async def broken(*_: object) -> ShopFacts:
        raise LookupError("a bug")

    cycle = a_cycle(tmp_path, "default")
    cycle.collect = broken
    box: list[Supervisor] = []
    box.append(
        Supervisor([cycle], Counted(1), Quiet(), reload_config=lambda: None, wait=one_sleep(box))
    )
    with anyio.fail_after(5):
        await box[0].run()
    assert cycle.state.last_error == "internal: LookupError"


async def test_a_stop_during_a_delivery_lets_it_finish_and_be_recorded(tmp_path: Path) -> None:
    sending, release = anyio.Event(), anyio.Event()

    class Held:
        async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
            sending.set()
            await release.wait()
            return Delivered(status=200, attempts=1, elapsed=0.01)

    cycle = a_cycle(tmp_path, "default")
    sup = Supervisor([cycle], Held(), Quiet(), reload_config=lambda: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sending.wait()
            sup.request_stop()
            await anyio.wait_all_tasks_blocked()  # the stop has cancelled the shop's task
            release.set()
    saved = st.StateStore(cycle.cfg.state_dir).read()
    assert saved is not None and saved.counters.heartbeats_sent == 1


def test_a_state_kept_again_and_again_keeps_the_due_times_to_the_shops() -> None:
    tally = Tally({"a": st.State(last_success=START, next_due=START + 60)})
    for i in range(5000):
        # A failure keeps its due time for the pending body, then its outcome moves it.
        state = st.State(consecutive_failures=1, next_due=START + 30 + i // 2)
        tally.keep("b", state)
        assert len(tally._dues) <= 2 * 2 + SPARE_DUES + 1
    assert tally.line() == "2 shops: 1 ok, 1 failing (b); next 2027-01-15T08:01:00Z"
    tally.keep("b", st.State(last_success=START, next_due=START + 10))
    assert tally.line() == "2 shops: 2 ok; next 2027-01-15T08:00:10Z"
