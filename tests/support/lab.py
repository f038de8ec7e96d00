"""The rig every reliability scenario runs on; the secrets scan when it ends.

A :class:`Lab` owns, for one scenario, the local servers (receivers, fault servers,
a Bot API stand-in) and any number of :class:`Rig` s: a :class:`~.process.Shop` whose
environment holds the heartbeat secret and a bot token. Every ``pulsed`` process a
rig starts (:meth:`Rig.start` for ``run``, :meth:`Rig.run` for the short commands)
keeps all of its output. When the lab closes it scans every captured log line and
stdout, every file left in every state folder, and what the daemon's children saw —
the php stub writes its own ``/proc/self/environ`` and ``cmdline`` into a dump
folder, and a ``sitecustomize`` on the ``PYTHONPATH`` does the same for the identity
child (``python -m pulsed._identity_child``) — for the secret and the token: any hit
fails the scenario (contract §7).

The same ``sitecustomize`` lets a scenario make the identity child misbehave:
``PULSED_TEST_CHILD=exit`` (exits at once, before aiogram is imported: the cheap
default, so a configured token costs no aiogram import), ``die`` (SIGKILLs
itself), ``hang`` (sleeps until the daemon kills it at its deadline), ``real``
(the real child, talking to a :class:`~devtools.fake_telegram.FakeTelegram`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from devtools.fake_telegram import FakeTelegram
from devtools.faultserver import FaultServer
from devtools.receiver import Receiver
from pulsed import _state as st
from pulsed._identity import fingerprint
from tests.support.process import REPO, Pulsed, Result, Shop, children_of, run_pulsed
from tests.support.scan import SECRET, TOKEN, TOTALS, ScanTotals, leaks_in

__all__ = ["BOT", "CLOSED_PORT_URL", "SECRET", "TOKEN", "Lab", "Rig", "can_mount"]

BOT = "acme_shop_bot"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens

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


class Rig(Shop):
    """One shop of a lab: its php stub, state folder, dump folder and environment."""

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
        home = lab.tmp / name
        home.mkdir()
        shop = Shop.create(home, api_host, php_version, secret=SECRET)
        super().__init__(shop.home, shop.root, shop.php, shop.state, shop.env)
        self.lab = lab
        self.dump = self.home / "dump"
        self.dump.mkdir()
        site = self.home / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.daemons: list[Pulsed] = []
        self.results: list[Result] = []
        self.captured: list[tuple[str, bytes]] = []  # /proc reads made by a scenario
        self.env.update(
            PYTHONPATH=f"{site}:{REPO}",
            PULSED_TEST_DUMP=str(self.dump),
            PULSED_TEST_CHILD=child,
            TELEGRAM_API_BASE=telegram_url,
        )
        if token:
            self.env["TELEGRAM_BOT_TOKEN"] = TOKEN

    # --- processes ----------------------------------------------------------

    def start(
        self, *args: str, env: Mapping[str, str | None] | None = None, prefix: Sequence[str] = ()
    ) -> Pulsed:
        daemon = Pulsed(args or ("run",), self._env(env), prefix=prefix)
        self.daemons.append(daemon)
        return daemon

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        prefix: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> Result:
        result = run_pulsed(args, self._env(env), prefix=prefix, timeout=timeout)
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

    def capture_children(self, daemon: Pulsed) -> list[int]:
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

    def telegram(self, username: str = BOT) -> FakeTelegram:
        fake = FakeTelegram(username, valid_token=TOKEN)
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
