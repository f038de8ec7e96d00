"""What a write of the status file and the textfile costs after one shop's cycle.

Builds 200 and 2,000 shops (``--shops``), each with a full history of 168 deliveries
(one in ten failed), then times, per write, what the daemon does after a cycle: the
changed shop's pieces made again (:meth:`pulsed._publish.Publisher.update`) and both
files written (:meth:`~pulsed._publish.Publisher.write`). A tree older than the
Publisher (``$PULSED_BENCH_TREE``, e.g. a ``git archive`` of an older commit) is
timed the way it worked then: :func:`pulsed._publish.publish` of every shop.
``--fsync`` also times the public files written with :func:`pulsed._files.write_at`'s
two fsyncs, as before they were dropped, each run of one kind followed by one of the
other so both see the same load. The files go to a new folder under ``--folder``
(``/dev/shm`` by default: tmpfs, like the units' ``/run``).

Prints, per size (and kind), the median and the least of ``--runs`` runs (7) of the
process's CPU time (user and system) per write, the median wall time, and the files'
size. Run as ``python bench/publish_cost.py [--folder DIR] [--fsync] [--shops N ...]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

# The checkout whose writer is timed: this one, or the one $PULSED_BENCH_TREE names.
TREE = os.environ.get("PULSED_BENCH_TREE") or str(Path(__file__).resolve().parent.parent)
if TREE not in sys.path:
    sys.path.insert(0, TREE)

from pulsed import _files, _publish  # noqa: E402 -- needs the tree on sys.path
from pulsed import _state as st  # noqa: E402
from pulsed._status import ShopView  # noqa: E402

NOW = 1_800_000_000.0
HOUR = 3600.0


def week(offset: float) -> st.State:
    """168 hourly deliveries ending ``offset`` seconds before NOW, one in ten failed."""
    state = st.State(identity=st.Identity("acme_shop_bot", NOW - 5 * HOUR, "fp"))
    for i in range(168):
        at = NOW - offset - (167 - i) * HOUR
        if i % 10 == 0:
            state = st.failed(
                state, at, "status: HTTP 503", 503, at + 300, reason="status", attempts=3, elapsed=2
            )
        else:
            state = st.succeeded(state, at, 200, at + HOUR, attempts=1, elapsed=0.312)
    return state


@dataclass
class Host:
    """``count`` shops, and the files they are written to; each write follows one cycle."""

    count: int
    folder: Path

    def __post_init__(self) -> None:
        self.views = [
            ShopView(f"shop{i:05d}", f"shop{i}.example", week(i), NOW + 600 + i)
            for i in range(self.count)
        ]
        # Up to 50 shops take turns, each between two states: every write has a change.
        self.turns = [
            (
                v,
                replace(
                    v, state=st.succeeded(v.state, NOW, 200, NOW + HOUR, attempts=1, elapsed=0.2)
                ),
            )
            for v in self.views[:50]
        ]
        self.status, self.metrics = self.folder / "status.json", self.folder / "pulsed.prom"
        self.publisher = None
        if hasattr(_publish, "Publisher"):
            self.publisher = _publish.Publisher(
                status_file=self.status,
                metrics_file=self.metrics,
                version="0.9.0",
                clock=lambda: NOW,
            )
            self.publisher.sync(self.views)

    def cycle_then_write(self, k: int) -> None:
        turn = k % len(self.turns)
        changed = self.turns[turn][(k // len(self.turns)) % 2]
        if self.publisher is not None:
            self.publisher.update([changed])
            self.publisher.write()
            return
        self.views[turn] = changed
        _publish.publish(
            self.views, NOW, status_file=self.status, metrics_file=self.metrics, version="0.9.0"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--folder", default="/dev/shm")  # noqa: S108 -- tmpfs, as /run
    parser.add_argument("--shops", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    unsynced = getattr(_files, "replace_at", _files.write_at)  # none in an older tree
    kinds = {"": unsynced, " (fsync)": _files.write_at} if args.fsync else {"": unsynced}
    for count in args.shops:
        host = Host(count, Path(tempfile.mkdtemp(dir=args.folder)))
        host.cycle_then_write(0)
        reps = max(2, 4000 // count)
        cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
        wall: dict[str, list[float]] = {kind: [] for kind in kinds}
        for run in range(args.runs):
            for kind, writer in kinds.items():  # alternated, so both see the same load
                _files.replace_at = writer
                started, began = time.process_time(), time.perf_counter()
                for k in range(reps):
                    host.cycle_then_write(run * reps + k)
                cpu[kind].append((time.process_time() - started) / reps * 1000)
                wall[kind].append((time.perf_counter() - began) / reps * 1000)
        size = host.status.stat().st_size + host.metrics.stat().st_size
        for kind in kinds:
            print(
                f"{count} shops{kind}: CPU per write median {statistics.median(cpu[kind]):.2f} ms"
                f" (least {min(cpu[kind]):.2f}), wall median {statistics.median(wall[kind]):.2f}"
                f" ms; files {size / 1e6:.2f} MB"
            )


if __name__ == "__main__":
    main()
