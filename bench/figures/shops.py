"""Figure 7: one daemon serving 1, 10, 50 and 200 shops (``[shops.<name>]``).

Its memory against one floor, its idle wake-ups, its start to ``READY=1`` against
the floor's, and its CPU per heartbeat per shop against one ``curl`` run (figure
3's, or measured here when figure 3 did not run).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _harness import SECRET, TOKEN, Bench, due_in, event_is, stop, wait_idle
from _measure import (
    Memory,
    cpu_seconds,
    idle_beside,
    load_average,
    median_memory,
    memory_kib,
    user_system,
)
from _report import Row, Section, fmt_mib, in_ms, ratio, verdict, wakeup_row

from figures.cpu import curl_cpu
from tests.support.process import Process, event_of

# Issue 9: one daemon serving many shops.
SHOPS_MEMORY_TARGET = 1.25
SHOPS_START_SLACK = 0.150
SHOPS_CPU_TARGET = 0.5


class Host:
    """A hosting server's shops, served by one daemon (contract §10).

    Each shop is a copy of ``examples/shop`` with a domain of its own, listed as a
    ``[shops.<name>]`` table in one config file, with its heartbeat secret in the
    credential ``pulse_heartbeat_secret.<name>`` (the receiver's secret, so it accepts
    every shop) and its state under ``<state_dir>/shops/<name>/``. All shops share the
    bot token (from the environment) and one stub php that prints a fixed version, as
    shops on one host share a php binary.
    """

    def __init__(self, bench: Bench, shops: int) -> None:
        self.bench = bench
        self.home = bench.fresh_dir(f"host-{shops}")
        self.names = [f"shop{i:03d}" for i in range(shops)]
        self.credentials = self.home / "credentials"
        self.state_dir = self.home / "state"
        for folder in (self.credentials, self.state_dir):
            folder.mkdir(mode=0o700)
        for name in self.names:
            shutil.copytree(bench.tree / "examples" / "shop", self.home / "shops" / name)
            secret = self.credentials / f"pulse_heartbeat_secret.{name}"
            secret.write_text(SECRET + "\n")
            secret.chmod(0o600)
        self.config = self.home / "pulsed.toml"
        self.php = self.home / "php"
        self.php.write_text("#!/bin/sh\nprintf '%s' '8.2.7'\n")
        self.php.chmod(0o755)

    def serve(self, names: Sequence[str], state: Callable[[str], dict[str, Any]]) -> None:
        """List ``names`` in the config file and give each the state ``state(name)``."""
        lines = [
            "[pulse]",
            f"api_host = {json.dumps(self.bench.receiver.url)}",
            "[telegram]",
            f"api_base = {json.dumps(self.bench.telegram.url)}",
            "[daemon]",
            f"state_dir = {json.dumps(str(self.state_dir))}",
            "interval = 3600",
        ]
        for name in names:
            lines += [
                f"[shops.{name}]",
                f"root = {json.dumps(str(self.home / 'shops' / name))}",
                f'domain = "{name}.bench.example"',
                f"php_binary = {json.dumps(str(self.php))}",
            ]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)
        for name in names:
            folder = self.state_dir / "shops" / name
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / "state.json"
            path.write_text(json.dumps(state(name)))
            path.chmod(0o600)

    def env(self) -> dict[str, str]:
        return host_env(self.config, self.credentials)


def host_env(config: Path, credentials: Path) -> dict[str, str]:
    """The environment of a daemon serving the shops of ``config``, its secrets in
    ``credentials``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PULSED_CONFIG": str(config),
        "CREDENTIALS_DIRECTORY": str(credentials),
        "TELEGRAM_BOT_TOKEN": TOKEN,
    }


def sent_count(child: Process) -> int:
    return sum(1 for line in child.lines if event_is("heartbeat.sent")(line))


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section(
        "7. Many shops in one daemon, on their first hour (empty histories, one secret)"
    )
    largest = max(plan.shops_scale)
    host = Host(bench, largest)

    # 7a/7e: one daemon per N, the floor idling beside it for the whole curve.
    floor = bench.floor("floor")
    floor.wait_line(lambda line: line.startswith("sent 200"), timeout=180)
    curve: list[tuple[int, Memory, Memory, float]] = []
    idle: tuple[int, int, int] | None = None
    refreshed = 0
    try:
        for n in plan.shops_scale:
            names = host.names[:n]
            host.serve(names, lambda _: bench.cached_state(due_now=True))
            seen = len(bench.receiver.accepted)
            daemon = bench.daemon(host.env())
            started = time.monotonic()
            daemon.wait_line(event_is("heartbeat.sent"), count=n, timeout=300)
            took = time.monotonic() - started
            wait_idle(daemon)
            refreshed += sum(1 for line in daemon.lines if event_is("identity.refreshed")(line))
            domains = {b.get("domain") for b in bench.receiver.accepted[seen:]}
            if len(domains) != n:
                raise RuntimeError(f"{n} shops, but the receiver accepted {len(domains)} domains")
            time.sleep(plan.settle)
            samples: list[tuple[Memory, Memory]] = []
            for _ in range(3):
                samples.append((memory_kib(daemon.pid), memory_kib(floor.pid)))
                time.sleep(0.5)
            curve.append(
                (
                    n,
                    median_memory([a for a, _ in samples]),
                    median_memory([b for _, b in samples]),
                    took,
                )
            )
            if n == largest:
                # Every shop just sent; the next is due an interval from now.
                idle = idle_beside(daemon.pid, floor.pid, plan.shops_idle_seconds)
            stop(daemon)
    finally:
        stop(floor)

    for n, p, f, _ in curve:
        last = n == largest
        section.rows.append(
            Row(
                f"7 total PSS, one daemon with {n} shop{'s' if n > 1 else ''}",
                fmt_mib(p.pss),
                f"{fmt_mib(f.pss)} (1 floor)",
                ratio(p.pss, f.pss),
                f"≤ {SHOPS_MEMORY_TARGET}× floor" if last else "curve",
                verdict(p.pss <= SHOPS_MEMORY_TARGET * f.pss) if last else "info",
            )
        )
    table = ["| shops | pulsed RSS | pulsed PSS | pulsed USS | floor PSS | all sent in |"]
    table.append("|---|---|---|---|---|---|")
    for n, p, f, took in curve:
        table.append(
            f"| {n} | {fmt_mib(p.rss)} | {fmt_mib(p.pss)} | {fmt_mib(p.uss)} | "
            f"{fmt_mib(f.pss)} | {took:.1f} s |"
        )
    (n0, p0, _, _), (n1, p1, _, _) = curve[0], curve[-1]
    per_shop = (p1.pss - p0.pss) / (n1 - n0) if n1 != n0 else 0.0
    section.notes += [
        f"One `pulsed run` per N, serving N shops listed as `[shops.<name>]` tables in "
        f"one config file (each a copy of `examples/shop` with its own `domain`, its "
        f"secret in the credential `pulse_heartbeat_secret.<name>`, all with one stub "
        f"php, all sending to the one receiver), every shop due at start "
        f"with its identity cached in its state (identity children run: {refreshed}). "
        f"Read {plan.settle:g} s after the N-th `heartbeat.sent` once the daemon had no "
        f"child, three times 0.5 s apart (medians), together with one floor process "
        f"started before the curve and idle beside it throughout.",
        "\n".join(table),
        f"Each further shop costs {per_shop:.0f} KiB of PSS in the one process (between "
        f"{n0} and {n1} shops); one `pulsed@<shop>` process per shop costs a whole "
        f"interpreter each (figure 6).",
    ]
    if idle is not None:
        woke, floor_woke, threads = idle
        section.rows.append(
            wakeup_row(
                f"7 wake-ups in {plan.shops_idle_seconds:g} s idle, {largest} shops",
                woke,
                floor_woke,
                "0 (nothing due)",
            )
        )
        section.notes.append(
            f"Wake-ups: the {largest}-shop daemon right after the memory reading, every "
            f"shop having just sent (next due in about 3600 s, so none in the window); "
            f"`ctxt_switches` of every thread ({threads} at the end) over "
            f"{plan.shops_idle_seconds:g} s, the floor over the same window as baseline. "
            f"Each shop's task sleeps until its own due time and nothing else is armed."
        )

    section.rows += shops_start_up(bench, host, section)
    section.rows += shops_cpu(bench, host, section)
    return [section]


def shops_start_up(bench: Bench, host: Host, section: Section) -> list[Row]:
    plan = bench.plan
    n = len(host.names)
    bench.loads["shops start"] = load_average()
    host.serve(host.names, lambda _: bench.cached_state(due_now=False))
    ready: dict[str, list[float]] = {"pulsed": [], "floor": []}
    for _ in range(plan.shops_start_runs):
        for who in ("floor", "pulsed"):
            notify = bench.notify_socket(f"shops-start-{who}")
            child = (
                bench.daemon(host.env(), notify) if who == "pulsed" else bench.floor(notify=notify)
            )
            at = notify.wait_for("READY=1", timeout=60)
            ready[who].append(at - child.started)
            stop(child)
            notify.close()
    p, f = statistics.median(ready["pulsed"]), statistics.median(ready["floor"])

    section.notes.append(
        f"Start-up: medians of {plan.shops_start_runs} runs each, floor and pulsed "
        f"alternated, from just before `Popen` to the `READY=1` datagram; the daemon "
        f"reads the config with {n} `[shops.*]` tables, {n} credentials and {n} state "
        f"files (none due). READY ms — pulsed: {in_ms(ready['pulsed'])}; floor: "
        f"{in_ms(ready['floor'])} (load average before: {bench.loads['shops start']:.2f})."
    )
    return [
        Row(
            f"7 start to READY=1, {n} shops",
            f"{p * 1000:.0f} ms",
            f"{f * 1000:.0f} ms (floor)",
            ratio(p, f),
            f"≤ floor + {SHOPS_START_SLACK * 1000:.0f} ms",
            verdict(p <= f + SHOPS_START_SLACK),
        )
    ]


def shops_cpu(bench: Bench, host: Host, section: Section) -> list[Row]:
    plan = bench.plan
    warm = plan.shops_cpu_warm
    measured = len(host.names) - warm
    curl = curl_cpu(bench)
    # A few shops due at once warm the daemon (its lazy imports, php's version, the
    # connection pool); the rest are due together a little later: those are measured.
    later = plan.shops_cpu_delay
    warm_names = set(host.names[:warm])
    host.serve(
        host.names,
        lambda name: (
            bench.cached_state(due_now=True) if name in warm_names else due_in(bench, later)
        ),
    )
    daemon = bench.daemon(host.env())
    try:
        daemon.wait_line(event_is("heartbeat.sent"), count=warm, timeout=120)
        wait_idle(daemon)
        own0, kids0 = cpu_seconds(daemon.pid)
        user0, sys0 = user_system(daemon.pid)
        if sent_count(daemon) != warm:
            raise RuntimeError(
                f"the measured shops were due before the warm-up ended ({later:g} s)"
            )
        t0 = time.monotonic()
        daemon.wait_line(event_is("heartbeat.sent"), count=warm + measured, timeout=300)
        own1, kids1 = cpu_seconds(daemon.pid)
        user1, sys1 = user_system(daemon.pid)
        t1 = time.monotonic()
        asked = sum(
            1 for line in daemon.lines if event_of(line).get("event") == "collect.unavailable"
        )
    finally:
        stop(daemon)
    own = (own1 - own0) / measured
    kids = (kids1 - kids0) / measured
    section.notes.append(
        f"CPU per heartbeat per shop: one daemon with {len(host.names)} shops (identity "
        f"cached), {warm} due at start to warm it, {measured} due together {later:g} s "
        f"later; utime+stime from `/proc/<pid>/stat` read once the warm-up had sent and "
        f"again after the {measured}-th more `heartbeat.sent`, divided by {measured} "
        f"({t1 - t0:.1f} s wall including the wait for the due time). php was asked its "
        f"version during the warm-up only: children's CPU in the window "
        f"{(kids1 - kids0) * 1000:.0f} ms in all ({kids * 1000:.2f} ms per heartbeat); "
        f"`collect.unavailable` lines: {asked}. Of the daemon's own CPU per heartbeat, "
        f"{(user1 - user0) / measured * 1000:.1f} ms is user time and "
        f"{(sys1 - sys0) / measured * 1000:.1f} ms system time (the kernel's side of its "
        f"connection, its log lines and its two state saves). Baseline: one `curl` "
        f"run's CPU ({curl * 1000:.1f} ms, as in figure 3)."
    )
    return [
        Row(
            "7 CPU per heartbeat per shop, php version cached",
            f"{own * 1000:.1f} ms",
            f"{curl * 1000:.1f} ms (curl)",
            ratio(own, curl),
            f"≤ {SHOPS_CPU_TARGET:g}× curl",
            verdict(own <= SHOPS_CPU_TARGET * curl),
        )
    ]
