"""Running a child process: its output, its deadline, its environment, on real processes."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest

from pulsed import _proc
from pulsed._errors import SubprocessError
from pulsed._settings import SECRET_VARIABLES

pytestmark = pytest.mark.anyio

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


async def test_a_child_gives_its_exit_status_and_both_outputs() -> None:
    done = await _proc.run(sh("printf out; printf err >&2; exit 3"), timeout=5, env=ENV)
    assert done == _proc.Completed(3, b"out", b"err")


async def test_input_reaches_the_child_through_its_stdin() -> None:
    done = await _proc.run(["/bin/cat"], timeout=5, env=ENV, stdin=b"through the pipe")
    assert done.stdout == b"through the pipe"


async def test_without_input_the_child_reads_an_empty_stdin() -> None:
    done = await _proc.run(sh("wc -c"), timeout=5, env=ENV)
    assert done.stdout.strip() == b"0"


async def test_a_child_that_does_not_read_its_input_still_gives_its_answer() -> None:
    done = await _proc.run(sh("exec 0<&-; echo done"), timeout=5, env=ENV, stdin=b"x" * 1_000_000)
    assert (done.returncode, done.stdout) == (0, b"done\n")


async def test_the_child_runs_in_the_folder_it_is_given(tmp_path: Path) -> None:
    assert (await _proc.run(["/bin/pwd"], timeout=5, env=ENV)).stdout == b"/\n"
    done = await _proc.run(["/bin/pwd"], timeout=5, env=ENV, cwd=str(tmp_path))
    assert done.stdout == f"{tmp_path}\n".encode()


async def test_the_child_gets_exactly_the_environment_it_is_given() -> None:
    done = await _proc.run(["/usr/bin/env"], timeout=5, env={"ONLY": "this"})
    assert done.stdout == b"ONLY=this\n"


async def test_output_is_kept_up_to_the_cap_and_the_rest_is_read_and_dropped() -> None:
    script = f"head -c {_proc.MAX_OUTPUT + 5000} /dev/zero; head -c 100 /dev/zero >&2"
    done = await _proc.run(sh(script), timeout=5, env=ENV)
    assert (len(done.stdout), len(done.stderr), done.returncode) == (_proc.MAX_OUTPUT, 100, 0)


async def test_a_child_past_its_deadline_is_killed_with_what_it_started() -> None:
    start = time.monotonic()
    with pytest.raises(SubprocessError, match=r"^sh: no answer within 0\.5 s$"):
        await _proc.run(sh("sleep 60 & echo $! ; wait"), timeout=0.5, env=ENV)
    assert time.monotonic() - start < 5


async def test_a_grandchild_does_not_outlive_the_deadline(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(SubprocessError):
        await _proc.run(sh(f"sleep 60 & echo $! > {pid_file}; wait"), timeout=0.5, env=ENV)
    try:
        pidfd = os.pidfd_open(int(pid_file.read_text()))
    except ProcessLookupError:
        return  # gone and reaped already
    try:
        # A pidfd turns readable when its process has ended: it was killed, or this
        # waits out the 5 s and fails.
        readable, _, _ = select.select([pidfd], [], [], 5)
    finally:
        os.close(pidfd)
    assert readable, "the grandchild outlived the deadline"


async def test_a_program_that_is_not_there_is_named_as_not_found(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-php")
    with pytest.raises(SubprocessError, match=rf"^{missing}: not found$"):
        await _proc.run([missing], timeout=5, env=ENV)


async def test_a_program_that_cannot_be_run_gives_the_systems_reason(tmp_path: Path) -> None:
    script = tmp_path / "php"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    if os.access(script, os.X_OK):
        pytest.skip("root may run any file")
    with pytest.raises(SubprocessError, match=rf"^{script}: Permission denied$"):
        await _proc.run([str(script)], timeout=5, env=ENV)


def test_the_childs_environment_drops_the_daemons_own_variables() -> None:
    environ = {
        "PATH": "/bin",
        "NOTIFY_SOCKET": "/run/n",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "1",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "1",
        "CREDENTIALS_DIRECTORY": "/run/c",
        "PULSE_HEARTBEAT_SECRET": "s" * 16,
        "TELEGRAM_BOT_TOKEN": "t",
    }
    assert _proc.child_environ(environ, [], SECRET_VARIABLES) == {"PATH": "/bin"}


def test_the_childs_environment_drops_any_variable_holding_a_secret() -> None:
    environ = {"PATH": "/bin", "DEBUG_URL": "https://x/?k=hunter22", "hunter22": "v", "LANG": "C"}
    got = _proc.child_environ(environ, ["hunter22", ""], SECRET_VARIABLES)
    assert got == {"PATH": "/bin", "LANG": "C"}


def test_the_variables_named_as_secret_go_whatever_they_hold() -> None:
    environ = {"PATH": "/bin", "PULSE_API_KEY": "another-shop-s-key", "SHOP_KEY": "k"}
    named = {"PULSE_API_KEY", "SHOP_KEY"}
    assert _proc.child_environ(environ, ["this-shop-s-secret"], named) == {"PATH": "/bin"}
    assert _proc.child_environ(environ, [], frozenset()) == environ


def test_the_secret_settings_variables_go_whatever_they_hold() -> None:
    environ = {"PATH": "/bin", **dict.fromkeys(SECRET_VARIABLES, "x")}
    assert _proc.child_environ(environ, [], SECRET_VARIABLES) == {"PATH": "/bin"}
