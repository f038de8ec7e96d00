"""Stand-ins for the supervisor loop's inputs, shared by the tests that drive it on an
injected clock: a minimal valid configuration, a collector that returns fixed facts,
the two clocks, the real loop whose every sleep moves them, and status files that
note what each write would hold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import anyio

from pulsed._body import ShopFacts
from pulsed._config import Config, Secret
from pulsed._cycle import Cycle, Transport
from pulsed._notify import Notifier
from pulsed._status import ShopView
from pulsed._supervisor import Supervisor

HOUR = 3600.0
START = 1_800_000_000.0


class Clocks:
    """The wall clock and the monotonic clock a stepped loop runs on."""

    def __init__(self) -> None:
        self.wall = START
        self.mono = 0.0

    def now(self) -> float:
        return self.wall


def stepped(
    cycle: Cycle,
    sender: Transport,
    notifier: Notifier,
    clocks: Clocks,
    *,
    until: float,
    jumps: Mapping[int, float] | None = None,
) -> Supervisor:
    """The real loop of one shop on ``clocks``: a sleep moves both at once, and stops
    the loop once the monotonic clock reaches ``until``; at the n-th sleep the wall clock
    is also set by ``jumps[n]`` seconds, as when someone sets it while pulsed sleeps."""
    sleeps = 0

    async def wait(delay: float, wake: anyio.Event) -> bool:
        nonlocal sleeps
        sleeps += 1
        clocks.wall += delay + (jumps or {}).get(sleeps, 0.0)
        clocks.mono += delay
        if clocks.mono >= until:
            supervisor.request_stop()
            return True
        return False

    supervisor = Supervisor(
        [cycle],
        sender,
        notifier,
        reload_config=lambda: None,
        wait=wait,
        monotonic=lambda: clocks.mono,
    )
    return supervisor


async def fixed_facts(*_: object) -> ShopFacts:
    return ShopFacts("8.2.7", "1.4.0", "4.0.2.3", None)


def loop_config(state_dir: Path, interval: float = HOUR, name: str = "default") -> Config:
    return Config(
        name=name,
        api_host="https://pulse.example",
        heartbeat_secret=Secret("s"),
        timeout=5.0,
        api_key=None,
        bot_token=None,
        telegram_api_base="https://api.telegram.org",
        shop_root=None,
        composer_json=None,
        domain="shop.example",
        php_binary="php",
        state_dir=state_dir,
        interval=interval,
        log_level="info",
        config_file=None,
    )


class Recorded:
    """Status and metrics files that note, at each write, every shop they would list:
    its name, its problem and its heartbeats sent, by name."""

    def __init__(self) -> None:
        self.views: dict[str, ShopView] = {}
        self.writes: list[list[tuple[str, str | None, int]]] = []
        self.written = anyio.Event()

    def update(self, views: Iterable[ShopView]) -> None:
        self.views.update((view.name, view) for view in views)

    def sync(self, views: Sequence[ShopView]) -> None:
        self.views = {view.name: view for view in views}

    def write(self) -> bool:
        shops = sorted(self.views.values(), key=lambda v: v.name)
        self.writes.append([(v.name, v.problem, v.state.counters.heartbeats_sent) for v in shops])
        self.written.set()
        self.written = anyio.Event()
        return True
