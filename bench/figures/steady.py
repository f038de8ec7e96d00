"""Figure 10: the steady state a host lives in, against the I/O floor (issue 19).

Figure 7 measures a host on its first hour: every history empty, every shop due at
once, one shared secret, no status file. A host lives differently, and this
figure measures that: 200, 1,000 and 2,000 shops, each with a full week of
history (168 deliveries), a heartbeat secret of its own (the receiver checks each
shop's), the status and metrics files on (the shipped unit sets the status file),
and shops due one at a time, spread apart as an hourly interval spreads them.

- CPU per spread heartbeat at each size, against the I/O floor
  (``bench/io_floor.py``: an httpx POST and two atomic state writes, measured in
  the same run) and against one curl run; 2,000 shops against 200.
- CPU per heartbeat with 200 shops due at once, full histories, against the floor.
- Both also against the floor with its saves in a worker thread (info): pulsed runs
  its saves there, so what is left over that floor is pulsed's own code.
- Total PSS with full histories against one idle floor process.
- Start to ``READY=1`` with 2,000 shops and their own secrets, against the floor;
  ``SIGHUP`` to ``READY=1`` (the reload reads every shop and secret again).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from _harness import PYTHON, REPO, SECRET, TOKEN, Bench, event_is, stop, wait_idle
from _measure import (
    Memory,
    cpu_between,
    cpu_seconds,
    median_memory,
    memory_kib,
    settle,
    thread_cpu,
)
from _report import Row, Section, fmt_mib, in_ms, ratio, verdict

from figures.cpu import curl_cpu
from figures.shops import host_env
from tests.support.process import Process

FLOOR_TARGET = 1.3  # CPU per heartbeat against the I/O floor
GROWTH_TARGET = 1.2  # CPU per heartbeat at the largest size against 200 shops
CURL_TARGET = 0.5
PSS_TARGETS = {200: 1.25, 2000: 2.0}
START_SLACK = 0.400
RELOAD_TARGET = 0.300
STOP_TARGET = 3.0  # contract §8: SIGTERM to exit 0 within 3 s
HISTORY = 168
HOUR = 3600.0
BOT = "steady_bench_bot"


def shop_secret(name: str) -> str:
    """Each shop's own heartbeat secret (the receiver is told every one)."""
    return f"{SECRET}-{name}-own"


class SteadyHost:
    """``shops`` OpenCart copies served by one daemon, as a hosting server runs them.

    Each shop has its own secret in ``pulse_heartbeat_secret.<name>``, a state with a
    week of hourly deliveries and its identity cached, and the daemon writes the status
    file and the metrics file beside the state folder.
    """

    def __init__(self, bench: Bench, shops: int) -> None:
        self.bench = bench
        self.home = bench.fresh_dir(f"steady-{shops}")
        self.names = [f"shop{i:04d}" for i in range(shops)]
        self.credentials = self.home / "credentials"
        self.state_dir = self.home / "state"
        self.public = self.home / "run"
        for folder in (self.credentials, self.state_dir, self.public):
            folder.mkdir(mode=0o700)
        template = self.home / "template"
        shutil.copytree(bench.tree / "examples" / "shop", template)
        for name in self.names:
            # Hard links: two thousand shops' files cost one copy's disk and page cache,
            # and every shop still has its own paths to read.
            shutil.copytree(template, self.home / "shops" / name, copy_function=os.link)
            secret = self.credentials / f"pulse_heartbeat_secret.{name}"
            secret.write_text(shop_secret(name) + "\n")
            secret.chmod(0o600)
            bench.receiver.secrets[self.domain(name)] = shop_secret(name)
        self.config = self.home / "pulsed.toml"
        self.php = self.home / "php"
        self.php.write_text("#!/bin/sh\nprintf '%s' '8.2.7'\n")
        self.php.chmod(0o755)

    @staticmethod
    def domain(name: str) -> str:
        return f"{name}.steady.example"

    def serve(self, names: Sequence[str], state: Callable[[int, str], dict[str, Any]]) -> None:
        """List ``names`` in the config; shop ``i`` gets the state ``state(i, name)``."""
        lines = [
            "[pulse]",
            f"api_host = {json.dumps(self.bench.receiver.url)}",
            "[telegram]",
            f"api_base = {json.dumps(self.bench.telegram.url)}",
            "[daemon]",
            f"state_dir = {json.dumps(str(self.state_dir))}",
            f"status_file = {json.dumps(str(self.public / 'status.json'))}",
            f"metrics_file = {json.dumps(str(self.public / 'pulsed.prom'))}",
            "interval = 3600",
        ]
        for name in names:
            lines += [
                f"[shops.{name}]",
                f"root = {json.dumps(str(self.home / 'shops' / name))}",
                f'domain = "{self.domain(name)}"',
                f"php_binary = {json.dumps(str(self.php))}",
            ]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)
        shops = self.state_dir / "shops"
        if shops.exists():
            shutil.rmtree(shops)
        for i, name in enumerate(names):
            folder = shops / name
            folder.mkdir(mode=0o700, parents=True)
            path = folder / "state.json"
            path.write_text(json.dumps(state(i, name)))
            path.chmod(0o600)

    def env(self) -> dict[str, str]:
        return host_env(self.config, self.credentials)


def lived_state(name: str, due: float) -> dict[str, Any]:
    """A state in the format of the state files operators have today (version 2): a
    week of hourly deliveries (one failed a day), identity cached, due at ``due``.

    Written out field by field rather than taken from figure 1's daemon, so that a
    tree whose state format moved on still starts from a file of today's format and
    migrates it, as an upgraded host does.
    """
    from pulsed._identity import fingerprint
    from pulsed._timefmt import rfc3339

    last = due - HOUR
    history = []
    for k in range(HISTORY):
        at = last - (HISTORY - 1 - k) * HOUR
        failed = k % 24 == 7
        history.append(
            {
                "at": rfc3339(at, "us"),
                "outcome": "failed" if failed else "sent",
                "status": 503 if failed else 200,
                "attempts": 3 if failed else 1,
                "elapsed_ms": 1210 if failed else 23 + k % 17,
                "reason": "status" if failed else None,
            }
        )
    sent = sum(1 for h in history if h["outcome"] == "sent")
    return {
        "version": 2,
        "domain": SteadyHost.domain(name),
        "last_success": rfc3339(last, "us"),
        "last_attempt": rfc3339(last, "us"),
        "last_error": None,
        "last_status": 200,
        "consecutive_failures": 0,
        "next_due": rfc3339(due, "us"),
        "identity": {
            "username": BOT,
            "fetched_at": rfc3339(time.time() - 60, "us"),
            "token_fingerprint": fingerprint(TOKEN),
        },
        "pending": None,
        "counters": {
            "heartbeats_sent": sent,
            "deliveries_failed": HISTORY - sent,
            "delivery_attempts": sum(h["attempts"] for h in history),
        },
        "history": history,
    }


def sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.time(), 0.0))


def spread_cpu(bench: Bench, host: SteadyHost, n: int) -> tuple[float, Memory, tuple[int, int]]:
    """CPU per heartbeat with ``n`` shops, ``warm`` + ``beats`` of them due one at a time
    ``spacing`` apart, the rest an hour later; and the daemon's memory after them."""
    plan = bench.plan
    warm, beats, spacing = plan.steady_warm, plan.steady_beats, plan.steady_spacing
    # A large host takes longer to start: with 2,000 shops reading version-2 files on
    # a busy machine, tens of seconds.
    lead = plan.steady_lead + n / 50
    first = time.time() + lead

    def state(i: int, name: str) -> dict[str, Any]:
        due = first + i * spacing if i < warm + beats else time.time() + HOUR - 60
        return lived_state(name, due)

    host.serve(host.names[:n], state)
    daemon = bench.daemon(host.env())
    try:
        # Readings half a spacing after a heartbeat: that heartbeat and the files it
        # changed are written by then, the next is not due yet.
        sleep_until(first + (warm - 0.5) * spacing)
        if _sent(daemon) != warm:
            raise RuntimeError(f"{n} shops: {_sent(daemon)} sent when {warm} were due")
        own0, threads0 = cpu_seconds(daemon.pid)[0], thread_cpu(daemon.pid)
        sleep_until(first + (warm + beats - 0.5) * spacing)
        own1, threads1 = cpu_seconds(daemon.pid)[0], thread_cpu(daemon.pid)
        if _sent(daemon) != warm + beats:
            raise RuntimeError(f"{n} shops: {_sent(daemon)} sent, not {warm + beats}")
        samples = []
        for _ in range(3):
            samples.append(memory_kib(daemon.pid))
            time.sleep(0.3)
        # Read while it runs: a clean stop takes the status file back.
        sizes = (
            (host.public / "status.json").stat().st_size,
            (host.public / "pulsed.prom").stat().st_size,
        )
    finally:
        stop(daemon)
    exact = cpu_between(threads0, threads1)
    return (own1 - own0 if exact is None else exact) / beats, median_memory(samples), sizes


def _sent(daemon: Process) -> int:
    return sum(1 for line in daemon.lines if event_is("heartbeat.sent")(line))


def burst_cpu(bench: Bench, host: SteadyHost, n: int) -> float:
    """CPU per heartbeat with ``n`` shops due together (a few earlier, to warm it)."""
    plan = bench.plan
    warm = plan.shops_cpu_warm
    # After the warm-up, which waits for a start that reads version-2 files.
    delay = plan.shops_cpu_delay + plan.steady_lead + n / 50
    later = time.time() + delay

    def state(i: int, name: str) -> dict[str, Any]:
        return lived_state(name, time.time() - 1 if i < warm else later)

    host.serve(host.names[:n], state)
    daemon = bench.daemon(host.env())
    try:
        daemon.wait_line(event_is("heartbeat.sent"), count=warm, timeout=120)
        wait_idle(daemon)
        if _sent(daemon) != warm:
            raise RuntimeError("the measured shops were due before the warm-up ended")
        own0, threads0 = cpu_seconds(daemon.pid)[0], thread_cpu(daemon.pid)
        daemon.wait_line(event_is("heartbeat.sent"), count=n, timeout=300)
        time.sleep(plan.steady_spacing / 2)  # the files the burst changed, written once
        own1, threads1 = cpu_seconds(daemon.pid)[0], thread_cpu(daemon.pid)
    finally:
        stop(daemon)
    exact = cpu_between(threads0, threads1)
    return (own1 - own0 if exact is None else exact) / (n - warm)


def io_floor(
    bench: Bench,
    state: bytes,
    *,
    gap: float = 0.0,
    rounds: int | None = None,
    threaded: bool = False,
) -> float:
    """CPU of one heartbeat's I/O floor (``bench/io_floor.py``), saving ``state``: its
    rounds back to back, or one at a time ``gap`` seconds apart; ``threaded``, each save
    in a worker thread."""
    folder = bench.fresh_dir("io-floor")
    request = bench.signed_request()
    job = {
        "url": request["url"],
        "body": request["body"],
        "headers": request["headers"],
        "folder": str(folder),
        "state": state.decode(),
        "warm": 20,
        "rounds": bench.plan.floor_rounds if rounds is None else rounds,
        "gap": gap,
        "threaded": threaded,
    }
    done = subprocess.run(
        [PYTHON, str(REPO / "bench" / "io_floor.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
        cwd=bench.tree,
    )
    return float(json.loads(done.stdout)["cpu_per_round"])


def start_and_reload(
    bench: Bench, host: SteadyHost
) -> tuple[float, list[float], list[float], list[float], list[float]]:
    """READY=1 after start (pulsed and floor, alternated) and after SIGHUP, and SIGTERM
    to exit, in seconds; first, the start that reads today's state files (an upgraded
    host's first)."""
    plan = bench.plan
    host.serve(host.names, lambda _i, name: lived_state(name, time.time() + HOUR - 60))
    # The first start after an upgrade reads state files of today's format; a clean
    # stop saves every shop's state as the measured tree writes it, which is what
    # every later start reads.
    notify = bench.notify_socket("steady-first-start")
    child = bench.daemon(host.env(), notify)
    try:
        upgraded = notify.wait_for("READY=1", timeout=300) - child.started
    finally:
        stop(child)
        notify.close()
    ready: dict[str, list[float]] = {"pulsed": [], "floor": []}
    reloads: list[float] = []
    stops: list[float] = []
    for _ in range(plan.steady_start_runs):
        for who in ("floor", "pulsed"):
            notify = bench.notify_socket(f"steady-start-{who}")
            child = (
                bench.daemon(host.env(), notify) if who == "pulsed" else bench.floor(notify=notify)
            )
            try:
                at = notify.wait_for("READY=1", timeout=120)
                ready[who].append(at - child.started)
                if who == "pulsed":
                    settle(child.pid)
                    asked = time.monotonic()
                    os.kill(child.pid, signal.SIGHUP)
                    notify.wait_for("RELOADING=1", after=asked, timeout=60)
                    reloads.append(notify.wait_for("READY=1", after=asked, timeout=60) - asked)
            finally:
                asked = time.monotonic()
                stop(child)
                if who == "pulsed":
                    stops.append(time.monotonic() - asked)
                notify.close()
    return upgraded, ready["pulsed"], ready["floor"], reloads, stops


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("10. The steady state: full histories, own secrets, files on, spread")
    largest = max(plan.steady_sizes)
    host = SteadyHost(bench, largest)
    curl = curl_cpu(bench)

    floor = bench.floor("floor")
    floor.wait_line(lambda line: line.startswith("sent 200"), timeout=180)
    spread: dict[int, float] = {}
    memory: dict[int, tuple[Memory, Memory]] = {}
    try:
        for n in plan.steady_sizes:
            spread[n], mem, sizes = spread_cpu(bench, host, n)
            memory[n] = (mem, memory_kib(floor.pid))
    finally:
        stop(floor)
    state_file = host.state_dir / "shops" / host.names[0] / "state.json"
    saved = state_file.read_bytes()
    status_size, metrics_size = sizes
    burst = burst_cpu(bench, host, plan.steady_sizes[0])
    floor_cpu = io_floor(bench, saved)
    # The spread heartbeats are one at a time, spacing apart: so are the floor's rounds.
    spaced = io_floor(bench, saved, gap=plan.steady_spacing, rounds=plan.steady_beats)
    # The same floors with each save in a worker thread, as pulsed makes them: what is
    # left between those and pulsed is pulsed's own code, not where its saves run.
    floor_threaded = io_floor(bench, saved, threaded=True)
    spaced_threaded = io_floor(
        bench, saved, gap=plan.steady_spacing, rounds=plan.steady_beats, threaded=True
    )
    upgraded, started, floor_started, reloads, stops = start_and_reload(bench, host)

    small = plan.steady_sizes[0]
    for n in plan.steady_sizes:
        row = Row(
            f"10 CPU per spread heartbeat, {n:,} shops, files on, full histories",
            f"{spread[n] * 1000:.2f} ms",
            f"{spaced * 1000:.2f} ms (I/O floor, spread)",
            ratio(spread[n], spaced),
            f"≤ {FLOOR_TARGET:g}× floor" if n == small else "curve",
            verdict(spread[n] <= FLOOR_TARGET * spaced) if n == small else "info",
        )
        section.rows.append(row)
    section.rows += [
        Row(
            f"10 … {small:,} shops against the floor's rounds back to back",
            f"{spread[small] * 1000:.2f} ms",
            f"{floor_cpu * 1000:.2f} ms (I/O floor)",
            ratio(spread[small], floor_cpu),
            "as before",
            "info",
        ),
        Row(
            f"10 … {small:,} shops against the spread floor, its saves in a worker thread",
            f"{spread[small] * 1000:.2f} ms",
            f"{spaced_threaded * 1000:.2f} ms (I/O floor, spread, threaded)",
            ratio(spread[small], spaced_threaded),
            "where saves run",
            "info",
        ),
        Row(
            f"10 … {largest:,} shops against {small:,}",
            f"{spread[largest] * 1000:.2f} ms",
            f"{spread[small] * 1000:.2f} ms ({small:,} shops)",
            ratio(spread[largest], spread[small]),
            f"≤ {GROWTH_TARGET:g}×",
            verdict(spread[largest] <= GROWTH_TARGET * spread[small]),
        ),
        Row(
            f"10 … {small:,} shops against curl",
            f"{spread[small] * 1000:.2f} ms",
            f"{curl * 1000:.2f} ms (curl)",
            ratio(spread[small], curl),
            f"≤ {CURL_TARGET:g}× curl",
            verdict(spread[small] <= CURL_TARGET * curl),
        ),
        Row(
            f"10 CPU per heartbeat, {small:,} shops due at once, full histories",
            f"{burst * 1000:.2f} ms",
            f"{floor_cpu * 1000:.2f} ms (I/O floor)",
            ratio(burst, floor_cpu),
            f"≤ {FLOOR_TARGET:g}× floor",
            verdict(burst <= FLOOR_TARGET * floor_cpu),
        ),
        Row(
            f"10 … {small:,} shops due at once against the floor, its saves in a worker thread",
            f"{burst * 1000:.2f} ms",
            f"{floor_threaded * 1000:.2f} ms (I/O floor, threaded)",
            ratio(burst, floor_threaded),
            "where saves run",
            "info",
        ),
    ]
    for n in plan.steady_sizes:
        mem, fl = memory[n]
        target = PSS_TARGETS.get(n)
        section.rows.append(
            Row(
                f"10 total PSS, {n:,} shops with full histories",
                fmt_mib(mem.pss),
                f"{fmt_mib(fl.pss)} (1 floor)",
                ratio(mem.pss, fl.pss),
                f"≤ {target:g}× floor" if target else "curve",
                verdict(mem.pss <= target * fl.pss) if target else "info",
            )
        )
    p, f = statistics.median(started), statistics.median(floor_started)
    r, s = statistics.median(reloads), statistics.median(stops)
    section.rows += [
        Row(
            f"10 start to READY=1, {largest:,} shops with their own secrets",
            f"{p * 1000:.0f} ms",
            f"{f * 1000:.0f} ms (floor)",
            ratio(p, f),
            f"≤ floor + {START_SLACK * 1000:.0f} ms",
            verdict(p <= f + START_SLACK),
        ),
        Row(
            f"10 SIGHUP to READY=1, {largest:,} shops with their own secrets",
            f"{r * 1000:.0f} ms",
            "—",
            "—",
            f"≤ {RELOAD_TARGET * 1000:.0f} ms",
            verdict(r <= RELOAD_TARGET),
        ),
        Row(
            f"10 SIGTERM to exit, {largest:,} shops idle",
            f"{s * 1000:.0f} ms",
            "—",
            "—",
            f"≤ {STOP_TARGET * 1000:.0f} ms (§8)",
            verdict(s <= STOP_TARGET),
        ),
        Row(
            f"10 first start after an upgrade, {largest:,} shops (today's state files)",
            f"{upgraded * 1000:.0f} ms",
            f"{f * 1000:.0f} ms (floor)",
            ratio(upgraded, f),
            "once",
            "info",
        ),
    ]
    per_shop = (memory[largest][0].pss - memory[small][0].pss) / (largest - small)
    warm, beats, spacing = plan.steady_warm, plan.steady_beats, plan.steady_spacing
    section.notes += [
        f"A host of {largest:,} OpenCart copies (`examples/shop`, hard-linked), served "
        f"{', '.join(f'{n:,}' for n in plan.steady_sizes)} at a time by one `pulsed run` "
        f"(interval 3600 s). Each shop has its own heartbeat secret (its credential "
        f"`pulse_heartbeat_secret.<name>`; the receiver verifies each with the shop's), "
        f"a state file in today's format (version 2) holding a week of hourly deliveries "
        f"(168, one failed a day) and its identity, and the daemon writes "
        f"`daemon.status_file` and `daemon.metrics_file` (`status.json` "
        f"{status_size / 1024:.0f} KiB and `pulsed.prom` {metrics_size / 1024:.0f} KiB "
        f"with {largest:,} shops).",
        f"Spread: {warm} shops then {beats} more due one at a time, {spacing:g} s apart "
        f"(2,000 hourly shops are 1.8 s apart), the rest an hour later. The daemon's "
        f"CPU time, summed over its threads from the scheduler's own count "
        f"(`/proc/<pid>/task/*/schedstat`, nanoseconds; `utime+stime` in clock ticks "
        f"only if a thread ended in the window) is read half a spacing after heartbeat "
        f"#{warm} and after #{warm + beats}, so the window holds {beats} heartbeats and "
        f"every write they caused; divided by {beats}. Each size is a daemon of its own.",
        f"Due at once: {small:,} shops, {plan.shops_cpu_warm} due at start to warm the "
        f"daemon, the rest together once it had started and sent those; CPU from after the "
        f"warm-up until {spacing / 2:g} s after the last `heartbeat.sent`.",
        f"I/O floor (`bench/io_floor.py`, in this run): an `httpx.AsyncClient` POST of a "
        f"signed heartbeat (no keep-alive, as the daemon) and two atomic writes (temp "
        f"file, fsync, rename, folder fsync) of the {len(saved):,} bytes the daemon last "
        f"saved for a shop with a full history; its own CPU over "
        f"{plan.floor_rounds} rounds after 20 warm-ups: {floor_cpu * 1000:.2f} ms a "
        f"round back to back, the floor of the heartbeats due at once. The spread "
        f"heartbeats' floor is the same rounds one at a time, {spacing:g} s apart as "
        f"they are ({beats} rounds, each its own wake from sleep and its own cold "
        f"caches): {spaced * 1000:.2f} ms a round. curl: {curl * 1000:.2f} ms (figure 3).",
        f"Memory: PSS read three times 0.3 s apart after the spread (medians), against "
        f"one floor process idle beside every size. Each further shop with a full week "
        f"costs {per_shop:.1f} KiB of PSS (between {small:,} and {largest:,}).",
        f"Start and reload with {largest:,} shops (none due), once the first start "
        f"after an upgrade (reading {largest:,} state files of version 2, "
        f"{upgraded * 1000:.0f} ms to READY=1) and its clean stop saved every state as "
        f"the measured tree writes it: medians of "
        f"{plan.steady_start_runs} runs, floor and pulsed alternated; READY ms — pulsed: "
        f"{in_ms(started)}, floor: {in_ms(floor_started)}; SIGHUP to the next READY=1 "
        f"after RELOADING=1, sent once the start's work was done (under 10 ms of "
        f"CPU in 0.5 s): {in_ms(reloads)}; SIGTERM to the process's exit: "
        f"{in_ms(stops)}.",
    ]
    return [section]
