"""The one way pulsed reads a file it does not own, and the one way it writes a file.

Reading: bounded, regular files only.

Shop files, the config file, credentials and the state file are all read here.
``O_NONBLOCK`` makes opening a FIFO planted where a file should be return at once,
to be refused as not regular instead of hanging the daemon; ``follow=False`` adds
``O_NOFOLLOW`` for files pulsed itself writes, so a planted symlink is never read
through; and no read takes more than ``limit`` bytes into memory, whatever the
file's size. Failures are one :class:`~pulsed._errors.FileError` with a short
reason; each caller turns it into its own error.

Writing: :func:`write_atomic` is how the state reaches the disk, and the status and
metrics files go the same way without its fsyncs, so a kill at any instant leaves the
old file or the new one and a reader (an admin page, node_exporter) never sees half of
one. :func:`write_new` creates the files pulsed writes for an operator (``shops.d``
files, credentials) the same way, but never over a file that exists.

Trusting: :func:`check_owner_only` is the one test of whether a file or folder
pulsed obeys (the config file, its folders, the state folder) could have been
changed by another user. :func:`write_public` writes the world-readable status and
metrics files through their folder's descriptor, opened without following a link
and checked with that test, so a folder swapped for a link between two writes
never turns a write as root into one somewhere else; it renames as
:func:`write_atomic` does, without the fsyncs (:func:`replace_at` says why).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from pulsed._errors import ConfigError, FileError, FileKind

# errno → (kind, reason). ENXIO is what open(2) says for a socket.
_KINDS: dict[int, tuple[FileKind, str]] = {
    errno.ENOENT: ("missing", "not found"),
    errno.ENOTDIR: ("missing", "not found (a parent is not a directory)"),
    errno.EACCES: ("denied", "permission denied"),
    errno.EPERM: ("denied", "permission denied"),
    errno.ENXIO: ("not_regular", "not a regular file"),
}


# A folder written through its descriptor; its own path is followed (a linked folder
# is written in), the names inside it are never.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Read:
    data: bytes  # at most the limit
    cut: bool  # the file is longer than the limit; data is its start
    info: os.stat_result


def _error(path: str | Path, exc: OSError, follow: bool) -> FileError:
    code = exc.errno or 0
    kind: FileKind
    if code == errno.ELOOP:  # O_NOFOLLOW met a symlink; without it, a loop
        kind, reason = ("other", "symlink loop") if follow else ("symlink", "a symlink")
    else:
        kind, reason = _KINDS.get(code, ("other", exc.strerror or type(exc).__name__))
    return FileError(str(path), reason, kind)


def check_owner_only(
    path: Path, info: os.stat_result, setting: str, *, use: str, euid: int | None = None
) -> None:
    """Refuse ``path`` (``info`` is its stat) if anyone but root and pulsed's user could change it.

    As sshd's StrictModes: what pulsed obeys or keeps must not be another user's
    to write, so it is refused when owned by another user, or writable by its group
    or by others. :class:`ConfigError` names ``setting``; ``use`` ends the refusal
    of an owner (``keep state there``). ``euid`` is pulsed's, when not this process's.
    """
    uid = os.geteuid() if euid is None else euid
    if info.st_uid not in (0, uid):
        raise ConfigError(
            setting,
            f"{path} is owned by uid {info.st_uid}, not by pulsed's user or root; "
            f"refusing to {use}",
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            setting, f"{path} is writable by others (mode {mode:04o}); chmod go-w {path}"
        )


def read_regular(path: str | Path, limit: int, *, follow: bool = True) -> Read:
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


def temp_prefix(name: str) -> str:
    """The start of every temp file name :func:`write_atomic` uses for the file ``name``.

    A leading dot and no extension of the target's: node_exporter's textfile
    collector reads only ``*.prom``, so it never reads a half-written metrics file.
    """
    return f".{name}.tmp-"


def _temp_name(name: str) -> str:
    # A plain string, used only through the folder's descriptor: pathlib (Python 3.10
    # and 3.11) would parse a Path of it and intern its parts, for a name used once.
    return temp_prefix(name) + secrets.token_hex(8)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, fsync, rename, fsync folder.

    The temp file has an unpredictable name and is created exclusively, never
    through a symlink, so nothing planted in the folder can redirect the write; the
    rename replaces a symlink at ``path`` itself, never its target. ``mode`` is set
    with ``fchmod``, so a service's ``UMask=0077`` does not make a file meant for a
    web server (0644) unreadable to it. The folder must exist. On failure the old
    file is untouched, no temp file is left, and :class:`FileError` says why.
    """
    folder = path.parent
    try:
        dir_fd = os.open(folder, _FOLDER_FLAGS)
    except OSError as exc:  # the folder's path is followed: an ELOOP there is a loop
        raise _error(path, exc, True) from exc
    except ValueError as exc:  # a NUL byte in the path
        raise FileError(repr(str(path)), "not a valid path", "other") from exc
    try:
        write_at(dir_fd, folder, path.name, data, mode)
    finally:
        os.close(dir_fd)


def remove_leftovers(path: Path) -> None:
    """Remove the temp files a killed :func:`write_atomic` of ``path`` left beside it.

    Call only while no other process writes ``path`` (pulsed holds its lock).
    """
    prefix = temp_prefix(path.name)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, _FOLDER_FLAGS)
        try:
            for name in os.listdir(dir_fd):  # noqa: PTH208 -- a descriptor: pathlib lists none
                if name.startswith(prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dir_fd)  # a planted symlink itself, never its target
        finally:
            os.close(dir_fd)


def open_trusted_folder(folder: Path, setting: str, *, euid: int | None = None) -> int:
    """A descriptor of ``folder``, which must be a real folder (not a link) that only root
    and pulsed's user can change; :class:`ConfigError` naming ``setting`` otherwise."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(folder, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            why = "is a symlink; name the folder itself"
        else:
            why = exc.strerror or type(exc).__name__
        raise ConfigError(setting, f"{folder}: {why}") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError(setting, f"{str(folder)!r}: not a valid path") from exc
    try:
        check_owner_only(folder, os.fstat(fd), setting, use="write there", euid=euid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_temp(
    dir_fd: int, tmp: str, data: bytes, mode: int, owner: tuple[int, int] | None
) -> None:
    """A new file ``tmp`` in the folder open at ``dir_fd``, holding ``data`` on disk."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_at(
    dir_fd: int,
    folder: Path,
    name: str,
    data: bytes,
    mode: int,
    owner: tuple[int, int] | None = None,
) -> None:
    """:func:`write_atomic` of ``name`` inside the folder open at ``dir_fd``; ``owner``
    (uid, gid) is given to the temp file's descriptor before the rename, never by path."""
    tmp = _temp_name(name)
    try:
        _write_temp(dir_fd, tmp, data, mode, owner)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise _error(folder / name, exc, False) from exc
    except ValueError as exc:  # a NUL byte in the name
        raise FileError(repr(str(folder / name)), "not a valid path", "other") from exc


def write_new(dir_fd: int, folder: Path, name: str, data: bytes, mode: int) -> bool:
    """Create ``name`` in the folder open at ``dir_fd`` with ``data``, never replacing a file.

    Whole or not at all, as :func:`write_at`: the temp file is linked to ``name``
    (``link(2)`` fails on an existing name, a symlink included), so a file that exists
    is never touched and a reader never sees half of a new one. ``False`` when ``name``
    already exists; :class:`FileError` when the write fails.
    """
    tmp = _temp_name(name)
    try:
        _write_temp(dir_fd, tmp, data, mode, None)
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return False
        os.fsync(dir_fd)
    except OSError as exc:
        raise _error(folder / name, exc, False) from exc
    except ValueError as exc:  # a NUL byte in the name
        raise FileError(repr(str(folder / name)), "not a valid path", "other") from exc
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.unlink(tmp, dir_fd=dir_fd)
    return True


def write_public(path: Path, data: bytes, mode: int, setting: str) -> None:
    """Replace ``path`` atomically, through its folder's descriptor once that folder is
    checked (:func:`open_trusted_folder`); :class:`FileError` when refused or failed,
    its message naming the ``setting`` before the path: the operator's warning then
    says which setting to look at."""
    named = f"{setting} {path}"
    try:
        dir_fd = open_trusted_folder(path.parent, setting)
    except ConfigError as exc:
        raise FileError(named, exc.reason, "denied") from exc
    try:
        replace_at(dir_fd, path.parent, path.name, data, mode)
    except FileError as exc:
        raise FileError(named, exc.reason, exc.kind) from exc
    finally:
        os.close(dir_fd)


def replace_at(dir_fd: int, folder: Path, name: str, data: bytes, mode: int) -> None:
    """:func:`write_at` without its two fsyncs, for the public files.

    A reader still sees the old file or the new one, whole: that is the rename's,
    fsync or not. What the fsyncs add is a file that survives a power loss, and the
    status and metrics files need none: they live in ``/run`` (tmpfs) under the
    shipped units, and pulsed writes them afresh at every start. Without them, a
    write to a disk folder costs the page cache, not a wait for the disk while the
    event loop waits (docs/status.md has the figures).
    """
    tmp = f"{temp_prefix(name)}{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise _error(folder / name, exc, False) from exc
    except ValueError as exc:  # a NUL byte in the name
        raise FileError(repr(str(folder / name)), "not a valid path", "other") from exc
