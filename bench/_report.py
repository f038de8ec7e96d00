"""The table and the results file: a figure's rows and notes, and how they are written.

A figure returns :class:`Section` objects (its rows for the table, its notes for
``bench/results.md``); :func:`render_table` prints the rows, :func:`report` writes
the whole file, with the machine, the versions and the load the run saw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

from _harness import PYTHON, Bench


@dataclasses.dataclass
class Row:
    figure: str
    pulsed: str
    baseline: str
    ratio: str
    target: str
    verdict: str  # PASS, FAIL or "info" (a figure the issue asks for without a target)


@dataclasses.dataclass
class Section:
    """One figure's rows and the notes that say how it was measured and what it means."""

    title: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "—"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def wakeup_row(figure: str, woke: int, baseline: int, target: str) -> Row:
    """Wake-ups against the baseline's over the same window; none is the only PASS."""
    return Row(
        figure,
        str(woke),
        str(baseline),
        "—" if baseline == 0 else ratio(woke, baseline),
        target,
        verdict(woke == 0),
    )


def in_ms(seconds: list[float]) -> str:
    """Every run of a timing, for a note: whole milliseconds, in the order taken."""
    return ", ".join(f"{v * 1000:.0f}" for v in seconds)


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages = []
    for name in (
        "pulsed",
        "anyio",
        "httpx",
        "httpcore",
        "tenacity",
        "python-json-logger",
        "aiogram",
        "aiohttp",
    ):
        try:
            packages.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            packages.append(f"{name} (not installed)")

    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError:
            return "not found"
        return (done.stdout.splitlines() or ["?"])[0]

    mem_total = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        mem_total = f"{kib / 2**20:.1f} GiB"
    return [
        f"- CPU: {model}, {os.cpu_count()} cores; memory {mem_total}",
        f"- Kernel: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()} ({PYTHON})",
        f"- Packages: {', '.join(packages)}",
        f"- curl: {first_line(['curl', '--version'])}",
        f"- php: {first_line([shutil.which('php') or 'php', '-v'])}",
    ]


def render_table(rows: list[Row], markdown: bool) -> str:
    head = Row("figure", "pulsed", "baseline", "ratio", "target", "verdict")
    cells = [dataclasses.astuple(r) for r in [head, *rows]]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def busy_warning(loads: dict[str, float]) -> str | None:
    """A warning when the machine was busy before the run or before the start-up figure.

    Only those two readings count: a 1-minute load average read later is mostly the
    benchmark's own doing (figure 4's curls, figure 6's hundred processes).
    """
    cores = os.cpu_count() or 1
    busy = {k: v for k, v in loads.items() if k in ("run", "start", "shops start") and v > cores}
    if not busy:
        return None
    shown = ", ".join(f"{v:.1f} before {k}" for k, v in busy.items())
    return (
        f"The machine was busy ({shown}, on {cores} cores): wall-clock figures, start-up "
        f"above all (a process waits for a core in proportion to the CPU it needs), are "
        f"inflated. Run again on a quiet machine before trusting the start-up ratio; "
        f"memory, wake-ups and CPU seconds are not affected."
    )


def report(sections: list[Section], bench: Bench, elapsed: float, quick: bool) -> str:
    rows = [r for s in sections for r in s.rows]
    warning = busy_warning(bench.loads)
    loads = ", ".join(
        f"{v:.2f} {'at the end' if k == 'end' else 'before ' + k}" for k, v in bench.loads.items()
    )
    failed = [r.figure for r in rows if r.verdict == "FAIL"]
    out = [
        "# pulsed benchmark results",
        "",
        f"Written by `make bench` (`bench/bench.py`) on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {elapsed:.0f} s"
        + (" — QUICK MODE, not the benchmark's numbers" if quick else "")
        + f". Tree measured: `{bench.tree}`.",
        "",
        "## Machine",
        "",
        *machine(),
        f"- Load average (1 min): {loads}",
        "",
        "## Results",
        "",
        render_table(rows, markdown=True),
        "",
        ("Every target met." if not failed else "Missed: " + "; ".join(failed) + "."),
        *(["", f"**{warning}**"] if warning else []),
        "",
        "## How each figure was taken",
    ]
    for section in sections:
        out += ["", f"### {section.title}", ""]
        for note in section.notes:
            # A table or a block stands apart; bullets follow each other.
            out += ["", note, ""] if note.startswith(("|", "```")) else [f"- {note}"]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"
