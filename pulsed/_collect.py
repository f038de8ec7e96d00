"""Gathering the facts of one heartbeat from the shop host.

Reads the module's composer.json and the shop's ``index.php`` statically (see
:mod:`pulsed._shop`), asks the PHP binary its version, and turns every failure
into a ``None`` with one ``collect.unavailable`` warning naming the field and why.
Nothing here raises: a heartbeat with nulls is better than none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulsed import _shop
from pulsed._errors import CollectError, SubprocessError
from pulsed._proc import run

log = logging.getLogger("pulsed.collect")

# PHP_VERSION is echoed without a newline, so it ends the output; anything a php.ini
# prints before it (startup warnings go to stdout on the CLI) is ignored.
_PHP_VERSION = re.compile(r"(?<![\w.])(\d+\.\d+\.\d+[0-9A-Za-z.+~-]*)\s*\Z")


@dataclass(frozen=True, slots=True)
class ShopFacts:
    php_version: str | None
    module_version: str | None
    ecommerce_version: str | None
    ecommerce_core_version: str | None


def _unavailable(field: str, reason: str) -> None:
    log.warning(
        "%s is null: %s",
        field,
        reason,
        extra={"event": "collect.unavailable", "field": field, "reason": reason},
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
    match = _PHP_VERSION.search(stdout.decode("utf-8", errors="replace"))
    return match.group(1) if match else None


async def php_version(binary: str, timeout: float, env: Mapping[str, str]) -> str | None:
    try:
        done = await run([binary, "-r", "echo PHP_VERSION;"], timeout=timeout, env=env)
    except SubprocessError as exc:
        _unavailable("php_version", str(exc))
        return None
    version = parse_php_version(done.stdout)
    if done.returncode != 0 or version is None:
        said = done.stdout.decode("utf-8", errors="replace").strip()[-80:]
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


async def collect(
    root: Path | None,
    composer: Path | None,
    php_binary: str,
    timeout: float,
    env: Mapping[str, str],
) -> ShopFacts:
    ecommerce, core = shop_versions(root)
    return ShopFacts(
        php_version=await php_version(php_binary, timeout, env),
        module_version=module_version(composer),
        ecommerce_version=ecommerce,
        ecommerce_core_version=core,
    )
