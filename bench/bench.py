"""``make bench``: pulsed's footprint and speed, side by side with baselines (issues 4, 9).

One run measures ten figures on this machine, each against a baseline run in the
same invocation, prints one table (figure, pulsed, baseline, ratio, target,
verdict) and writes ``bench/results.md`` with the machine, the versions, the
table and how each figure was taken. Each figure is a module of ``bench/figures/``,
named as ``--only`` names it, run in this order:

- ``idle``: 1. idle memory (RSS, PSS) of ``pulsed run`` after its first heartbeat,
  identity fetched, against the floor process (``bench/floor.py``) and the naive
  design; 2. idle wake-ups (context switches of every thread) without and with a
  watchdog;
- ``cpu``: 3. CPU per heartbeat with the identity cached, against ``curl`` sending
  the same signed bytes;
- ``deadline``: 4. the delivery deadline under six receiver faults, at the receiver
  and at the client, against ``curl -m 2 --retry 2``;
- ``start``: 5. start-up to ``READY=1`` and to the first accepted heartbeat, against
  the floor;
- ``scale``: 6. the memory of 1, 10 and 50 daemons on one host, against as many floors;
- ``shops``: 7. one daemon serving 1, 10, 50 and 200 shops (``[shops.<name>]``): its
  memory against one floor, its idle wake-ups, its start to ``READY=1`` against the
  floor's, and its CPU per heartbeat per shop against one ``curl`` run;
- ``identity``: 8. the CPU of one identity round for 50 tokens against one for 1 token;
- ``fleet``: 9. the fleet: 10,000 shops' real cycles through a one-hour receiver
  outage (``bench/fleet.py``), requests per minute against the steady state;
- ``steady``: 10. the steady state a host lives in: 200, 1,000 and 2,000 shops with
  a week of history each, their own secrets, the status and metrics files on and
  shops due one at a time: CPU per heartbeat against the I/O floor
  (``bench/io_floor.py``, measured in the same run), memory, start and reload.

Figures 1–9 measure a host on its first hour (empty histories, shops due together,
one shared secret, no status file); figure 10 measures the hours after.

This file is the harness alone: the arguments, the order, the table and the file.
What the figures share is in ``_harness.py`` (the plan, the local servers, the
daemon and floor processes), ``_measure.py`` (what is read off ``/proc``) and
``_report.py`` (the rows, the table, the results file). They are plain modules
found through this script's folder on ``sys.path``, not a package, because the
workers beside them (``floor.py``, ``deliver.py``, ``identity_round.py``,
``fleet.py``) run as scripts of their own, on the measured tree.

Everything runs on 127.0.0.1 against the devtools servers. Nothing here asserts a
timing in ``make test``; a missed target is a FAIL row and a note, never an
exception. ``--tree DIR`` measures another checkout of pulsed (e.g. one with a
proposed fix) with the same harness; ``--quick`` shortens every window for
working on the harness itself (its numbers are not the benchmark's).

One figure: ``python bench/bench.py --only NAME`` (repeatable), or ``make bench
BENCH_ONLY='NAME ...'``, runs ``idle`` and NAME (every figure starts from the
identity the ``idle`` daemon fetched) and prints the table; ``bench/results.md``
keeps the full run unless ``--out FILE`` names where to write. With ``--quick``
that is the fastest check that a figure still runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# The harness and the figures import devtools, tests and pulsed; this runs as a
# script, so bench/ is on sys.path and the repository is not.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from _harness import QUICK, REPO, Bench, Plan  # noqa: E402
from _measure import load_average  # noqa: E402
from _report import Row, Section, busy_warning, render_table, report  # noqa: E402
from figures import cpu, deadline, fleet, identity, idle, scale, shops, start, steady  # noqa: E402

FIGURES: dict[str, Callable[[Bench], list[Section]]] = {
    "idle": idle.measure,
    "cpu": cpu.measure,
    "deadline": deadline.measure,
    "start": start.measure,
    "scale": scale.measure,
    "shops": shops.measure,
    "identity": identity.measure,
    "fleet": fleet.measure,
    "steady": steady.measure,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tree", type=Path, default=REPO, help="the pulsed checkout to measure")
    parser.add_argument(
        "--out", type=Path, help="where to write the results (default: bench/results.md)"
    )
    parser.add_argument("--quick", action="store_true", help="short windows; not for the record")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(FIGURES),
        help="run only these figures ('idle', figures 1 and 2, always runs: the others "
        "start from the state it leaves) and print them; nothing is written without --out",
    )
    args = parser.parse_args(argv)
    # A partial run must not replace the record of a full one by accident.
    out: Path | None = args.out or (None if args.only else REPO / "bench" / "results.md")
    plan = QUICK if args.quick else Plan()
    started = time.monotonic()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="pulsed-bench-") as scratch:
        bench = Bench(args.tree.resolve(), plan, Path(scratch))
        try:
            bench.warm_up()
            for name, run in FIGURES.items():
                if args.only and name != "idle" and name not in args.only:
                    continue
                print(f"bench: {name} …", file=sys.stderr, flush=True)
                bench.loads[name] = load_average()
                try:
                    sections += run(bench)
                except Exception as exc:  # one broken figure must not cost the others
                    if name == "idle":
                        raise  # every other figure starts from its state
                    failed = Section(f"{name}: could not be measured")
                    failed.rows.append(Row(name, "error", "—", "—", "—", "FAIL"))
                    failed.notes.append(f"{type(exc).__name__}: {exc}")
                    sections.append(failed)
        finally:
            bench.close()
    elapsed = time.monotonic() - started
    rows = [r for s in sections for r in s.rows]
    print(render_table(rows, markdown=False))
    bench.loads["end"] = load_average()
    if out is None:
        print(f"\n{len(rows)} rows in {elapsed:.0f} s; not written (--only without --out)")
    else:
        out.write_text(report(sections, bench, elapsed, args.quick))
        print(f"\n{len(rows)} rows in {elapsed:.0f} s; written to {out}")
    warning = busy_warning(bench.loads)
    if warning:
        print(f"warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
