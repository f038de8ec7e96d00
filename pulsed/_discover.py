"""``pulsed discover DIR…``: find the shops on a host and print their ``[shops.*]`` tables.

A shop is a folder holding ``index.php`` and ``config.php`` with the module's
``composer.json`` under it. The walk is bounded (:data:`MAX_DEPTH` folders deep) and
never leaves the folders it was given: a symlink is not followed, so a link to ``/``
or to another tenant's tree is not walked. Nothing is executed; the domain comes from
``config.php`` as the daemon reads it, and names the shop.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pulsed import _shop
from pulsed._errors import CollectError
from pulsed._settings import MODULE_COMPOSER

MAX_DEPTH = 6
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def shop_roots(top: Path, max_depth: int = MAX_DEPTH) -> Iterator[Path]:
    """Folders under ``top`` (itself included) that hold a shop with the module."""
    top_depth = len(top.parts)
    for folder, dirs, files in os.walk(top, followlinks=False):
        here = Path(folder)
        if {"index.php", "config.php"} <= set(files) and (here / MODULE_COMPOSER).is_file():
            yield here
            dirs.clear()  # a shop's own tree holds no other shop
            continue
        if len(here.parts) - top_depth >= max_depth:
            dirs.clear()
        dirs.sort()


def name_for(domain: str, taken: set[str]) -> str:
    """A shop name from its domain (``shop.example:8443`` → ``shop_example_8443``), unique."""
    base = _NOT_NAME.sub("_", domain).strip("_")[:29] or "shop"
    name, n = base, 2
    while name in taken:
        name, n = f"{base[:29]}-{n}", n + 1
    taken.add(name)
    return name


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def tables(dirs: Sequence[Path]) -> str:
    """A TOML fragment: a ``[shops.<name>]`` table for every shop found, notes as comments."""
    out: list[str] = []
    taken: set[str] = set()
    seen: set[Path] = set()
    for top in dirs:
        if not top.is_dir():
            out.append(f"# {_comment(str(top))}: not a folder\n")
            continue
        for root in shop_roots(top):
            real = root.resolve()
            if real in seen:
                continue
            seen.add(real)
            table = f"root = {_toml_string(str(root))}\n"
            try:
                domain = _shop.domain(_shop.read(root / "config.php"))
            except CollectError as exc:
                # Listed all the same: pulsed would disable it until its domain is set.
                table += f"# no domain in config.php ({_comment(str(exc))})\n"
                table += 'domain = ""  # set it, or the shop stays disabled\n'
                domain = root.name
            out.append(f"[shops.{name_for(domain, taken)}]\n{table}")
    if not any(line.startswith("[shops.") for line in out):
        out.append("# no shop with the module found\n")
    return "\n".join(out)


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def main(dirs: Sequence[str]) -> int:
    sys.stdout.write(tables([Path(d) for d in dirs]))
    return 0
