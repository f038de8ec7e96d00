"""What a figure reads off a process: memory, context switches and CPU seconds.

Everything here comes from ``/proc`` or ``wait4`` and is returned as numbers; how
a number is shown and which target it meets are the figure's business.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Memory:
    """KiB from ``smaps_rollup``. RSS counts every resident page; PSS divides a shared
    page among the processes mapping it; USS is the private part alone, which no other
    process on the host can change."""

    rss: int
    pss: int
    uss: int


def memory_kib(pid: int) -> Memory:
    found: dict[str, int] = {}
    with Path(f"/proc/{pid}/smaps_rollup").open() as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                found[key] = int(rest.split()[0])
    return Memory(found["Rss"], found["Pss"], found["Private_Clean"] + found["Private_Dirty"])


def median_memory(got: list[Memory]) -> Memory:
    return Memory(
        int(statistics.median(m.rss for m in got)),
        int(statistics.median(m.pss for m in got)),
        int(statistics.median(m.uss for m in got)),
    )


def context_switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary switches per live thread (a sleeping thread's wake-ups)."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        total = 0
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
            out[int(task.name)] = total
    return out


def switches_since(before: dict[int, int], after: dict[int, int]) -> int:
    """The context switches since ``before`` of the threads alive then."""
    return sum(after.get(t, 0) - n for t, n in before.items())


def idle_beside(pid: int, baseline: int, seconds: float) -> tuple[int, int, int]:
    """Wake-ups of ``pid`` and of ``baseline`` over the same ``seconds``, and ``pid``'s
    threads at the end: (pid's, baseline's, threads)."""
    before = (context_switches(pid), context_switches(baseline))
    time.sleep(seconds)
    after = (context_switches(pid), context_switches(baseline))
    return switches_since(before[0], after[0]), switches_since(before[1], after[1]), len(after[0])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's utime+stime) of a process, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 3, so utime..cstime (14..17) sit at 11..14.
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def user_system(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process itself, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def run_measured(argv: Sequence[str], **popen: Any) -> tuple[int, float, float]:
    """Run to completion; (exit code, CPU seconds of that child alone, wall seconds).

    ``wait4`` gives the rusage of exactly this child, so a benchmark thread reaping
    something else at the same moment cannot leak into the number.
    """
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), **popen)
    _, wait_status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(wait_status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, wall


def load_average() -> float:
    """The 1-minute load average: how busy the machine was with everything else too."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def thread_cpu(pid: int) -> dict[int, float]:
    """Each live thread's time on a CPU so far, in seconds, to the nanosecond.

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms here): too coarse for a few
    milliseconds a heartbeat over a window of tens of heartbeats. The scheduler's own
    figure is exact, but per thread; :func:`cpu_between` sums it.
    """
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
    return out


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float | None:
    """The CPU seconds spent between two :func:`thread_cpu` readings; ``None`` when a
    thread alive at the first is gone at the second (its last share is lost then)."""
    if any(tid not in after for tid in before):
        return None
    return sum(seconds - before.get(tid, 0.0) for tid, seconds in after.items())


def settle(pid: int, window: float = 0.5, most: float = 0.010, timeout: float = 60.0) -> None:
    """Until ``pid`` spends under ``most`` CPU seconds in ``window``: a daemon past its
    start's work (the first status file, every shop's first look at its schedule),
    as an operator's SIGHUP finds it."""
    deadline = time.monotonic() + timeout
    before = sum(thread_cpu(pid).values())
    while time.monotonic() < deadline:
        time.sleep(window)
        now = sum(thread_cpu(pid).values())
        if now - before < most:
            return
        before = now
    raise RuntimeError(f"pid {pid} still busy after {timeout} s")
