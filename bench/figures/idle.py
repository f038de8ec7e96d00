"""Figures 1 and 2: idle memory, and idle wake-ups without and with a watchdog.

1. the memory (RSS, PSS) of ``pulsed run`` after its first heartbeat, identity
   fetched, against the floor process (``bench/floor.py``) and the naive design;
2. the context switches of every thread of the same daemon while idle, then of a
   second one fed a watchdog.

One module because figure 2 reads the very daemon figure 1 measured. Every other
figure starts from the identity that daemon fetched (``bench.identity_state``), so
the harness always runs this one first.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from _harness import Bench, event_is, stop, wait_idle
from _measure import (
    Memory,
    context_switches,
    idle_beside,
    median_memory,
    memory_kib,
    switches_since,
)
from _report import Row, Section, fmt_mib, ratio, verdict, wakeup_row

MEMORY_TARGET = 1.25
WATCHDOG_USEC = 10_000_000


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    mem = Section("1. Idle memory")
    wake = Section("2. Idle wake-ups")

    # The three run side by side and are read at the same moment: PSS depends on who
    # else maps the same files (libpython, libssl), and on a shared machine that set
    # changes from minute to minute, so only a simultaneous reading is a fair ratio.
    floor = bench.floor("floor")
    naive = bench.floor("naive")
    notify = bench.notify_socket("idle")
    _, env = bench.site("idle")
    daemon = bench.daemon(env, notify)
    for child in (floor, naive):
        child.wait_line(lambda line: line.startswith("sent 200"), timeout=180)
    daemon.wait_line(event_is("heartbeat.sent"), timeout=180)
    refreshed = any(event_is("identity.refreshed")(line) for line in daemon.lines)
    wait_idle(daemon)
    time.sleep(plan.settle)
    samples: dict[str, list[Memory]] = {"pulsed": [], "floor": [], "naive": []}
    for _ in range(3):
        for name, child in (("pulsed", daemon), ("floor", floor), ("naive", naive)):
            samples[name].append(memory_kib(child.pid))
        time.sleep(0.5)
    stop(naive)
    state_file = Path(env["PULSED_STATE_DIR"]) / "state.json"
    bench.identity_state = json.loads(state_file.read_text())

    p, f, n = (median_memory(samples[name]) for name in ("pulsed", "floor", "naive"))
    mem.rows += [
        Row(
            "1 idle PSS",
            fmt_mib(p.pss),
            fmt_mib(f.pss),
            ratio(p.pss, f.pss),
            f"≤ {MEMORY_TARGET}× floor",
            verdict(p.pss <= MEMORY_TARGET * f.pss),
        ),
        Row(
            "1 idle RSS",
            fmt_mib(p.rss),
            fmt_mib(f.rss),
            ratio(p.rss, f.rss),
            f"≤ {MEMORY_TARGET}× floor",
            verdict(p.rss <= MEMORY_TARGET * f.rss),
        ),
        Row(
            "1 naive design (aiogram in-process) PSS",
            fmt_mib(n.pss),
            fmt_mib(f.pss),
            ratio(n.pss, f.pss),
            "contrast",
            "info",
        ),
    ]

    def show(m: Memory) -> str:
        return f"RSS {fmt_mib(m.rss)}, PSS {fmt_mib(m.pss)}, USS {fmt_mib(m.uss)}"

    mem.notes += [
        f"`pulsed run` (interval 3600 s, token set, empty state, `NOTIFY_SOCKET` set) "
        f"read {plan.settle:g} s after its first `heartbeat.sent`, once its children "
        f"had exited (identity fetched by the child in this run: {refreshed}): {show(p)}.",
        f"Floor: `bench/floor.py floor` imports anyio, httpx, tenacity and "
        f"python-json-logger, opens one `httpx.AsyncClient`, POSTs one signed heartbeat "
        f"to the same receiver and idles: {show(f)}.",
        f"Naive: the same plus `import aiogram` and one `getMe` through it: {show(n)}; "
        f"what the short-lived child spares the daemon from keeping.",
        "The three processes run side by side and are read together, three times 0.5 s "
        "apart (medians shown): PSS splits shared pages among whoever maps them, which on "
        "a shared host changes with other processes, so only a simultaneous reading gives "
        "a fair ratio. USS (private pages) does not depend on other processes: "
        f"pulsed/floor USS = {ratio(p.uss, f.uss)}.",
    ]

    # 2a: the same daemon, idle, no watchdog; the floor idles next to it as the baseline.
    woke, floor_woke, threads = idle_beside(daemon.pid, floor.pid, plan.idle_seconds)
    stop(floor)
    wake.rows.append(
        wakeup_row(f"2 wake-ups in {plan.idle_seconds:g} s idle", woke, floor_woke, "0")
    )
    wake.notes.append(
        f"Sum of `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` over "
        f"`/proc/<pid>/task/*/status` (threads in the daemon at the end: {threads}) across "
        f"{plan.idle_seconds:g} s, starting {plan.settle:g} s after the first heartbeat "
        f"(interval 3600 s, `NOTIFY_SOCKET` set, no `WATCHDOG_USEC`). Baseline: the "
        f"idle floor process over the same window."
    )
    if woke:
        wake.notes += [
            "Where the wake-ups come from: `strace -f -tt -p <pid>` for 10 s, first lines:",
            "```\n" + strace_excerpt(daemon.pid) + "\n```",
        ]
    stop(daemon)
    notify.close()

    # 2b: a daemon that is not due, with the watchdog at 10 s (a ping every 5 s).
    notify = bench.notify_socket("watchdog")
    _, env = bench.site("watchdog", state=bench.cached_state(due_now=False))
    daemon = bench.daemon(env, notify, WATCHDOG_USEC=str(WATCHDOG_USEC))
    ready = notify.wait_for("READY=1", timeout=30)
    period = WATCHDOG_USEC / 2e6
    # Start half a period after a ping, so the window's edges never cut one in two.
    ping = notify.wait_for("WATCHDOG=1", after=ready, timeout=3 * period)
    time.sleep(max(0.0, ping + period / 2 - time.monotonic()))
    start = time.monotonic()
    counts = context_switches(daemon.pid)
    time.sleep(plan.watchdog_seconds)
    later = context_switches(daemon.pid)
    end = time.monotonic()
    pings = notify.count("WATCHDOG=1", start, end)
    stop(daemon)
    notify.close()
    woke = switches_since(counts, later)
    expected = plan.watchdog_seconds / period
    wake.rows.append(
        Row(
            f"2 wake-ups in {plan.watchdog_seconds:g} s, watchdog {WATCHDOG_USEC // 10**6} s",
            f"{woke} ({pings} pings)",
            f"{expected:g} pings",
            ratio(woke, expected),
            f"≈ 1 per {period:g} s, nothing else",
            verdict(woke <= pings and abs(pings - expected) <= 1),
        )
    )
    wake.notes.append(
        f"A daemon started with the identity cached and not due, `WATCHDOG_USEC="
        f"{WATCHDOG_USEC}`; the window opens half a period after a `WATCHDOG=1`. "
        f"PASS when the wake-ups are no more than the pings received in the window."
    )
    return [mem, wake]


def strace_excerpt(pid: int, seconds: float = 10.0) -> str:
    """A few lines of what the daemon does while it should sleep, for the report."""
    strace = shutil.which("strace")
    if strace is None:
        return "(strace is not installed: `apt-get install -y strace` to see the source)"
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        tracer = subprocess.Popen(
            [strace, "-f", "-tt", "-o", out.name, "-p", str(pid)], stderr=subprocess.DEVNULL
        )
        time.sleep(seconds)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
        lines = out.read().splitlines()
    return "\n".join(lines[:20]) or "(nothing traced)"
