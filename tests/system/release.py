"""The Debian release a system test boots: this host's own OS, or a debootstrapped one.

``make systemtest`` boots the host's own /usr (``/``). ``make systemtest-trixie`` runs
the same tests on Debian 13: ``python -m tests.system.release trixie build/trixie-root``
debootstraps the release once, with what the package's build and the tests need, and
keeps it (``build/`` is not tracked); the tests then find it in
``$PULSED_SYSTEMTEST_ROOT``. The package is built inside that root, by its own
``/usr/bin/python3``, with ``make deb`` run under ``systemd-nspawn`` on the host's
network (Debian's archive and PyPI): a package per release, as ``make deb`` on that
release would build it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT_ENV = "PULSED_SYSTEMTEST_ROOT"
MIRROR_ENV = "PULSED_DEBIAN_MIRROR"
MIRROR = "http://deb.debian.org/debian"
# What a root needs beyond debootstrap's minbase (apt, dpkg and the Essential set):
# a booting systemd with D-Bus (`systemctl status` as the operator asks over the bus),
# what the package depends on and its units run (python3, procps for /bin/kill),
# what make deb and make install need (make, python3-venv, binutils for strip), the
# release's own lintian for make lintian, and what the tests and docs/systemd.md run
# (php-cli, sudo, jq). Debian 12's own host has all of them, installed by .ci/run.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    # A user manager for the user unit's test (loginctl enable-linger): logind's PAM
    # session and the user's own bus, as a Debian host with systemd has them.
    "libpam-systemd",
    "dbus-user-session",
    "python3",
    "python3-venv",
    "procps",
    "make",
    "binutils",
    "php-cli",
    "sudo",
    "jq",
    "lintian",
)
# Installed by apt once the base is there: debootstrap's own resolver does not follow
# virtual packages, and lintian needs one (perl-openssl-abi-3, through libnet-ssleay-perl).
BY_APT = ("lintian",)
# The host's trusted CAs, for pip inside the root: the root has no ca-certificates of
# its own, and the host's bundle holds whatever a proxy on its network needs.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CA_INSIDE = "/run/host-ca.crt"


def selected_root() -> Path:
    """The root the system tests boot: ``$PULSED_SYSTEMTEST_ROOT``, else this host's."""
    root = os.environ.get(ROOT_ENV, "")
    return Path(root).resolve() if root else Path("/")


def describe(root: Path) -> str:
    """``Debian GNU/Linux 13 (trixie)``: the root's PRETTY_NAME."""
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = root / candidate
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip('"')
    return str(root)


# --- the root --------------------------------------------------------------------------


def recipe(suite: str, mirror: str) -> str:
    """What a root is made of; a cached root made otherwise is made again."""
    return f"debootstrap --variant=minbase {suite} {mirror} {','.join(PACKAGES)}\n"


def make_root(suite: str, target: Path, mirror: str = MIRROR) -> float | None:
    """Debootstrap ``suite`` into ``target`` unless it is there, made by this recipe.

    Returns the seconds it took, or None when the cached root was kept. The root is
    made beside its place and moved there once complete, so an interrupted build is
    never taken for a cached one.
    """
    stamp = target.with_name(target.name + ".recipe")
    wanted = recipe(suite, mirror)
    if target.is_dir() and stamp.exists() and stamp.read_text() == wanted:
        return None
    start = time.monotonic()
    partial = target.with_name(target.name + ".partial")
    for old in (partial, target):
        shutil.rmtree(old, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(name for name in PACKAGES if name not in BY_APT)}",
            suite,
            str(partial),
            mirror,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"debootstrap {suite} failed:\n{done.stdout[-3000:]}{done.stderr}")
    # The downloaded .debs are installed; the cache would only double the root's size.
    installed = subprocess.run(
        [
            "systemd-nspawn",
            "--quiet",
            "-D",
            str(partial),
            "--register=no",
            "--keep-unit",
            "--setenv=DEBIAN_FRONTEND=noninteractive",
            "--",
            "sh",
            "-ec",
            "apt-get update -qq\n"
            f"apt-get install -y -qq --no-install-recommends {' '.join(BY_APT)}\n"
            "apt-get clean",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"apt-get in the {suite} root failed:\n{installed.stdout[-3000:]}")
    partial.rename(target)
    stamp.write_text(wanted)
    return time.monotonic() - start


# --- building inside it ----------------------------------------------------------------


def tracked_files(repo: Path = REPO) -> list[str]:
    """The files git tracks, as they are in the work tree (what a clone would hold)."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    return [name for name in names if name and (repo / name).exists()]


def inside(root: Path, script: str, binds: dict[Path, str], env: dict[str, str]) -> None:
    """``sh -ec script`` in ``root`` (not booted) on the host's network; the root itself
    is left as it was (its writes go to a throwaway overlay), ``binds`` are shared."""
    argv = [
        "systemd-nspawn",
        "--quiet",
        "-D",
        str(root),
        "--volatile=overlay",
        "--register=no",
        "--keep-unit",
        f"--bind-ro={HOST_CA}:{CA_INSIDE}",
        *(f"--bind={host}:{path}" for host, path in binds.items()),
        *(f"--setenv={name}={value}" for name, value in env.items()),
        "--",
        "sh",
        "-ec",
        script,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"in {root}: {script}\nexited {done.returncode}\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
        )


# The release's own packages a scenario installs with dpkg, fetched from its archive
# by apt-get download (the containers have no network for apt).
DEBIAN_DEBS = ("prometheus-node-exporter",)


def build_inside(root: Path, wheels: Path, out: Path, debs: Path) -> Path:
    """``make lintian`` of this tree, run inside ``root``: the package built there and
    checked by that release's lintian, as ``make lintian`` checks the host's. The
    package, copied to ``out``.

    The runtime lock's wheels for the root's Python are downloaded first, into
    ``wheels`` (kept between runs: a file already there is not fetched again); the
    build then installs from them only, and the tests' ``make install`` uses them too,
    in a container without a network. The release's :data:`DEBIAN_DEBS` go to
    ``debs`` (kept too).
    """
    epoch = subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    wheels.mkdir(parents=True, exist_ok=True)
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pulsed-deb-") as scratch:
        tree = Path(scratch) / "src"
        tree.mkdir()
        for name in tracked_files():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name, follow_symlinks=False)
        lock = "--require-hashes --no-deps -r requirements/runtime.txt"
        inside(
            root,
            f"cd /debs && ls prometheus-node-exporter_*.deb >/dev/null 2>&1 ||"
            f" apt-get download -q {' '.join(DEBIAN_DEBS)}\n"
            "cd /src\n"
            "python3 -m venv /root/fetch\n"
            f"/root/fetch/bin/python -m pip download --quiet {lock} -d /wheels\n"
            "PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels"
            f" make --no-print-directory lintian DEB_EPOCH={epoch}",
            {tree: "/src", wheels: "/wheels", debs: "/debs"},
            {"PIP_CERT": CA_INSIDE, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        (deb,) = (tree / "dist").glob("pulsed_*.deb")
        (node_exporter,) = (tree / "dist").glob("pulsed-node-exporter_*.deb")
        shutil.copy2(node_exporter, out / node_exporter.name)
        return Path(shutil.copy2(deb, out / deb.name))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.system.release SUITE TARGET``: the root, made or kept."""
    suite, target = argv if argv is not None else sys.argv[1:]
    mirror = os.environ.get(MIRROR_ENV, MIRROR)
    took = make_root(suite, Path(target), mirror)
    what = "kept (cached)" if took is None else f"built in {took:.0f} s from {mirror}"
    print(f"{suite} root {target}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
