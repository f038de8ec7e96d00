"""Gathering the facts of one heartbeat from the shop host.

Reads the module's composer.json and the shop's ``index.php`` statically (see
:mod:`pulsed._shop`), asks the PHP binary its version, and turns every failure
into a ``None`` with one ``collect.unavailable`` warning naming the field and why.
Nothing here raises: a heartbeat with nulls is better than none.

What a file said is kept (:class:`ShopFiles`) and the file read again only when a
stat says it changed; the php version is kept per binary (:class:`PhpVersions`).
Every warning is given again at each heartbeat, kept or not.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

from pulsed import _shop
from pulsed._body import ShopFacts
from pulsed._errors import CollectError, SubprocessError
from pulsed._events import event
from pulsed._proc import run

log = logging.getLogger("pulsed.collect")

# PHP_VERSION is echoed without a newline, so it ends the output; anything a php.ini
# prints before it (startup warnings go to stdout on the CLI) is ignored.
_PHP_VERSION = re.compile(r"(?<![\w.])(\d+\.\d+\.\d+[0-9A-Za-z.+~-]*)\s*\Z")


def _unavailable(field: str, reason: str) -> None:
    log.warning(
        "%s is null: %s",
        field,
        reason,
        extra=event("collect.unavailable", field=field, reason=reason),
    )


def _composer_version(file: _shop.ShopFile) -> tuple[str | None, str | None]:
    """The module's version, or None and why."""
    try:
        return _shop.plausible_version(_shop.composer_version(file.text), "module_version"), None
    except CollectError as exc:
        return None, f"{file.where}: {exc}"


def module_version(composer: Path | None, files: ShopFiles | None = None) -> str | None:
    if composer is None:
        _unavailable("module_version", "neither shop.composer_json nor shop.root is set")
        return None
    try:
        version, why = (files or ShopFiles()).composer.made(composer)  # its errors name the path
    except CollectError as exc:
        _unavailable("module_version", str(exc))
        return None
    if why is not None:
        _unavailable("module_version", why)
    return version


def shop_versions(
    root: Path | None, files: ShopFiles | None = None
) -> tuple[str | None, str | None]:
    """``VERSION`` and ``VERSION_CORE`` from ``<root>/index.php``; a missing core is normal."""
    if root is None:
        _unavailable("ecommerce_version", "shop.root is not set")
        return None, None
    try:
        version, core, problems = (files or ShopFiles()).index.made(root / "index.php")
    except CollectError as exc:
        _unavailable("ecommerce_version", str(exc))
        return None, None
    for field, reason in problems:
        _unavailable(field, reason)
    return version, core


FileKey = tuple[int, int, int, int, int]


def file_key(path: Path) -> FileKey | None:
    """What tells one version of a file from another: its device, inode, size, mtime
    and ctime. None when it cannot be looked at (reading it says why).

    The ctime is there because an edit can keep the size and put the mtime back
    (``touch -r``, a restore, some deploy tools), but nothing sets the ctime.
    """
    try:
        info = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


# A file changed less than this long before it was looked at is not kept: a second
# change within the same tick of the file system's clock (up to 2 s on some) could
# leave every stamp as it was, and what was read would be kept past it.
SETTLED_NS = 2_000_000_000
_Made = TypeVar("_Made")


class KeptFile(Generic[_Made]):
    """What was made of one file, made again only when the file changes.

    One result is kept, the latest path's: a shop whose path changes on reload
    replaces it, so nothing grows. Only a file that was read is kept; one that
    could not be is tried again each time, its error raised again.
    """

    def __init__(
        self,
        make: Callable[[_shop.ShopFile], _Made],
        read: Callable[[Path], _shop.ShopFile],
        clock: Callable[[], int],
    ) -> None:
        self._make = make
        self._read = read
        self._clock = clock
        self._kept: tuple[Path, FileKey, _Made] | None = None

    def made(self, path: Path) -> _Made:
        """What ``path`` says; :class:`CollectError` when it cannot be read."""
        # Looked at before it is read: a change after this look changes what the next
        # look sees, so what was read is never kept under a later file's stamps.
        key = file_key(path)
        if key is not None and self._kept is not None and self._kept[:2] == (path, key):
            return self._kept[2]
        made = self._make(self._read(path))
        if key is not None and self._clock() - key[4] >= SETTLED_NS:
            self._kept = (path, key, made)
        return made


class ShopFiles:
    """One shop's ``index.php`` and composer.json as last made sense of (see :class:`KeptFile`).

    Each shop's cycle has its own, so it goes with the shop; ``read`` and ``clock``
    are for tests.
    """

    def __init__(
        self,
        read: Callable[[Path], _shop.ShopFile] = _shop.read,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.index = KeptFile(_shop.versions, read, clock)
        self.composer = KeptFile(_composer_version, read, clock)


def parse_php_version(stdout: bytes) -> str | None:
    match = _PHP_VERSION.search(stdout.decode(errors="replace"))
    return match.group(1) if match else None


async def php_version(binary: str, timeout: float, env: Mapping[str, str]) -> str | None:
    try:
        done = await run([binary, "-r", "echo PHP_VERSION;"], timeout=timeout, env=env)
    except SubprocessError as exc:
        _unavailable("php_version", str(exc))
        return None
    version = parse_php_version(done.stdout)
    if done.returncode != 0 or version is None:
        said = done.stdout.decode(errors="replace").strip()[-80:]
        _unavailable(
            "php_version",
            f"{binary} exited {done.returncode} and printed {said!r}, not a PHP version",
        )
        return None
    try:
        return _shop.plausible_version(version, "php_version")
    except CollectError as exc:
        _unavailable("php_version", f"{binary} printed {exc}")
        return None


BinaryKey = tuple[str, int, int, int, int]


def binary_key(binary: str, env: Mapping[str, str]) -> BinaryKey | None:
    """What names one php binary exactly: its path, device, inode, size and mtime.

    None when there is nothing to run: ``which`` looks a bare name up on the PATH the
    child gets, as running it does, and checks a path with a ``/`` as it is. The child
    runs from ``/`` (:func:`pulsed._proc.run`), so a relative path, or a relative
    folder on that PATH, names what it names from there, not from pulsed's own folder.
    """
    found = shutil.which(
        _from_root(binary) if os.sep in binary else binary,
        path=_search_from_root(env.get("PATH", os.defpath)),
    )
    if found is None:
        return None
    where = Path(found)
    try:
        info = where.stat()
    except OSError:
        return None
    return (str(where), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _from_root(path: str) -> str:
    """``path`` as a child running from ``/`` reads it (an empty PATH entry is its folder)."""
    return os.path.join(os.sep, path)  # noqa: PTH118 -- a str in and out, at every heartbeat


@functools.lru_cache(maxsize=8)
def _search_from_root(search: str) -> str:
    """A PATH as a child running from ``/`` searches it: asked at every heartbeat, and a
    host's shops share one or two."""
    return os.pathsep.join(_from_root(folder) for folder in search.split(os.pathsep))


class PhpVersions:
    """php asked its version once per binary, and again only when the binary changes.

    Shops that share a binary share its answer; a replaced binary (another inode,
    size or mtime: an upgrade) is asked again. A failed answer is not kept, so the
    next heartbeat tries again. One answer is kept per path, the latest.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[BinaryKey, str]] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self.asked = 0

    async def version(self, binary: str, timeout: float, env: Mapping[str, str]) -> str | None:
        key = binary_key(binary, env)
        if key is None:
            self.asked += 1
            return await php_version(binary, timeout, env)  # says why it failed
        path = key[0]
        # Shops due together wait for one answer rather than ask twice; another
        # binary has its own lock, so a php that hangs holds up only its own shops.
        async with self._locks.setdefault(path, anyio.Lock()):
            known = self._known.get(path)
            if known is not None and known[0] == key:
                return known[1]
            self.asked += 1
            version = await php_version(binary, timeout, env)
            if version is not None:
                self._known[path] = (key, version)
            return version


async def collect(
    root: Path | None,
    composer: Path | None,
    php_binary: str,
    timeout: float,
    env: Mapping[str, str],
    *,
    php: PhpVersions | None = None,
    files: ShopFiles | None = None,
) -> ShopFacts:
    # Off the event loop: scanning a 1 MiB index.php built to be slow takes seconds of
    # CPU, and every other shop's heartbeat would wait for it (a stat of a file kept
    # can hang on a network file system too). The worker thread keeps this task's
    # context, so its warnings still name the shop.
    # Both files in one trip to the thread: each trip costs the loop more than a stat.
    (ecommerce, core), module = await anyio.to_thread.run_sync(_files_facts, root, composer, files)
    asked = php.version if php is not None else php_version
    return ShopFacts(
        php_version=await asked(php_binary, timeout, env),
        module_version=module,
        ecommerce_version=ecommerce,
        ecommerce_core_version=core,
    )


def _files_facts(
    root: Path | None, composer: Path | None, files: ShopFiles | None
) -> tuple[tuple[str | None, str | None], str | None]:
    return shop_versions(root, files), module_version(composer, files)
