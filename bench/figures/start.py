"""Figure 5: start-up to ``READY=1`` and to the first accepted heartbeat, against the floor.

Runs of pulsed and the floor alternate, so a slow moment of the machine hits both
alike. When the target is missed, the notes name the slowest imports and the
functions that spend their time.
"""

from __future__ import annotations

import re
import statistics
import subprocess

from _harness import CLI_MODULE, PYTHON, Bench, event_is, stop
from _report import Row, Section, in_ms, ratio, verdict

START_SLACK = 0.100


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("5. Start-up")
    ready: dict[str, list[float]] = {"pulsed": [], "floor": []}
    first: dict[str, list[float]] = {"pulsed": [], "floor": []}
    for _ in range(plan.start_runs):
        # Alternated, so a slow moment of the machine hits both alike.
        for who in ("floor", "pulsed"):
            notify = bench.notify_socket(f"start-{who}")
            seen = len(bench.receiver.server.requests)
            if who == "pulsed":
                _, env = bench.site("start", state=bench.cached_state(due_now=True))
                child = bench.daemon(env, notify)
            else:
                child = bench.floor(notify=notify)
            at = notify.wait_for("READY=1", timeout=60)
            request = bench.receiver.server.wait_for_requests(seen + 1, timeout=60)[seen]
            ready[who].append(at - child.started)
            first[who].append(request.received_at - child.started_wall)
            if who == "pulsed":
                child.wait_line(event_is("heartbeat.sent"), timeout=30)
            stop(child)
            notify.close()
    p_ready, f_ready = statistics.median(ready["pulsed"]), statistics.median(ready["floor"])
    p_first, f_first = statistics.median(first["pulsed"]), statistics.median(first["floor"])
    section.rows += [
        Row(
            "5 start to READY=1",
            f"{p_ready * 1000:.0f} ms",
            f"{f_ready * 1000:.0f} ms (floor)",
            ratio(p_ready, f_ready),
            f"≤ floor + {START_SLACK * 1000:.0f} ms",
            verdict(p_ready <= f_ready + START_SLACK),
        ),
        Row(
            "5 start to first heartbeat accepted",
            f"{p_first * 1000:.0f} ms",
            f"{f_first * 1000:.0f} ms (floor's POST)",
            ratio(p_first, f_first),
            "info",
            "info",
        ),
    ]

    section.notes += [
        f"Medians of {plan.start_runs} runs each, floor and pulsed alternated. Start is "
        f"just before `Popen`; READY=1 is the arrival of the datagram on the bound "
        f"`NOTIFY_SOCKET`; the heartbeat is the receiver's `received_at`. pulsed starts "
        f"with the identity cached and a heartbeat due. The floor says READY=1 once its "
        f"imports are done and its client is open, then POSTs.",
        f"READY ms — pulsed: {in_ms(ready['pulsed'])}; floor: {in_ms(ready['floor'])} "
        f"(fastest: {min(ready['pulsed']) * 1000:.0f} vs {min(ready['floor']) * 1000:.0f}; "
        f"load only ever adds, so the fastest runs are the least disturbed). "
        f"First heartbeat ms — pulsed: {in_ms(first['pulsed'])}; floor: "
        f"{in_ms(first['floor'])}.",
    ]
    if p_ready > f_ready + START_SLACK:
        over = (p_ready - f_ready - START_SLACK) * 1000
        section.notes += [
            f"Missed by {over:.0f} ms. Slowest imports of `{CLI_MODULE}` (self time, "
            f"`-X importtime`): {slow_imports(bench)}.",
            f"Where that time goes (cProfile of the import, top functions by own time): "
            f"{import_profile(bench)}. Meeting the target takes removing at least "
            f"{over:.0f} ms from what runs before READY=1: these are the places.",
        ]
    return [section]


def slow_imports(bench: Bench, top: int = 4) -> str:
    """``python -X importtime``'s biggest self times: which modules make a start slow."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {CLI_MODULE}"],
        cwd=bench.tree,
        capture_output=True,
        text=True,
        check=False,
    )
    found: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s+(\S.*)$", line)
        if match:
            found.append((int(match.group(1)), match.group(2).strip()))
    found.sort(reverse=True)
    return ", ".join(f"`{name}` {us / 1000:.0f} ms" for us, name in found[:top])


_PROFILE_IMPORT = """
import cProfile, pstats
profile = cProfile.Profile()
profile.enable()
import MODULE
profile.disable()
rows = sorted(pstats.Stats(profile).stats.items(), key=lambda kv: -kv[1][2])
for (path, line, name), (_, _, own, _, _) in rows[:TOP]:
    print(f"{own:.3f} {path.rsplit('/', 1)[-1]}:{line}({name})")
"""


def import_profile(bench: Bench, top: int = 3) -> str:
    """The functions that spend the import's time: *why* a module is slow to import."""
    done = subprocess.run(
        [PYTHON, "-c", _PROFILE_IMPORT.replace("TOP", str(top)).replace("MODULE", CLI_MODULE)],
        cwd=bench.tree,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [line.split(" ", 1) for line in done.stdout.splitlines() if " " in line]
    return ", ".join(f"`{where}` {float(own) * 1000:.0f} ms" for own, where in rows) or "?"
