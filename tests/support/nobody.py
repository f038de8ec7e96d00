"""Running a piece of a test as a user who may not read root's files.

Root reads every file, so where a test runs as root (as CI does) the piece runs in a
forked child that drops to ``nobody``; the interpreter is already loaded, so nothing
it would need to exec is out of its reach. As another user it simply runs forked.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

NOBODY = 65534


@contextlib.contextmanager
def reachable_folder(prefix: str) -> Iterator[Path]:
    """A fresh folder another user may enter (0755): pytest's tmp is 0700, which nobody
    may not. Removed with all it holds at exit."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_nobody(work: Callable[[], int]) -> tuple[int, str]:
    """``work()``'s return (as an exit status) and what it printed, run as nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 70
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = work()
            os.write(write, out.getvalue().encode())
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        printed = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), printed
