"""The fleet on the real scheduler: 10,000 shops, a receiver down for one hour.

Contract §4 justifies its back-off (one retry after 2–10 minutes, then one interval
±10 %) with a model: 2.2× the steady load during a one-hour outage and 1.8× in
the minutes after it. This runs the daemon's own code instead of the model: one
real :class:`pulsed._cycle.Cycle` per shop (read-only stores: ``writable=False``,
so nothing is written), its :meth:`~pulsed._cycle.Cycle.wait_time`,
:meth:`~pulsed._cycle.Cycle.prepare` and :meth:`~pulsed._cycle.Cycle.deliver`,
the back-off of :mod:`pulsed._schedule` as the cycle calls it, on one injected
wall clock and a seeded :class:`random.Random` per shop. A discrete-event loop
stands in for the supervisor's per-shop task and does what
``Supervisor._shop_loop`` does: ask ``wait_time()``, sleep that long, run the
cycle, ask again. Nothing sleeps: the clock jumps from one due time to the next.

The stand-in sender fails every delivery while the receiver is down (as a refused
connection does: three attempts, a network error) and answers 200 otherwise; each
delivery takes a fixed time on the injected clock. A "request" below is one
delivery (one heartbeat try, however many attempts it makes inside its 2 s budget).

Run alone: ``python bench/fleet.py`` (seconds; ``--seed N`` repeatable, ``--shops N``);
``make bench`` runs it too, on the tree it measures (``$PULSED_BENCH_TREE``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

# The checkout whose scheduler runs: this one, or the one ``bench.py --tree`` names.
TREE = os.environ.get("PULSED_BENCH_TREE") or str(Path(__file__).resolve().parent.parent)
if TREE not in sys.path:
    sys.path.insert(0, TREE)

from pulsed import _identity  # noqa: E402 -- needs the repo on sys.path
from pulsed import _state as st  # noqa: E402
from pulsed._cycle import Cycle  # noqa: E402
from pulsed._delivery import Delivered  # noqa: E402
from pulsed._errors import DeliveryError  # noqa: E402
from tests.support.loop import fixed_facts, loop_config  # noqa: E402

HOUR = 3600.0
MINUTE = 60.0
OUTAGE_TARGET = 2.3
RECOVERY_TARGET = 1.3
# One interval after the receiver is back: the shops that recovered together must not
# be due together again (contract §4: the first success after failures is due one
# interval plus 0–10 % later).
ECHO_TARGET = 1.3


@dataclasses.dataclass(frozen=True)
class Scenario:
    shops: int = 10_000
    interval: float = HOUR
    seed: int = 20261130
    # The outage starts two intervals in: the first hour settles, the second is the
    # steady state the others are compared with.
    outage_start: float = 2 * HOUR
    outage: float = HOUR
    after: float = 2 * HOUR  # simulated after the receiver is back
    recovery_window: float = 10 * MINUTE
    sent_elapsed: float = 0.05  # one accepted delivery, on the injected clock
    failed_elapsed: float = 0.3  # three refused connections and the waits between

    @property
    def end(self) -> float:
        return self.outage_start + self.outage + self.after


@dataclasses.dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    per_minute: list[int]  # deliveries started in each simulated minute
    failed: int
    sent: int
    cpu: float
    wall: float

    def window(self, start: float, end: float) -> list[int]:
        return self.per_minute[int(start // MINUTE) : int(end // MINUTE)]

    @property
    def steady(self) -> float:
        return statistics.mean(self.steady_minutes)

    @property
    def steady_minutes(self) -> list[int]:
        s = self.scenario
        return self.window(s.outage_start - s.interval, s.outage_start)

    @property
    def during(self) -> list[int]:
        s = self.scenario
        return self.window(s.outage_start, s.outage_start + s.outage)

    @property
    def recovery(self) -> list[int]:
        s = self.scenario
        back = s.outage_start + s.outage
        return self.window(back, back + s.recovery_window)

    @property
    def echo(self) -> list[int]:
        """The half hour around one interval after the receiver came back: where the
        shops that recovered together would be due together again."""
        s = self.scenario
        back = s.outage_start + s.outage + s.interval
        return self.window(back - 10 * MINUTE, back + 20 * MINUTE)

    @property
    def later(self) -> list[int]:
        s = self.scenario
        back = s.outage_start + s.outage
        return self.window(back + s.recovery_window, s.end)


class Clock:
    """The one wall clock every cycle reads; the event loop sets it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Receiver:
    """The stand-in sender: down during the outage, 200 otherwise; counts deliveries."""

    def __init__(self, clock: Clock, scenario: Scenario) -> None:
        self.clock = clock
        self.scenario = scenario
        self.per_minute = [0] * (int(scenario.end // MINUTE) + 2)
        self.sent = 0
        self.failed = 0

    def down(self, at: float) -> bool:
        s = self.scenario
        return s.outage_start <= at < s.outage_start + s.outage

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        del body, headers
        start = self.clock.now
        self.per_minute[int(start // MINUTE)] += 1
        if self.down(start):
            self.failed += 1
            # The delivery ends later than it started; the cycle reads the clock then.
            self.clock.now = start + self.scenario.failed_elapsed
            raise DeliveryError(
                "network",
                "connection refused",
                attempts=3,
                elapsed=self.scenario.failed_elapsed,
            )
        self.sent += 1
        self.clock.now = start + self.scenario.sent_elapsed
        return Delivered(200, 1, self.scenario.sent_elapsed)


def shops(scenario: Scenario, clock: Clock, scratch: Path) -> list[Cycle]:
    """Every shop's cycle, its last success uniformly in the interval before the start."""
    spread = random.Random(scenario.seed)  # noqa: S311 -- a simulation, not a secret
    rounds = _identity.Rounds()  # no shop has a token: never used, shared as the daemon does
    cycles = []
    for i in range(scenario.shops):
        name = f"shop{i:05d}"
        cfg = replace(
            loop_config(scratch / name, scenario.interval, name), domain=f"{name}.example"
        )
        last = -spread.uniform(0.0, scenario.interval)
        state = st.State(last_success=last, last_status=200, next_due=last + scenario.interval)
        cycles.append(
            Cycle(
                cfg,
                st.StateStore(cfg.state_dir),
                state,
                writable=False,
                environ={},
                wall=clock,
                rng=random.Random(scenario.seed * 100_003 + i),  # noqa: S311
                identities=rounds,
                collect=fixed_facts,
            )
        )
    return cycles


async def simulate(scenario: Scenario, scratch: Path) -> Outcome:
    """The shops' loops, one event per wake-up, in time order, until ``scenario.end``."""
    clock = Clock()
    receiver = Receiver(clock, scenario)
    cycles = shops(scenario, clock, scratch)
    # (wake-up time, shop): when each shop's task would come back from its sleep.
    heap = [(cycle.wait_time(), i) for i, cycle in enumerate(cycles)]
    heapq.heapify(heap)
    cpu0, wall0 = time.process_time(), time.monotonic()
    while heap and heap[0][0] < scenario.end:
        at, i = heapq.heappop(heap)
        clock.now = at
        cycle = cycles[i]
        # Supervisor._run_cycle: prepare, deliver; a failure backs off inside deliver.
        try:
            prepared = await cycle.prepare()
            await cycle.deliver(prepared, receiver)
        except Exception as exc:  # noqa: BLE001 -- as the supervisor does
            await cycle.crashed(exc)
        # Supervisor._shop_loop: the next sleep is what wait_time() says now.
        heapq.heappush(heap, (clock.now + cycle.wait_time(), i))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return Outcome(scenario, receiver.per_minute, receiver.failed, receiver.sent, cpu, wall)


def run(scenario: Scenario, scratch: Path) -> Outcome:
    # The cycles log every heartbeat; ten thousand shops' lines are not the figure.
    logging.disable(logging.CRITICAL)
    try:
        return asyncio.run(simulate(scenario, scratch))
    finally:
        logging.disable(logging.NOTSET)


@dataclasses.dataclass(frozen=True)
class Figure:
    label: str
    value: float  # relative to steady state
    target: float | None

    @property
    def ok(self) -> bool:
        return self.target is None or self.value <= self.target


def figures(out: Outcome) -> list[Figure]:
    steady = out.steady
    during, recovery = out.during, out.recovery
    return [
        Figure("steady hour, busiest minute (the noise)", max(out.steady_minutes) / steady, None),
        Figure("outage, busiest minute", max(during) / steady, OUTAGE_TARGET),
        Figure("outage, busiest 5 minutes", max(means(during, 5)) / steady, None),
        Figure("outage, mean", statistics.mean(during) / steady, None),
        Figure("first 10 min after, busiest minute", max(recovery) / steady, RECOVERY_TARGET),
        Figure("first 10 min after, mean", statistics.mean(recovery) / steady, None),
        Figure("one interval after, busiest minute", max(out.echo) / steady, ECHO_TARGET),
        Figure("the rest of the 2 h after, busiest minute", max(out.later) / steady, None),
    ]


def means(minutes: list[int], every: int) -> list[float]:
    """Mean requests per minute of each run of ``every`` minutes, sliding by one."""
    return [statistics.mean(minutes[m : m + every]) for m in range(len(minutes) - every + 1)]


def profile(out: Outcome, every: int = 5) -> str:
    """Requests per minute around the outage, averaged over ``every`` minutes, as text."""
    s = out.scenario
    start = int((s.outage_start - 10 * MINUTE) // MINUTE)
    stop = int((s.outage_start + s.outage + 90 * MINUTE) // MINUTE)
    steady = out.steady
    cells = []
    for m in range(start, stop, every):
        chunk = out.per_minute[m : m + every]
        rel = (m * MINUTE - s.outage_start) / MINUTE
        cells.append(f"{rel:+.0f}′ {statistics.mean(chunk) / steady:.2f}×")
    return ", ".join(cells)


def describe(out: Outcome) -> list[str]:
    s = out.scenario
    return [
        f"{s.shops:,} shops, interval {s.interval:g} s, each a real `Cycle` (read-only "
        f"store, `writable=False`), last successes uniform over the interval before the "
        f"start; a discrete-event loop does what `Supervisor._shop_loop` does (sleep "
        f"`wait_time()`, then `prepare`/`deliver`, then ask again) on an injected wall "
        f"clock; per-shop `random.Random` seeded from {s.seed}. Simulated "
        f"{s.end / HOUR:g} h (receiver down from {s.outage_start / HOUR:g} h for "
        f"{s.outage / HOUR:g} h) in {out.wall:.1f} s wall, {out.cpu:.1f} s CPU; "
        f"{out.sent:,} deliveries accepted, {out.failed:,} failed.",
        f"A request is one delivery (one heartbeat try; a refused one makes up to 3 "
        f"connection attempts inside its 2 s budget). Steady state: the mean of the hour "
        f"before the outage, {out.steady:.1f} requests per minute ({s.shops:,} / 60 = "
        f"{s.shops / (s.interval / MINUTE):.1f}). During the outage: busiest minute "
        f"{max(out.during)}, mean {statistics.mean(out.during):.1f}; first "
        f"{s.recovery_window / MINUTE:g} minutes after: busiest {max(out.recovery)}, mean "
        f"{statistics.mean(out.recovery):.1f}.",
        f"Requests per minute relative to steady state, 5-minute means, minutes from the "
        f"outage's start: {profile(out)}.",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shops", type=int, default=Scenario.shops)
    parser.add_argument(
        "--seed", type=int, action="append", help="repeatable; default: one run, seed 20261130"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, for bench.py")
    args = parser.parse_args(argv)
    runs = []
    for seed in args.seed or [Scenario.seed]:
        # The state folders are named, never created: the stores are read-only.
        runs.append(run(Scenario(shops=args.shops, seed=seed), Path("/nonexistent/pulsed-fleet")))
    if args.json:
        answer = {
            "seeds": [out.scenario.seed for out in runs],
            "figures": [
                [{"label": f.label, "value": f.value, "target": f.target} for f in figures(out)]
                for out in runs
            ],
            "notes": [describe(out) for out in runs],
        }
        print(json.dumps(answer))
        return 0
    for out in runs:
        print(f"seed {out.scenario.seed}:")
        for fig in figures(out):
            target = f"≤ {fig.target:g}×" if fig.target is not None else "info"
            verdict = "info" if fig.target is None else ("PASS" if fig.ok else "FAIL")
            print(f"  {fig.label:45} {fig.value:5.2f}×  {target:8} {verdict}")
        for line in describe(out):
            print(f"  - {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
