"""``make soak``: issue 5's scenarios at full size, with figures, into docs/reliability.md.

The scenarios live in ``tests/support/scenarios/``; the fast tests in
``tests/test_reliability_*.py`` run them with small counts, here they run with large
ones: SIGKILL across hundreds of state writes, a storm of restarts, every receiver,
Bot API, shop-file, clock, disk and configuration fault in repeated rounds, and the
define() and composer parsers under hypothesis with 10,000 examples per property. Every
scenario ends with the secrets scan (logs, state files, what each child process was
given).

"Month in an hour" runs one daemon for 200 shops at a 1 s interval against a
receiver that is up and down by turns, until ``--month-beats`` deliveries (a million by
default), and judges its RSS, descriptors and threads. A million take about 85 minutes
at 200 a second, more than this run's 15, so a plain run lists the row as not run, and
says so; ``make soak-month`` (``--only month``) runs it alone, ``--month-beats N``
runs it at N within the whole soak, and ``--quick`` at 20,000.

Each scenario prints a line as it finishes; at the end a table is printed and, when
every scenario ran at full size (no ``--only``, no ``--quick``), written to
``docs/reliability.md`` (the figures of this very run): a partial run leaves the page
to the last whole one. The exit status is 1 if any scenario failed. Randomness is
seeded (``--seed``).

    python soak/soak.py [--seed N] [--examples N] [--quick] [--only NAME ...]
                        [--month-beats N] [--no-doc]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pytest  # noqa: E402

from pulsed._version import __version__  # noqa: E402
from tests.support.lab import Lab, can_mount  # noqa: E402
from tests.support.scan import TOTALS  # noqa: E402
from tests.support.scenarios import (  # noqa: E402
    clock,
    config,
    disk,
    faults,
    hostile,
    month,
    restarts,
    shopfiles,
    telegram,
)

DOC = REPO / "docs" / "reliability.md"
MONTH_SHOPS = 200
MONTH_BEATS = 1_000_000
MONTH_QUICK_BEATS = 20_000
MONTH_RSS_LIMIT_KIB = 1024
# Seconds the receiver is up, down, and between two looks at the daemon, by --quick.
MONTH_PACE = {False: (45, 15, 5), True: (20, 10, 2)}
GIT = shutil.which("git") or "git"


@dataclass
class Row:
    """One scenario of the report."""

    name: str
    held: str
    runs: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def result(self) -> str:
        if self.failures:
            return f"**FAILED** ({len(self.failures)} of {self.runs})"
        return "held" if self.runs else "not run"


Job = tuple[str, Callable[[Lab], Any]]


class Soak:
    def __init__(self, seed: int, workers: int, scratch: Path, rounds: int) -> None:
        self.seed = seed
        self.workers = workers
        self.scratch = scratch
        self.rounds = rounds
        self.rows: list[Row] = []
        self._labs = 0

    def tmp(self, label: str) -> Path:
        self._labs += 1
        path = self.scratch / f"{self._labs:04d}-{re.sub(r'[^A-Za-z0-9.-]+', '-', label)[:60]}"
        path.mkdir()
        return path

    def in_lab(self, label: str, work: Callable[[Lab], Any]) -> Any:
        with Lab(self.tmp(label)) as lab:
            return work(lab)

    def jobs(self, row: Row, jobs: Iterable[Job]) -> list[Any]:
        """Run independent jobs, ``workers`` at a time; count, keep figures and failures."""
        results: list[Any] = []
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            futures = {pool.submit(self.in_lab, label, work): label for label, work in jobs}
            for future in concurrent.futures.as_completed(futures):
                label = futures[future]
                row.runs += 1
                try:
                    results.append(future.result())
                except pytest.skip.Exception as skip:
                    row.runs -= 1
                    row.skipped.append(f"{label}: {skip.msg}")
                except Exception as exc:  # noqa: BLE001 -- a failed run is reported, not fatal
                    row.failures.append(f"{label}: {_short(exc)}")
        return results

    def scenario(self, name: str, held: str, body: Callable[[Row], None]) -> Row:
        row = Row(name, held)
        start = time.monotonic()
        print(f"== {name} ...", flush=True)
        try:
            body(row)
        except Exception as exc:  # noqa: BLE001 -- reported in the table
            row.runs = max(row.runs, 1)
            row.failures.append(_short(exc))
            traceback.print_exc()
        row.seconds = time.monotonic() - start
        self.rows.append(row)
        figures = ", ".join(f"{k}: {v}" for k, v in row.figures.items())
        print(f"   {row.result}: {row.runs} runs in {row.seconds:.0f} s; {figures}", flush=True)
        for failure in row.failures:
            print(f"   FAILED {failure}", flush=True)
        return row


def month_in_an_hour(soak: Soak, row: Row, beats: int | None, quick: bool) -> None:
    if beats is None:
        row.skipped.append(
            "not run: a million deliveries take about 85 min at 200 a second, more than this "
            "run's 15; `make soak-month` runs it alone, `make soak MONTH_BEATS=N` within the "
            "soak (docs/testing.md)"
        )
        return
    up, down, every = MONTH_PACE[quick]
    figures = soak.in_lab(
        "month",
        lambda lab: month.month(
            lab,
            shops=MONTH_SHOPS,
            beats=beats,
            ok_seconds=up,
            failing_seconds=down,
            sample_every=every,
            rss_limit_kib=MONTH_RSS_LIMIT_KIB,
        ),
    )
    row.runs = 1
    if figures.problems:
        row.failures.append("; ".join(figures.problems))
    tally = figures.tally
    warm = figures.warm
    time_share, beats_share = figures.failing_share
    age, oldest = figures.status_ages

    def ends(what: str) -> str:
        (first, last), (low, high) = figures.ends(what), figures.spread(what)
        held = "open throughout" if what == "fds" else "the most before, the fewest after"
        return (
            f"{first} / {last} (first {month.FLAT_WINDOW} and last {month.FLAT_WINDOW} looks, "
            f"{held}: {' / '.join(map(str, figures.compared(what)))}; {low}–{high} at any look)"
        )

    row.figures = {
        "shops, interval": f"{figures.shops}, {figures.interval:g} s",
        "deliveries (sent + failed)": f"{figures.beats:,} of {beats:,} asked "
        f"({figures.sent:,} sent, {figures.failed:,} failed) in {figures.seconds / 60:.1f} min",
        "heartbeats per second": f"{figures.rate:.0f} (200 phases {figures.rate_of('ok'):.0f}, "
        f"503 {figures.rate_of('503'):.0f}, refused {figures.rate_of('refused'):.0f})",
        "failing phases' share": f"{time_share:.0%} of the time, {beats_share:.0%} of the "
        "deliveries",
        "receiver": f"{tally.accepted:,} accepted ({tally.accepted - figures.sent} more than "
        f"the daemon counts sent), {tally.planned:,} attempts answered 503, "
        f"{sum(tally.rejected.values())} refused",
        "warm-up": f"{figures.warm_beats:,} deliveries, {warm[0].seconds:.0f} s",
        "RSS slope": f"{figures.slope_kib_per_10k:+.1f} KiB per 10k heartbeats",
        "RSS growth after warm-up": f"{figures.fitted_growth_kib:+.0f} KiB fitted, "
        f"{figures.sampled_growth_kib:+d} KiB first to last sample "
        f"({warm[0].rss_kib:,} → {warm[-1].rss_kib:,} KiB; limit {MONTH_RSS_LIMIT_KIB} KiB)",
        "open fds start / end": ends("fds"),
        "threads start / end": ends("threads"),
        "daemon CPU per heartbeat": f"{figures.cpu_ms_per_beat:.1f} ms",
        "status file's age at the looks": f"median {age:.0f} s, most {oldest:.0f} s",
        "state folder": f"{figures.state_bytes / 1024:,.0f} KiB in {figures.state_files} files",
        "samples after warm-up": f"{len(warm)}, every {every} s",
        "SIGTERM to exit": f"{figures.stop_seconds:.2f} s",
    }


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:400]


# --- the scenarios ---------------------------------------------------------------------------


def crash(soak: Soak, row: Row, kills: int, min_writes: int, daemons: int) -> None:
    figures = soak.in_lab(
        "crash",
        lambda lab: restarts.crash_consistency(
            lab, daemons=daemons, kills=kills, seed=soak.seed, min_writes=min_writes
        ),
    )
    row.runs = figures.kills
    row.figures = {
        "daemons side by side": figures.daemons,
        "SIGKILLs": figures.kills,
        "state writes seen (inotify)": figures.writes,
        "kills that hit a write (temp file left)": figures.mid_write,
        "kill points": dict(figures.where),
        "heartbeats stored": figures.heartbeats,
    }


def storm(soak: Soak, row: Row, count: int) -> None:
    figures = soak.in_lab(
        "storm", lambda lab: restarts.restart_storm(lab, restarts=count, seed=soak.seed)
    )
    row.runs = figures.restarts
    row.figures = {
        "restarts": figures.restarts,
        "SIGTERM / SIGKILL": f"{figures.sigterm} / {figures.sigkill}",
        "ended with the request in flight": figures.in_flight,
        "requests received": figures.requests,
        "heartbeats stored": figures.unique,
        "slowest exit after SIGTERM": f"{figures.slowest_sigterm_exit:.2f} s",
    }


def twins(soak: Soak, row: Row, rounds: int) -> None:
    figures = soak.in_lab("twins", lambda lab: restarts.two_instances(lab, rounds=rounds))
    row.runs = figures.rounds + figures.once_races
    row.figures = {
        "simultaneous starts": figures.rounds,
        "of them through a symlinked path": figures.via_symlink,
        "refused with 75": figures.refused,
        "`once --force` racing `run`": figures.once_races,
        "of them won by `once` (one deliberate heartbeat each)": figures.forced,
        "requests received (the first start's, and one per `once` that won)": figures.requests,
        "heartbeats stored (two within one second share a timestamp)": figures.unique,
    }


def receiver_faults(soak: Soak, row: Row) -> None:
    jobs: list[Job] = []
    for r in range(soak.rounds):
        jobs += [(f"{name} #{r}", partial(faults.check_fault, name=name)) for name in faults.FAULTS]
        jobs += [
            (f"redirect {code} #{r}", partial(faults.check_redirect, code=code))
            for code in faults.REDIRECTS
        ]
        jobs += [
            (f"budget {name} #{r}", partial(faults.check_budget_end_to_end, name=name))
            for name in ("silent", "byte-by-byte", "slow")
        ]
        jobs += [
            (f"self-signed #{r}", faults.check_self_signed),
            (f"back-off #{r}", faults.check_back_off_sequence),
            (f"skew +1h #{r}", partial(faults.check_clock_skew, offset=3600)),
            (f"skew -1h #{r}", partial(faults.check_clock_skew, offset=-3600)),
        ]
    results = soak.jobs(row, jobs)
    elapsed = sorted(r["elapsed_ms"] for r in results if isinstance(r, dict) and "elapsed_ms" in r)
    waits = [r for r in results if isinstance(r, dict) and "first" in r]
    spans = [r["server_span_ms"] for r in results if isinstance(r, dict) and "server_span_ms" in r]
    row.figures = {
        "fault kinds": len(faults.FAULTS) + len(faults.REDIRECTS) + 7,
        "rounds": soak.rounds,
        "deliveries timed": len(elapsed),
        "median / longest delivery": f"{elapsed[len(elapsed) // 2] if elapsed else 0} / "
        f"{max(elapsed, default=0)} ms (budget 2000, as the daemon logs it)",
        "longest delivery the server saw (no answer, trickle, slow)": f"{max(spans, default=0)} ms",
        "first / second back-off": ", ".join(
            f"{w['first']:.0f} s / {w['second']:.0f} s" for w in waits
        ),
    }


def telegram_faults(soak: Soak, row: Row) -> None:
    jobs: list[Job] = []
    for name in telegram.MODES:
        for kept in (True, False):
            label = f"{name} {'kept' if kept else 'none kept'}"
            jobs.append(
                (
                    label,
                    partial(telegram.check_telegram, name=name, kept=kept, credentials=kept),
                )
            )
    results = soak.jobs(row, jobs)
    late = [r["late_s"] for r in results]
    row.figures = {
        "modes": len(telegram.MODES),
        "latest heartbeat after start": f"{max(late, default=0)} s "
        f"(child deadline {telegram.TIMEOUT:g} + 30 s)",
        "live children read from /proc": sum(r["live_children_read"] for r in results),
    }


def shop_files(soak: Soak, row: Row) -> None:
    jobs: list[Job] = []
    for r in range(soak.rounds):
        for kind in shopfiles.KINDS:
            jobs.append(
                (
                    f"index+composer {kind} #{r}",
                    partial(shopfiles.check_versions_file, kind=kind),
                )
            )
            jobs.append((f"config.php {kind} #{r}", partial(shopfiles.check_config_php, kind=kind)))
    results = soak.jobs(row, jobs)
    row.figures = {
        "kinds x files": f"{len(shopfiles.KINDS)} x 3",
        "rounds": soak.rounds,
        "slowest `once` on a hostile shop": f"{max(r['elapsed_s'] for r in results):.2f} s",
    }


def clock_faults(soak: Soak, row: Row, sequences: int) -> None:
    jobs: list[Job] = [
        (f"{case} #{r}", partial(clock.check_state_from_another_time, case=case))
        for r in range(soak.rounds)
        for case in clock.CASES
    ]
    soak.jobs(row, jobs)
    for name, jump in clock.JUMPS.items():
        row.runs += 1
        try:
            clock.check_wall_clock_jump(soak.tmp(f"jump-{name}"), jump)
        except AssertionError as exc:
            row.failures.append(f"jump {name}: {_short(exc)}")
    heartbeats = 0
    for i in range(sequences):
        row.runs += 1
        try:
            heartbeats += clock.check_random_jumps(soak.tmp(f"jumps-{i}"), soak.seed * 100_000 + i)
        except AssertionError as exc:
            row.failures.append(f"random jumps #{i}: {_short(exc)}")
    row.figures = {
        "states from another time (process)": len(clock.CASES) * soak.rounds,
        "fixed clock settings (injected clock)": len(clock.JUMPS),
        "random settings sequences": sequences,
        "heartbeats checked for spacing": heartbeats,
    }


def disk_faults(soak: Soak, row: Row) -> None:
    jobs: list[Job] = []
    for r in range(soak.rounds):
        if can_mount():
            jobs += [
                (f"read-only #{r}", disk.check_read_only_state_dir),
                (f"full tmpfs #{r}", disk.check_full_disk),
                (f"uncreatable #{r}", disk.check_state_dir_cannot_be_created),
            ]
        elif r == 0:
            row.skipped.append("read-only, full and uncreatable: mounting needs CAP_SYS_ADMIN")
        jobs.append((f"RLIMIT_FSIZE #{r}", disk.check_file_size_limit))
        jobs.append((f"state.json a directory #{r}", disk.check_state_file_is_a_directory))
        jobs += [
            (f"corrupt {kind} #{r}", partial(disk.check_corrupt_state, kind=kind))
            for kind in disk.CORRUPT
        ]
    soak.jobs(row, jobs)
    row.figures = {"rounds": soak.rounds, "corrupt kinds": len(disk.CORRUPT)}


def hostile_host(soak: Soak, row: Row) -> None:
    jobs: list[Job] = [
        (f"{name} #{r}", check) for r in range(soak.rounds) for name, check in hostile.CASES.items()
    ]
    soak.jobs(row, jobs)
    row.figures = {"cases": len(hostile.CASES), "rounds": soak.rounds}


def config_faults(soak: Soak, row: Row) -> None:
    jobs: list[Job] = []
    for r in range(soak.rounds):
        jobs += [(f"{name} #{r}", partial(config.check_bad, name=name)) for name in config.BAD]
        jobs.append((f"risky but workable #{r}", config.check_risky_but_workable))
    soak.jobs(row, jobs)
    row.figures = {"refused configurations": len(config.BAD), "rounds": soak.rounds}


_TEST_HEADER = re.compile(r"^(tests/\S+::\S+):\s*$", re.MULTILINE)
_GENERATED = re.compile(
    r"during generate phase.*?(\d+) passing, (\d+) failing.*?Stopped because ([^\n]+)", re.DOTALL
)
# The properties of the two parsers: all of test_phpdefine.py (its other tests are quick), and
# the composer properties of this project's own shop-file tests.
COMPOSER_PROPERTIES = [
    "tests/test_reliability_shopfiles.py::test_composer_version_reads_back_whatever_a_tool_wrote",
    "tests/test_reliability_shopfiles.py::test_composer_version_of_any_text_is_a_version_or_a_collect_error",
    "tests/test_reliability_shopfiles.py::test_composer_version_of_a_mangled_document_never_raises_anything_else",
]


def hypothesis_statistics(output: str) -> dict[str, tuple[int, int, str]]:
    """``test id -> (passing, failing, why it stopped)`` for the generate phase of each."""
    found: dict[str, tuple[int, int, str]] = {}
    headers = list(_TEST_HEADER.finditer(output))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(output)
        block = _GENERATED.search(output, header.end(), end)
        if block:
            found[header[1]] = (int(block[1]), int(block[2]), block[3].strip())
    return found


def hypothesis(soak: Soak, rows: dict[str, Row], examples: int) -> None:
    """The parsers' properties, ``examples`` each, with hypothesis's own statistics."""
    env = dict(os.environ, PULSED_HYPOTHESIS_EXAMPLES=str(examples))
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        str(soak.workers),
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        "--hypothesis-seed",
        str(soak.seed),
        "tests/test_phpdefine.py",
        *COMPOSER_PROPERTIES,
    ]
    start = time.monotonic()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    tail = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    for test, (passing, failing, why) in hypothesis_statistics(done.stdout).items():
        row = rows["composer" if "shopfiles" in test else "define"]
        row.runs += 1
        short = test.split("::")[1]
        row.figures[short] = f"{passing} passing, {failing} failing ({why})"
        if failing:
            row.failures.append(short)
    for where, why in re.findall(r"SKIPPED \[\d+\] (\S+): (.*)", done.stdout):
        rows["composer" if "shopfiles" in where else "define"].skipped.append(f"{where}: {why}")
    for row in rows.values():
        row.seconds = took
        if done.returncode != 0:
            row.failures.append(f"pytest exited {done.returncode}: {tail[0]}")
    print(done.stdout[-3000:] if done.returncode else "\n".join(tail), flush=True)


# --- the report ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(soak: Soak, started: datetime, total: float, examples: int) -> str:
    commit = subprocess.run(
        [GIT, "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        [GIT, "status", "--porcelain", "pulsed"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        "# Reliability: what `make soak` checked, and what held",
        "",
        "<!-- Written by soak/soak.py from the run it describes; `make soak` rewrites it. -->",
        "",
        f"Run of {started:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min, pulsed {__version__} "
        f"(commit {commit or '?'}{', with uncommitted changes to pulsed/' if dirty else ''}), "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, seed {soak.seed}, "
        f"hypothesis examples per property {examples}. Everything ran against real processes, "
        "files and sockets on 127.0.0.1 (contract: [contract.md](contract.md); "
        "the scenarios: issue 5). The fast versions of the same scenarios run in `make test` "
        "(`tests/test_reliability_*.py`).",
        "",
        "| scenario | runs | what held | figures | result |",
        "|---|---:|---|---|---|",
    ]
    for row in soak.rows:
        figures = "; ".join(f"{k}: {v}" for k, v in row.figures.items())
        lines.append(
            f"| {_cell(row.name)} | {row.runs} | {_cell(row.held)} | {_cell(figures)} "
            f"| {row.result} |"
        )
    failures = [(row.name, f) for row in soak.rows for f in row.failures]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {_cell(name)}: {_cell(text)}" for name, text in failures]
    skipped = [(row.name, s) for row in soak.rows for s in row.skipped]
    if skipped:
        lines += ["", "## Skipped in this run", ""]
        lines += [f"- {_cell(name)}: {_cell(text)}" for name, text in skipped]
    lines += ["", FOUND, "", OBSERVED, "", NOT_HERE, ""]
    return "\n".join(lines)


FOUND = """## Defects these scenarios found in pulsed/, each fixed after its test failed

- **A receiver's error body that echoes the secret (or the token) went into state.json**
  (`last_error`), and from there to `pulsed status` and systemd's `STATUS=` line; only
  log lines were redacted. The failure text is now redacted before it is kept
  (`_recorder.Recorder.failed`; caught by the secrets scan of
  `test_receiver_fault_through_the_daemon[401-body-echoing-the-secret]`).
- **A state file with a time no calendar can write back** (`9999-12-31T23:59:59.999999Z`,
  `0001-01-01T00:00:00+14:00`, in any time field) parsed, then every save raised
  `ValueError`: `once` exited 70 and `run` crashed at every start. Such a file is now
  corrupt like any other: moved aside with a warning (`_state.parse_stamp`; caught by
  `test_corrupt_state_is_moved_aside_and_the_heartbeat_goes[time-*, identity-*]`).
- **An interval so long its next heartbeat has no date** (`interval = 1e12`) was accepted;
  the first heartbeat was sent, then saving its `next_due` crashed the daemon, and every
  restart sent the pending body again. It is now refused at start with exit 78 (at most
  10 years; `_config.MAX_INTERVAL`; caught by `...exit_78[interval-absurd]`).
- **A 502 (or any 5xx but 503) with a long Retry-After moved the schedule** to 60 s
  instead of the 2–10 min back-off; §4 gives that power to 429 and 503 only
  (`_delivery.Sender._final`; caught by
  `test_receiver_fault_through_the_daemon[502-retry-after-30]`).
- **A delivery to a server that never answers ended 1–4 ms after the 2.0 s budget**
  (2001–2004 ms, as the daemon logs it and as the server saw it): the attempts ran to the
  very end of the budget and the teardown came after. The attempts now stop 50 ms short
  (`_delivery.TEARDOWN`), so the delivery ends at about 1.95 s (caught by
  `test_a_receiver_that_never_answers_costs_at_most_the_budget`)."""

OBSERVED = """## Seen, and left as it is (no contract rule broken)

- A SIGKILL in the middle of a state write leaves its temp file
  (`.state.json.tmp-<pid>`, the "kills that hit a write" above) next to an intact
  `state.json`. Nothing reads it; it is only litter, one small file per such crash.
- SIGTERM in the first few hundred milliseconds of a start, before Python has installed
  the daemon's handlers, ends the process by the signal (status -15) instead of exit 0.
  Nothing has been written by then; systemd counts SIGTERM as a clean stop.
- A daemon SIGKILLed while a child runs leaves that child to finish on its own (the
  identity child within its Bot API timeout); children run in their own session. Under
  systemd, `KillMode=control-group` ends them with the daemon."""

NOT_HERE = """## What this run cannot show

- **The real wall clock being set.** Setting the host's clock needs CAP_SYS_TIME and would
  disturb everything else on the machine, so clock jumps while the daemon sleeps are
  checked on an injected clock (the real loop, state file and schedule; only the sleep is
  simulated on the monotonic clock, as the daemon sleeps). The process-level clock cases
  use state files from another time instead.
- **The real Telegram Bot API and a real Pulse receiver.** Only 127.0.0.1 is reachable:
  `getMe` goes to the local Bot API stand-in through aiogram's custom-server support, and
  heartbeats to the local verifying receiver.
- **Disk errors below the file system** (EIO, a disk that vanishes, fsync failing after a
  successful write): not injectable without a device-mapper or FUSE layer. A full file
  system, a read-only mount and a file size limit are real.
- **systemd itself** (watchdog, `KillMode=`, journald): the container has no systemd as
  PID 1; tests/test_notify.py and tests/test_units.py cover the protocol and the units.
- **Unreadable files as an ordinary user**: the tests run as root, so a mode-000 file is
  made unreadable by dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (`setpriv`) for the
  daemon only."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small counts, to try the runner")
    parser.add_argument("--only", nargs="*", default=None, help="scenario names (first word)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    parser.add_argument(
        "--month-beats",
        type=int,
        default=None,
        metavar="N",
        help=f"run 'Month in an hour' to N deliveries (with --only month: {MONTH_BEATS:,}; "
        f"--quick: {MONTH_QUICK_BEATS:,}; otherwise not run)",
    )
    args = parser.parse_args(argv)
    # The in-process scenarios (the injected clock) log through pulsed's logger; the
    # processes' logs are what the scenarios read. Keep this runner's own output clean.
    logging.getLogger("pulsed").addHandler(logging.NullHandler())
    logging.getLogger("pulsed").propagate = False

    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    quick = args.quick
    rounds = 1 if quick else 2
    month_beats: int | None = args.month_beats
    if month_beats is None and quick:
        month_beats = MONTH_QUICK_BEATS
    elif month_beats is None and "month" in [o.lower() for o in args.only or []]:
        month_beats = MONTH_BEATS
    month_up, month_down, _ = MONTH_PACE[quick]
    with tempfile.TemporaryDirectory(prefix="pulsed-soak-") as scratch:
        soak = Soak(args.seed, args.workers, Path(scratch), rounds)

        def wanted(name: str) -> bool:
            return args.only is None or name.split()[0].lower() in [o.lower() for o in args.only]

        plan: list[tuple[str, str, Callable[[Row], None]]] = [
            (
                "Crash consistency",
                "SIGKILL at random instants (any time, in the write after a delivery, after a "
                "heartbeat), 4 daemons side by side: every state.json renamed into place parses; "
                "last_success never goes back; the kept identity is never lost; after each kill "
                "the file holds at least the last success reported; after a clean restart, "
                "at least the newest heartbeat the receiver stored",
                lambda row: crash(
                    soak, row, kills=5 if quick else 50, min_writes=5 if quick else 55, daemons=4
                ),
            ),
            (
                "Restart storm",
                "one state folder, hourly interval, receiver answering after 0.4 s; while the "
                "heartbeat is due, restarts SIGKILLed at random instants, most with the request "
                "in flight (the body stays pending and the next start sends it again), then one "
                "SIGTERM that lets it finish; then SIGTERM and SIGKILL in turn: the receiver "
                "stored exactly one heartbeat; every request carried the identical body; "
                "SIGTERM always exited 0 within 3 s",
                lambda row: storm(soak, row, 10 if quick else 60),
            ),
            (
                "Two instances",
                "two `run` started at the same instant on one state folder (also via a "
                "symlinked path), and `once --force` racing `run`: one refuses with exit 75 "
                "naming the other's pid; nothing doubled",
                lambda row: twins(soak, row, 4 if quick else 16),
            ),
            (
                "Receiver faults",
                "through `pulsed once`: silent, byte-by-byte, reset, 500, 429, 401, 403, "
                "500-then-200, 50 MB bodies, 503/429 Retry-After fitting and not (120 s, 5 s "
                "clamped to 60 s, a week clamped to the interval, an HTTP date), a 502's "
                "Retry-After ignored, 301/302/303/307/308 to another host, a self-signed "
                "certificate on a real TLS listener, receiver clock ±1 h, a 401 whose body "
                "echoes the secret and the token: the 2.0 s budget kept "
                "(a receiver that never answers, trickles or is slow: at most 2000 ms as the "
                "daemon measures it), "
                "no redirect followed, the certificate refused before a byte of the body, the "
                "right event and exit status, next_due in state.json per §4, the identical body "
                "on every attempt",
                lambda row: receiver_faults(soak, row),
            ),
            (
                "Telegram faults",
                "getMe 401, 5xx, malformed JSON, no answer, and an identity child that exits, is "
                "SIGKILLed, dies, or hangs until its deadline, each with and without a kept "
                "identity: the heartbeat went out within the child's deadline with the kept "
                "name or null, with one identity.failed warning; the live child's "
                "/proc cmdline and environ held no secret",
                lambda row: telegram_faults(soak, row),
            ),
            (
                "Shop files",
                "index.php, composer.json, config.php missing, unreadable, empty, binary, "
                "100 MB, a symlink loop, a FIFO: versions null with one collect.unavailable "
                "warning each (the 100 MB file read from its first MiB), the heartbeat sent "
                "without X-MEGAPAY-VERSION; without config.php's domain exit 78 in one line, "
                "and fine with shop.domain",
                lambda row: shop_files(soak, row),
            ),
            (
                "Clock",
                "last_success a day ahead (warning, heartbeat now), years ago, 4 min ahead "
                "(respected), next_due decades ahead, identity fetched in the future (fetched "
                "again); the wall clock set back or forward by minutes to days while asleep: "
                "heartbeats never further apart in real time than one interval, never closer "
                "than one interval less what §5 allows (a forward setting within the grace "
                "keeps the wall clock's hour; a new schedule starts from a timestamp in whole "
                "seconds, up to 1 s sooner)",
                lambda row: clock_faults(soak, row, 10 if quick else 100),
            ),
            (
                "Disk",
                "read-only state folder (bind mount), a full 64 KiB tmpfs, RLIMIT_FSIZE, an "
                "uncreatable state folder, state.json a directory, truncated/empty/binary/"
                "wrong-shape/other-version/out-of-range-time state: the daemon kept running "
                "and sending, warned at each cycle, wrote again once space returned, left no "
                "temp file; corrupt files moved aside with their bytes",
                lambda row: disk_faults(soak, row),
            ),
            (
                "Config hostility",
                "garbage bytes, broken TOML, wrong types, absurd or zero intervals, empty, "
                "whitespace or padded secrets, api_key instead of the secret, http:// to remote "
                "and lookalike hosts, a malformed or padded token, an unknown log level: exit 78, "
                "exactly one config.invalid line naming the setting, nothing written; a "
                "world-readable file with a secret and unknown keys: warnings naming them, "
                "and a start",
                lambda row: config_faults(soak, row),
            ),
            (
                "Hostile host",
                "as nobody: a state folder it owns or anyone may write (run and once exit 78 "
                "naming it, status/check/--dry-run still read it, nothing written), a config "
                "file or folder it could change (78 naming it), a planted pending body "
                "unsigned or signed with a guess (never sent), a php wrapper hanging with a "
                "grandchild (group killed, JSON lines only), a getMe username with ESC, "
                "newline and U+2028 (refused), terminal escapes in state (status escapes "
                "them), a 50 MB state.json (moved aside unread), a secret in a readable file "
                "shadowed by a variable (warned); a receiver whose Date overflows (a delivery, "
                "not a failure), a Retry-After of `²` or 400 digits (not a number; clamped), "
                "a 422 echoing the body and a 12 KB Location (the status file gets the reason "
                "word and the code; state and logs cut at 200 characters), a one-letter "
                "secret (78 naming the rule), a status or metrics folder that is a tenant's "
                "link, owned by it or open to all, a status or metrics file set to the state "
                "file or in its folder (78 naming the setting), a `status --shop` naming a "
                "path above the state folder (refused), a shops.d file name with ESC and a "
                "newline (escaped), a tenant's config.php linked to another tenant's file "
                "(discover does not follow it)",
                lambda row: hostile_host(soak, row),
            ),
            (
                "Month in an hour",
                f"one `pulsed run` for {MONTH_SHOPS} shops at a 1 s interval, each with its "
                "own heartbeat secret, the status and metrics files on, each shop's state "
                "starting with a full week of history; the receiver answering 200, then 503, "
                "then 200, then refusing connections, by turns "
                f"({month_up} s up, {month_down} s down); VmRSS, "
                "threads and open fds read from /proc every few seconds: after a warm-up (one "
                "turn and a tenth of the deliveries) RSS grew at most "
                f"{MONTH_RSS_LIMIT_KIB // 1024} MiB over the run (fitted and first to last), "
                "descriptors and threads flat; the log's deliveries are the state files' "
                "counters; every sent one accepted, none refused; exit 0 within 3 s",
                lambda row: month_in_an_hour(soak, row, month_beats, quick),
            ),
        ]
        for name, held, body in plan:
            if wanted(name):
                soak.scenario(name, held, body)

        if wanted("Hypothesis"):
            examples = 200 if quick else args.examples
            define = Row(
                "Hypothesis: define() parser (tests/test_phpdefine.py)",
                f"tests/test_phpdefine.py's properties, {examples} examples each (single and "
                "double quotes, escapes, concatenation, comments, line endings; PHP-like text): "
                "every rendering reads back, nothing but CollectError escapes",
            )
            composer = Row(
                "Hypothesis: composer parser",
                f"{examples} examples each: any composer.json a tool may write reads back its "
                "version (BOM, indents, escapes, key order); any text or mangled document gives "
                "a version or a CollectError, nothing else",
            )
            print("== Hypothesis ...", flush=True)
            hypothesis(soak, {"define": define, "composer": composer}, examples)
            for row in (define, composer):
                print(f"   {row.name}: {row.result}; {row.figures}", flush=True)
            soak.rows += [define, composer]

        secrets = Row(
            "Secrets",
            "every captured log line and stdout, every file left in every state folder, the "
            "environ and cmdline every php stub and identity child was given, and the live "
            "children read from /proc: no heartbeat secret, no bot token",
            runs=TOTALS.labs,
            figures={
                "log lines": TOTALS.log_lines,
                "process outputs": TOTALS.outputs,
                "state files": TOTALS.state_files,
                "child environ/cmdline dumps": TOTALS.child_dumps,
                "live /proc reads": TOTALS.live_children,
                "hits": len(TOTALS.hits),
            },
            failures=TOTALS.hits,
        )
        soak.rows.append(secrets)

    total = time.monotonic() - t0
    examples = 200 if quick else args.examples
    text = render(soak, started, total, examples)
    print()
    print(text)
    whole = args.only is None and not quick
    if whole and not args.no_doc:
        DOC.write_text(text)
        print(f"\nwritten: {DOC.relative_to(REPO)}")
    elif not args.no_doc:
        print(f"\na partial run (--only or --quick): {DOC.relative_to(REPO)} left as it is")
    failed = [row.name for row in soak.rows if row.failures]
    print(f"\nsoak: {len(soak.rows)} scenarios in {total / 60:.1f} min; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
