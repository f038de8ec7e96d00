"""``make install`` run by a user who is not root (docs/without-root.md): everything in
that user's home, on the interpreter ``PYTHON=`` names from a folder of its own (the
RHEL family's ``/usr/bin/python3.11`` beside a ``python3`` that is too old).

Here as ``make -n``, run as ``nobody`` when root, on a copy of the source tree nobody
owns: what it would do, without fetching a package. The system test
(``tests/system/test_without_root.py``) runs it for real and the user unit on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nobody import NOBODY, reachable_folder

REPO = Path(__file__).resolve().parent.parent
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def _version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


@pytest.fixture
def user_home() -> Iterator[Path]:
    """A folder for the source tree, an odd interpreter folder and a home, which the
    installing user owns; outside pytest's tmp, which nobody may not enter."""
    with reachable_folder("pulsed-user-install-") as folder:
        yield folder


def as_user(argv: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``argv`` as nobody (when root) or as this user, with the environment of a login
    that has no root: a home, a plain PATH, nothing of this test run's."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is not here to run make install as a user who is not root")
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return subprocess.run(
        [*prefix, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_make_install_as_a_user_puts_everything_in_the_home_on_the_python_named(
    user_home: Path,
) -> None:
    # make -n: what it would run, as that user, without fetching a package (tests stay on
    # 127.0.0.1; the system test runs it for real, in its container, from local wheels).
    make, git = shutil.which("make"), shutil.which("git")
    system = shutil.which("python3", path="/usr/bin:/bin")
    if make is None or git is None or system is None or _version(system) not in PYTHONS:
        pytest.skip("needs make, git and a /usr/bin/python3 in 3.10-3.13 any user may run")
    tracked = subprocess.run(
        [git, "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    source = user_home / "src"
    for name in (f for f in tracked if f and (REPO / f).is_file()):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    # RHEL 9's AppStream Python beside its python3 3.9: a versioned name in a folder of
    # its own, given to make install by path.
    odd = user_home / "opt" / "rh" / "bin" / "python3.11"
    odd.parent.mkdir(parents=True)
    odd.symlink_to(Path(system).resolve())
    home = user_home / "home"
    home.mkdir()
    if os.geteuid() == 0:
        for where, dirs, files in os.walk(user_home):
            for path in [Path(where), *(Path(where, n) for n in dirs + files)]:
                os.lchown(path, NOBODY, NOBODY)

    done = as_user([make, "-n", "install", f"PYTHON={odd}"], source, home)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    shown = done.stdout
    local, config = home / ".local", home / ".config" / "pulsed"
    assert f"make install: not root, so for $(id -un) alone, under {local} and {config}" in shown
    assert f"{odd} -m venv --clear '{local}/lib/pulsed/venv'" in shown
    assert f"ln -sfn '{local}/lib/pulsed/venv/bin/pulsed' '{local}/bin/pulsed'" in shown
    assert f"dir='{local}/share/systemd/user'" in shown
    assert f"s|/usr/local/|{local}/|g" in shown
    assert f"install -m 0644 systemd/pulsed.toml.example '{config}/pulsed.toml.example'" in shown
    assert f"install -d -m 0700 '{config}/credentials'" in shown
    # Nothing of the system's: no system unit, no generator, nothing in /etc.
    for line in shown.splitlines():
        if line.lstrip().startswith(("install ", "ln ", "mv ", "rm ")):
            assert "/etc/" not in line and "/usr/local" not in line, line
    assert "pulsed-credentials-generator" not in shown
    assert "sudo" not in shown.split("Next (docs/without-root.md):", 1)[1]


def test_make_install_as_root_puts_the_user_unit_where_every_user_manager_finds_it(
    tmp_path: Path,
) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make here")
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    shown = subprocess.run(
        [make, "-n", "install", f"DESTDIR={tmp_path}", "PREFIX=/usr"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # DESTDIR (a package's staging) is never a user's own install, whoever runs it.
    assert "not root" not in shown
    assert f"install -d -m 0755 '{tmp_path}/usr/lib/systemd/user'" in shown
    assert re.search(r"case \"\$unit\" in user/\*\) dir='[^']*/usr/lib/systemd/user'", shown)
