"""What every figure shares: the plan, the local servers and the processes under test.

:class:`Bench` holds the scratch folder, the receiver and the Bot API stand-ins,
and starts the daemon (``pulsed run`` of the measured tree) and the floor
processes (``bench/floor.py``) with the environment each needs. Of the modules the
benchmark itself imports, this is the only one that imports pulsed: the signed
request the floor and curl send, and the state's time format. ``bench/bench.py``
puts the repository on ``sys.path`` before it imports this.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _measure import load_average

from devtools.fake_telegram import FakeTelegram
from devtools.receiver import Receiver
from tests.support.process import Process, children_of, event_of

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-heartbeat-secret-0001"  # noqa: S105 -- known only to the local receiver
TOKEN = "123456:ABC-secret"  # noqa: S105 -- the token FakeTelegram accepts
PYTHON = sys.executable
# What ``python -m pulsed run`` imports before it says READY=1: the warm-up compiles
# it, figure 5 profiles it. Named once, for the day the entry point moves.
CLI_MODULE = "pulsed._cli"


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how often; ``--quick`` shrinks it, the real run never does."""

    idle_seconds: float = 60.0
    watchdog_seconds: float = 10.0
    cpu_cycles: int = 20
    curl_runs: int = 20
    identity_runs: int = 3
    deliveries: int = 30
    concurrency: int = 10
    start_runs: int = 9
    scale: tuple[int, ...] = (1, 10, 50)
    settle: float = 2.0
    shops_scale: tuple[int, ...] = (1, 10, 50, 200)
    shops_idle_seconds: float = 20.0
    shops_start_runs: int = 7
    shops_cpu_warm: int = 10
    shops_cpu_delay: float = 10.0
    identity_tokens: int = 50
    fleet_seeds: tuple[int, ...] = (20261130, 1, 2, 3, 4)
    steady_sizes: tuple[int, ...] = (200, 1000, 2000)
    steady_warm: int = 5
    steady_beats: int = 30
    steady_spacing: float = 1.5
    steady_lead: float = 5.0
    steady_start_runs: int = 3
    floor_rounds: int = 200


QUICK = Plan(
    idle_seconds=10.0,
    watchdog_seconds=10.0,
    cpu_cycles=5,
    curl_runs=5,
    identity_runs=1,
    deliveries=5,
    concurrency=5,
    start_runs=2,
    scale=(1, 3),
    settle=1.0,
    shops_scale=(1, 20),
    shops_idle_seconds=5.0,
    shops_start_runs=2,
    shops_cpu_warm=5,
    shops_cpu_delay=8.0,
    identity_tokens=50,
    fleet_seeds=(20261130,),
    steady_sizes=(50, 200),
    steady_beats=5,
    steady_start_runs=1,
    floor_rounds=30,
)


class NotifySocket:
    """The service manager's end of ``NOTIFY_SOCKET``: every datagram, timestamped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        # A timeout only so that close() ends the reader; the bench's own wake-ups
        # are not measured.
        self._sock.settimeout(0.2)
        self._cond = threading.Condition()
        self.messages: list[tuple[float, str]] = []
        self._open = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._open:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._cond:
                self.messages += [(now, line) for line in data.decode().splitlines()]
                self._cond.notify_all()

    def wait_for(self, message: str, after: float = 0.0, timeout: float = 60.0) -> float:
        """The arrival time of the first ``message`` that came after ``after``."""

        def first() -> float | None:
            return next((t for t, m in self.messages if m == message and t > after), None)

        with self._cond:
            self._cond.wait_for(lambda: first() is not None, timeout)
            found = first()
        if found is None:
            raise TimeoutError(f"no {message} on {self.path} within {timeout} s")
        return found

    def count(self, message: str, start: float, end: float) -> int:
        with self._cond:
            return sum(1 for t, m in self.messages if m == message and start <= t <= end)

    def close(self) -> None:
        self._open = False
        self._thread.join(2)
        self._sock.close()


def stop(child: Process) -> None:
    """SIGTERM, then SIGKILL after 10 s: one stuck process must not hang the benchmark."""
    try:
        child.stop(10)
    except subprocess.TimeoutExpired:
        child.kill()


def event_is(name: str) -> Callable[[str], bool]:
    return lambda line: event_of(line).get("event") == name


def wait_idle(child: Process, timeout: float = 30.0) -> None:
    """Until the process has no child (the identity child or php has been reaped)."""
    deadline = time.monotonic() + timeout
    while children_of(child.pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {child.pid} still has children after {timeout} s")
        time.sleep(0.1)


class Bench:
    """The local servers, the scratch folder and the helpers every figure shares."""

    def __init__(self, tree: Path, plan: Plan, work: Path) -> None:
        self.tree = tree
        self.plan = plan
        self.work = work
        self.php = shutil.which("php") or self._stub_php()
        self.receiver = Receiver(SECRET).start()
        self.telegram = FakeTelegram(valid_token=TOKEN).start()
        self._serial = 0
        # The state of a daemon that fetched its identity: later daemons start from it
        # so that only figure 1 pays for aiogram.
        self.identity_state: dict[str, Any] | None = None
        # The 1-minute load average before the run and before each figure: how much
        # else the machine was doing, for whoever reads a wall-clock figure.
        self.loads: dict[str, float] = {"run": load_average()}
        self.children: list[Process] = []
        # One curl run's CPU, from figure 3; figure 7 compares with it.
        self.curl_cpu: float | None = None

    def close(self) -> None:
        # A figure that failed half-way may have left its processes running.
        for child in self.children:
            stop(child)
        self.receiver.stop()
        self.telegram.stop()

    def _stub_php(self) -> str:
        stub = self.work / "php"
        stub.write_text("#!/bin/sh\nprintf '%s' '8.2.7'\n")
        stub.chmod(0o755)
        return str(stub)

    def fresh_dir(self, name: str) -> Path:
        self._serial += 1
        path = self.work / f"{self._serial:03d}-{name}"
        path.mkdir()
        return path

    def site(
        self, name: str, *, state: dict[str, Any] | None = None, interval: float = 3600
    ) -> tuple[Path, dict[str, str]]:
        """A shop copy, a state folder (optionally pre-filled) and the daemon's environment."""
        root = self.fresh_dir(name)
        shutil.copytree(self.tree / "examples" / "shop", root / "shop")
        state_dir = root / "state"
        state_dir.mkdir(mode=0o700)
        if state is not None:
            path = state_dir / "state.json"
            path.write_text(json.dumps(state))
            path.chmod(0o600)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PULSE_API_HOST": self.receiver.url,
            "PULSE_HEARTBEAT_SECRET": SECRET,
            "OPENCART_ROOT": str(root / "shop"),
            "PULSED_PHP": self.php,
            "PULSED_STATE_DIR": str(state_dir),
            "PULSED_INTERVAL": f"{interval:g}",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE": self.telegram.url,
        }
        return root, env

    def cached_state(self, *, due_now: bool) -> dict[str, Any]:
        """Figure 1's state: identity fetched; ``due_now`` forgets the last success."""
        if self.identity_state is None:
            raise RuntimeError("figure 1 must run first: it fetches the identity")
        state = dict(self.identity_state)
        if due_now:
            for key in ("last_success", "last_attempt", "last_error", "last_status", "next_due"):
                state[key] = None
            state["consecutive_failures"] = 0
            state["pending"] = None
        return state

    def daemon(
        self, env: dict[str, str], notify: NotifySocket | None = None, **extra: str
    ) -> Process:
        env = dict(env, **extra)
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify.path)
        child = Process(
            [PYTHON, "-m", "pulsed", "run"], env, cwd=self.tree, logs="stderr", feed=True
        )
        self.children.append(child)
        return child

    def signed_request(self) -> dict[str, Any]:
        """A heartbeat signed now, as the floor processes and curl send it."""
        from pulsed import _body

        facts = _body.ShopFacts("8.2.7", "1.4.0", "3.0.3.8", "ocStore 3.0.3.8")
        at = float(int(time.time()))
        beat = _body.heartbeat("demo-shop.example", "acme_shop_bot", facts, at)
        request = _body.signed(beat, SECRET, at)
        return {
            "url": self.receiver.url + "/heartbeat",
            "body": request.body.decode("utf-8"),
            "headers": dict(request.headers),
            "api_base": self.telegram.url,
            "token": TOKEN,
        }

    def floor(self, mode: str = "floor", notify: NotifySocket | None = None) -> Process:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify.path)
        child = Process(
            [PYTHON, str(REPO / "bench" / "floor.py"), mode],
            env,
            cwd=self.tree,
            logs="stdout",
            feed=True,
        )
        self.children.append(child)
        child.feed(json.dumps(self.signed_request()).encode())
        return child

    def notify_socket(self, name: str) -> NotifySocket:
        return NotifySocket(self.fresh_dir(name) / "notify")

    def warm_up(self) -> None:
        """Compile and cache every module once, so no figure pays for a cold disk or .pyc."""
        # The processes under test get a minimal environment; so does this, lest an
        # inherited PYTHONDONTWRITEBYTECODE keep the .pyc files from being written.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for code in (
            f"import {CLI_MODULE}, pulsed._delivery, pulsed._identity_child",
            "import anyio, httpx, tenacity, pythonjsonlogger.json",
        ):
            subprocess.run([PYTHON, "-c", code], cwd=self.tree, env=env, check=True)


def due_in(bench: Bench, seconds: float) -> dict[str, Any]:
    """The cached-identity state of a shop whose next heartbeat is ``seconds`` from now."""
    from pulsed._timefmt import rfc3339

    state = bench.cached_state(due_now=True)
    now = time.time()
    state["last_success"] = rfc3339(now - 3600 + seconds)
    state["last_status"] = 200
    state["next_due"] = rfc3339(now + seconds)
    return state
