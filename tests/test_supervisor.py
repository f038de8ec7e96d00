"""The supervisor loop on an injected clock: schedule, back-off, stop and reload.

The sender, the collector and the sleep are stand-ins; the loop, the schedule,
the state transitions and the state file are the real ones. Time only moves
when the loop sleeps, so a day of heartbeats runs in milliseconds.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Mapping
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import pytest

from pulsed import _state as st
from pulsed._body import ShopFacts
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._errors import DeliveryError
from pulsed._notify import Notifier
from pulsed._status import ShopView
from pulsed._supervisor import Reloaded, Supervisor, status_line, wait_or_wake
from pulsed.verify import signature
from tests.support.loop import START, Clocks, Recorded, fixed_facts, loop_config, stepped
from tests.support.manual import Notes

pytestmark = pytest.mark.anyio

HOUR = 3600.0


class ScriptedSender:
    """Answers from a script: ``"ok"``, or a :class:`DeliveryError`; records send times."""

    def __init__(self, clock: Clocks, script: list[Any]) -> None:
        self.clock = clock
        self.script = list(script)
        self.sent_at: list[float] = []
        self.bodies: list[bytes] = []
        self.sent = anyio.Event()

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        self.sent_at.append(self.clock.wall)
        self.bodies.append(body)
        self.sent.set()
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, DeliveryError):
            raise outcome
        return Delivered(status=200, attempts=1, elapsed=0.01)


def make(
    tmp_path: Path,
    script: list[Any],
    *,
    until: float,
    state: st.State | None = None,
    interval: float = HOUR,
    jump: dict[int, float] | None = None,
) -> tuple[Supervisor, ScriptedSender, Clocks, Notes]:
    clock = Clocks()
    sender = ScriptedSender(clock, script)
    store = st.StateStore(tmp_path)
    cycle = Cycle(
        loop_config(tmp_path, interval),
        store,
        state or st.State(),
        writable=True,
        environ={},
        wall=clock.now,
        rng=random.Random(42),
        collect=fixed_facts,
    )
    notifier = Notes()
    supervisor = stepped(cycle, sender, notifier, clock, until=until, jumps=jump)
    return supervisor, sender, clock, notifier


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(times)]


async def test_a_day_of_success_is_one_heartbeat_an_interval(tmp_path: Path) -> None:
    sup, sender, _, notifier = make(tmp_path, [], until=24 * HOUR + 1)
    await sup.run()
    assert len(sender.sent_at) == 25
    assert all(g == HOUR for g in gaps(sender.sent_at))
    assert notifier.messages[0] == "READY=1"
    assert notifier.messages[-1] == "STOPPING=1"
    assert any(m.startswith("STATUS=last heartbeat") for m in notifier.messages)


async def test_failure_backs_off_then_recovers(tmp_path: Path) -> None:
    down = DeliveryError("connect", "refused", attempts=3)
    sup, sender, _, _ = make(tmp_path, ["ok", down, down, down, "ok"], until=6 * HOUR)
    await sup.run()
    g = gaps(sender.sent_at)
    assert g[0] == HOUR  # success → interval
    assert 120 <= g[1] <= 600  # first failure → 2–10 min
    assert 0.9 * HOUR <= g[2] <= 1.1 * HOUR  # then interval ±10 %
    assert 0.9 * HOUR <= g[3] <= 1.1 * HOUR
    assert HOUR <= g[4] <= 1.1 * HOUR  # the recovery → the interval and 0–10 % more
    assert g[5] == HOUR  # then the interval again, on the new schedule
    state = st.StateStore(tmp_path).read()
    assert state is not None and state.consecutive_failures == 0


async def test_retry_after_longer_than_budget_sets_next_try(tmp_path: Path) -> None:
    shed = DeliveryError("status", "HTTP 503", status=503, retry_after=900.0, attempts=1)
    sup, sender, _, _ = make(tmp_path, [shed, "ok"], until=HOUR / 2)
    await sup.run()
    assert gaps(sender.sent_at) == [900.0]


async def test_wall_clock_jumping_back_while_asleep_never_doubles_a_ping(tmp_path: Path) -> None:
    # The loop sleeps on the monotonic clock; a day's jump back must neither
    # silence the shop nor send twice within an interval of real time.
    sup, sender, _, _ = make(tmp_path, [], until=5 * HOUR + 1, jump={2: -86400.0})
    await sup.run()
    assert len(sender.sent_at) == 6


async def test_wall_clock_jumping_forward_does_not_burst(tmp_path: Path) -> None:
    sup, sender, _, _ = make(tmp_path, [], until=3 * HOUR + 1, jump={1: 7 * 86400.0})
    await sup.run()
    assert len(sender.sent_at) == 4


async def test_state_from_before_a_restart_is_respected(tmp_path: Path) -> None:
    earlier = st.State(last_success=START - 600, next_due=START - 600 + HOUR)
    sup, sender, _, _ = make(tmp_path, [], until=HOUR, state=earlier)
    await sup.run()
    assert sender.sent_at == [START - 600 + HOUR]


BODY = (
    b'{"domain":"shop.example","bot_username":null,"php_version":null,"module_version":"1.0",'
    b'"ecommerce_version":null,"ecommerce_core_version":null,"timestamp":"2027-01-15T07:59:57Z"}'
)


def pending(body: bytes, at: float, secret: str = "s") -> st.Pending:
    """An interrupted delivery as pulsed records it, signed with the loop config's secret."""
    return st.Pending(body.decode(), at, signature(secret, body))


async def test_interrupted_delivery_is_resent_with_the_identical_body(tmp_path: Path) -> None:
    earlier = st.State(last_success=START - HOUR - 5, pending=pending(BODY, START - 3))
    sup, sender, _, _ = make(tmp_path, [], until=10, state=earlier)
    await sup.run()
    assert sender.bodies[0] == BODY


@pytest.mark.parametrize(
    ("kept", "age"),
    [
        (pending(BODY, 0), 900),
        (pending(BODY.replace(b"shop.example", b"other.example"), 0), 3),
        (pending(b"{junk", 0), 3),
        (st.Pending(BODY.decode(), 0, None), 3),
        (pending(BODY, 0, secret="someone else's"), 3),
    ],
    ids=["stale", "other-domain", "junk", "unsigned", "signed-elsewhere"],
)
async def test_unusable_interrupted_delivery_is_replaced_by_a_fresh_one(
    tmp_path: Path, kept: st.Pending, age: float
) -> None:
    body = kept.body.encode()
    earlier = st.State(last_success=START - 2 * HOUR, pending=replace(kept, timestamp=START - age))
    sup, sender, _, _ = make(tmp_path, [], until=10, state=earlier)
    await sup.run()
    assert sender.bodies[0] != body and b'"timestamp":"' in sender.bodies[0]


async def test_stop_while_asleep_ends_the_loop_and_saves(tmp_path: Path) -> None:
    clock = Clocks()
    sender = ScriptedSender(clock, [])
    cycle = Cycle(
        loop_config(tmp_path),
        st.StateStore(tmp_path),
        st.State(),
        writable=True,
        environ={},
        wall=clock.now,
        collect=fixed_facts,
    )
    sup = Supervisor([cycle], sender, Notes(), reload_config=lambda: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sent.wait()
            sup.request_stop()  # the loop is now asleep for an hour, on the real clock
    assert len(sender.sent_at) == 1
    assert st.StateStore(tmp_path).read() is not None


async def test_reload_applies_new_config_and_a_refused_one_is_kept(tmp_path: Path) -> None:
    clock = Clocks()
    sender = ScriptedSender(clock, [])
    cycle = Cycle(
        loop_config(tmp_path),
        st.StateStore(tmp_path),
        st.State(),
        writable=True,
        environ={},
        wall=clock.now,
        collect=fixed_facts,
    )
    offered: list[Reloaded | None] = [None, Reloaded([loop_config(tmp_path, interval=60.0)])]
    asked = [anyio.Event(), anyio.Event()]

    def reload() -> Reloaded | None:
        asked[len(asked) - len(offered)].set()
        return offered.pop(0)

    notifier = Notes()
    sup = Supervisor([cycle], sender, notifier, reload_config=reload)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sent.wait()
            sup.request_reload()
            await asked[0].wait()
            assert cycle.cfg.interval == HOUR  # the refused reload kept the old config
            sup.request_reload()
            await asked[1].wait()
            sup.request_stop()
    assert cycle.cfg.interval == 60.0
    assert any(m.startswith("RELOADING=1") for m in notifier.messages)


async def _next_datagram(sock: socket.socket) -> str:
    while True:
        await anyio.wait_readable(sock)
        try:
            return sock.recv(4096).decode()
        except BlockingIOError:  # woken, but another reader was first
            continue


def _queued(sock: socket.socket) -> list[str]:
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(sock.recv(4096).decode())
    return got


async def test_a_cycle_stuck_past_its_allowance_silences_the_watchdog(tmp_path: Path) -> None:
    # The whole wiring on a real notify socket: the loop sets the cycle's deadline
    # from the cycle's own allowance, and the watchdog task pings only while it holds.
    clock = Clocks()
    started, release = anyio.Event(), anyio.Event()

    async def stuck_facts(*_: object) -> ShopFacts:
        started.set()
        await release.wait()
        return await fixed_facts()

    cycle = Cycle(
        loop_config(tmp_path),
        st.StateStore(tmp_path),
        st.State(),
        writable=True,
        environ={},
        wall=clock.now,
        collect=stuck_facts,
    )
    sender = ScriptedSender(clock, [])
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.setblocking(False)
        notifier = Notifier(str(tmp_path / "notify"), watchdog_interval=0.01)
        sup = Supervisor(
            [cycle], sender, notifier, reload_config=lambda: None, monotonic=lambda: clock.mono
        )
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sup.run)
                await started.wait()
                tg.start_soon(sup.watchdog, 0.01)
                clock.mono = cycle.allowance - 1  # slow, but within what a cycle may take
                while await _next_datagram(sock) != "WATCHDOG=1":
                    pass
                clock.mono = cycle.allowance + 1  # stuck
                _queued(sock)
                await anyio.sleep(0.1)  # ten watchdog periods
                assert "WATCHDOG=1" not in _queued(sock)
                release.set()
                await sender.sent.wait()
                while await _next_datagram(sock) != "WATCHDOG=1":
                    pass  # the cycle ended: the loop is healthy again
                sup.request_stop()
                tg.cancel_scope.cancel()
        if notifier._sock is not None:  # the daemon leaves it to its exit; a test cannot
            notifier._sock.close()


def test_a_cycle_is_allowed_getme_php_the_delivery_and_its_saves(tmp_path: Path) -> None:
    cfg = loop_config(tmp_path)
    cycle = Cycle(cfg, st.StateStore(tmp_path), st.State(), writable=True, environ={})
    # The identity child's import allowance and request, php, 2 s of delivery, 5 s of fsyncs.
    assert cycle.allowance == 30.0 + cfg.timeout + cfg.timeout + 2.0 + 5.0


async def test_an_unexpected_error_in_a_cycle_is_logged_and_backed_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def flaky_facts(*_: object) -> ShopFacts:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await fixed_facts()

    sup, sender, _, _ = make(tmp_path, [], until=HOUR)
    (cycle,) = sup.cycles
    cycle.collect = flaky_facts
    await sup.run()
    (error,) = [r for r in caplog.records if getattr(r, "event", "") == "heartbeat.error"]
    assert error.levelname == "ERROR"
    assert len(sender.sent_at) == 1
    assert 120 <= sender.sent_at[0] - START <= 600  # the failure back-off, not a spin


class HeldStore(st.StateStore):
    """A state folder on a disk that hangs: every save waits for ``release``."""

    def __init__(self, directory: Path, release: threading.Event) -> None:
        super().__init__(directory)
        self.release = release

    def write(self, data: bytes) -> None:
        assert self.release.wait(10), "never released"
        super().write(data)


async def test_a_shop_whose_disk_hangs_never_holds_up_another(tmp_path: Path) -> None:
    release = threading.Event()
    stuck = Cycle(
        loop_config(tmp_path / "a", interval=0.05, name="stuck"),
        HeldStore(tmp_path / "a", release),
        st.State(),
        writable=True,
        environ={},
        collect=fixed_facts,
    )
    fine = Cycle(
        loop_config(tmp_path / "b", interval=0.05, name="fine"),
        st.StateStore(tmp_path / "b"),
        st.State(),
        writable=True,
        environ={},
        collect=fixed_facts,
    )

    class Sender:
        def __init__(self) -> None:
            self.by_domain: dict[str, int] = {}
            self.three = anyio.Event()

        async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
            self.by_domain["x"] = self.by_domain.get("x", 0) + 1
            if stuck.state.pending is not None and fine.state.counters.heartbeats_sent >= 3:
                self.three.set()
            return Delivered(status=200, attempts=1, elapsed=0.01)

    sender = Sender()
    sup = Supervisor([stuck, fine], sender, Notes(), reload_config=lambda: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.three.wait()  # fine kept sending while stuck's save hung
            assert stuck.state.counters.heartbeats_sent == 0
            release.set()
            sup.request_stop()


async def test_status_sums_up_every_shop(tmp_path: Path) -> None:
    def cycle(name: str, state: st.State) -> Cycle:
        cfg = loop_config(tmp_path / name, name=name)
        return Cycle(cfg, st.StateStore(tmp_path / name), state, writable=False, environ={})

    ok = st.State(last_success=START, next_due=START + HOUR)
    failing = st.State(consecutive_failures=2, last_error="timeout", next_due=START + 300)
    sup = Supervisor(
        [cycle("a", ok), cycle("b", failing), cycle("c", st.State())],
        ScriptedSender(Clocks(), []),
        Notes(),
        reload_config=lambda: None,
    )
    assert status_line(sup.cycles) == (
        "3 shops: 1 ok, 1 failing (b), 1 not sent yet; next 2027-01-15T08:05:00Z"
    )
    assert status_line(sup.cycles, ["z", "d"]) == (
        "5 shops: 1 ok, 1 failing (b), 1 not sent yet, 2 disabled (d, z); next 2027-01-15T08:05:00Z"
    )
    # One shop running and one disabled is a sum too: the disabled one stays in view.
    assert status_line(sup.cycles[:1], ["d"]).startswith("2 shops: 1 ok, 1 disabled (d)")


async def test_disabled_shops_are_published_beside_the_running_ones(tmp_path: Path) -> None:
    cycle = Cycle(
        loop_config(tmp_path, name="b"),
        st.StateStore(tmp_path),
        st.State(),
        writable=False,
        environ={},
    )
    off = ShopView("a", None, st.State(), None, "disabled", "shop.root")
    files = Recorded()
    sup = Supervisor(
        [cycle],
        ScriptedSender(Clocks(), []),
        Notes(),
        reload_config=lambda: Reloaded([], [off, replace(off, name="c")]),
        files=files,
        disabled=[off],
    )
    notifier = sup.notifier
    assert isinstance(notifier, Notes)
    sup._publish_all()
    assert files.writes == [[("a", "disabled", 0), ("b", None, 0)]]
    # STATUS= counts it too: systemctl status must not say "1 shops" of two.
    assert notifier.messages[-1].startswith("STATUS=2 shops: 0 ok, 1 not sent yet, 1 disabled (a)")
    sup._apply_reload()
    # b removed, c broken: written at once, and STATUS= says so too.
    assert files.writes[-1] == [("a", "disabled", 0), ("c", "disabled", 0)]
    assert notifier.messages[-1] == "STATUS=2 shops: 0 ok, 2 disabled (a, c); next now"


async def test_a_reload_wakes_a_sleeping_shop_to_its_new_interval(tmp_path: Path) -> None:
    sender = ScriptedSender(Clocks(), [])
    cycle = Cycle(
        loop_config(tmp_path),
        st.StateStore(tmp_path),
        st.State(),
        writable=True,
        environ={},
        collect=fixed_facts,
    )
    asleep = anyio.Event()

    async def wait(delay: float, wake: anyio.Event) -> bool:
        if delay > 60:
            asleep.set()
        return await wait_or_wake(delay, wake)

    sup = Supervisor(
        [cycle],
        sender,
        Notes(),
        reload_config=lambda: Reloaded([loop_config(tmp_path, 0.01)]),
        wait=wait,
    )
    with anyio.fail_after(5):  # asleep for an hour unless the reload wakes it
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await asleep.wait()
            sender.sent = anyio.Event()
            sup.request_reload()
            await sender.sent.wait()
            sup.request_stop()
    assert len(sender.sent_at) == 2
