"""The one way pulsed reads a file it does not own: bounded, regular files only.

Shop files, the config file, credentials and the state file are all read here.
``O_NONBLOCK`` makes opening a FIFO planted where a file should be return at once,
to be refused as not regular instead of hanging the daemon; ``follow=False`` adds
``O_NOFOLLOW`` for files pulsed itself writes, so a planted symlink is never read
through; and no read takes more than ``limit`` bytes into memory, whatever the
file's size. Failures are one :class:`~pulsed._errors.FileError` with a short
reason; each caller turns it into its own error.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pulsed._errors import FileError

# errno → (kind, reason). ENXIO is what open(2) says for a socket.
_KINDS = {
    errno.ENOENT: ("missing", "not found"),
    errno.ENOTDIR: ("missing", "not found (a parent is not a directory)"),
    errno.EACCES: ("denied", "permission denied"),
    errno.EPERM: ("denied", "permission denied"),
    errno.ENXIO: ("not_regular", "not a regular file"),
}


@dataclass(frozen=True, slots=True)
class Read:
    data: bytes  # at most the limit
    cut: bool  # the file is longer than the limit; data is its start
    info: os.stat_result


def _error(path: Path, exc: OSError, follow: bool) -> FileError:
    code = exc.errno or 0
    if code == errno.ELOOP:  # O_NOFOLLOW met a symlink; without it, a loop
        kind, reason = ("other", "symlink loop") if follow else ("symlink", "a symlink")
    else:
        kind, reason = _KINDS.get(code, ("other", exc.strerror or type(exc).__name__))
    return FileError(str(path), reason, kind)


def read_regular(path: Path, limit: int, *, follow: bool = True) -> Read:
    """At most ``limit`` bytes of the regular file at ``path``."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _error(path, exc, follow) from exc
    except ValueError as exc:  # a NUL byte in the path
        raise FileError(repr(str(path)), "not a valid path", "other") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileError(str(path), "not a regular file", "not_regular")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    except OSError as exc:
        raise _error(path, exc, follow) from exc
    finally:
        os.close(fd)
    return Read(data[:limit], len(data) > limit, info)
