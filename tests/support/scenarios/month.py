"""A month in an hour: one daemon, many shops, a 1 s interval, a million deliveries.

One ``pulsed run`` process serves ``shops`` shops listed as ``[shops.<name>]`` tables
(:class:`~tests.support.host.Host`), each with its own heartbeat secret (the credential
``pulse_heartbeat_secret.<name>``), the status file and the metrics file on, at a
1 s interval, against a counting receiver on 127.0.0.1 (``Receiver(keep=False)``,
which knows each shop by its own secret and nothing by the shared one) that is up for
stretches and down for stretches, in turn: answering 200, answering 503 to every
attempt, answering 200, refusing connections (its listener closed), and again. At 200
shops that is about 200 deliveries a second: a million is 5,000 heartbeats a shop,
seven months of the hourly default, in about an hour and a half.

Every ``sample_every`` seconds the daemon is looked at from outside (:func:`look`):
``VmRSS`` from ``/proc/<pid>/status``, CPU time from ``/proc/<pid>/stat``, its threads,
and what each open descriptor points at, against the deliveries so far: its
``heartbeat.sent`` and ``heartbeat.failed`` lines, counted as they arrive (the log is
counted and scanned for secrets line by line, never kept: a million lines would be the
runner's memory, not the daemon's). After a warm-up (one whole turn of the receiver's
phases, and at least a tenth of the deliveries) a line fitted to RSS over deliveries
gives the slope, in KiB per 10,000 heartbeats.

Each shop starts with a full week of deliveries in its state (168, the history's
bound), as on a host that has run for a while: the history and the state files are at
their size from the first heartbeat, so what grows after the warm-up is not the
bounded history filling (168 × 200 = 33,600 deliveries).

Asserted as it goes: the daemon runs throughout and exits 0 on SIGTERM; it logs no
error and no warning but ``heartbeat.failed``; the deliveries its log told of are
exactly the counters in the shops' ``state.json`` files; every heartbeat it counts as
sent was accepted by the receiver, and the receiver refused none (each shop signed with
its own secret); every shop delivered; the status file lists every shop; the state
folder holds one ``state.json`` per shop and nothing else; no secret in any log line,
state file, status or metrics file. Judged, and returned as :attr:`MonthFigures.problems`
so the figures are kept either way (:func:`problems`): the exit within 3 s, descriptors
and threads flat (:data:`FLAT_WINDOW`), and, when ``rss_limit_kib`` is given, RSS growth
after the warm-up, fitted and first to last sample, each at most that.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from devtools.faultserver import status
from devtools.receiver import Receiver, Tally
from pulsed import _state as st
from pulsed._delivery import BUDGET
from pulsed._identity import fingerprint
from tests.support.host import Host
from tests.support.lab import BOT, CLOSED_PORT_URL, Lab
from tests.support.process import Pulsed, event_of
from tests.support.scan import NEEDLES, SECRET, TOKEN, TOTALS, ScanTotals

# Every shop's own secret starts with this, so one needle finds any of them (or a
# first half of one) in a log line without 200 searches per line.
SHOP_SECRET_PREFIX = "month-hb-secret-"
PHASES = ("ok", "503", "ok", "refused")
# Looks at either end of the run compared to say descriptors and threads stayed flat.
# A descriptor counts at an end when it is there at each of this many looks in a row: a
# connection lives at most a delivery's 2 s, a state write milliseconds, so what is in
# flight at one look is gone by a later one, and only what stays (the daemon's own, or a
# leak) is counted. Threads come and go by the pools' own rules (anyio's workers end
# after 10 s idle), so the fewest at the last looks is held against the most seen by the
# end of the first looks after a warm-up that went through every phase.
FLAT_WINDOW = 5
# Warnings the run may log: a failed delivery is what a failing receiver causes.
EXPECTED_WARNINGS = frozenset({"heartbeat.failed"})
STOP_SECONDS = 3.0  # contract §8: SIGTERM ends the daemon within 3 s
# No delivery ended for this long: the daemon is stuck. Not a limit on the rate, which
# is the daemon's and the machine's to show; with every shop due each second, even a
# receiver refusing every connection has deliveries ending (failed) all the time.
STALL_SECONDS = 60.0


@dataclass(frozen=True)
class Sample:
    """One look at the daemon from outside."""

    seconds: float  # since the daemon started
    beats: int  # deliveries so far (sent + failed), as its log told
    rss_kib: int
    cpu: float  # seconds of user and system time so far
    fds: tuple[str, ...]  # what each open descriptor points at (/proc/<pid>/fd links)
    threads: int
    status_age: float = 0.0  # seconds since the status file was last written


@dataclass
class Phase:
    kind: str  # one of PHASES
    seconds: float = 0.0
    beats: int = 0  # deliveries that ended while it lasted
    failed: int = 0


@dataclass
class MonthFigures:
    shops: int
    interval: float
    target: int
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    warm_beats: int = 0
    samples: list[Sample] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    tally: Tally = field(default_factory=lambda: Tally(0, 0, 0, {}))
    per_shop: tuple[int, int] = (0, 0)  # fewest and most deliveries of one shop
    state_bytes: int = 0
    state_files: int = 0
    stop_seconds: float = 0.0
    log_lines: int = 0
    problems: list[str] = field(default_factory=list)  # what did not hold; see problems()

    @property
    def beats(self) -> int:
        return self.sent + self.failed

    @property
    def warm(self) -> list[Sample]:
        """The samples after the warm-up, the ones the figures below are taken from."""
        return [s for s in self.samples if s.beats >= self.warm_beats]

    @property
    def rate(self) -> float:
        """Deliveries a second over the whole run."""
        return self.beats / self.seconds if self.seconds else 0.0

    @property
    def slope_kib_per_10k(self) -> float:
        warm = self.warm
        return 10_000 * fit([s.beats for s in warm], [s.rss_kib for s in warm])[0]

    @property
    def fitted_growth_kib(self) -> float:
        """RSS growth after the warm-up as the fitted line has it: slope × deliveries."""
        warm = self.warm
        return self.slope_kib_per_10k / 10_000 * (warm[-1].beats - warm[0].beats)

    @property
    def sampled_growth_kib(self) -> int:
        """RSS of the last sample less that of the first after the warm-up."""
        warm = self.warm
        return warm[-1].rss_kib - warm[0].rss_kib

    def ends(self, what: str) -> tuple[int, int]:
        """``fds`` or ``threads`` at the first look after the warm-up and at the last."""
        warm = self.warm
        return _count(warm[0], what), _count(warm[-1], what)

    def spread(self, what: str) -> tuple[int, int]:
        """The fewest and most ``fds`` or ``threads`` at any one look after the warm-up."""
        values = [_count(s, what) for s in self.warm]
        return min(values), max(values)

    def compared(self, what: str) -> tuple[int, int]:
        """What :func:`problems` holds against each other for ``fds`` or ``threads``: at
        the start and at the end, as :data:`FLAT_WINDOW` says."""
        warm = self.warm
        first, last = warm[:FLAT_WINDOW], warm[-FLAT_WINDOW:]
        if what == "fds":
            return lasting(first), lasting(last)
        before = [s for s in self.samples if s.beats < self.warm_beats] + first
        return max(s.threads for s in before), min(s.threads for s in last)

    @property
    def status_ages(self) -> tuple[float, float]:
        """The status file's age at the looks after the warm-up: the median and the most.

        The daemon writes it once for the cycles that end within a window, and never
        later than 5 s after a change (``PUBLISH_LATEST``): a daemon that is never idle
        must still keep it fresh."""
        ages = sorted(s.status_age for s in self.warm)
        return ages[len(ages) // 2], ages[-1]

    @property
    def cpu_ms_per_beat(self) -> float:
        """The daemon's CPU time per delivery after the warm-up."""
        warm = self.warm
        return 1000 * (warm[-1].cpu - warm[0].cpu) / max(warm[-1].beats - warm[0].beats, 1)

    @property
    def failing_share(self) -> tuple[float, float]:
        """The failing phases' share of the time, and of the deliveries."""
        failing = [p for p in self.phases if p.kind != "ok"]
        seconds = sum(p.seconds for p in self.phases)
        beats = sum(p.beats for p in self.phases)
        return (
            sum(p.seconds for p in failing) / seconds if seconds else 0.0,
            sum(p.beats for p in failing) / beats if beats else 0.0,
        )

    def rate_of(self, kind: str) -> float:
        """Deliveries a second while the receiver was in phases of ``kind``."""
        phases = [p for p in self.phases if p.kind == kind]
        seconds = sum(p.seconds for p in phases)
        return sum(p.beats for p in phases) / seconds if seconds else 0.0


def problems(figures: MonthFigures, rss_limit_kib: float | None) -> list[str]:
    """What did not hold of the figures a run is judged by: the stop within 3 s,
    descriptors and threads flat, and (with ``rss_limit_kib``) RSS growth after the
    warm-up, fitted and sampled."""
    found: list[str] = []
    if figures.stop_seconds > STOP_SECONDS:
        found.append(f"SIGTERM took {figures.stop_seconds:.1f} s to end the daemon")
    first, last = figures.compared("fds")
    if last > first:
        found.append(
            f"fds grew: {first} open throughout the first {FLAT_WINDOW} looks after the "
            f"warm-up, {last} throughout the last {FLAT_WINDOW}"
        )
    first, last = figures.compared("threads")
    if last > first:
        found.append(
            f"threads grew: at most {first} by the first {FLAT_WINDOW} looks after the "
            f"warm-up, at least {last} at each of the last {FLAT_WINDOW}"
        )
    if rss_limit_kib is not None:
        if figures.fitted_growth_kib > rss_limit_kib:
            found.append(
                f"RSS grew {figures.fitted_growth_kib:.0f} KiB after the warm-up (fitted: "
                f"{figures.slope_kib_per_10k:.1f} KiB per 10k heartbeats)"
            )
        if figures.sampled_growth_kib > rss_limit_kib:
            found.append(
                f"RSS grew {figures.sampled_growth_kib} KiB from the first sample after the "
                "warm-up to the last"
            )
    return found


def _count(sample: Sample, what: str) -> int:
    return len(sample.fds) if what == "fds" else sample.threads


def lasting(samples: Sequence[Sample]) -> int:
    """How many descriptors were open at every one of ``samples``, told apart by what
    they point at (a socket's inode, a file's path), a multiset: two to one pipe are two."""
    common = Counter(samples[0].fds)
    for sample in samples[1:]:
        common &= Counter(sample.fds)
    return sum(common.values())


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through the points: ``(slope, intercept)``."""
    n = len(xs)
    if n < 2 or n != len(ys):
        raise ValueError(f"a line needs two points or more, of x and y alike (got {n}, {len(ys)})")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("every x is the same: no slope")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def look(pid: int, seconds: float, beats: int, status_file: Path) -> Sample:
    """The daemon as /proc shows it now: VmRSS, CPU time, descriptors and threads; and
    how old its status file is."""
    rss = -1
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            rss = int(value.split()[0])
    stat = Path(f"/proc/{pid}/stat").read_text()
    # "pid (comm) state ...": utime and stime are the 12th and 13th fields after the comm.
    ticks = stat[stat.rindex(")") + 2 :].split()[11:13]
    cpu = sum(int(t) for t in ticks) / os.sysconf("SC_CLK_TCK")
    fds: list[str] = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            fds.append(str(fd.readlink()))
        except FileNotFoundError:
            continue  # closed between the listing and the look: it was in flight
    threads = sum(1 for _ in Path(f"/proc/{pid}/task").iterdir())
    age = time.time() - status_file.stat().st_mtime
    return Sample(seconds, beats, rss, cpu, tuple(sorted(fds)), threads, age)


class CountingPulsed(Pulsed):
    """``pulsed run`` whose log lines are counted by event and scanned, never kept.

    :attr:`unexpected` keeps the first hundred lines at warning level or worse whose event
    is not in :data:`EXPECTED_WARNINGS`; :attr:`head` the first lines, for a failure's
    message; :attr:`hits` names every line that held a needle.
    """

    def __init__(self, env: dict[str, str], needles: Sequence[bytes]) -> None:
        self.counts: Counter[str] = Counter()
        self.head: list[str] = []
        self.unexpected: list[str] = []
        self.hits: list[str] = []
        self.line_count = 0
        self._needles = [n.decode() for n in needles]
        self._beats = threading.Condition()
        super().__init__(["run"], env)

    def _read_log(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            event = event_of(line)
            name = str(event.get("event", "(not JSON)"))
            hit = any(needle in line for needle in self._needles)
            with self._beats:
                self.line_count += 1
                self.counts[name] += 1
                if len(self.head) < 20:
                    self.head.append(line)
                if hit:
                    self.hits.append(f"log line {self.line_count} ({name}): holds a secret")
                level = event.get("level")
                unexpected = level in ("warning", "error", "critical") or not event
                if unexpected and name not in EXPECTED_WARNINGS and len(self.unexpected) < 100:
                    self.unexpected.append(line[:300])
                self._beats.notify_all()
        with self._beats:
            self._beats.notify_all()

    @property
    def beats(self) -> int:
        with self._beats:
            return self._delivered()

    @property
    def failed(self) -> int:
        with self._beats:
            return self.counts["heartbeat.failed"]

    def _delivered(self) -> int:
        return self.counts["heartbeat.sent"] + self.counts["heartbeat.failed"]

    def wait_beats(self, target: int, timeout: float) -> int:
        """Block until ``target`` deliveries were logged, the process ended, or ``timeout``."""
        with self._beats:
            self._beats.wait_for(
                lambda: self._delivered() >= target or self.proc.poll() is not None,
                max(timeout, 0.0),
            )
            return self._delivered()


def _seed(host: Host, name: str, now: float, interval: float) -> None:
    """A week of deliveries (the history's bound) ending now, every fourth failed, the
    bot identity fresh, counters at zero, due now."""
    state = st.State(identity=st.Identity(BOT, now, fingerprint(TOKEN)), domain=host.domain(name))
    for i in range(st.HISTORY_LIMIT):
        at = now - (st.HISTORY_LIMIT - i) * interval
        if i % 4 == 3:
            state = st.failed(
                state,
                at,
                "status: HTTP 503",
                503,
                at + interval,
                reason="status",
                attempts=3,
                elapsed=0.4,
            )
        else:
            state = st.succeeded(state, at, 200, at + interval, attempts=1, elapsed=0.003)
    st.StateStore(st.shop_state_dir(host.state, name)).save(
        replace(state, counters=st.Counters(), next_due=now)
    )


class _Phases:
    """The receiver's turns through :data:`PHASES`, and what each phase saw."""

    def __init__(
        self, receiver: Receiver, daemon: CountingPulsed, ok_seconds: float, failing_seconds: float
    ) -> None:
        self.receiver = receiver
        self.daemon = daemon
        self.lengths = {"ok": ok_seconds, "503": failing_seconds, "refused": failing_seconds}
        self.done: list[Phase] = []
        self._begin(0, time.monotonic())

    def _begin(self, index: int, now: float) -> None:
        self.index = index
        self.current = Phase(PHASES[index % len(PHASES)])
        self.started = now
        self.ends = now + self.lengths[self.current.kind]
        self.beats, self.failed = self.daemon.beats, self.daemon.failed
        _switch(self.receiver, self.current.kind)

    def _end(self, now: float) -> None:
        phase = self.current
        phase.seconds = now - self.started
        phase.beats = self.daemon.beats - self.beats
        phase.failed = self.daemon.failed - self.failed
        self.done.append(phase)

    def next(self, now: float) -> None:
        self._end(now)
        self._begin(self.index + 1, now)

    def close(self, now: float) -> list[Phase]:
        self._end(now)
        return self.done


def _switch(receiver: Receiver, kind: str) -> None:
    if kind == "refused":
        receiver.server.refuse_connections(True)
        return
    receiver.server.refuse_connections(False)
    if kind == "503":
        receiver.server.plan(then=status(503))
    else:
        receiver.server.plan()


def _scan(where: str, blob: bytes, needles: Sequence[bytes]) -> list[str]:
    return [f"{where}: holds a secret" for needle in needles if needle in blob]


def month(
    lab: Lab,
    *,
    shops: int,
    beats: int,
    interval: float = 1.0,
    ok_seconds: float = 45.0,
    failing_seconds: float = 15.0,
    sample_every: float = 5.0,
    rss_limit_kib: float | None = None,
) -> MonthFigures:
    """Run the scenario until the daemon has ended ``beats`` deliveries; its figures."""
    # The first and last looks compared must span more than a connection's life.
    assert sample_every * (FLAT_WINDOW - 1) > BUDGET, "looks too close together"
    names = [f"shop{i:03d}" for i in range(shops)]
    own = {name: f"{SHOP_SECRET_PREFIX}{name}-{secrets.token_hex(8)}" for name in names}
    needles = [*NEEDLES, SHOP_SECRET_PREFIX.encode()]
    # The receiver's fallback secret is no shop's: a shop that signed with the shared
    # secret instead of its own would be refused, not quietly accepted.
    receiver = lab.receiver(
        Receiver(
            secrets.token_hex(16),
            secrets={Host.domain(name): secret for name, secret in own.items()},
            keep=False,
        )
    )
    home = lab.tmp / "host"
    home.mkdir()
    host = Host(home, receiver.url, names)
    for name, secret in own.items():
        host.secret(name, secret)
    run = lab.tmp / "run"
    run.mkdir(mode=0o755)
    status_file, metrics_file = run / "status.json", run / "pulsed.prom"
    host.state.mkdir(mode=0o700)
    now = time.time()
    for name in names:
        _seed(host, name, now, interval)
    env = dict(
        host.env,
        PULSE_HEARTBEAT_SECRET=SECRET,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=CLOSED_PORT_URL,
        PULSED_INTERVAL=f"{interval:g}",
        PULSED_STATUS_FILE=str(status_file),
        PULSED_METRICS_FILE=str(metrics_file),
    )

    figures = MonthFigures(shops, interval, beats)
    daemon = CountingPulsed(env, needles)
    try:
        # Every shop was due at start: one delivery each, and the daemon is running.
        receiver.wait_for_count(shops, timeout=60)
        turn = 2 * ok_seconds + 2 * failing_seconds  # the warm-up: one turn of PHASES
        phases = _Phases(receiver, daemon, ok_seconds, failing_seconds)
        next_sample = progress_at = time.monotonic()
        progress = 0
        while (done := daemon.beats) < beats:
            now_m = time.monotonic()
            if done > progress:
                progress, progress_at = done, now_m
            if now_m >= phases.ends:
                phases.next(now_m)
            if now_m >= next_sample:
                figures.samples.append(look(daemon.pid, now_m - daemon.started, done, status_file))
                if now_m < daemon.started + turn or done < beats // 10:
                    figures.warm_beats = done + 1
                next_sample += sample_every
            if daemon.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited {daemon.proc.returncode} after {done} deliveries; "
                    "its first lines:\n" + "\n".join(daemon.head)
                )
            if now_m - progress_at > STALL_SECONDS:
                raise AssertionError(
                    f"no delivery ended for {STALL_SECONDS:g} s, after {done} of {beats}"
                )
            daemon.wait_beats(beats, min(next_sample, phases.ends) - time.monotonic())
        end = time.monotonic()
        # The last look, at the very end, and the status file while it is still there:
        # a clean stop takes it back.
        figures.samples.append(look(daemon.pid, end - daemon.started, daemon.beats, status_file))
        figures.phases = phases.close(end)
        figures.seconds = end - daemon.started
        status_blob = status_file.read_bytes()
        metrics_blob = metrics_file.read_bytes()
        _switch(receiver, "ok")
        stopping = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.finish(timeout=30)
        figures.stop_seconds = time.monotonic() - stopping
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
        _switch(receiver, "ok")

    assert code == 0, f"pulsed run exited {code} on SIGTERM"
    figures.sent = daemon.counts["heartbeat.sent"]
    figures.failed = daemon.counts["heartbeat.failed"]
    figures.log_lines = daemon.line_count
    figures.tally = tally = receiver.tally()

    # The state folder: one state.json a shop and nothing else; their counters are the log's.
    totals = ScanTotals()
    counted = Counter[str]()
    per_shop: list[int] = []
    for name in names:
        folder = st.shop_state_dir(host.state, name)
        state = st.StateStore(folder).read()
        assert state is not None, f"{name}: no state.json"
        counted["sent"] += state.counters.heartbeats_sent
        counted["failed"] += state.counters.deliveries_failed
        per_shop.append(state.counters.heartbeats_sent + state.counters.deliveries_failed)
    files = [p for p in host.state.rglob("*") if p.is_file()]
    figures.state_files = len(files)
    figures.state_bytes = sum(p.stat().st_size for p in files)
    figures.per_shop = (min(per_shop), max(per_shop))
    for path in files:
        totals.state_files += 1
        totals.hits += _scan(str(path.relative_to(lab.tmp)), path.read_bytes(), needles)
    totals.hits += _scan("the status file", status_blob, needles)
    totals.hits += _scan("the metrics file", metrics_blob, needles)
    totals.hits += daemon.hits
    totals.log_lines += daemon.line_count
    totals.outputs += 1
    totals.hits += _scan("stdout of pulsed run", bytes(daemon.out), needles)
    TOTALS.add(totals)

    assert not totals.hits, "a secret leaked:\n" + "\n".join(totals.hits)
    assert not daemon.unexpected, "unexpected log lines:\n" + "\n".join(daemon.unexpected[:20])
    assert sorted(p.name for p in files) == [st.STATE_FILE] * shops, sorted(
        str(p.relative_to(host.state)) for p in files if p.name != st.STATE_FILE
    )
    assert (counted["sent"], counted["failed"]) == (figures.sent, figures.failed), (
        f"state counters {dict(counted)} against the log's {figures.sent} sent, "
        f"{figures.failed} failed"
    )
    assert figures.per_shop[0] > 0, "a shop never delivered"
    assert tally.rejected == {}, f"the receiver refused heartbeats: {tally.rejected}"
    # Each sent was a 200 the receiver gave after accepting: it may have accepted more
    # (an answer lost to an attempt's timeout, then a retry), never fewer.
    assert tally.accepted >= figures.sent, (
        f"the daemon counts {figures.sent} sent, the receiver accepted only {tally.accepted}"
    )
    listed = [shop["name"] for shop in json.loads(status_blob)["shops"]]
    assert listed == sorted(names), "the status file does not list every shop"

    warm = figures.warm
    assert len(warm) >= 2 * FLAT_WINDOW, (
        f"{len(warm)} samples after the warm-up ({figures.warm_beats} deliveries): too few"
    )
    figures.problems = problems(figures, rss_limit_kib)
    return figures
