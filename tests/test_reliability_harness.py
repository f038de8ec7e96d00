"""The rig the reliability scenarios run on, and the secrets scan every one of them ends with.

A :class:`Lab` owns, for one scenario, the local servers (receivers, fault servers,
a Bot API stand-in) and any number of :class:`Rig` s: a shop copy, a state folder
and an environment that holds the heartbeat secret and a bot token. Every
``pulsed`` process a rig starts (:class:`Daemon` for ``run``, :meth:`Rig.run` for
the short commands) keeps all of its output. When the lab closes it scans every
captured log line and stdout, every file left in every state folder, and what the
daemon's children saw — the php stub writes its own ``/proc/self/environ`` and
``cmdline`` into a dump folder, and a ``sitecustomize`` on the ``PYTHONPATH`` does
the same for the identity child (``python -m pulsed._identity_child``) — for the
secret and the token: any hit fails the scenario (contract §7).

The same ``sitecustomize`` lets a scenario make the identity child misbehave:
``PULSED_TEST_CHILD=exit`` (exits at once, before aiogram is imported: the cheap
default, so a configured token costs no aiogram import), ``die`` (SIGKILLs
itself), ``hang`` (sleeps until the daemon kills it at its deadline), ``real``
(the real child, talking to a :class:`~devtools.fake_telegram.FakeTelegram`).

The tests in this file check the harness itself: a planted secret is found, so
a clean scan means something.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from devtools.fake_telegram import FakeTelegram
from devtools.faultserver import FaultServer
from devtools.receiver import Receiver
from pulsed import _state as st
from pulsed._identity import fingerprint

REPO = Path(__file__).resolve().parent.parent
SECRET = "rel-heartbeat-secret-3b9d1f7e"
TOKEN = "424242:rel-bot-key-Zq81xWv0"
BOT = "acme_shop_bot"
# What must never show up: the secret, and the token's key (which also covers the
# whole token and its URL-quoted form).
NEEDLES = (SECRET.encode(), TOKEN.partition(":")[2].encode())
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens

PHP_STUB = """#!/bin/sh
if [ -n "$PULSED_TEST_DUMP" ]; then
  cat /proc/$$/environ > "$PULSED_TEST_DUMP/php-$$.environ" 2>/dev/null
  cat /proc/$$/cmdline > "$PULSED_TEST_DUMP/php-$$.cmdline" 2>/dev/null
fi
printf '%s' '{version}'
"""

SITECUSTOMIZE = '''"""Test hook: record what the identity child was given; misbehave on request."""
import os
import sys

if sys.orig_argv[-2:] == ["-m", "pulsed._identity_child"]:
    _dump = os.environ.get("PULSED_TEST_DUMP")
    if _dump:
        for _what in ("environ", "cmdline"):
            with open(f"/proc/self/{_what}", "rb") as _src:
                _data = _src.read()
            with open(os.path.join(_dump, f"child-{os.getpid()}.{_what}"), "wb") as _dst:
                _dst.write(_data)
    _mode = os.environ.get("PULSED_TEST_CHILD", "real")
    if _mode == "exit":
        os._exit(3)
    elif _mode == "die":
        os.kill(os.getpid(), 9)
    elif _mode == "hang":
        import time

        while True:
            time.sleep(3600)
'''


# --- scan totals, for the soak's report ----------------------------------------------


@dataclass
class ScanTotals:
    """What the secrets scans looked at, summed over every lab closed in this process."""

    labs: int = 0
    log_lines: int = 0
    outputs: int = 0
    state_files: int = 0
    child_dumps: int = 0
    live_children: int = 0
    hits: list[str] = field(default_factory=list)

    def add(self, other: ScanTotals) -> None:
        self.labs += other.labs
        self.log_lines += other.log_lines
        self.outputs += other.outputs
        self.state_files += other.state_files
        self.child_dumps += other.child_dumps
        self.live_children += other.live_children
        self.hits += other.hits


TOTALS = ScanTotals()


def leaks_in(where: str, blob: bytes) -> list[str]:
    return [f"{where}: holds {needle.decode()[:6]}…" for needle in NEEDLES if needle in blob]


# --- processes -------------------------------------------------------------------------


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


class Daemon:
    """One ``python -m pulsed ...`` process whose every output line is kept.

    ``prefix`` runs it under another command (``setpriv``, ``prlimit``), which
    execs it in place, so the pid is the daemon's.
    """

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], *, prefix: Sequence[str] = ()
    ) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.out = bytearray()
        self._cond = threading.Condition()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "pulsed", *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(REPO),
        )
        self._threads = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            try:
                event = json.loads(line[line.index("{") :]) if "{" in line else {}
            except ValueError:
                event = {}
            with self._cond:
                self.lines.append(line)
                self.events.append(event if isinstance(event, dict) else {})
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.out += chunk

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == event]

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

    def _named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def finish(self, timeout: float = 10.0) -> int:
        rc = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return rc

    def stop(self, timeout: float = 10.0) -> int:
        self.signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.finish()


@dataclass
class Result:
    """A short command run to completion."""

    code: int
    out: str
    err: str
    elapsed: float

    @property
    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.err.splitlines():
            if "{" in line:
                try:
                    found.append(json.loads(line[line.index("{") :]))
                except ValueError:
                    continue
        return found

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


# --- a shop and its state folder -------------------------------------------------------


class Rig:
    """One shop with its php stub, state folder and environment."""

    def __init__(
        self,
        lab: Lab,
        name: str,
        api_host: str,
        *,
        token: bool = True,
        child: str = "exit",
        telegram_url: str = CLOSED_PORT_URL,
        php_version: str = "8.2.7",
    ) -> None:
        self.lab = lab
        self.home = lab.tmp / name
        self.home.mkdir()
        self.root = self.home / "shop"
        shutil.copytree(REPO / "examples" / "shop", self.root)
        self.php = self.home / "bin" / "php"
        self.php.parent.mkdir()
        self.php.write_text(PHP_STUB.format(version=php_version))
        self.php.chmod(0o755)
        self.state = self.home / "state"
        self.dump = self.home / "dump"
        self.dump.mkdir()
        site = self.home / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.daemons: list[Daemon] = []
        self.results: list[Result] = []
        self.captured: list[tuple[str, bytes]] = []  # /proc reads made by a scenario
        self.env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{site}:{REPO}",
            "PULSE_API_HOST": api_host,
            "PULSE_HEARTBEAT_SECRET": SECRET,
            "OPENCART_ROOT": str(self.root),
            "PULSED_PHP": str(self.php),
            "PULSED_STATE_DIR": str(self.state),
            "PULSED_TEST_DUMP": str(self.dump),
            "PULSED_TEST_CHILD": child,
            "TELEGRAM_API_BASE": telegram_url,
        }
        if token:
            self.env["TELEGRAM_BOT_TOKEN"] = TOKEN

    @property
    def composer(self) -> Path:
        return self.root / "system/library/oc_telegram_shop/composer.json"

    # --- processes ----------------------------------------------------------

    def start(
        self, *args: str, env: Mapping[str, str | None] | None = None, prefix: Sequence[str] = ()
    ) -> Daemon:
        daemon = Daemon(args or ("run",), self._env(env), prefix=prefix)
        self.daemons.append(daemon)
        return daemon

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        prefix: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> Result:
        start = time.monotonic()
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "pulsed", *args],
            env=self._env(env),
            capture_output=True,
            timeout=timeout,
            cwd=str(REPO),
            check=False,
        )
        result = Result(
            done.returncode,
            done.stdout.decode("utf-8", errors="replace"),
            done.stderr.decode("utf-8", errors="replace"),
            time.monotonic() - start,
        )
        self.results.append(result)
        return result

    def _env(self, overrides: Mapping[str, str | None] | None) -> dict[str, str]:
        env = dict(self.env)
        for key, value in (overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def capture_children(self, daemon: Daemon) -> list[int]:
        """Read ``cmdline`` and ``environ`` of the daemon's live children, for the scan."""
        pids = children_of(daemon.pid)
        for pid in pids:
            for what in ("cmdline", "environ"):
                try:
                    blob = Path(f"/proc/{pid}/{what}").read_bytes()
                except OSError:
                    continue
                self.captured.append((f"/proc/{pid}/{what} (child of {daemon.pid})", blob))
        return pids

    # --- state --------------------------------------------------------------

    def identity(self, fetched_at: float | None = None) -> st.Identity:
        moment = time.time() if fetched_at is None else fetched_at
        return st.Identity(BOT, moment, fingerprint(TOKEN))

    def seed(self, state: st.State | None = None) -> None:
        """Write a state as the daemon would: by default a fresh kept identity, nothing else."""
        st.StateStore(self.state).save(state or st.State(identity=self.identity()))

    def read_state(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.state / "state.json").read_text())
        return doc

    def state_of(self) -> st.State:
        state = st.StateStore(self.state).read()
        assert state is not None
        return state

    # --- the scan -----------------------------------------------------------

    def scan(self, totals: ScanTotals) -> None:
        for daemon in self.daemons:
            totals.log_lines += len(daemon.lines)
            totals.outputs += 1
            totals.hits += leaks_in(
                f"log of pulsed {daemon.args}", "\n".join(daemon.lines).encode()
            )
            totals.hits += leaks_in(f"stdout of pulsed {daemon.args}", bytes(daemon.out))
        for result in self.results:
            totals.log_lines += len(result.err.splitlines())
            totals.outputs += 1
            totals.hits += leaks_in("output of a command", (result.out + result.err).encode())
        if self.state.is_dir():
            for path in sorted(self.state.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    totals.state_files += 1
                    totals.hits += leaks_in(str(path), path.read_bytes())
        for path in sorted(self.dump.iterdir()):
            totals.child_dumps += 1
            totals.hits += leaks_in(f"{path.name} (what a child was given)", path.read_bytes())
        for where, blob in self.captured:
            totals.live_children += 1
            totals.hits += leaks_in(where, blob)

    def dumps(self, kind: str) -> list[Path]:
        """The environ dumps of one kind of child: ``php`` or ``child`` (identity)."""
        return sorted(self.dump.glob(f"{kind}-*.environ"))


# --- the lab ---------------------------------------------------------------------------


class Lab:
    """Servers and rigs for one scenario; on a clean exit, the secrets scan."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rigs: list[Rig] = []
        self._stack = ExitStack()
        self.totals = ScanTotals()
        self._closed = False

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(check=exc_type is None)

    def receiver(self, receiver: Receiver | None = None) -> Receiver:
        rec = receiver if receiver is not None else Receiver(SECRET)
        rec.start()
        self._stack.callback(rec.stop)
        return rec

    def server(self, **kwargs: Any) -> FaultServer:
        srv = FaultServer(**kwargs)
        srv.start()
        self._stack.callback(srv.stop)
        return srv

    def telegram(self) -> FakeTelegram:
        fake = FakeTelegram(BOT, valid_token=TOKEN)
        fake.start()
        self._stack.callback(fake.stop)
        return fake

    def rig(self, api_host: str, name: str | None = None, **kwargs: Any) -> Rig:
        rig = Rig(self, name or f"shop{len(self.rigs)}", api_host, **kwargs)
        self.rigs.append(rig)
        return rig

    def mount(self, target: Path, *args: str) -> None:
        """``mount *args`` (as root); ``target`` is unmounted when the lab closes."""
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [shutil.which("mount") or "/bin/mount", *args], check=True, capture_output=True
        )
        umount = [shutil.which("umount") or "/bin/umount", "-l", str(target)]
        self._stack.callback(lambda: subprocess.run(umount, check=False, capture_output=True))

    def close(self, *, check: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        for rig in self.rigs:
            for daemon in rig.daemons:
                if daemon.proc.poll() is None:
                    daemon.kill()
        self._stack.close()
        totals = ScanTotals(labs=1)
        for rig in self.rigs:
            rig.scan(totals)
        self.totals = totals
        TOTALS.add(totals)
        if check and totals.hits:
            raise AssertionError("a secret leaked:\n" + "\n".join(totals.hits))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path) as the_lab:
        yield the_lab


@functools.cache
def can_mount() -> bool:
    """Whether this process may mount (root with CAP_SYS_ADMIN): tried once, on a scratch dir."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        return False
    with tempfile.TemporaryDirectory() as scratch:
        tried = subprocess.run(
            [mount, "-t", "tmpfs", "-o", "size=4k", "tmpfs", scratch],
            capture_output=True,
            check=False,
        )
        if tried.returncode != 0:
            return False
        subprocess.run([umount, scratch], capture_output=True, check=False)
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """For what no event announces (a file a hanging child wrote); checked every 10 ms."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


# --- the harness, checked ---------------------------------------------------------------


def test_the_scan_finds_a_planted_secret_everywhere_it_looks(tmp_path: Path) -> None:
    with Lab(tmp_path) as lab:
        rig = lab.rig(CLOSED_PORT_URL)
        rig.state.mkdir()
        (rig.state / "state.json.corrupt-x").write_text(f"...{SECRET}...")
        (rig.dump / "php-1.environ").write_bytes(b"X=" + TOKEN.encode())
        rig.captured.append(("/proc/1/cmdline", TOKEN.replace(":", "%3A").encode()))
        rig.results.append(Result(0, "", f'{{"message": "{SECRET}"}}', 0.0))
        with pytest.raises(AssertionError, match="a secret leaked") as info:
            lab.close()
    assert str(info.value).count("holds") == 4


def test_the_php_stub_and_the_identity_child_report_what_they_were_given(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL)
    result = rig.run("once", "--dry-run")
    assert result.code == 0, result.err
    (php,) = rig.dumps("php")
    (child,) = rig.dumps("child")
    for dump in (php, child):
        environ = dict(
            item.split("=", 1) for item in dump.read_bytes().decode().split("\0") if "=" in item
        )
        assert environ["PULSED_STATE_DIR"] == str(rig.state)  # a real environment was read
        assert "PULSE_HEARTBEAT_SECRET" not in environ and "TELEGRAM_BOT_TOKEN" not in environ
    assert b"pulsed._identity_child" in child.with_suffix(".cmdline").read_bytes()
    (failed,) = result.named("identity.failed")  # PULSED_TEST_CHILD=exit: no aiogram import
    assert failed["kind"] == "child" and failed["kept"] is None
