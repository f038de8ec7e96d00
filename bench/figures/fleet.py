"""Figure 9: the fleet's requests per minute through a one-hour receiver outage.

``bench/fleet.py`` runs 10,000 shops' real cycles on an injected clock, in a
process of its own on the measured tree, once per seed; this reads its JSON and
shows each figure's median over the seeds against the steady state.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess

from _harness import PYTHON, REPO, Bench
from _report import Row, Section, verdict


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("9. The fleet through a receiver outage")
    argv = [PYTHON, str(REPO / "bench" / "fleet.py"), "--json"]
    for seed in plan.fleet_seeds:
        argv += ["--seed", str(seed)]
    env = dict(os.environ, PULSED_BENCH_TREE=str(bench.tree))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    got = json.loads(done.stdout)
    seeds: list[int] = got["seeds"]
    by_label: dict[str, list[float]] = {}
    targets: dict[str, float | None] = {}
    for run in got["figures"]:
        for fig in run:
            by_label.setdefault(fig["label"], []).append(fig["value"])
            targets[fig["label"]] = fig["target"]
    for label, values in by_label.items():
        target = targets[label]
        middle = statistics.median(values)
        spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
        section.rows.append(
            Row(
                f"9 fleet requests/min, {label}",
                f"{middle:.2f}×{spread}",
                "steady state",
                f"{middle:.2f}×",
                f"≤ {target:g}×" if target is not None else "info",
                verdict(middle <= target) if target is not None else "info",
            )
        )
    section.notes += [
        f"`bench/fleet.py` (runs alone too), seeds {', '.join(map(str, seeds))}: each row "
        f"shows the median over the seeds and, in brackets, the range. A minute's count "
        f"of about 170 requests varies by some 8 % by chance alone (see the steady hour's "
        f"busiest minute), so the busiest minute of an hour sits above the mean by that.",
        *got["notes"][0],
    ]
    over = [
        f"seed {seed}: {label} {values[i]:.2f}× > {targets[label]:g}×"
        for label, values in by_label.items()
        for i, seed in enumerate(seeds)
        if targets[label] is not None and values[i] > (targets[label] or 0)
    ]
    if over:
        section.notes.append("Single seeds over their target: " + "; ".join(over) + ".")
    return [section]
