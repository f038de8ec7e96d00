"""Figure 6: the memory of 1, 10 and 50 daemons on one host, against as many floors.

One ``pulsed run`` per shop, as the template unit ``pulsed@<shop>`` runs them,
summed over ``smaps_rollup``; the last step is held to figure 1's target.
"""

from __future__ import annotations

import time

from _harness import Bench, event_is, stop, wait_idle
from _measure import memory_kib
from _report import Row, Section, fmt_mib, ratio, verdict

from figures.idle import MEMORY_TARGET
from tests.support.process import Process


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("6. Many shops on one host")
    curves: dict[str, list[tuple[int, int, int]]] = {"pulsed": [], "floor": []}
    for who in ("pulsed", "floor"):
        running: list[Process] = []
        try:
            for n in plan.scale:
                new: list[Process] = []
                while len(running) + len(new) < n:
                    if who == "pulsed":
                        _, env = bench.site("scale", state=bench.cached_state(due_now=True))
                        new.append(bench.daemon(env))
                    else:
                        new.append(bench.floor())
                for child in new:
                    if who == "pulsed":
                        child.wait_line(event_is("heartbeat.sent"), timeout=300)
                        wait_idle(child)
                    else:
                        child.wait_line(lambda line: line.startswith("sent 200"), timeout=300)
                running += new
                time.sleep(plan.settle)
                sizes = [memory_kib(c.pid) for c in running]
                curves[who].append((n, sum(m.rss for m in sizes), sum(m.pss for m in sizes)))
        finally:
            for child in running:
                stop(child)
    for (n, _, p_pss), (_, _, f_pss) in zip(curves["pulsed"], curves["floor"], strict=True):
        last = n == plan.scale[-1]
        section.rows.append(
            Row(
                f"6 total PSS of {n} daemon(s)",
                fmt_mib(p_pss),
                f"{fmt_mib(f_pss)} ({n} floor)",
                ratio(p_pss, f_pss),
                f"≤ {MEMORY_TARGET}× floor" if last else "curve",
                verdict(p_pss <= MEMORY_TARGET * f_pss) if last else "info",
            )
        )
    (n0, _, p0), (n1, _, p1) = curves["pulsed"][0], curves["pulsed"][-1]
    (_, _, f0), (_, _, f1) = curves["floor"][0], curves["floor"][-1]
    each, floor_each = (p1 - p0) / (n1 - n0), (f1 - f0) / (n1 - n0)
    section.rows.append(
        Row(
            "6 each further daemon (PSS)",
            fmt_mib(each),
            f"{fmt_mib(floor_each)} (floor)",
            ratio(each, floor_each),
            "info",
            "info",
        )
    )
    table = ["| N | pulsed RSS sum | pulsed PSS sum | floor RSS sum | floor PSS sum |"]
    table.append("|---|---|---|---|---|")
    for (n, p_rss, p_pss), (_, f_rss, f_pss) in zip(curves["pulsed"], curves["floor"], strict=True):
        table.append(
            f"| {n} | {fmt_mib(p_rss)} | {fmt_mib(p_pss)} | {fmt_mib(f_rss)} | {fmt_mib(f_pss)} |"
        )
    section.notes += [
        f"N daemons, each with its own shop copy and state folder (identity cached, one "
        f"heartbeat each to the one receiver, then idle), as the template unit "
        f"`pulsed@<shop>` runs them; summed over `/proc/<pid>/smaps_rollup` "
        f"{plan.settle:g} s after the last one's heartbeat. Then as many floor "
        f"processes, measured the same way. RSS counts shared pages once per process; "
        f"PSS, which sums to what the host really pays, splits them.",
        "\n".join(table),
        f"A host pays about {fmt_mib(p0)} for the first shop and {fmt_mib(each)} for each "
        f"further one (the floor: {fmt_mib(floor_each)}): the interpreter and library "
        f"code pages are shared, the heap of each process is not.",
    ]
    return [section]
