"""The Pythons pulsed runs on (contract §12): 3.10 to 3.13, named alike everywhere, and
``make``/``make install`` with any other interpreter stop at one line that says which work.

The interpreters outside the range are real ones told to report another version (a
``sitecustomize`` that replaces ``sys.version_info``), and pyenv's old CPythons where
the host has them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pulsed._toml import tomllib

REPO = Path(__file__).resolve().parent.parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
REFUSAL = re.compile(
    r"^(make|make install): (\S+) is Python (\d+\.\d+); pulsed runs on Python 3\.10 to 3\.13"
    r" \(PYTHON=/path/to/python3\.11 names another\)$"
)


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """make in the source tree, as an operator runs it: not as part of an outer make,
    whose MAKEFLAGS would pass on its own PYTHON= (CI runs the suite under make unit)."""
    found = shutil.which("make")
    if found is None:
        pytest.skip("no make here")
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    return subprocess.run(
        [found, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def reporting(tmp_path: Path, version: tuple[int, int]) -> Path:
    """This test's own interpreter, made to report ``version`` to every question asked."""
    site = tmp_path / f"site-{version[0]}.{version[1]}"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.version_info = ({version[0]}, {version[1]}, 0, 'final', 0)\n"
    )
    exe = tmp_path / f"python{version[0]}.{version[1]}"
    exe.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    exe.chmod(0o755)
    return exe


def pyenv_python(version: str) -> Path | None:
    """pyenv's newest CPython ``version``.x, when the host has one."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(
        (p for p in root.glob(f"versions/{version}.*") if re.fullmatch(r"[0-9.]+", p.name)),
        key=lambda p: [int(n) for n in p.name.split(".")],
    )
    exe = found[-1] / "bin" / f"python{version}" if found else None
    return exe if exe is not None and exe.exists() else None


@pytest.mark.parametrize("version", [(3, 9), (3, 14), (2, 7)])
def test_make_install_refuses_a_python_outside_the_range_in_one_line(
    tmp_path: Path, version: tuple[int, int]
) -> None:
    python = reporting(tmp_path, version)
    stage = tmp_path / "stage"
    stage.mkdir()
    done = make("install", f"DESTDIR={stage}", f"PYTHON={python}")
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert done.returncode != 0
    assert len(ours) == 1, done.stderr
    found = REFUSAL.match(ours[0])
    assert found, ours[0]
    assert found.groups() == ("make install", str(python), f"{version[0]}.{version[1]}")
    assert list(stage.iterdir()) == [], "refused before anything is created"


@pytest.mark.parametrize("version", ["2.7", "3.6", "3.9"])
def test_an_old_python_hears_the_same_line(tmp_path: Path, version: str) -> None:
    # The question is asked in a syntax every Python parses: an old one must not
    # answer with a SyntaxError.
    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"no pyenv Python {version} here")
    done = make("install", f"DESTDIR={tmp_path}", f"PYTHON={python}")
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert done.returncode != 0
    assert len(ours) == 1 and REFUSAL.match(ours[0]), done.stderr
    assert list(tmp_path.iterdir()) == []


def test_make_refuses_to_build_a_venv_on_a_python_outside_the_range(tmp_path: Path) -> None:
    python = reporting(tmp_path, (3, 9))
    done = make("unit", f"PYTHON={python}")
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert done.returncode != 0 and len(ours) == 1, done.stderr
    found = REFUSAL.match(ours[0])
    assert found and found.group(1) == "make", ours[0]
    assert not (REPO / ".venv-3.9").exists()


def test_an_interpreter_that_does_not_run_is_named() -> None:
    done = make("install", "DESTDIR=/nonexistent", "PYTHON=/nonexistent/python3.11")
    assert done.returncode != 0
    assert "make install: /nonexistent/python3.11 does not run" in done.stderr.splitlines()


def test_a_python_the_service_cannot_see_is_refused_in_one_line(tmp_path: Path) -> None:
    # In range, but under /root or /home (pyenv's, say), which ProtectHome=yes hides.
    python = pyenv_python("3.12")
    if python is None or not str(python.resolve()).startswith(("/root/", "/home/")):
        pytest.skip("no pyenv Python 3.12 under /root or /home here")
    done = make("install", f"DESTDIR={tmp_path}", f"PYTHON={python}")
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert done.returncode != 0
    assert ours == [
        f"make install: {python.resolve()} is under a directory the service cannot see"
        " (ProtectHome=yes); set PULSED_PYTHON=/usr/bin/python3"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("named", "venv_on"),
    [
        # RHEL 9 and its kin: python3 is 3.9, AppStream's python3.11 sits beside it.
        (["PYTHON=/usr/bin/python3.11"], "/usr/bin/python3.11"),
        (["PULSED_PYTHON=/opt/python/bin/python3.12"], "/opt/python/bin/python3.12"),
        ([], "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"),
    ],
    ids=["PYTHON", "PULSED_PYTHON", "default"],
)
def test_make_install_builds_the_service_venv_on_the_python_named(
    tmp_path: Path, named: list[str], venv_on: str
) -> None:
    shown = make("-n", "install", f"DESTDIR={tmp_path}", *named)
    assert shown.returncode == 0, shown.stderr
    venvs = [line for line in shown.stdout.splitlines() if " -m venv " in line]
    assert venvs == [f"{venv_on} -m venv --clear '{tmp_path}/usr/local/lib/pulsed/venv'"]


def test_a_python_named_to_make_gets_a_venv_of_its_own(tmp_path: Path) -> None:
    python = reporting(tmp_path, (3, 12))
    shown = make("-n", "-B", "unit", f"PYTHON={python}")  # -B: as if .venv-3.12 were not there
    assert shown.returncode == 0, shown.stderr
    assert f"{python} -m venv --clear .venv-3.12" in shown.stdout.splitlines()
    assert ".venv-3.12/bin/pytest -q -n 2" in shown.stdout.splitlines()


def test_the_supported_pythons_are_named_alike_everywhere() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    (listed,) = re.findall(r"^PYTHONS := (.*)$", makefile, re.MULTILINE)
    assert listed.split() == PYTHONS
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == f">={PYTHONS[0]}"
    # The checks read the code as the oldest runs it: what only a newer one has fails them.
    assert project["tool"]["mypy"]["python_version"] == PYTHONS[0]
    assert project["tool"]["ruff"]["target-version"] == "py" + PYTHONS[0].replace(".", "")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    (in_ci,) = re.findall(r"^pythons=\((.*)\)$", ci, re.MULTILINE)
    assert in_ci.split() == PYTHONS
    said = re.compile(r"Python 3\.10, 3\.11, 3\.12 (and|or) 3\.13\b")
    for doc in ("README.md", "docs/systemd.md"):
        assert said.search(" ".join((REPO / doc).read_text(encoding="utf-8").split())), doc
