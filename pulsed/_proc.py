"""Running a child process with a deadline, a capped output and a clean environment.

The one place pulsed starts processes (``php -r``, the identity child). Children
never inherit a secret: :func:`child_environ` drops every variable that holds
one, every variable a secret setting is read from (its caller names them), and
the systemd variables that belong to the daemon alone. Input goes through a pipe,
never the command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from pulsed._errors import SubprocessError

MAX_OUTPUT = 64 * 1024
# systemd's hand-over to the daemon alone.
_DAEMON_ONLY = frozenset(
    {
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "CREDENTIALS_DIRECTORY",
    }
)


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def child_environ(
    environ: Mapping[str, str],
    secrets: Iterable[str],
    secret_variables: Collection[str],
) -> dict[str, str]:
    """``environ`` without the daemon's own variables, ``secret_variables``, and any
    variable whose name or value holds one of ``secrets``.

    ``secret_variables`` are the variables secret settings are read from
    (:data:`pulsed._settings.SECRET_VARIABLES`): dropped by name, whatever they hold,
    since another shop's secret is not among this one's ``secrets``.
    """
    needles = [s for s in secrets if s]
    return {
        key: value
        for key, value in environ.items()
        if key not in _DAEMON_ONLY
        and key not in secret_variables
        and not any(n in value or n in key for n in needles)
    }


async def _drain(stream: ByteReceiveStream | None, into: bytearray) -> None:
    if stream is None:
        return
    async for chunk in stream:
        # Keep reading past the cap so a chatty child never blocks on a full pipe.
        into += chunk[: MAX_OUTPUT - len(into)]


async def _reap(process: Process) -> None:
    """Kill the child's whole process group, then close its pipes and reap it.

    The child leads its own group (its own session), so this also ends whatever it
    started: a wrapper script's grandchild must not outlive a timeout. The group id
    stays reserved while any member lives, so the kill never reaches a stranger.
    Closing the pipes here, not in a finaliser, keeps asyncio from printing a
    traceback about a closed event loop.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with anyio.CancelScope(shield=True):
        await process.aclose()


async def run(
    argv: list[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    cwd: str = "/",
) -> Completed:
    """Run ``argv`` to completion within ``timeout`` s; :class:`SubprocessError` otherwise.

    On timeout or cancellation the child is killed and reaped before this returns.
    """
    name = Path(argv[0]).name
    try:
        process = await anyio.open_process(
            argv,
            # Always a pipe, closed at once when there is no input: the child reads an
            # empty stdin, never the daemon's.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            # Its own session and process group: a Ctrl-C at the terminal reaches the
            # daemon, which then ends the child and all it started (see _reap).
            start_new_session=True,
        )
    except OSError as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise SubprocessError(f"{argv[0]}: {reason}") from exc
    out, err = bytearray(), bytearray()
    try:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_drain, process.stdout, out)
                tg.start_soon(_drain, process.stderr, err)
                if process.stdin is not None:
                    try:
                        await process.stdin.send(stdin or b"")
                        await process.stdin.aclose()
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass  # it exited without reading; its exit status tells why
                await process.wait()
    except TimeoutError as exc:
        raise SubprocessError(f"{name}: no answer within {timeout:g} s") from exc
    finally:
        await _reap(process)
    return Completed(process.returncode or 0, bytes(out), bytes(err))
