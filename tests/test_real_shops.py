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


@pytest.mark.parametrize(
    "repo", REPOS, ids=[r.name if r.name != "repo" else r.parent.name for r in REPOS]
)
def test_every_release_reads_as_written(repo: Path) -> None:
    tags = git(repo, "tag").split()
    read = right = named_as_tag = 0
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
    print(
        f"\n{repo}: {len(tags)} tags, {read} files read, {right} read as written, "
        f"{named_as_tag} index.php VERSION equal to their tag"
    )
    assert tags and read
    assert not wrong, "\n".join(wrong)
