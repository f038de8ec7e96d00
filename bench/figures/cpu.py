"""Figure 3: CPU per heartbeat with the identity cached, against ``curl``.

The daemon's utime+stime over a run of heartbeats, against one ``curl`` run that
sends the very bytes and headers the daemon sent last. Figure 7 compares its CPU
per shop with the same curl run (:func:`curl_cpu`).
"""

from __future__ import annotations

import statistics
import subprocess
import time

from _harness import Bench, event_is, stop
from _measure import cpu_seconds, run_measured
from _report import Row, Section, ratio, verdict

CPU_TARGET = 3.0


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("3. CPU per heartbeat, on the first hour (empty history)")
    _, env = bench.site("cpu", state=bench.cached_state(due_now=True), interval=1)
    daemon = bench.daemon(env)
    # The first cycles import what is imported lazily and warm the caches.
    warm = 3
    daemon.wait_line(event_is("heartbeat.sent"), count=warm, timeout=120)
    own0, kids0 = cpu_seconds(daemon.pid)
    t0 = time.monotonic()
    daemon.wait_line(event_is("heartbeat.sent"), count=warm + plan.cpu_cycles, timeout=300)
    own1, kids1 = cpu_seconds(daemon.pid)
    t1 = time.monotonic()
    refreshed = any(event_is("identity.refreshed")(line) for line in daemon.lines)
    stop(daemon)
    own = (own1 - own0) / plan.cpu_cycles
    kids = (kids1 - kids0) / plan.cpu_cycles

    # curl sends the very bytes the daemon sent last, with the same headers.
    argv, costs = curl_runs(bench, "curl", plan.curl_runs)
    curl = statistics.mean(costs)

    bench.curl_cpu = curl

    section.rows += [
        Row(
            "3 CPU per heartbeat, daemon process",
            f"{own * 1000:.1f} ms",
            f"{curl * 1000:.1f} ms (curl)",
            ratio(own, curl),
            f"≤ {CPU_TARGET:g}× curl",
            verdict(own <= CPU_TARGET * curl),
        ),
        Row(
            "3 … with its php child",
            f"{(own + kids) * 1000:.1f} ms",
            f"{curl * 1000:.1f} ms (curl)",
            ratio(own + kids, curl),
            "contrast",
            "info",
        ),
    ]
    section.notes += [
        f"`pulsed run` with the identity cached and `PULSED_INTERVAL=1`: utime+stime "
        f"from `/proc/<pid>/stat` read at `heartbeat.sent` #{warm} and "
        f"#{warm + plan.cpu_cycles}, divided by {plan.cpu_cycles} ({t1 - t0:.1f} s wall; identity "
        f"refreshed in this run: {refreshed}). The php child's CPU (`{bench.php} -r`, "
        f"reaped, so in cutime+cstime) is {kids * 1000:.1f} ms per cycle on top.",
        f"curl: `{' '.join(argv[:6])} -H … <receiver>/heartbeat` with the daemon's last "
        f"body and headers, {plan.curl_runs} runs after 2 warm-ups, CPU of each from "
        f"`wait4` (mean; runs in ms: {', '.join(f'{c * 1000:.1f}' for c in costs)}).",
        "The identity child's CPU is figure 8: one round, as the daemon runs it.",
    ]
    return [section]


def curl_cpu(bench: Bench) -> float:
    """One curl run's CPU, as figure 3 measured it (measured here when it did not run)."""
    if bench.curl_cpu is None:
        floor = bench.floor()
        floor.wait_line(lambda line: line.startswith("sent 200"), timeout=180)
        stop(floor)
        bench.curl_cpu = statistics.mean(curl_runs(bench, "curl-shops", 10)[1])
    return bench.curl_cpu


def curl_runs(bench: Bench, folder: str, runs: int) -> tuple[list[str], list[float]]:
    """The receiver's last request sent again by ``curl``, ``runs`` times after two
    warm-ups: (curl's argv, the CPU seconds of each run)."""
    sent = bench.receiver.server.requests[-1]
    body = bench.fresh_dir(folder) / "body.json"
    body.write_bytes(sent.body)
    argv = ["curl", "-sS", "--fail", "-o", "/dev/null", "--data-binary", f"@{body}"]
    for name in ("content-type", "user-agent", "x-pulse-signature", "x-megapay-version"):
        if name in sent.headers:
            argv += ["-H", f"{name}: {sent.headers[name]}"]
    argv.append(bench.receiver.url + "/heartbeat")
    costs = []
    for i in range(runs + 2):
        code, cpu, _ = run_measured(argv, stdin=subprocess.DEVNULL)
        if code != 0:
            raise RuntimeError(f"curl exited {code}: {argv}")
        if i >= 2:  # two warm-up runs fill the page cache for curl's libraries
            costs.append(cpu)
    return argv, costs
