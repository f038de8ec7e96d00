"""``pulsed adopt FROM``: give a shop the state it had in another folder, on purpose.

Moving a shop between ``pulsed.service`` and ``pulsed@.service`` (or from an older
layout) changes where its state lives. Done as a side effect of starting a unit, by
root, on paths the daemon's user can plant, it once changed the owner of a root
file and handed one shop's schedule to another. So it is this explicit step:

- the state to move is read from ``FROM/state.json`` through the folder's
  descriptor, never through a link, and must parse as a state;
- it must record the domain of the shop it is given to (a state written before
  states recorded their domain is taken only with ``--unrecorded-domain``);
- both folders are locked, so neither the unit that had it nor the one that gets it
  is running, and the target must not have a state of its own;
- the state is written into the target folder through its descriptor (temp file,
  fsync, rename, as every state write), owned by the folder's owner (the receiving
  unit's user), and only then removed from ``FROM``. A target folder others may
  write is refused.

Every refusal is a :class:`~pulsed._errors.ConfigError` (exit 78) saying why.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from pulsed import _state, _wiring
from pulsed._errors import EX_OK, ConfigError, LockHeldError
from pulsed._events import event
from pulsed._files import check_owner_only, write_at

log = logging.getLogger("pulsed")

SETTING = "adopt"


def _open_folder(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        # O_DIRECTORY with O_NOFOLLOW says ENOTDIR for a link to a folder.
        linked = exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink()
        why = "is a symlink; not followed" if linked else exc.strerror
        raise ConfigError(SETTING, f"{path}: {why}") from exc


def _lock(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise LockHeldError(str(path), "a running pulsed") from exc


def _read_state(src_fd: int, source: Path) -> bytes:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    where = source / _state.STATE_FILE
    try:
        fd = os.open(_state.STATE_FILE, flags, dir_fd=src_fd)
    except OSError as exc:
        why = "is a symlink; not followed" if exc.errno == errno.ELOOP else exc.strerror
        raise ConfigError(SETTING, f"{where}: {why}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(SETTING, f"{where}: not a regular file")
        data = os.read(fd, _state.MAX_STATE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _state.MAX_STATE_BYTES:
        raise ConfigError(SETTING, f"{where}: over {_state.MAX_STATE_BYTES} bytes, not a state")
    return data


def move(source: Path, target: Path, domain: str, *, unrecorded: bool = False) -> _state.State:
    """Move ``source/state.json`` into ``target`` for the shop of ``domain``; the state moved."""
    src_fd = _open_folder(source)
    try:
        _lock(src_fd, source)
        data = _read_state(src_fd, source)
        try:
            state = _state.from_json(json.loads(data))
        except (ValueError, RecursionError) as exc:
            raise ConfigError(SETTING, f"{source}/state.json is not a state ({exc})") from exc
        if state.domain is None and not unrecorded:
            raise ConfigError(
                SETTING,
                f"{source}/state.json records no domain (written before states did); if it "
                f"is {domain}'s, say so with --unrecorded-domain",
            )
        if state.domain is not None and state.domain != domain:
            raise ConfigError(
                SETTING, f"{source}/state.json is the state of {state.domain}, not of {domain}"
            )
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        dst_fd = _open_folder(target)
        try:
            _lock(dst_fd, target)
            info = os.fstat(dst_fd)
            # The target is the receiving unit's folder, so its owner may be that unit's
            # (dynamic) user; only a folder others may write is refused.
            check_owner_only(
                target, info, "daemon.state_dir", use="keep state there", euid=info.st_uid
            )
            try:
                os.stat(_state.STATE_FILE, dir_fd=dst_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise ConfigError(
                    SETTING, f"{target} already has a state.json; refusing to replace it"
                )
            moved = replace(state, domain=domain)
            owner = (info.st_uid, info.st_gid) if os.geteuid() == 0 else None
            write_at(dst_fd, target, _state.STATE_FILE, _state.encoded(moved), 0o600, owner)
        finally:
            os.close(dst_fd)
        os.unlink(_state.STATE_FILE, dir_fd=src_fd)
        os.fsync(src_fd)
    except OSError as exc:
        raise ConfigError(SETTING, f"cannot move the state: {exc.strerror}") from exc
    finally:
        os.close(src_fd)
    return moved


def adopt(flags: Mapping[str, str], shops: Sequence[str], source: Path, *, unrecorded: bool) -> int:
    setup = _wiring.configure(flags, shops)
    if len(setup.shops) != 1:
        raise ConfigError(SETTING, "name the one shop whose state this is (--shop NAME)")
    cfg = setup.shops[0]
    moved = move(source, cfg.state_dir, cfg.domain, unrecorded=unrecorded)
    log.info(
        "state of %s moved from %s to %s",
        moved.domain,
        source,
        cfg.state_dir,
        extra=event("state.adopted", source=str(source), state_dir=str(cfg.state_dir)),
    )
    return EX_OK
