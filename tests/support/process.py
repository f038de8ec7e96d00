"""Running ``pulsed`` as a real process: a shop to run it on, its output, its log events.

:class:`Shop` lays out a shop tree (a copy of ``examples/shop``) with a stub ``php``
that prints a fixed version, so no PHP install is needed, and the environment that
points the daemon at it. :class:`Pulsed` starts a long-lived command (``run``), keeps
every stdout byte and every stderr line, and lets a caller block until a given
``event`` has been logged — no sleeping and polling. :func:`run_pulsed` runs a short
command (``once``, ``status``, ``check``) to completion as a :class:`Result`.
Both read log lines with :func:`event_of`, the one parser of the daemon's JSON lines
(which may carry a journald ``<N>`` prefix).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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


class Pulsed:
    """One ``python -m pulsed ...`` process whose every output line is kept.

    ``prefix`` runs it under another command (``setpriv``, ``prlimit``) that execs it
    in place, so the pid is the daemon's. With ``stderr_path`` the log goes to that
    file instead (as to the journal), and no events are read.
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
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.out = bytearray()
        self._cond = threading.Condition()
        self._stderr_file: IO[bytes] | None = None
        stderr: IO[bytes] | int = subprocess.PIPE
        if stderr_path is not None:
            self._stderr_file = stderr = stderr_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "pulsed", *self.args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=str(REPO),
        )
        self._threads = [threading.Thread(target=self._read_out, daemon=True)]
        if stderr_path is None:
            self._threads.append(threading.Thread(target=self._read_err, daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self.events.append(event_of(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.out += chunk

    def _named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return self._named(event)

    def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until ``count`` lines carry ``event``; fail with the log so far."""
        with self._cond:
            self._cond.wait_for(
                lambda: len(self._named(event)) >= count or self.proc.poll() is not None,
                timeout,
            )
            hits = self._named(event)
            if len(hits) < count:
                raise AssertionError(
                    f"expected {count}x {event!r} within {timeout} s (rc={self.proc.poll()}); "
                    "log:\n" + "\n".join(self.lines)
                )
            return hits

    def wait_for_any(self, *events: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until a line carries one of ``events``; return the first such line."""

        def first() -> list[dict[str, Any]]:
            return [e for e in self.events if e.get("event") in events][:1]

        with self._cond:
            self._cond.wait_for(lambda: bool(first()) or self.proc.poll() is not None, timeout)
            found = first()
        if not found:
            raise AssertionError(
                f"none of {events} within {timeout} s; log:\n" + "\n".join(self.lines)
            )
        return found

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
        return rc

    def stop(self, timeout: float = 10.0) -> int:
        self.signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.finish()

    def stdout(self) -> str:
        """All of stdout; call after :meth:`finish`."""
        return bytes(self.out).decode("utf-8", errors="replace")


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
