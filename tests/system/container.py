"""A throwaway container running a real systemd and journald over an OS's /usr.

``systemd-nspawn -D <root> --volatile=yes`` boots the root's /usr on an empty,
in-memory root: /etc and /var start fresh, and /usr is an overlay whose writes land
in a scratch folder, so nothing the test installs reaches the root. The root is this
host's own OS (``/``) or another Debian release's tree (:mod:`tests.system.release`).
``--private-network``
gives it a loopback of its own; a receiver started in that network namespace
(:meth:`Container.spawn_in_network`) is what the daemon inside talks to.

Commands run inside with ``nsenter -a`` into PID 1's namespaces, in a clean
environment, as an operator's root shell would have it. Files go in through
``/proc/<pid>/root``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from tests.support.wait import wait_until

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 30.0


def why_not_here() -> str | None:
    """Why systemd-nspawn cannot boot a container here, or None when it can."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn missing (Debian package systemd-container)"
    if shutil.which("nsenter") is None:
        return "nsenter missing (Debian package util-linux)"
    return None


class Container:
    """One booted container; use as a context manager, it is powered off at exit."""

    def __init__(self, name: str, root: Path = Path("/")) -> None:
        self.name = name
        self.root = root
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{name}-usr-"))
        # The overlay's upper folder lends /usr its mode: mkdtemp's 0700 would shut
        # every unprivileged user, the service's included, out of /usr.
        self.scratch.chmod(0o755)
        self.log = self.scratch.with_name(self.scratch.name + ".log")
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def __enter__(self) -> Container:
        try:
            self.boot()
        except BaseException:
            self.poweroff()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.poweroff()

    # --- life -----------------------------------------------------------------------

    def boot(self) -> None:
        with self.log.open("wb") as log:
            self._nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-D",
                    str(self.root),
                    "--volatile=yes",
                    f"--overlay={self.root / 'usr'}:{self.scratch}:/usr",
                    "--private-network",
                    "--register=no",
                    "--keep-unit",
                    "-M",
                    self.name,
                    "-b",
                    "systemd.firstboot=off",
                    "systemd.mask=systemd-networkd-wait-online.service",
                    "systemd.mask=console-getty.service",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._found_pid1, BOOT_TIMEOUT, f"PID 1 of container {self.name}")
        # Until PID 1 listens, systemctl cannot even connect, and --wait cannot wait.
        wait_until(self._booted, BOOT_TIMEOUT, f"container {self.name} booted")

    def _booted(self) -> bool:
        # "degraded" is booted too: a host unit of no concern here may have failed
        # (the scenarios check that no pulsed unit ever does).
        state = self.run(["systemctl", "is-system-running", "--wait"], check=False).stdout
        return state.strip() in ("running", "degraded")

    def _found_pid1(self) -> bool:
        assert self._nspawn is not None
        if self._nspawn.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited: {self.log.read_text()[-2000:]}")
        children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
        for pid in children.read_text().split():
            # nspawn forks once before exec'ing systemd: wait for the exec.
            if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                self.pid = int(pid)
                return True
        return False

    def poweroff(self) -> None:
        if self._nspawn is not None and self._nspawn.poll() is None:
            # SIGTERM asks nspawn for an orderly shutdown of the container.
            self._nspawn.terminate()
            try:
                self._nspawn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._nspawn.kill()
                self._nspawn.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    # --- commands -------------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        stdin: str = "",
        user: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside, as root or ``user``; output as text. ``check``: exit 0 or fail."""
        base = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", "USER": "root"}
        if user is not None:
            base.update(HOME=f"/home/{user}", USER=user, LOGNAME=user)
        base.update(env or {})
        enter = ["nsenter", "-t", str(self.pid), "-a"]
        if user is not None:
            enter += ["runuser", "-u", user, "--"]
        result = subprocess.run(
            [*enter, "env", "-i", *(f"{k}={v}" for k, v in base.items()), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in {self.name}: {argv} exited {result.returncode}\n"
                f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
            )
        return result

    def sh(self, script: str) -> str:
        """A shell script inside (``sh -ec``), as root; its stdout. It must exit 0."""
        return self.run(["sh", "-ec", script]).stdout

    def ok(self, script: str) -> bool:
        """Whether a shell script inside exits 0."""
        return self.run(["sh", "-c", script], check=False).returncode == 0

    # --- files ----------------------------------------------------------------------

    def path(self, inside: str) -> Path:
        """The host's view of a path inside the container."""
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        target.chmod(mode)

    def copy_in(self, source: Path, inside: str) -> None:
        """A file or a whole folder (ownership and modes kept) to ``inside``."""
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)

    def copy_tree_files(self, root: Path, files: Iterable[str], inside: str) -> None:
        """The listed files of ``root`` (a source tree's) to the folder ``inside``."""
        with tempfile.TemporaryFile() as buffer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for name in files:
                    tar.add(root / name, arcname=name, recursive=False)
            buffer.seek(0)
            with tarfile.open(fileobj=buffer, mode="r") as tar:
                tar.extractall(self.path(inside), filter="tar")

    # --- the network namespace --------------------------------------------------------

    def spawn_in_network(self, argv: list[str], out: Path) -> subprocess.Popen[bytes]:
        """A host process (host files, host Python) in the container's network only."""
        with out.open("wb") as sink:
            return subprocess.Popen(
                ["nsenter", "-t", str(self.pid), "-n", *argv],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
