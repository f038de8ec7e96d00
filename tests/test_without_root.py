"""pulsed run by a user who is not root (contract §12): where its state and status file go,
what ``check`` says of them, ``once`` that cannot keep its state sending nothing, and
cron's cadence through the cycle ``once`` runs, on a simulated clock.

The defaults are pure functions of the environment and the user, tested as such. The
commands run as real processes: forked from this one and dropped to ``nobody`` when
this suite runs as root (the interpreter lives under ``/root``, which nobody may not
enter, so it is forked rather than started again), or started as root without the
capability that lets root write a folder its mode forbids (``setpriv``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from itertools import pairwise
from pathlib import Path

import pytest

from devtools.receiver import Receiver
from pulsed import _body, _cli, _timefmt
from pulsed._config import User
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._errors import EX_OK, EX_TEMPFAIL
from tests.support.loop import HOUR, fixed_facts, loop_config
from tests.support.nobody import NOBODY, reachable_folder
from tests.support.process import Result, Shop, events_of, run_pulsed

ALICE = User(1000, "/home/alice")
ROOT = User(0, "/root")
# Without these two capabilities root obeys file modes like anyone else.
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


# --- as a user who is not root, for real ------------------------------------------------------


@pytest.fixture
def home() -> Iterator[Path]:
    """A home folder nobody owns, where nobody can reach it (not under pytest's 0700 tmp)."""
    with reachable_folder("pulsed-home-") as folder:
        yield folder


def _own(path: Path, uid: int) -> None:
    if os.geteuid() != 0:
        return
    for where, dirs, files in os.walk(path):
        for name in [Path(where), *(Path(where, n) for n in dirs + files)]:
            os.lchown(name, uid, uid)


@functools.cache
def _loaded() -> None:
    """What a command imports late, imported here first: nobody may not read this
    interpreter's files under ``/root`` once the child has dropped to it."""
    import encodings.idna  # noqa: F401 -- str.encode("idna")
    import importlib.readers  # noqa: F401 -- certifi's bundle, found by httpx

    import certifi

    certifi.where()


def as_user(args: list[str], env: Mapping[str, str]) -> Result:
    """``pulsed ARGS`` in a process of its own running as nobody (as root) or as this user,
    with exactly ``env``: its exit status, stdout and stderr."""
    _loaded()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            code = 70
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False))
                sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False))
                os.environ.clear()
                os.environ.update(env)
                code = _cli.main(args)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        texts = []
        for stream in (out, err):
            stream.seek(0)
            texts.append(stream.read().decode("utf-8", errors="replace"))
    return Result(os.waitstatus_to_exitcode(status), texts[0], texts[1])


def user_shop(home: Path, receiver: Receiver, **env: str) -> Shop:
    """A shop in ``home``, owned by the user who runs it, with no state folder named:
    the defaults decide."""
    shop = Shop.create(home, receiver.url)
    del shop.env["PULSED_STATE_DIR"]
    shop.env.update(HOME=str(home), **env)
    _own(home, NOBODY)
    return shop


def user_shop_with_runtime_dir(home: Path, receiver: Receiver) -> tuple[Shop, Path]:
    """:func:`user_shop` in a session that has ``$XDG_RUNTIME_DIR`` (0700, the user's)."""
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    return user_shop(home, receiver, XDG_RUNTIME_DIR=str(runtime)), runtime


def test_a_user_keeps_the_state_in_its_home_so_a_second_once_sends_nothing(
    home: Path, receiver: Receiver
) -> None:
    shop = user_shop(home, receiver)
    first = as_user(["once"], shop.env)
    assert first.code == EX_OK, first.err
    second = as_user(["once"], shop.env)
    assert second.code == EX_OK, second.err
    assert [e["event"] for e in second.events] == ["heartbeat.skipped"]
    assert len(receiver.accepted) == 1
    state = home / ".local" / "state" / "pulsed"
    assert (state / "state.json").is_file()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_a_users_xdg_state_home_holds_the_state(home: Path, receiver: Receiver) -> None:
    shop = user_shop(home, receiver, XDG_STATE_HOME=str(home / "xdg-state"))
    assert as_user(["once"], shop.env).code == EX_OK
    assert (home / "xdg-state" / "pulsed" / "state.json").is_file()
    assert not (home / ".local" / "state").exists()


def test_a_users_status_file_is_written_under_its_runtime_dir(
    home: Path, receiver: Receiver
) -> None:
    shop, runtime = user_shop_with_runtime_dir(home, receiver)
    done = as_user(["once"], shop.env)
    assert done.code == EX_OK, done.err
    assert not done.named("status.unwritable")
    status = json.loads((runtime / "pulsed" / "status.json").read_text())
    assert status["shops"][0]["last_success"] is not None
    assert stat.S_IMODE((runtime / "pulsed").stat().st_mode) == 0o755


def test_check_shows_where_a_users_state_and_status_file_came_from(
    home: Path, receiver: Receiver
) -> None:
    shop, runtime = user_shop_with_runtime_dir(home, receiver)
    done = as_user(["check"], shop.env)
    assert done.code == EX_OK, done.err
    rows = {line.split()[0]: line for line in done.out.splitlines() if line.startswith("  ")}
    assert rows["daemon.state_dir"].endswith(
        f"{home}/.local/state/pulsed  [default: ~/.local/state, not root]"
    )
    assert rows["daemon.status_file"].endswith(
        f"{runtime}/pulsed/status.json  [default: $XDG_RUNTIME_DIR, not root]"
    )
    under_cron = {k: v for k, v in shop.env.items() if k != "XDG_RUNTIME_DIR"}
    done = as_user(["check"], {**under_cron, "XDG_STATE_HOME": str(home / "s")})
    rows = {line.split()[0]: line for line in done.out.splitlines() if line.startswith("  ")}
    assert rows["daemon.state_dir"].endswith("[default: $XDG_STATE_HOME, not root]")
    assert rows["daemon.status_file"].endswith(
        "(not set)  [default: not root, no $XDG_RUNTIME_DIR]"
    )


# --- once that cannot keep its state --------------------------------------------------------


def withheld_line(result: Result, folder: Path) -> None:
    """Exit 75 and one line, ``heartbeat.withheld``, naming the folder."""
    assert result.code == EX_TEMPFAIL, result.err
    (line,) = result.err.splitlines()
    (withheld,) = events_of(line)
    assert withheld["event"] == "heartbeat.withheld"
    assert withheld["level"] == "error"
    assert withheld["folder"] == str(folder)
    assert f"state folder {folder} cannot be written" in withheld["message"]


def test_a_user_whose_state_folder_is_roots_sends_nothing_and_exits_75(
    home: Path, receiver: Receiver
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a folder of root's: run as root")
    # The host: a user's once pointed at root's /var/lib/pulsed, every 5 minutes.
    roots = home / "var-lib-pulsed"
    shop = user_shop(home, receiver, PULSED_STATE_DIR=str(roots))
    roots.mkdir(mode=0o755)  # root's, made after the home was given to the user
    for _ in range(2):
        withheld_line(as_user(["once"], shop.env), roots)
    assert receiver.accepted == []
    forced = as_user(["once", "--force"], shop.env)
    assert forced.code == EX_OK, forced.err
    assert len(receiver.accepted) == 1
    assert forced.named("state.unwritable")  # sent, and said it kept nothing


@functools.cache
def _can_drop_dac() -> bool:
    if shutil.which("setpriv") is None:
        return False
    return subprocess.run([*NO_DAC, "true"], capture_output=True, check=False).returncode == 0


def unprivileged() -> tuple[str, ...]:
    """The prefix that makes a started process obey file modes: none unless root."""
    if os.geteuid() != 0:
        return ()
    if not _can_drop_dac():
        pytest.skip("root writes a read-only folder, and setpriv cannot drop that here")
    return NO_DAC


def test_once_with_a_state_folder_it_cannot_write_sends_nothing_and_force_still_sends(
    shop: Shop, receiver: Receiver
) -> None:
    prefix = unprivileged()
    shop.state.mkdir(mode=0o500)
    for _ in range(2):  # cron, a second apart
        withheld_line(run_pulsed(["once"], shop.env, prefix=prefix), shop.state)
    assert receiver.accepted == []
    assert list(shop.state.iterdir()) == []
    forced = run_pulsed(["once", "--force"], shop.env, prefix=prefix)
    assert forced.code == EX_OK, forced.err
    assert len(receiver.accepted) == 1


def test_once_with_a_state_folder_it_cannot_make_sends_nothing(
    shop: Shop, receiver: Receiver
) -> None:
    prefix = unprivileged()
    shop.state.mkdir(mode=0o500)
    below = shop.state / "below"
    withheld_line(
        run_pulsed(["once"], {**shop.env, "PULSED_STATE_DIR": str(below)}, prefix=prefix), below
    )
    assert receiver.accepted == []


def test_once_whose_in_flight_body_cannot_be_saved_sends_nothing(
    shop: Shop, receiver: Receiver
) -> None:
    # The folder can be written, the body cannot: a file size limit lets the lock and
    # the folder's check through and stops the state file's write (EFBIG).
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit is not here")
    limit = ("prlimit", "--fsize=256", "--")
    done = run_pulsed(["once"], shop.env, prefix=limit)
    assert done.code == EX_TEMPFAIL, done.err
    (withheld,) = done.named("heartbeat.withheld")
    assert withheld["folder"] == str(shop.state)
    assert withheld["reason"] == "File too large"
    assert not done.named("state.unwritable")
    assert receiver.accepted == []
    with contextlib.suppress(FileNotFoundError):
        assert "pending" not in (shop.state / "state.json").read_text()
    forced = run_pulsed(["once", "--force"], shop.env, prefix=limit)
    assert forced.code == EX_OK, forced.err
    assert len(receiver.accepted) == 1


# --- cron: once every P minutes, through the cycle once runs ---------------------------------

DAY = 86400.0
START = 1_800_000_000.0  # a whole minute, as cron's ticks are


class Clock:
    """The simulated wall clock every ``once`` of the day reads."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Answering:
    """A receiver that answers 200 after ``took`` seconds of the simulated clock, and
    keeps the moment each heartbeat names."""

    def __init__(self, clock: Clock, took: float) -> None:
        self.clock = clock
        self.took = took
        self.stamps: list[float] = []

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        beat = _body.decode(body)
        assert beat is not None
        self.stamps.append(_timefmt.parse(beat.timestamp))
        self.clock.now += self.took
        return Delivered(200, 1, self.took)


async def cron_day(state: Path, period: int, start_up: float) -> list[float]:
    """A day of cron running ``pulsed once`` every ``period`` minutes, each run a fresh
    cycle opened on the state folder as a new process opens it, deciding as once does;
    ``start_up`` seconds pass between cron's tick and the decision."""
    clock = Clock()
    receiver = Answering(clock, took=0.2)
    for tick in range(int(DAY) // (period * 60)):
        clock.now = START + tick * period * 60 + start_up
        cycle = Cycle.open(
            loop_config(state), writable=True, environ={}, wall=clock, collect=fixed_facts
        )
        if cycle.is_due():
            assert await cycle.deliver(await cycle.prepare(), receiver, must_keep=True)
    return receiver.stamps


@pytest.mark.anyio
@pytest.mark.parametrize("period", [1, 5, 15])
async def test_once_from_cron_every_p_minutes_sends_24_a_day_never_closer_than_an_hour_less_p(
    tmp_path: Path, period: int
) -> None:
    # 0.9 s from cron's tick to the decision: Python, the config and the state, on a
    # host of the slow kind. The body is stamped in that whole second, the 2xx comes
    # after it, so a schedule kept from the 2xx would miss the next hour's tick.
    sent = await cron_day(tmp_path, period, start_up=0.9)
    gaps = [b - a for a, b in pairwise(sent)]
    assert 23 <= len(sent) <= 25, len(sent)
    assert min(gaps) >= HOUR - period * 60
    # The hour kept, not drifting: with a steady start-up no heartbeat comes a cron
    # period late (a schedule kept from the 2xx makes every gap an hour plus P).
    assert max(gaps) <= HOUR + 1, max(gaps)
