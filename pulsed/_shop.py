"""The shop's files: what pulsed learns from them, read as text and never executed.

This module owns the one bounded file read of the shop tree and what is made of it
(contract §1, §2): ``VERSION`` / ``VERSION_CORE`` of ``<root>/index.php``, the domain
of ``<root>/config.php``, and the module's composer.json version, each checked to be
what its source promises. Running the shop's PHP to learn them would run whatever a
compromised or half-updated shop holds, as the daemon's user, once an hour.
Every failure is a :class:`~pulsed._errors.CollectError` whose message says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pulsed._errors import CollectError, FileError
from pulsed._files import read_regular
from pulsed._hostname import normalize_domain
from pulsed._phpdefine import Define, scan, value_of

READ_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class ShopFile:
    path: Path
    text: str
    cut: bool  # the file is longer than the read limit; text is its start

    @property
    def where(self) -> str:
        """The path, and that only its start was read when it was cut."""
        return (
            f"{self.path} (cut at the {READ_LIMIT >> 20} MiB read limit)"
            if self.cut
            else str(self.path)
        )

    def absent(self, what: str) -> str:
        """Why ``what`` was not found, saying so when the file was cut."""
        if self.cut:
            return (
                f"no {what} in the first {READ_LIMIT >> 20} MiB of {self.path}"
                " (file is larger; cut at the read limit)"
            )
        return f"no {what} in {self.path}"


def read(path: Path, limit: int = READ_LIMIT, *, follow: bool = True) -> ShopFile:
    """At most ``limit`` bytes of a regular file, as UTF-8 (bad bytes replaced);
    ``follow=False``: a symlink is refused, not read through."""
    try:
        got = read_regular(path, limit, follow=follow)
    except FileError as exc:
        raise CollectError(str(exc)) from exc
    return ShopFile(path, got.data.decode("utf-8", "replace"), got.cut)


def versions(index: ShopFile) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """``VERSION`` and ``VERSION_CORE``, and (field, why) for each that is None.

    A missing ``VERSION_CORE`` is plain OpenCart: None without a reason.
    """
    defines = scan(index.text)
    problems: list[tuple[str, str]] = []
    values: list[str | None] = []
    for field, name in (
        ("ecommerce_version", "VERSION"),
        ("ecommerce_core_version", "VERSION_CORE"),
    ):
        try:
            value = _define(index, defines, name)
            values.append(None if value is None else plausible_version(value, field))
            if value is None and name == "VERSION":
                problems.append((field, index.absent("define('VERSION', …)")))
        except CollectError as exc:
            values.append(None)
            problems.append((field, str(exc)))
    return values[0], values[1], problems


def _define(file: ShopFile, defines: list[Define], name: str) -> str | None:
    try:
        return value_of(defines, name)
    except CollectError as exc:
        raise CollectError(f"{file.path}: {exc}") from None


def domain(config: ShopFile) -> str:
    """The host of ``HTTPS_SERVER``, else of ``HTTP_SERVER``: only an absent or empty one
    falls back.

    An HTTPS_SERVER defined as ``''`` is a shop without SSL (common on 1.5.x), and
    OpenCart itself then uses HTTP_SERVER. One that is there but cannot be known, or
    is no host, is an error: falling back would report the shop's plain-HTTP name as
    if it were the other.
    """
    defines = scan(config.text)
    for name in ("HTTPS_SERVER", "HTTP_SERVER"):
        value = _define(config, defines, name)
        if value is not None and (value != "" or name == "HTTP_SERVER"):
            try:
                return normalize_domain(value)
            except CollectError as exc:
                raise CollectError(f"{config.path}: {name}: {exc}") from None
    raise CollectError(config.absent("define('HTTPS_SERVER', …) nor define('HTTP_SERVER', …)"))


def composer_version(text: str) -> str:
    """The ``"version"`` string of a composer.json document."""
    try:
        # A BOM is what some editors add on save; the version is still plain to read.
        doc = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise CollectError(
            f"composer.json is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except (ValueError, RecursionError):  # huge integers, absurd nesting
        raise CollectError("composer.json is not valid JSON") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version:
        raise CollectError('composer.json has no "version" string in a JSON object')
    return version


def plausible_version(value: str, what: str) -> str:
    """``value`` when it is 1-64 printable ASCII characters, so it can go into a header."""
    if 1 <= len(value) <= 64 and all(" " <= c <= "~" for c in value) and value.strip(" ") == value:
        return value
    raise CollectError(f"{what}: {value[:80]!r} is not a version (1-64 printable ASCII characters)")
