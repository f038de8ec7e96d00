"""Gathering the facts of one heartbeat from the shop host.

Reads the module's composer.json and the shop's ``index.php`` statically (see
:mod:`pulsed._shop`), asks the PHP binary its version, and turns every failure
into a ``None`` with one ``collect.unavailable`` warning naming the field and why.
Nothing here raises: a heartbeat with nulls is better than none.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

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


def module_version(composer: Path | None) -> str | None:
    if composer is None:
        _unavailable("module_version", "neither shop.composer_json nor shop.root is set")
        return None
    try:
        file = _shop.read(composer)  # its errors name the path
    except CollectError as exc:
        _unavailable("module_version", str(exc))
        return None
    try:
        return _shop.plausible_version(_shop.composer_version(file.text), "module_version")
    except CollectError as exc:
        _unavailable("module_version", f"{file.where}: {exc}")
        return None


def shop_versions(root: Path | None) -> tuple[str | None, str | None]:
    """``VERSION`` and ``VERSION_CORE`` from ``<root>/index.php``; a missing core is normal."""
    if root is None:
        _unavailable("ecommerce_version", "shop.root is not set")
        return None, None
    try:
        index = _shop.read(root / "index.php")
    except CollectError as exc:
        _unavailable("ecommerce_version", str(exc))
        return None, None
    version, core, problems = _shop.versions(index)
    for field, reason in problems:
        _unavailable(field, reason)
    return version, core


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
    search = env.get("PATH", os.defpath).split(os.pathsep)
    found = shutil.which(
        _from_root(binary) if os.sep in binary else binary,
        path=os.pathsep.join(_from_root(folder) for folder in search),
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
    return str(Path("/") / path)


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
) -> ShopFacts:
    # Off the event loop: scanning a 1 MiB index.php built to be slow takes seconds of
    # CPU, and every other shop's heartbeat would wait for it. The worker thread keeps
    # this task's context, so its warnings still name the shop.
    ecommerce, core = await anyio.to_thread.run_sync(shop_versions, root)
    asked = php.version if php is not None else php_version
    return ShopFacts(
        php_version=await asked(php_binary, timeout, env),
        module_version=await anyio.to_thread.run_sync(module_version, composer),
        ecommerce_version=ecommerce,
        ecommerce_core_version=core,
    )
