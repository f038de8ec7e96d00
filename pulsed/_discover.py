"""``pulsed discover DIR…``: find the shops on a host and print their ``[shops.*]`` tables.

A shop is a folder holding ``index.php`` and ``config.php`` with the module's
``composer.json`` under it. The walk is bounded (:data:`MAX_DEPTH` folders deep) and
never leaves the folders it was given: a symlink is not followed, so a link to ``/``
or to another tenant's tree is not walked, and a shop's three files count only when
their resolved paths stay inside the tree (a tenant's ``config.php`` linked to another
tenant's is not read as root). Nothing is executed; the domain comes from
``config.php`` as the daemon reads it, and names the shop.

The output is pasted into a config file, or with ``--write`` becomes one ``shops.d``
file per shop (:func:`write`), so it always parses as TOML and names exactly the
folders found: roots are absolute, a path that is not UTF-8 (TOML cannot hold it) is
left out with a note, and a name it makes is never ``default`` (the one-shop state)
nor one already printed or configured, and is cut only at the 32-character limit. A
shop configured already (by root or domain) is not listed again, so discover can be
run again as shops are added; the one shop of a configuration that lists none is
listed under the name it has, ``default``, keeping its state.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pulsed import _config, _shop
from pulsed._config import MAX_SHOP_NAME
from pulsed._errors import CollectError
from pulsed._provision import (
    CARRIED,
    LINE_FORMAT,
    RESTART,
    SHOP_FILE_MODE,
    Known,
    known,
    shop_file_names,
    toml_string,
    write_new_files,
)
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
    in ``taken``, never ``default``, cut only at the name's limit (a number added to
    make it unique takes its room from the end)."""
    base = _trim(_NOT_NAME.sub("_", domain), MAX_SHOP_NAME) or "shop"
    name, n = base, 2
    while name in taken or name in RESERVED:
        suffix = f"-{n}"
        name, n = _trim(base, MAX_SHOP_NAME - len(suffix)) + suffix, n + 1
    taken.add(name)
    return name


def _trim(text: str, limit: int) -> str:
    # Stripped after the cut too: a cut that ends on a "_" standing for a dot leaves
    # a name that looks cut off.
    return text.strip("_")[:limit].strip("_")


def _is_utf8(path: Path) -> bool:
    """Whether the path's bytes are UTF-8 (Python shows others as lone surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Found:
    """A shop found: its name, root, and its domain (``None``: config.php gives none)."""

    name: str
    root: Path
    domain: str | None
    why_no_domain: str = ""
    # The one-shop configuration's shop, listed as default (keeps its state), and the
    # domain its configuration sets, if it sets one.
    carried: bool = False
    set_domain: str | None = None

    def keys(self) -> str:
        """Its keys, as a ``[shops.<name>]`` table and a ``shops.d`` file's ``[shop]`` hold them."""
        keys = f"root = {toml_string(str(self.root))}\n"
        if self.set_domain is not None:
            keys += f"domain = {toml_string(self.set_domain)}\n"
        elif self.domain is None:
            # Listed all the same: pulsed would disable it until its domain is set.
            keys += f"# no domain in config.php ({_comment(self.why_no_domain)})\n"
            keys += 'domain = ""  # set it, or the shop stays disabled\n'
        return keys


@dataclass(frozen=True)
class Configured:
    """A shop found whose root the configuration has already, as shop ``name``."""

    name: str
    root: Path

    def __str__(self) -> str:
        return f"{_comment(str(self.root))}: already configured, as shop {self.name}"


# A finding is a shop, one configured already, or a note (a str) on a folder left out.
Finding = Found | Configured | str


def find(dirs: Sequence[Path], have: Known | None = None) -> list[Finding]:
    """Every shop under ``dirs`` with a name of its own, and a note for each folder left
    out; ``have``: what is configured already, which is never listed again."""
    have = have or Known()
    out: list[Finding] = []
    taken: set[str] = set(have.names)
    seen: set[Path] = set()
    domains: dict[str, str] = dict(have.domains)
    for given in dirs:
        top = given.absolute()
        if not top.is_dir():
            out.append(f"{_comment(str(top))}: not a folder")
            continue
        for root in shop_roots(top):
            real = root.resolve()
            if real in seen:
                continue
            seen.add(real)
            if not _is_utf8(root):
                out.append(f"{_comment(str(root))}: left out, its path is not UTF-8")
                continue
            # Its domain is in have.domains already, under its name, default.
            if (carried := _carried(have, root, real)) is not None:
                out.append(carried)
                continue
            if real in have.roots:
                out.append(Configured(have.roots[real], root))
                continue
            try:
                # The resolved path the walk checked, not followed again: a config.php
                # swapped for a link since then is refused, not read through.
                config = _shop.read((root / "config.php").resolve(), follow=False)
                domain = _shop.domain(config)
            except CollectError as exc:
                out.append(Found(name_for(root.name, taken), root, None, str(exc)))
                continue
            if domain in domains:
                # pulsed disables every shop of a domain listed twice: list one.
                out.append(
                    f"{_comment(str(root))}: left out, its domain {domain} is also"
                    f" [shops.{domains[domain]}]'s"
                )
                continue
            found = Found(name_for(domain, taken), root, domain)
            domains[domain] = found.name
            out.append(found)
    return out


def _carried(have: Known, root: Path, real: Path) -> Found | None:
    """The one-shop configuration's shop, if ``root`` is it: listed as ``default``."""
    single = have.single
    if single is None or single.shop_root is None or single.shop_root.resolve() != real:
        return None
    explicit = single.sources["shop.domain"] != "default"
    domain = single.domain if explicit else None
    return Found(DEFAULT_SHOP, root, single.domain, carried=True, set_domain=domain)


def tables(dirs: Sequence[Path], have: Known | None = None) -> str:
    """A TOML fragment: a ``[shops.<name>]`` table for every shop found, notes as comments."""
    return render(find(dirs, have))


def render(findings: Sequence[Finding]) -> str:
    out = [
        (f"# {CARRIED}\n" * f.carried + f"[shops.{f.name}]\n{f.keys()}")
        if isinstance(f, Found)
        else f"# {f}\n"
        for f in findings
    ]
    if not any(isinstance(f, Found) for f in findings):
        configured = any(isinstance(f, Configured) for f in findings)
        out.append(f"# no shop with the module found{' but those configured' * configured}\n")
    return "\n".join(out)


def _comment(text: str) -> str:
    # A lone surrogate (a byte that is not UTF-8) is not printable either: shown as "?".
    return "".join(c if c.isprintable() else "?" for c in text)


def write(findings: Sequence[Finding], folder: Path, reads: Path | None) -> str:
    """Write each shop found as ``folder/<name>.toml``, never over a file; the report,
    with what to run next. ``reads``: the ``shops.d`` the configuration in force reads."""
    shops = [f for f in findings if isinstance(f, Found)]
    files = [(f"{f.name}.toml", _file(f)) for f in shops]
    written = dict(write_new_files(folder, files, SHOP_FILE_MODE, "--write")) if files else {}
    lines: list[str] = []
    for finding in findings:
        if isinstance(finding, Configured):
            lines.append(f"kept     {finding}; nothing written")
            continue
        if isinstance(finding, str):
            lines.append(f"note     {finding}")
            continue
        path = folder / f"{finding.name}.toml"
        what = finding.domain or "no domain: set shop.domain in it"
        if written[path.name]:
            lines.append(f"wrote    {_comment(str(path))}  {what}")
            if finding.carried:
                lines.append(f"note     {DEFAULT_SHOP}: {CARRIED}")
        else:
            lines.append(f"kept     {_comment(str(path))}: it exists; not written over")
    count = sum(written.values())
    kept = len(shops) - count + sum(isinstance(f, Configured) for f in findings)
    left_out = sum(isinstance(f, str) for f in findings)
    lines.append(
        f"{count} written (mode {SHOP_FILE_MODE:04o}), {kept} kept, {left_out} left out,"
        f" in {_comment(str(folder))}"
    )
    if reads is None or reads.resolve() != folder.resolve():
        lines.append(
            f"note     the configuration in force reads {reads or 'no shops.d'}, not this"
            " folder: move the files there"
        )
    if count:
        lines.append(NEXT)
    return "\n".join(lines) + "\n"


def _file(found: Found) -> bytes:
    note = CARRIED if found.carried else f"{found.domain or 'no domain'}: found by pulsed discover"
    return f"# {note}\n[shop]\n{found.keys()}".encode()


# After writing shops.d files: their own secrets, then the start that loads them.
NEXT = f"""next: each shop's own secret, from a file only root reads with a line
"{LINE_FORMAT}" per shop (a shop without one signs with the shared secret):
  sudo pulsed add-secrets FILE
then {RESTART.removeprefix("next: ")}"""


def main(dirs: Sequence[str], write_to: str | None = None) -> int:
    have = known({}, os.environ)
    if write_to is None:
        sys.stdout.write(tables([Path(d) for d in dirs], have))
        return 0
    folder = Path(write_to).absolute()
    # Names of files already there are taken even when the folder is not the one in force.
    have = replace(have, names=have.names | shop_file_names(folder))
    findings = find([Path(d) for d in dirs], have)
    reads = None
    if (config := _config.config_path({}, os.environ, _config.DEFAULT_CONFIG_PATH)) is not None:
        reads = config.absolute().parent / _config.SHOPS_DIR
    sys.stdout.write(write(findings, folder, reads))
    return 0
