"""``pulsed discover DIR…``: find the shops on a host and print their ``[shops.*]`` tables.

A shop is a folder holding ``index.php`` and ``config.php`` with the module's
``composer.json`` under it. The walk is bounded (:data:`MAX_DEPTH` folders deep) and
never leaves the folders it was given: a symlink is not followed, so a link to ``/``
or to another tenant's tree is not walked, and a shop's three files count only when
their resolved paths stay inside the tree (a tenant's ``config.php`` linked to another
tenant's is not read as root). Nothing is executed; the domain comes from
``config.php`` as the daemon reads it, and names the shop.

The output is pasted into a config file, so it always parses as TOML and names
exactly the folders found: roots are absolute, a path that is not UTF-8 (TOML cannot
hold it) is left out with a note, and a name is never ``default`` (the one-shop
state) nor one already printed or configured.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from pulsed import _config, _shop
from pulsed._errors import CollectError, PulsedError
from pulsed._settings import MODULE_COMPOSER
from pulsed._state import DEFAULT_SHOP

MAX_DEPTH = 6
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")


SHOP_FILES = ("index.php", "config.php", MODULE_COMPOSER)


def _inside(path: Path, real_top: Path) -> bool:
    """Whether ``path`` is a regular file whose resolved path stays under ``real_top``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a loop
        return False
    return real.is_relative_to(real_top) and real.is_file()


def shop_roots(top: Path, max_depth: int = MAX_DEPTH) -> Iterator[Path]:
    """Folders under ``top`` (itself included) that hold a shop with the module, whose
    three files all resolve inside ``top``."""
    top_depth = len(top.parts)
    real_top = top.resolve()
    for folder, dirs, files in os.walk(top, followlinks=False):
        here = Path(folder)
        if {"index.php", "config.php"} <= set(files) and all(
            _inside(here / name, real_top) for name in SHOP_FILES
        ):
            yield here
            dirs.clear()  # a shop's own tree holds no other shop
            continue
        if len(here.parts) - top_depth >= max_depth:
            dirs.clear()
        dirs.sort()


# The one-shop configuration's name: a listed shop called so would take its state.
RESERVED = frozenset({DEFAULT_SHOP})


def name_for(domain: str, taken: set[str]) -> str:
    """A shop name from its domain (``shop.example:8443`` → ``shop_example_8443``), unique
    in ``taken`` and never ``default``."""
    base = _NOT_NAME.sub("_", domain).strip("_")[:29] or "shop"
    name, n = base, 2
    while name in taken or name in RESERVED:
        name, n = f"{base[:29]}-{n}", n + 1
    taken.add(name)
    return name


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else _toml_escape(c) for c in escaped) + '"'


def _toml_escape(char: str) -> str:
    # \u takes exactly four hex digits: a character past U+FFFF needs \U and eight.
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _is_utf8(path: Path) -> bool:
    """Whether the path's bytes are UTF-8 (Python shows others as lone surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def configured_names(environ: Mapping[str, str]) -> set[str]:
    """The shop names the configuration already has (none when it cannot be read)."""
    try:
        path = _config.config_path({}, environ, _config.DEFAULT_CONFIG_PATH)
        if path is None:
            return set()
        names = set(_config.read_config_file(path).shops)
        folder = path.absolute().parent / _config.SHOPS_DIR
        names |= {p.stem for p in folder.glob("*.toml")} if folder.is_dir() else set()
    except (PulsedError, OSError):
        return set()
    return names


def tables(dirs: Sequence[Path], configured: Iterable[str] = ()) -> str:
    """A TOML fragment: a ``[shops.<name>]`` table for every shop found, notes as comments.

    ``configured``: names already in use, which a printed one must not repeat.
    """
    out: list[str] = []
    taken: set[str] = set(configured)
    seen: set[Path] = set()
    domains: dict[str, str] = {}
    for given in dirs:
        top = given.absolute()
        if not top.is_dir():
            out.append(f"# {_comment(str(top))}: not a folder\n")
            continue
        for root in shop_roots(top):
            real = root.resolve()
            if real in seen:
                continue
            seen.add(real)
            if not _is_utf8(root):
                out.append(f"# {_comment(str(root))}: left out, its path is not UTF-8\n")
                continue
            table = f"root = {_toml_string(str(root))}\n"
            try:
                # The resolved path the walk checked, not followed again: a config.php
                # swapped for a link since then is refused, not read through.
                config = _shop.read((root / "config.php").resolve(), follow=False)
                domain = _shop.domain(config)
            except CollectError as exc:
                # Listed all the same: pulsed would disable it until its domain is set.
                table += f"# no domain in config.php ({_comment(str(exc))})\n"
                table += 'domain = ""  # set it, or the shop stays disabled\n'
                domain = root.name
            else:
                if domain in domains:
                    # pulsed disables every shop of a domain listed twice: print one.
                    out.append(
                        f"# {_comment(str(root))}: left out, its domain {domain} is also"
                        f" [shops.{domains[domain]}]'s\n"
                    )
                    continue
            name = name_for(domain, taken)
            domains.setdefault(domain, name)
            out.append(f"[shops.{name}]\n{table}")
    if not any(line.startswith("[shops.") for line in out):
        out.append("# no shop with the module found\n")
    return "\n".join(out)


def _comment(text: str) -> str:
    # A lone surrogate (a byte that is not UTF-8) is not printable either: shown as "?".
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else "?" for c in text)


def main(dirs: Sequence[str]) -> int:
    sys.stdout.write(tables([Path(d) for d in dirs], configured_names(os.environ)))
    return 0
