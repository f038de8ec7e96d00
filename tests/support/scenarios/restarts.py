"""Kills, restarts and a second instance (contract §5, §8): nothing lost, nothing doubled.

Three scenarios against real daemons, real state folders and a verifying receiver:

- **Crash consistency.** Several daemons with a 1 s interval are SIGKILLed at random
  instants — any time, just after their request reached the receiver (so the kill
  lands in the write of the outcome), just after a heartbeat — and restarted. An
  inotify watch reads every ``state.json`` the moment it is renamed into place: each
  one parses, ``last_success`` never goes backwards, the kept bot identity is never
  lost, and after every kill the file on disk holds at least the last success the
  daemon reported.
- **Restart storm.** One state folder, an hourly interval, a receiver that answers
  only after 0.4 s, and many restarts ended by SIGTERM or SIGKILL at random — many
  while the request is in flight: the receiver stores exactly one heartbeat.
- **Two instances.** Two daemons started at the same instant on one state folder
  (also through a symlinked path), and ``once`` racing ``run``: one refuses with exit
  75 naming the other; nothing is sent twice.

Each scenario is a function with its counts as arguments: the tests below run small
counts, ``make soak`` large ones. Randomness is seeded.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import random
import select
import signal
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from devtools import faultserver as fs
from devtools.faultserver import Reply, Request
from devtools.receiver import Receiver
from pulsed import _state as st
from tests.support.lab import SECRET, Lab, Rig
from tests.support.process import Pulsed, stamp

IN_MOVED_TO = 0x80
_EVENT = struct.Struct("iIII")


class StateWatch:
    """Reads and checks every ``state.json`` renamed into ``directory`` (inotify).

    Each rename is one completed state write. :meth:`sync` returns once every event
    before it has been handled, so a check after a kill sees what the watch saw.
    """

    def __init__(self, directory: Path, identity: st.Identity | None) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        self.directory = directory
        self.identity = identity
        self.writes = 0
        self.max_success: float | None = None
        self.problems: list[str] = []
        self._cond = threading.Condition()
        self._synced: set[str] = set()
        self._syncs = 0
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, os.fsencode(directory), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self._fd, self._stop_r, self._stop_w):
            os.close(fd)

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._fd not in ready:
                return
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            offset = 0
            while offset < len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + length].rstrip(b"\0").decode()
                offset = start + length
                if name == st.STATE_FILE:
                    self._check()
                elif name.startswith("sync-"):
                    with self._cond:
                        self._synced.add(name)
                        self._cond.notify_all()
                else:
                    self._problem(f"unexpected rename into the state folder: {name}")

    def _problem(self, text: str) -> None:
        with self._cond:
            self.problems.append(text)

    def _check(self) -> None:
        try:
            text = (self.directory / st.STATE_FILE).read_bytes()
        except OSError as exc:
            self._problem(f"state.json vanished after a rename: {exc}")
            return
        try:
            state = st.from_json(json.loads(text))
        except ValueError as exc:
            self._problem(f"a state.json that does not parse: {exc}: {text[:200]!r}")
            return
        with self._cond:
            self.writes += 1
            success = state.last_success
            if success is not None and self.max_success is not None and success < self.max_success:
                self.problems.append(f"last_success went back: {success} < {self.max_success}")
            if success is not None:
                self.max_success = max(success, self.max_success or success)
            if self.identity is not None and state.identity != self.identity:
                self.problems.append(f"the kept identity changed: {state.identity}")

    def sync(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._syncs += 1
            name = f"sync-{self._syncs}"
        scratch = self.directory.parent / f".{self.directory.name}-{name}"
        scratch.write_bytes(b"")
        scratch.rename(self.directory / name)
        with self._cond:
            if not self._cond.wait_for(lambda: name in self._synced, timeout):
                raise AssertionError("the state watch did not catch up")
        (self.directory / name).unlink()


@dataclass
class CrashFigures:
    daemons: int = 0
    kills: int = 0
    writes: int = 0
    heartbeats: int = 0
    mid_write: int = 0  # kills that left a half-written temp file behind
    where: Counter[str] = field(default_factory=Counter)

    def add(self, other: CrashFigures) -> None:
        self.daemons += other.daemons
        self.kills += other.kills
        self.writes += other.writes
        self.heartbeats += other.heartbeats
        self.mid_write += other.mid_write
        self.where.update(other.where)


def _check_after_kill(rig: Rig, watch: StateWatch, daemon: Pulsed, interval: float) -> None:
    watch.sync()
    assert not watch.problems, watch.problems
    state = rig.state_of()  # parses, or the assertion inside fails
    assert (rig.state / st.STATE_FILE).stat().st_mode & 0o777 == 0o600
    reported = [stamp(e["next_due"]) - interval for e in daemon.named("heartbeat.sent")]
    floor = max([*reported, watch.max_success or 0.0])
    assert (state.last_success or 0.0) >= floor - 1e-6, "a reported success was lost"
    assert state.identity == watch.identity, "the kept identity was lost"
    if state.pending is not None:
        body = json.loads(state.pending.body)
        assert body["domain"] == rig.env["PULSED_DOMAIN"]


def _crash_loop(
    rig: Rig,
    receiver: Receiver,
    kills: int,
    min_writes: int,
    rng: random.Random,
    interval: float,
) -> CrashFigures:
    figures = CrashFigures(daemons=1)
    watch = StateWatch(rig.state, rig.state_of().identity)
    try:
        while figures.kills < kills or watch.writes < min_writes:
            daemon = rig.start("run")
            where = rng.choice(["any time", "outcome write", "outcome write", "after a heartbeat"])
            if where == "any time":
                time.sleep(rng.uniform(0.0, 1.5))
            elif where == "outcome write":
                seen = len(receiver.server.requests)
                receiver.server.wait_for_requests(seen + 1, timeout=20)
                time.sleep(rng.uniform(0.0, 0.004))
            else:
                daemon.wait_for("heartbeat.sent", timeout=20)
            assert daemon.kill() == -signal.SIGKILL, daemon.lines
            figures.kills += 1
            figures.where[where] += 1
            _check_after_kill(rig, watch, daemon, interval)
        # A clean run at the end: whatever the receiver accepted is now in the state.
        daemon = rig.start("run")
        daemon.wait_for("heartbeat.sent", timeout=20)
        assert daemon.stop() == 0
        _check_after_kill(rig, watch, daemon, interval)
        accepted = receiver.unique_accepted
        newest = max(stamp(b["timestamp"]) for b in accepted)
        assert (rig.state_of().last_success or 0.0) >= newest
        figures.writes = watch.writes
        figures.heartbeats = len(accepted)
        figures.mid_write = len(list(rig.state.glob(f".{st.STATE_FILE}.tmp-*")))
    finally:
        watch.close()
    return figures


def crash_consistency(
    lab: Lab, *, daemons: int, kills: int, seed: int, min_writes: int = 0
) -> CrashFigures:
    """``daemons`` daemons side by side, each SIGKILLed ``kills`` times and on until it has
    written its state ``min_writes`` times; see the module doc."""
    interval = 1.0
    work = []
    for i in range(daemons):
        receiver = lab.receiver()
        rig = lab.rig(receiver.url, f"crash{i}")
        rig.env.update(PULSED_INTERVAL=str(interval), PULSED_DOMAIN=f"crash{i}.example")
        rig.seed()
        work.append((rig, receiver, random.Random(seed * 1000 + i)))
    total = CrashFigures()
    with concurrent.futures.ThreadPoolExecutor(daemons) as pool:
        futures = [
            pool.submit(_crash_loop, r, rec, kills, min_writes, rng, interval)
            for r, rec, rng in work
        ]
        for future in futures:
            total.add(future.result())
    return total


class SlowReceiver(Receiver):
    """A verifying receiver that answers only ``delay`` s after it read the request."""

    def __init__(self, secret: str, delay: float) -> None:
        super().__init__(secret)
        self.delay = delay

    def _handle(self, request: Request) -> Reply:
        return fs.delayed(self.delay, super()._handle(request))


@dataclass
class StormFigures:
    restarts: int = 0
    sigterm: int = 0
    sigkill: int = 0
    in_flight: int = 0  # ended while the receiver held the request
    requests: int = 0
    unique: int = 0
    slowest_sigterm_exit: float = 0.0


def restart_storm(lab: Lab, *, restarts: int, seed: int, delay: float = 0.4) -> StormFigures:
    """``restarts`` starts of ``pulsed run`` on one state folder, each ended at random."""
    rng = random.Random(seed)
    receiver = lab.receiver(SlowReceiver(SECRET, delay))
    rig = lab.rig(receiver.url, "storm")
    rig.seed()
    figures = StormFigures()
    phase = 0
    for i in range(restarts):
        state = rig.state_of()
        delivering = state.last_success is None or state.pending is not None
        seen = len(receiver.server.requests)
        daemon = rig.start("run")
        # While a delivery is due, SIGKILL (the body stays pending and is sent again by the
        # next start) until the phase has lasted long enough, then SIGTERM, which lets the
        # delivery finish. Afterwards SIGTERM and SIGKILL take turns.
        if delivering:
            phase += 1
            sig = signal.SIGKILL if phase <= max(3, restarts // 8) else signal.SIGTERM
        else:
            sig = signal.SIGTERM if i % 2 else signal.SIGKILL
        if delivering and rng.random() < 0.8:
            receiver.server.wait_for_requests(seen + 1, timeout=20)
            time.sleep(rng.uniform(0.0, delay * 0.8))
        elif rng.random() < 0.5:
            daemon.wait_for("daemon.started", timeout=20)
        else:
            time.sleep(rng.uniform(0.0, 0.8))
        in_flight = len(receiver.server.requests) > seen and not daemon.named("heartbeat.sent")
        handlers_in = bool(daemon.named("daemon.started"))
        stopped = time.monotonic()
        daemon.signal(sig)
        rc = daemon.finish(10)
        if sig == signal.SIGTERM:
            took = time.monotonic() - stopped
            figures.slowest_sigterm_exit = max(figures.slowest_sigterm_exit, took)
            assert took < 3.0, f"SIGTERM took {took:.2f} s"
            # Before Python has installed its handlers, SIGTERM ends the process as usual.
            assert rc == 0 if handlers_in else rc in (0, -signal.SIGTERM), daemon.lines
            figures.sigterm += 1
        else:
            assert rc == -signal.SIGKILL
            figures.sigkill += 1
        figures.restarts += 1
        figures.in_flight += in_flight
    # One more start: nothing is due, so nothing is sent (a resumed body is the same one).
    before = rig.state_of()
    last = rig.start("run")
    last.wait_for("daemon.started")
    if before.pending is not None or before.last_success is None:
        last.wait_for("heartbeat.sent")
    assert last.stop() == 0
    requests = receiver.server.requests
    unique = receiver.unique_accepted
    assert len(unique) == 1, [b["timestamp"] for b in unique]
    assert len({r.body for r in requests}) == 1, "a retry or resume sent another body"
    assert rig.state_of().pending is None
    assert rig.state_of().last_success is not None
    figures.requests = len(requests)
    figures.unique = len(unique)
    return figures


@dataclass
class TwinFigures:
    rounds: int = 0
    refused: int = 0
    unique: int = 0
    via_symlink: int = 0
    once_races: int = 0
    forced: int = 0  # races `once --force` won: each sends a heartbeat, as asked
    requests: int = 0


def _loser_and_winner(first: Pulsed, second: Pulsed) -> tuple[Pulsed, Pulsed]:
    """Which of two daemons started together exited (refused), and which runs."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {pool.submit(d.proc.wait, 60): d for d in (first, second)}
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        loser = futures[next(iter(done))]
        winner = second if loser is first else first
        winner.wait_for("daemon.started")
        winner.signal(signal.SIGTERM)  # ends the pool's other wait
    return loser, winner


def two_instances(lab: Lab, *, rounds: int) -> TwinFigures:
    """Two ``run`` started together on one state folder, then ``once`` racing ``run``."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "twins")
    rig.seed()
    link = rig.home / "state-by-another-path"
    link.symlink_to(rig.state)
    figures = TwinFigures()
    for i in range(rounds):
        other: dict[str, str | None] = {} if i % 2 else {"PULSED_STATE_DIR": str(link)}
        loser, winner = _loser_and_winner(rig.start("run"), rig.start("run", env=other))
        assert loser.finish() == 75, loser.lines
        (locked,) = loser.named("state.locked")
        assert f"pid {winner.pid}" in locked["holder"]
        assert winner.finish() == 0
        assert not winner.named("state.locked")
        figures.rounds += 1
        figures.refused += 1
        figures.via_symlink += bool(other)
    # `once --force` racing `run`: whichever locks first works, the other refuses.
    forced = 0
    for _ in range(max(1, rounds // 2)):
        daemon = rig.start("run")
        once = rig.run("once", "--force")
        if once.code == 75:
            (locked,) = once.named("state.locked")
            assert f"pid {daemon.pid}" in locked["holder"]
        else:
            assert once.code == 0 and once.named("heartbeat.sent"), once.err
            forced += 1
        (first,) = daemon.wait_for_any("daemon.started", "state.locked")
        if first["event"] == "daemon.started":
            assert daemon.stop() == 0
        else:
            assert once.code == 0 and daemon.finish() == 75
        figures.once_races += 1
    figures.unique = len(receiver.unique_accepted)
    figures.forced = forced
    # One heartbeat from the first winner; `once --force` adds one each time it won (two
    # forced ones within a second carry the same timestamp: the receiver keeps one).
    sent = [r.body for r in receiver.server.requests]
    figures.requests = len(sent)
    assert len(sent) == 1 + forced, (figures, forced, len(sent))
    assert figures.unique == len(set(sent))
    return figures
