"""Running ``pulsed`` as a real process: a shop to run it on, its output, its log events.

:class:`Shop` lays out a shop tree (a copy of ``examples/shop``) with a stub ``php``
that prints a fixed version, so no PHP install is needed, and the environment that
points the daemon at it. :class:`Pulsed` starts a long-lived command (``run``), keeps
every stdout byte and every stderr line, and lets a caller block until a given
``event`` has been logged — no sleeping and polling. It is a :class:`Process`, which
``make bench`` uses for every process it measures. :func:`run_pulsed` runs a short
command (``once``, ``status``, ``check``) to completion as a :class:`Result`;
:func:`children_of` finds a process's live descendants.
Both read log lines with :func:`event_of`, the one parser of the daemon's JSON lines
(which may carry a journald ``<N>`` prefix).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

REPO = Path(__file__).resolve().parents[2]
SECRET = "proc-test-heartbeat-secret-0001"
TOKEN = "123456:ABC-secret"  # the token FakeTelegram accepts by default

# When PULSED_TEST_DUMP is set (the reliability lab sets it) the stub records the
# environment and argv php was given, so a scan can prove no secret reached it.
PHP_STUB = """#!/bin/sh
if [ -n "$PULSED_TEST_DUMP" ]; then
  cat /proc/$$/environ > "$PULSED_TEST_DUMP/php-$$.environ" 2>/dev/null
  cat /proc/$$/cmdline > "$PULSED_TEST_DUMP/php-$$.cmdline" 2>/dev/null
fi
printf '%s' '{version}'
"""


# --- log lines --------------------------------------------------------------------------


def event_of(line: str) -> dict[str, Any]:
    """The JSON object of one log line; ``{}`` for a line that holds none."""
    if "{" not in line:
        return {}
    try:
        event = json.loads(line[line.index("{") :])
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def stamp(value: str) -> float:
    """Epoch seconds of a time the daemon wrote (a log line's, a ``state.json`` field)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def events_of(text: str) -> list[dict[str, Any]]:
    """Every JSON log line of ``text``, in order; other lines are left out."""
    return [event for event in map(event_of, text.splitlines()) if event]


# --- a shop -----------------------------------------------------------------------------


@dataclass
class Shop:
    """A shop tree, its php stub and state folder under ``home``, and the daemon's
    environment for them."""

    home: Path
    root: Path
    php: Path
    state: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls, home: Path, api_host: str, php_version: str = "8.2.7", secret: str = SECRET
    ) -> Shop:
        root = home / "shop"
        shutil.copytree(REPO / "examples" / "shop", root)
        php = home / "bin" / "php"
        php.parent.mkdir()
        php.write_text(PHP_STUB.format(version=php_version))
        php.chmod(0o755)
        state = home / "state"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "PULSE_API_HOST": api_host,
            "PULSE_HEARTBEAT_SECRET": secret,
            "OPENCART_ROOT": str(root),
            "PULSED_PHP": str(php),
            "PULSED_STATE_DIR": str(state),
        }
        return cls(home=home, root=root, php=php, state=state, env=env)

    @property
    def composer(self) -> Path:
        return self.root / "system/library/oc_telegram_shop/composer.json"

    def read_state(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.state / "state.json").read_text())
        return doc


# --- processes --------------------------------------------------------------------------


class Process:
    """A long-lived process; a thread keeps every line of its log stream as it arrives.

    ``logs`` names the stream the process logs on; each of its lines is kept in
    :attr:`lines` with its arrival time (monotonic) in :attr:`arrivals` and, when it
    is a JSON log line, its object in :attr:`events`. With ``keep_stdout`` stdout is
    kept too, in :attr:`out`; otherwise a stream that is not the log goes to
    ``/dev/null``. With ``stderr_path`` stderr goes to that file (as to the journal).
    With ``feed`` stdin is a pipe for :meth:`feed`, otherwise ``/dev/null``.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path = REPO,
        logs: Literal["stdout", "stderr"] = "stderr",
        keep_stdout: bool = False,
        stderr_path: Path | None = None,
        feed: bool = False,
    ) -> None:
        self.lines: list[str] = []
        self.arrivals: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.out = bytearray()
        self._cond = threading.Condition()
        self._stderr_file: IO[bytes] | None = None
        stdout = subprocess.PIPE if logs == "stdout" or keep_stdout else subprocess.DEVNULL
        stderr: IO[bytes] | int = subprocess.PIPE if logs == "stderr" else subprocess.DEVNULL
        if stderr_path is not None:
            self._stderr_file = stderr = stderr_path.open("wb")
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=str(cwd),
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
        self._threads: list[threading.Thread] = []
        log = self.proc.stdout if logs == "stdout" else self.proc.stderr
        if log is not None:
            self._threads.append(threading.Thread(target=self._read_log, args=(log,), daemon=True))
        if keep_stdout and logs != "stdout":
            self._threads.append(threading.Thread(target=self._read_out, daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_log(self, stream: IO[bytes]) -> None:
        for raw in stream:
            now = time.monotonic()  # before the lock: the arrival, not our turn
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self.arrivals.append(now)
                self.events.append(event_of(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.out += chunk

    def feed(self, data: bytes) -> None:
        """Write ``data`` to stdin and close it."""
        if self.proc.stdin is None:
            raise RuntimeError("stdin is not a pipe")
        self.proc.stdin.write(data)
        self.proc.stdin.close()

    def wait_line(
        self, match: Callable[[str], bool], count: int = 1, timeout: float = 30.0
    ) -> float:
        """The arrival time of the ``count``-th line ``match`` accepts; fail with the log."""

        def hits() -> list[float]:
            return [at for at, line in zip(self.arrivals, self.lines, strict=True) if match(line)]

        with self._cond:
            self._cond.wait_for(
                lambda: len(hits()) >= count or self.proc.poll() is not None, timeout
            )
            found = hits()
            if len(found) < count:
                raise AssertionError(
                    f"{self.proc.args!r}: expected {count} matching line(s) within {timeout} s "
                    f"(rc={self.proc.poll()}); log:\n" + "\n".join(self.lines)
                )
            return found[count - 1]

    def _named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return self._named(event)

    def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until ``count`` lines carry ``event``; fail with the log so far."""
        self.wait_line(lambda line: event_of(line).get("event") == event, count, timeout)
        return self.named(event)

    def wait_for_any(self, *events: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until a line carries one of ``events``; return the first such line."""
        self.wait_line(lambda line: event_of(line).get("event") in events, 1, timeout)
        with self._cond:
            return [e for e in self.events if e.get("event") in events][:1]

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def finish(self, timeout: float = 10.0) -> int:
        """Wait for exit; return the code, with every output line read."""
        rc = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        if self._stderr_file is not None:
            self._stderr_file.close()
        # A reader still blocked (a grandchild holds the pipe) keeps its stream; the
        # others are closed now, not at garbage collection: a bench runs 50 of these.
        if not any(thread.is_alive() for thread in self._threads):
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return rc

    def stop(self, timeout: float = 10.0) -> int:
        self.signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.finish()

    def stdout(self) -> str:
        """All of stdout (with ``keep_stdout``); call after :meth:`finish`."""
        return bytes(self.out).decode("utf-8", errors="replace")


class Pulsed(Process):
    """One ``python -m pulsed ...`` process, logging on stderr, its stdout kept.

    ``prefix`` runs it under another command (``setpriv``, ``prlimit``) that execs it
    in place, so the pid is the daemon's.
    """

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        prefix: Sequence[str] = (),
        stderr_path: Path | None = None,
    ) -> None:
        self.args = list(args)
        super().__init__(
            [*prefix, sys.executable, "-m", "pulsed", *self.args],
            env,
            keep_stdout=True,
            stderr_path=stderr_path,
        )


@dataclass
class Result:
    """A short command run to completion."""

    code: int
    out: str
    err: str
    elapsed: float = 0.0

    @property
    def events(self) -> list[dict[str, Any]]:
        return events_of(self.err)

    def __iter__(self) -> Iterator[Any]:
        """``code, out, err = run_pulsed(...)``: the three a short command's test reads."""
        return iter((self.code, self.out, self.err))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


def run_pulsed(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    prefix: Sequence[str] = (),
    timeout: float = 60.0,
) -> Result:
    """Run a short command (``once``, ``status``, ``check``) to completion."""
    start = time.monotonic()
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "pulsed", *args],
        env=dict(env),
        capture_output=True,
        timeout=timeout,
        cwd=str(REPO),
        check=False,
    )
    return Result(
        done.returncode,
        done.stdout.decode("utf-8", errors="replace"),
        done.stderr.decode("utf-8", errors="replace"),
        time.monotonic() - start,
    )


def children_of(pid: int) -> list[int]:
    """Live children of ``pid`` (and theirs), from ``/proc/*/stat``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found
