"""``make mutate``: mutation testing of the modules the unit tests pin down (issue 8).

Each module in :data:`MODULES` is mutated by mutmut against only the test files
listed for it, in a scratch copy of the tree under ``build/mutate/<module>/``, so one
module's run never pays for another's tests and the working tree is never touched.
The run prints one table (mutants, killed, survived, survival %, run time) and merges
its rows into the table of ``docs/mutation-results.md``: a run of some modules refreshes
their rows and keeps the others', so modules can be run (or added) a few at a time.
The survivors' diffs are not copied there; ``mutmut show`` prints them from the
module's scratch copy, and ``docs/testing.md`` gives each one's reason.

It exits non-zero when a module's survival is above :data:`TARGET` or when a
survivor is not named in ``docs/testing.md`` (where each one that stays is given
its reason), so the list there cannot silently go stale. Not part of CI or
``make test``: a full run takes minutes of both cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRATCH = REPO / "build" / "mutate"
RESULTS = REPO / "docs" / "mutation-results.md"
TESTING_DOC = REPO / "docs" / "testing.md"
MUTMUT = Path(sys.executable).with_name("mutmut")
# What a mutated module's tests may import besides the package and the tests themselves.
ALSO_COPY = ("devtools", "examples", "docs", "README.md")
TARGET = 0.10
# Tests marked `speed` hold a CPU-time limit on the real code. Under mutmut every call
# goes through a trampoline, so they fail the clean run, and each costs seconds per
# surviving mutant; a mutant only they would catch is listed in docs/testing.md.
PYTEST_ARGS = ("-m", "not speed")

# The one place that says which tests exercise which module. A module's row names only
# the files written for it: the slower scenario suites reach these modules too, but a
# mutant they alone would catch is a gap in the module's own tests.
MODULES: dict[str, tuple[str, ...]] = {
    "pulsed/_schedule.py": ("tests/test_schedule.py",),
    "pulsed/_state.py": ("tests/test_state.py", "tests/test_state_history.py"),
    "pulsed/_files.py": ("tests/test_files.py",),
    "pulsed/_body.py": ("tests/test_body.py",),
    "pulsed/verify.py": ("tests/test_body.py",),
    "pulsed/_recorder.py": ("tests/test_recorder.py", "tests/test_cycle_counts.py"),
    "pulsed/_cycle.py": (
        "tests/test_cycle.py",
        "tests/test_cycle_counts.py",
        "tests/test_supervisor.py",
    ),
    "pulsed/_supervisor.py": (
        "tests/test_supervisor.py",
        "tests/test_supervisor_parts.py",
        "tests/test_supervisor_files.py",
        "tests/test_supervisor_schedule.py",
    ),
    "pulsed/_delivery.py": ("tests/test_delivery.py",),
    "pulsed/_phpdefine.py": ("tests/test_phpdefine.py",),
    "pulsed/_shop.py": ("tests/test_shop.py",),
    "pulsed/_hostname.py": ("tests/test_hostname.py",),
    "pulsed/_redact.py": ("tests/test_redact.py",),
    # Rounds shared by many shops (one round for every stale token) are tested there.
    "pulsed/_identity.py": (
        "tests/test_identity.py",
        "tests/test_identity_rounds.py",
        "tests/test_many_shops.py",
    ),
    "pulsed/_identity_child.py": ("tests/test_identity_child.py",),
    # One php answer per binary is tested with the other shared work.
    "pulsed/_collect.py": ("tests/test_collect.py", "tests/test_many_shops.py"),
    "pulsed/_discover.py": ("tests/test_discover.py",),
    # test_adopt.py runs `pulsed adopt` as a process, which mutmut does not see;
    # test_adopt_move.py calls the same code in the test's process.
    "pulsed/_adopt.py": ("tests/test_adopt.py", "tests/test_adopt_move.py"),
    "pulsed/_provision.py": ("tests/test_provision.py",),
    "pulsed/_logging.py": ("tests/test_logging.py",),
    "pulsed/_publish.py": ("tests/test_publish.py",),
    # The status file's form of the document (public, public_error) is tested where it
    # is written.
    "pulsed/_status.py": (
        "tests/test_status.py",
        "tests/test_status_text.py",
        "tests/test_publish.py",
    ),
    "pulsed/_metrics.py": ("tests/test_metrics.py",),
    "pulsed/_notify.py": ("tests/test_notify.py",),
    "pulsed/_timefmt.py": ("tests/test_timefmt.py", "tests/test_timefmt_zone.py"),
    "pulsed/_proc.py": ("tests/test_proc.py",),
    "pulsed/_errors.py": ("tests/test_errors.py",),
    # Most of its validators are exercised through loading a configuration.
    "pulsed/_settings.py": (
        "tests/test_settings.py",
        "tests/test_settings_validators.py",
        "tests/test_config.py",
    ),
    "pulsed/_config.py": (
        "tests/test_config.py",
        "tests/test_config_setup.py",
        "tests/test_config_files.py",
        "tests/test_config_words.py",
        "tests/test_config_defaults.py",
        # Shops from [shops.*] tables and shops.d/, loaded in the test's process.
        "tests/test_many_shops.py",
    ),
}

# Modules of pulsed/ that are not in MODULES, each with the reason. A module in neither
# is a gap `make mutate` reports, so a new module is mapped or explained.
NOT_MUTATED: dict[str, str] = {
    "pulsed/__init__.py": "only re-exports and the package's docstring; nothing to mutate",
    "pulsed/__main__.py": "one call to the command line's main; nothing to mutate",
    "pulsed/_version.py": "one module-level constant, which mutmut does not mutate",
    "pulsed/_toml.py": (
        "one import chosen by the Python version, at module level, which mutmut does not mutate"
    ),
    "pulsed/_events.py": (
        "declarations only (a dataclass with no methods, module-level tables), which"
        " mutmut does not mutate; tests/test_events.py holds them against the code and README"
    ),
    # The command line: parsing, dispatch and the wiring of real processes. Their tests
    # run pulsed as a process (tests/test_process.py, test_shops.py, test_many_shops.py),
    # seconds each; hundreds of mutants would take hours. What they decide is in the
    # modules above, each mutated against its own fast tests.
    "pulsed/_cli.py": "the command line; tested as real processes (see above)",
    "pulsed/_commands.py": "once/check/status; tested as real processes (see above)",
    "pulsed/_daemon.py": "run; tested as a real process (see above)",
    "pulsed/_wiring.py": "the commands' wiring; tested as real processes (see above)",
}

# mutmut's verdicts, as `mutmut results --all true` spells them. A timeout is a kill: the
# mutant changed behaviour enough to hang a test. A mutant no listed test reaches survives.
KILLED = frozenset({"killed", "timeout", "caught by type check", "segfault"})
SURVIVED = frozenset({"survived", "no tests", "suspicious"})


@dataclasses.dataclass(frozen=True)
class Survivor:
    name: str
    verdict: str
    diff: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Row:
    module: str
    killed: int
    survivors: tuple[Survivor, ...]
    seconds: float

    @property
    def mutants(self) -> int:
        return self.killed + len(self.survivors)

    @property
    def survival(self) -> float:
        return len(self.survivors) / self.mutants if self.mutants else 0.0


@dataclasses.dataclass(frozen=True)
class Figures:
    """One module's line of the results table: what a run of it found, and when."""

    module: str
    mutants: int
    killed: int
    survived: int
    seconds: float
    workers: int
    date: str

    @property
    def survival(self) -> float:
        return self.survived / self.mutants if self.mutants else 0.0

    @classmethod
    def of(cls, row: Row, workers: int, date: str) -> Figures:
        return cls(
            row.module, row.mutants, row.killed, len(row.survivors), row.seconds, workers, date
        )


def _config(module: str, tests: Sequence[str]) -> str:
    def toml_list(items: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["pulsed"]\n'
        f"only_mutate = {toml_list([module])}\n"
        f"pytest_add_cli_args = {toml_list(PYTEST_ARGS)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f"also_copy = {toml_list(ALSO_COPY)}\n"
    )


def _prepare(module: str, tests: Sequence[str]) -> Path:
    """A fresh copy of the tree whose pyproject.toml tells mutmut this module's mapping."""
    where = SCRATCH / Path(module).stem.lstrip("_")
    # Fresh every time: mutmut keeps verdicts across runs, and a verdict from before a
    # test changed is not one to report.
    shutil.rmtree(where, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pulsed", "tests", *ALSO_COPY):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, where / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, where / name)
    pyproject = (REPO / "pyproject.toml").read_text()
    (where / "pyproject.toml").write_text(pyproject + _config(module, tests))
    return where


def _mutmut(where: Path, *args: str) -> str:
    done = subprocess.run(
        [str(MUTMUT), *args], cwd=where, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"mutmut {' '.join(args)} failed in {where}:\n{done.stdout[-2000:]}")
    return done.stdout


def _diff(where: Path, name: str) -> tuple[str, ...]:
    shown = _mutmut(where, "show", name)
    return tuple(
        line
        for line in shown.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )


def mutate(module: str, tests: Sequence[str], workers: int) -> Row:
    where = _prepare(module, tests)
    start = time.monotonic()
    log = where / "mutmut.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(workers)],
            cwd=where,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"mutmut run failed for {module}; see {log}")
    killed = 0
    survivors = []
    for line in _mutmut(where, "results", "--all", "true").splitlines():
        name, _, verdict = line.strip().rpartition(": ")
        if not name:
            continue
        if verdict in KILLED:
            killed += 1
        elif verdict in SURVIVED:
            survivors.append(Survivor(name, verdict, _diff(where, name)))
        else:
            raise RuntimeError(f"{module}: {name} was left {verdict!r}; see {log}")
    return Row(module, killed, tuple(survivors), seconds)


HEADER = "| module | mutants | killed | survived | survival | run | workers | date |"
_ROW = re.compile(
    r"\| `(?P<module>[^`]+)` \| (?P<mutants>\d+) \| (?P<killed>\d+) \| (?P<survived>\d+) "
    r"\| [\d.]+% \| (?P<seconds>\d+) s \| (?P<workers>\d+) \| (?P<date>[\d-]+) \|$"
)


def table(figures: Sequence[Figures]) -> list[str]:
    lines = [HEADER, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for f in figures:
        lines.append(
            f"| `{f.module}` | {f.mutants} | {f.killed} | {f.survived} "
            f"| {f.survival:.1%} | {f.seconds:.0f} s | {f.workers} | {f.date} |"
        )
    return lines


def parse(text: str) -> list[Figures]:
    """The rows of a results table as :func:`table` writes them; other lines are ignored."""
    found = []
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if m:
            found.append(
                Figures(
                    m["module"],
                    int(m["mutants"]),
                    int(m["killed"]),
                    int(m["survived"]),
                    float(m["seconds"]),
                    int(m["workers"]),
                    m["date"],
                )
            )
    return found


def merge(old: Sequence[Figures], new: Sequence[Figures], order: Sequence[str]) -> list[Figures]:
    """The table after a run: this run's rows replace the old ones of the same modules.

    Rows come in the order of ``order`` (the modules of :data:`MODULES`); a module no
    longer there loses its row, since its figures describe nothing that is run.
    """
    by_module = {f.module: f for f in old}
    by_module.update({f.module: f for f in new})
    return [by_module[m] for m in order if m in by_module]


def report(figures: Sequence[Figures]) -> str:
    total = sum(f.seconds for f in figures)
    dates = sorted({f.date for f in figures})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "never"
    return (
        "\n".join(
            [
                "# Mutation testing: results",
                "",
                "Written by `make mutate` (`devtools/mutate.py`); what it measures, which tests",
                "each module is run against, and why each survivor stays, is in",
                "[testing.md](testing.md#mutation-testing). A run of some modules",
                "(`MUTATE_ONLY=...`) refreshes their rows and keeps the others.",
                "",
                "The survivors' diffs are not kept here: after a run, `mutmut show <name>` in the",
                "module's scratch copy `build/mutate/<module>/` prints one, `mutmut browse` all.",
                "",
                *table(figures),
                "",
                f"Mutants: {sum(f.mutants for f in figures)}, survived: "
                f"{sum(f.survived for f in figures)}. Run time, the rows added up: {total:.0f} s "
                f"({when}).",
            ]
        )
        + "\n"
    )


def documented(name: str, doc: str) -> bool:
    # Whole names only: mutant 1 must not count as documented because mutant 12 is.
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", doc) is not None


def unmapped() -> list[str]:
    """Modules of the package in neither :data:`MODULES` nor :data:`NOT_MUTATED`."""
    here = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "pulsed").glob("*.py"))
    return [m for m in here if m not in MODULES and m not in NOT_MUTATED]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help="only these (paths as in MODULES)")
    parser.add_argument("--workers", type=int, default=2, help="mutants run at once")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not in MODULES: {', '.join(unknown)}")
    chosen = args.modules or list(MODULES)

    start = time.monotonic()
    rows: list[Row] = []
    figures: list[Figures] = []
    failed = False
    for module in chosen:
        print(f"mutating {module} against {', '.join(MODULES[module])} ...", flush=True)
        try:
            row = mutate(module, MODULES[module], args.workers)
        except RuntimeError as exc:
            # One module's broken run must not cost the rows of those already done.
            print(exc, flush=True)
            failed = True
            continue
        rows.append(row)
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        figures.append(Figures.of(row, args.workers, today))
        # Merged after each module, so a run stopped part-way keeps what it measured.
        old = parse(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.write_text(report(merge(old, figures[-1:], list(MODULES))))
    seconds = time.monotonic() - start

    doc = TESTING_DOC.read_text() if TESTING_DOC.exists() else ""
    print()
    print("\n".join(table(figures)))
    print(
        f"\n{seconds:.0f} s with {args.workers} worker(s); rows merged into "
        f"{RESULTS.relative_to(REPO)}"
    )

    for module in unmapped():
        print(f"{module} is in neither MODULES nor NOT_MUTATED")
        failed = True
    for row in rows:
        if row.survival > TARGET:
            print(f"{row.module}: {row.survival:.1%} survived, above the {TARGET:.0%} target")
            failed = True
        for survivor in row.survivors:
            if not documented(survivor.name, doc):
                print(f"undocumented survivor: {survivor.name}")
                for line in survivor.diff:
                    print(f"    {line}")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
