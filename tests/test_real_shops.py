"""Every release of real shops read by the reader: opt-in, as their code is not ours to ship.

``PULSED_REAL_SHOPS`` names git directories of OpenCart, ocStore or a fork, separated
by ":". For every tag, ``index.php`` (under ``upload/`` or the root) must give the
VERSION and VERSION_CORE its own ``define`` line holds, and each config template
(``config-dist.php``, ``admin/config-dist.php``) the HTTPS_SERVER / HTTP_SERVER its
lines hold, or none. The expected values come from the lines in the shape every
release writes (``define('VERSION', '4.0.2.3');`` alone on its line), not from the
reader. See docs/testing.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pulsed._phpdefine import scan, value_of
from pulsed._shop import ShopFile, domain

GIT = shutil.which("git") or "/usr/bin/git"
REPOS = [Path(p) for p in os.environ.get("PULSED_REAL_SHOPS", "").split(":") if p]
pytestmark = pytest.mark.skipif(
    not REPOS, reason="set PULSED_REAL_SHOPS=/path/to/shop.git[:...] to read real releases"
)
INDEX = ("upload/index.php", "index.php")
CONFIGS = ("upload/config-dist.php", "upload/admin/config-dist.php", "config-dist.php")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run([GIT, "--git-dir", str(repo), *args], capture_output=True, check=True)
    return done.stdout.decode("utf-8", "replace")


def as_written(source: str, name: str) -> str | None:
    """The value of the first ``define('NAME', '...');`` line, as releases write it."""
    line = re.search(r"^define\('" + name + r"', '([^'\\]*)'\);", source, re.MULTILINE)
    return line[1] if line else None


SHOP_URL = "https://Shop.Example:8443/"
_INSTALLER_LINE = re.compile(r"^\s*\$output\s*(\.?)=\s*(.*);\s*$", re.MULTILINE)
_PHP_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", re.DOTALL)


def top_level_pieces(expr: str) -> list[str]:
    """``expr`` split at the "." outside strings and parentheses."""
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        literal = _PHP_STRING.match(expr, i)
        if literal:
            i = literal.end()
            continue
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if expr[i] == "." and depth == 0:
            pieces.append(expr[start:i].strip())
            start = i + 1
        i += 1
    return [*pieces, expr[start:].strip()]


def installer_configs(source: str) -> list[str]:
    """The config.php files an installer's ``$output`` lines write, the shop at SHOP_URL.

    A string literal is its value; the shop's URL (``HTTP_OPENCART``, the CLI's
    ``http_server`` option) is SHOP_URL; anything else the installer computes is "x".
    """
    configs: list[str] = []
    for append, expr in _INSTALLER_LINE.findall(source):
        if not append:
            configs.append("")
        text = ""
        for piece in top_level_pieces(expr):
            literal = _PHP_STRING.fullmatch(piece)
            if literal and literal[1] is not None:
                text += re.sub(r"\\([\\'])", r"\1", literal[1])
            elif literal:
                text += literal[2].replace("\\n", "\n")
            else:
                text += SHOP_URL if "HTTP_OPENCART" in piece or "http_server" in piece else "x"
        if configs:
            configs[-1] += text
    return [c for c in configs if "define('HTTP_SERVER'" in c]


@pytest.mark.parametrize(
    "repo", REPOS, ids=[r.name if r.name != "repo" else r.parent.name for r in REPOS]
)
def test_every_release_reads_as_written(repo: Path) -> None:
    tags = git(repo, "tag").split()
    read = right = named_as_tag = installers = 0
    wrong: list[str] = []
    for tag in tags:
        files = set(git(repo, "ls-tree", "-r", "--name-only", tag).splitlines())
        for path in [p for p in (*INDEX, *CONFIGS) if p in files]:
            source = git(repo, "show", f"{tag}:{path}")
            names = (
                ("VERSION", "VERSION_CORE") if path in INDEX else ("HTTPS_SERVER", "HTTP_SERVER")
            )
            defines = scan(source)
            got = tuple(value_of(defines, n) for n in names)
            expected = tuple(as_written(source, n) for n in names)
            read += 1
            if got == expected and (path not in INDEX or got[0] is not None):
                right += 1
            else:
                wrong.append(f"{tag}:{path}: read {got}, written {expected}")
            if path in INDEX and got[0] == tag.removeprefix("v"):
                named_as_tag += 1
        for path in sorted(p for p in files if "install/" in p and p.endswith(".php")):
            # A fresh install's writers; upgrade_1.php rewrites a config from the old one.
            if not path.endswith(("/step_3.php", "/cli_install.php")):
                continue
            source = git(repo, "show", f"{tag}:{path}")
            for config in installer_configs(source):
                read += 1
                got_domain = domain(ShopFile(Path(path), config, cut=False))
                if got_domain == "shop.example:8443":
                    right += 1
                    installers += 1
                else:
                    wrong.append(f"{tag}:{path}: an installed config.php gives {got_domain}")
    print(
        f"\n{repo}: {len(tags)} tags, {read} files read, {right} read as expected, "
        f"{named_as_tag} index.php VERSION equal to their tag, "
        f"{installers} installer-written config.php files read"
    )
    assert tags and read
    assert not wrong, "\n".join(wrong)
