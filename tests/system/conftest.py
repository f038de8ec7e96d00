"""Fixtures of the system tests: what is built once, a fresh host per test, a receiver.

Run by ``make systemtest`` (root, systemd-nspawn) on this host's own OS, and by ``make
systemtest-trixie`` on a Debian 13 root (:mod:`tests.system.release`): every scenario
runs on the root the run was started for, with the package built for it. A
scenario is one test function taking ``host`` (a booted container set up as a Debian
host with an operator account) and, when it sends heartbeats, ``receiver``; the steps
an operator takes are in :mod:`tests.system.steps`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.wait import wait_until
from tests.system.container import Container, stop, why_not_here
from tests.system.release import DEBIAN_DEBS, build_inside, describe, selected_root
from tests.system.steps import SECRET, Received

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "admin"
_names = itertools.count()
# The OS every container of this run boots (/ is this host's own).
ROOT = selected_root()
# What this run's build took, for the summary at the end.
_timings: dict[str, str] = {}
# What a scenario shows an operator (a STATUS= line, a table), printed at the end too.
SHOWN: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def _can_boot() -> None:
    reason = why_not_here()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"system tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"system tests need systemd-nspawn as root: {reason}")


@dataclass(frozen=True)
class Built:
    deb: Path  # make deb's package
    upgrade: Path  # the same package under a higher version, for an upgrade
    version: str
    upgrade_version: str
    wheels: Path  # the runtime lock's wheels: the container has no network
    node_exporter: Path  # make deb's second package, pulsed-node-exporter
    debian_node_exporter: Path  # the release's own prometheus-node-exporter, from its archive


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("built")
    start = time.monotonic()
    if Path("/") == ROOT:
        deb = _make_deb_here()
        wheels = _wheels_here()
        debian = _debian_debs_here(REPO / "build" / "debian-debs")
    else:
        # Built by the root's own Python, wheels and all: its make install needs them.
        wheels = ROOT.with_name(ROOT.name + ".wheels")
        debian = ROOT.with_name(ROOT.name + ".debs")
        deb = build_inside(ROOT, wheels, out, debian)
    (node_exporter,) = deb.parent.glob(f"pulsed-node-exporter_{_field(deb, 'Version')}_all.deb")
    (debian_node_exporter,) = debian.glob("prometheus-node-exporter_*.deb")
    version = _field(deb, "Version")
    _timings["package"] = (
        f"{deb.name}, {deb.stat().st_size / 1e6:.1f} MB, built in"
        f" {time.monotonic() - start:.0f} s; Depends: {_field(deb, 'Depends')}"
    )
    # The upgrade is the same contents under a higher version: what is proven is how
    # dpkg and the maintainer scripts treat a running service, not new code.
    upgrade_version = version + "+systemtest1"
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(
        control.read_text().replace(f"Version: {version}\n", f"Version: {upgrade_version}\n")
    )
    upgrade = out / f"pulsed_{upgrade_version}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(tree), str(upgrade)],
        check=True,
        capture_output=True,
    )
    return Built(
        deb, upgrade, version, upgrade_version, wheels, node_exporter, debian_node_exporter
    )


def _make_deb_here() -> Path:
    made = subprocess.run(
        ["make", "--no-print-directory", "deb"], cwd=REPO, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    return _newest_deb()


def _debian_debs_here(folder: Path) -> Path:
    """The release's packages a scenario installs with dpkg (the container has no
    network for apt), fetched once from its archive into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if list(folder.glob("prometheus-node-exporter_*.deb")):
        return folder
    download = ["apt-get", "download", "-q", *DEBIAN_DEBS]
    if subprocess.run(download, cwd=folder, capture_output=True).returncode != 0:
        # A host whose package lists were never fetched (a fresh CI image) knows no
        # package by name yet.
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(download, cwd=folder, check=True, capture_output=True)
    return folder


def _wheels_here() -> Path:
    wheels = REPO / "build" / "wheelhouse"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "-r",
            "requirements/runtime.txt",
            "-d",
            str(wheels),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return wheels


def _newest_deb() -> Path:
    return max((REPO / "dist").glob("pulsed_*.deb"), key=lambda p: p.stat().st_mtime)


def _field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


# The parts of the root's /etc a Debian host has and the container's fresh /etc lacks:
# package management (dpkg's own state is copied under /var) and the alternatives
# it manages (/usr/bin/php is one), sudo and its PAM setup, and the trusted CAs (the
# venv of make install on Debian 13: its pip loads them as it starts, even offline),
# and adduser's settings (without them Debian 13's adduser warns, and its warning
# dies in Perl's taint mode: a package that adds a user fails to configure).
ROOT_ETC = (
    "adduser.conf",
    "alternatives",
    "apt",
    "dpkg",
    "sudoers",
    "sudoers.d",
    "pam.d",
    "security",
    "login.defs",
    "ssl",
)


@pytest.fixture
def host(built: Built) -> Iterator[Container]:
    with Container(f"pulsed-st-{os.getpid()}-{next(_names)}", ROOT) as box:
        for name in ROOT_ETC:
            if (ROOT / "etc" / name).exists():
                box.copy_in(ROOT / "etc" / name, f"/etc/{name}")
        box.copy_in(ROOT / "var/lib/dpkg", "/var/lib/dpkg")
        # The container's /etc is fresh: the root's overrides name users it lacks.
        box.write("/var/lib/dpkg/statoverride", "")
        if (ROOT / "var/lib/apt/lists").is_dir():
            box.copy_in(ROOT / "var/lib/apt/lists", "/var/lib/apt/lists")
        # No network inside: pip finds the lock's wheels in a local folder instead.
        box.copy_in(built.wheels, "/var/cache/pulsed-wheels")
        box.write(
            "/etc/pip.conf",
            "[global]\nno-index = true\nfind-links = /var/cache/pulsed-wheels\n",
        )
        # An operator who works through sudo, as docs/systemd.md assumes.
        box.sh(
            f"useradd -m -s /bin/sh -G systemd-journal {OPERATOR}\n"
            f"echo '{OPERATOR} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{OPERATOR}\n"
            f"chmod 0440 /etc/sudoers.d/{OPERATOR}\n"
        )
        # The shop, as a web server would have it: world-readable, owned by root.
        box.copy_in(REPO / "examples" / "shop", "/var/www/opencart")
        box.sh("chmod -R a+rX /var/www/opencart")
        box.copy_in(built.deb, "/root/pulsed.deb")
        box.copy_in(built.upgrade, "/root/pulsed-upgrade.deb")
        box.copy_in(built.node_exporter, "/root/pulsed-node-exporter.deb")
        box.copy_in(built.debian_node_exporter, "/root/prometheus-node-exporter.deb")
        try:
            yield box
        finally:
            # Shown by pytest only when the test failed: what systemd and pulsed said.
            # check=False: with no pulsed unit ever loaded (a user unit's scenario, or
            # the package only unpacked), journalctl refuses the pattern, and a
            # passing test must not fail here.
            shown = ["journalctl", "--no-pager", "-n", "60", "-u", "pulsed*"]
            print(box.run(shown, check=False).stdout)


@contextlib.contextmanager
def receiving(
    host: Container,
    tmp_path: Path,
    shop_secrets: Mapping[str, str] | None = None,
    port: int = 0,
) -> Iterator[Received]:
    """The verifying receiver in the container's network; shops' own secrets by domain;
    on ``port`` (a free one when 0: a receiver back after an outage takes the old one)."""
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    own: list[str] = []
    for domain, value in (shop_secrets or {}).items():
        path = tmp_path / f"secret-{domain}"
        path.write_text(value)
        own += ["--shop-secret", f"{domain}={path}"]
    port_file = tmp_path / "port"
    out = tmp_path / "receiver.out"
    process = host.spawn_in_network(
        [
            sys.executable,
            str(REPO / "devtools" / "receiver.py"),
            "--port",
            str(port),
            "--secret-file",
            str(secret),
            "--port-file",
            str(port_file),
            *own,
        ],
        out,
    )
    try:
        wait_until(port_file.exists, 15, f"the receiver's port: {out.read_text()}")
        yield Received(out, int(port_file.read_text()))
    finally:
        stop(process)


@pytest.fixture
def receiver(host: Container, tmp_path: Path) -> Iterator[Received]:
    with receiving(host, tmp_path) as received:
        yield received


def pytest_report_header() -> str:
    return (
        f"system tests: systemd-nspawn {shutil.which('systemd-nspawn')},"
        f" booting {describe(ROOT)} ({ROOT})"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, said in SHOWN.items():
        terminalreporter.write_line(f"shown on {describe(ROOT)}, {what}:\n{said}")
    for what, said in _timings.items():
        terminalreporter.write_line(f"system tests on {describe(ROOT)}: {what} {said}")
