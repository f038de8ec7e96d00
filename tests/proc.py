"""Running ``pulsed`` as a real process in a test: a shop, a state folder, its log lines.

:class:`Shop` lays out a shop tree (copied from ``examples/shop``) with a stub
``php`` that prints a fixed version, so process tests need no PHP install.
:class:`Pulsed` starts the command with a clean environment, reads its JSON log
lines on a thread and lets a test block until a given ``event`` appears — no
sleeping and polling.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SECRET = "proc-test-heartbeat-secret-0001"
TOKEN = "123456:ABC-secret"


@dataclass
class Shop:
    root: Path
    php: Path
    state: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, tmp: Path, api_host: str, php_version: str = "8.2.7") -> Shop:
        root = tmp / "shop"
        shutil.copytree(REPO / "examples" / "shop", root)
        php = tmp / "bin" / "php"
        php.parent.mkdir()
        php.write_text(f"#!/bin/sh\nprintf '%s' '{php_version}'\n")
        php.chmod(0o755)
        state = tmp / "state"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "PULSE_API_HOST": api_host,
            "PULSE_HEARTBEAT_SECRET": SECRET,
            "OPENCART_ROOT": str(root),
            "PULSED_PHP": str(php),
            "PULSED_STATE_DIR": str(state),
        }
        return cls(root=root, php=php, state=state, env=env)

    def read_state(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.state / "state.json").read_text())
        return doc


class Pulsed:
    """One ``python -m pulsed ...`` process."""

    def __init__(self, args: list[str], env: Mapping[str, str], *, stderr_path: Path | None = None):
        self.args = args
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        stderr: Any = subprocess.PIPE
        self._stderr_file = None
        if stderr_path is not None:
            self._stderr_file = stderr_path.open("wb")
            stderr = self._stderr_file
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulsed", *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=str(REPO),
        )
        self._reader = None
        if stderr_path is None:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            try:
                event = json.loads(line[line.index("{") :]) if "{" in line else {}
            except ValueError:
                event = {}
            with self._cond:
                self.lines.append(line)
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until ``count`` log lines carry ``event``; fail with the log so far."""

        def found() -> list[dict[str, Any]]:
            return [e for e in self.events if e.get("event") == event]

        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(found()) >= count or self.proc.poll() is not None, timeout
            )
            hits = found()
        if len(hits) < count:
            raise AssertionError(
                f"expected {count}x {event!r} within {timeout}s (ok={ok}, "
                f"rc={self.proc.poll()}); log:\n" + "\n".join(self.lines)
            )
        return hits

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == event]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 10.0) -> int:
        """Wait for exit; return the code, with every log line read."""
        rc = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        if self._stderr_file is not None:
            self._stderr_file.close()
        return rc

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def stdout(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.read().decode()


def run_pulsed(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> tuple[int, str, str]:
    """Run a short command (``once``, ``status``, ``check``) to completion."""
    done = subprocess.run(
        [sys.executable, "-m", "pulsed", *args],
        env=dict(env),
        capture_output=True,
        timeout=timeout,
        cwd=str(REPO),
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def events_of(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if "{" in line:
            try:
                out.append(json.loads(line[line.index("{") :]))
            except ValueError:
                continue
    return out
