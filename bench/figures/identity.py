"""Figure 8: the CPU of one identity round for 50 tokens, against one for 1 token.

Each round is the daemon's own, awaited in a fresh process
(``bench/identity_round.py``) against the Bot API stand-in; the two sizes
alternate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess

from _harness import PYTHON, REPO, Bench
from _report import Row, Section, ratio, verdict

from devtools.fake_telegram import FakeTelegram

IDENTITY_TARGET = 1.3


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("8. Identity round")
    many = plan.identity_tokens
    tokens = [f"{100001 + i}:BENCH-bot-token-{i:03d}" for i in range(many)]
    bots = {token: f"bench_shop_{i:03d}_bot" for i, token in enumerate(tokens)}
    costs: dict[int, list[float]] = {1: [], many: []}
    walls: dict[int, list[float]] = {1: [], many: []}
    env = dict(os.environ, PYTHONPATH=str(bench.tree))
    with FakeTelegram(valid_token=tokens[0], more_bots=bots) as telegram:
        for _ in range(plan.identity_runs):
            for n in (1, many):  # alternated, so a slow moment hits both alike
                request = {"tokens": tokens[:n], "api_base": telegram.url, "timeout": 10.0}
                done = subprocess.run(
                    [PYTHON, str(REPO / "bench" / "identity_round.py")],
                    input=json.dumps(request),
                    capture_output=True,
                    text=True,
                    cwd=bench.tree,
                    env=env,
                    check=True,
                )
                got = json.loads(done.stdout.splitlines()[-1])
                if got["answered"] != n:
                    raise RuntimeError(f"identity round of {n}: {got['answered']} answered")
                costs[n].append(got["cpu"])
                walls[n].append(got["wall"])
    one, all_ = statistics.median(costs[1]), statistics.median(costs[many])
    section.rows += [
        Row(
            f"8 CPU of one identity round, {many} tokens vs 1",
            f"{all_:.2f} s",
            f"{one:.2f} s (1 token)",
            ratio(all_, one),
            f"≤ {IDENTITY_TARGET:g}×",
            verdict(all_ <= IDENTITY_TARGET * one),
        )
    ]

    def shown(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    section.notes.append(
        f"`pulsed._identity.fetch_usernames` (the daemon's round: one "
        f"`pulsed._identity_child`, aiogram imported once, every `getMe` concurrent) "
        f"awaited in a fresh process (`bench/identity_round.py`) against the Bot API "
        f"stand-in answering {many} bots; the child's CPU from `getrusage(RUSAGE_CHILDREN)` "
        f"around the round. {plan.identity_runs} rounds each, alternated, medians. CPU s — "
        f"1 token: {shown(costs[1])}; {many} tokens: {shown(costs[many])}. Wall s — 1: "
        f"{shown(walls[1])}; {many}: {shown(walls[many])}. Paid once per 24 h for all shops."
    )
    return [section]
