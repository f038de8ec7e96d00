"""pulsed for a user without root (docs/without-root.md), under that user's real systemd
user manager, started by linger, in the booted host of ``conftest.py``.

The user installs from a checkout with ``make install`` (everything in the home, on a
Python named by an odd path, as on the RHEL family), runs
the page's cron line as cron would (two runs: one heartbeat), then enables the shipped
user unit, which delivers, reloads and keeps its state across a restart. Nothing here
is specific to the host's release: the scenario takes whatever ``host`` boots.
"""

from __future__ import annotations

import re
import subprocess
import time

from tests.support.process import event_of, stamp
from tests.support.wait import wait_until
from tests.system import steps
from tests.system.conftest import REPO
from tests.system.container import Container
from tests.system.steps import SECRET, SHOP_DOMAIN, Received

USER = "anna"
HOME = f"/home/{USER}"
SOURCE = f"{HOME}/pulsed"
CONFIG = f"{HOME}/.config/pulsed"
STATE = f"{HOME}/.local/state/pulsed/state.json"
# What Debian's systemd package installs as /etc/pam.d/systemd-user, for a host image
# that lacks it: user@.service opens its PAM session with it.
PAM_SYSTEMD_USER = """@include common-account
session  required pam_loginuid.so
session  required pam_limits.so
@include common-session-noninteractive
session optional pam_systemd.so
"""
PAGE = REPO / "docs" / "without-root.md"


class User:
    """The user's commands: a shell's (``sh``), and systemd's user manager's (``ctl``)."""

    def __init__(self, host: Container, name: str) -> None:
        self.host = host
        self.name = name
        self.uid = host.sh(f"id -u {name}").strip()
        self.runtime = f"/run/user/{self.uid}"

    def sh(self, script: str, *, env: dict[str, str] | None = None, check: bool = True) -> str:
        done = self.host.run(["sh", "-ec", script], user=self.name, env=env, check=check)
        return done.stdout

    def ctl(self, *args: str) -> str:
        """``systemctl --user``, as from a login: the runtime folder is the session's."""
        env = {"XDG_RUNTIME_DIR": self.runtime}
        return self.host.run(["systemctl", "--user", *args], user=self.name, env=env).stdout

    def show(self, prop: str) -> str:
        return self.ctl("show", "-p", prop, "--value", "pulsed").strip()

    def journal(self) -> list[dict[str, object]]:
        """The user unit's JSON lines (read by root from the system journal)."""
        out = self.host.run(
            [
                "journalctl",
                "--no-pager",
                "-o",
                "cat",
                "_SYSTEMD_USER_UNIT=pulsed.service",
                f"_UID={self.uid}",
            ]
        ).stdout
        return [e for e in map(event_of, out.splitlines()) if e]

    def events(self, name: str) -> list[dict[str, object]]:
        return [e for e in self.journal() if e.get("event") == name]


def checkout(host: Container) -> None:
    """The user's copy of the source tree: the files git tracks, as in this tree."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    host.copy_tree_files(REPO, [f for f in files if f and (REPO / f).exists()], SOURCE)
    host.run(["chown", "-R", f"{USER}:{USER}", SOURCE])


def cron_command() -> str:
    """The command of the page's crontab line: what cron hands to ``/bin/sh -c``."""
    (line,) = re.findall(r"^\*/5 \* \* \* \* (.+)$", PAGE.read_text(encoding="utf-8"), re.M)
    return str(line)


def as_cron(user: User, command: str) -> None:
    """``command`` as cron runs a user's job: sh, HOME, a short PATH, no session."""
    cron_env = {"SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
    user.host.run(["/bin/sh", "-c", command], user=user.name, env=cron_env)


def test_a_user_without_root_installs_runs_cron_and_a_user_unit_with_linger(
    host: Container, receiver: Received
) -> None:
    started = time.monotonic()
    if not host.ok("test -e /etc/pam.d/systemd-user"):
        host.write("/etc/pam.d/systemd-user", PAM_SYSTEMD_USER)
    host.run(["useradd", "-m", "-s", "/bin/sh", USER])
    user = User(host, USER)
    checkout(host)

    # make install as the user: all of it in the home, nothing of root's, on an
    # interpreter named by a path of its own (as RHEL's AppStream python3.11 is; this
    # one is the host's python3, whichever release the host is).
    odd = "/opt/python/bin/python3"
    host.sh(f"mkdir -p {odd.rsplit('/', 1)[0]} && ln -s $(readlink -f /usr/bin/python3) {odd}")
    installed = user.sh(f"cd {SOURCE} && make install PYTHON={odd}")
    assert "not root, so for anna alone" in installed.splitlines()[0]
    venv = host.run(["cat", f"{HOME}/.local/lib/pulsed/venv/pyvenv.cfg"]).stdout
    assert "home = /opt/python/bin\n" in venv, venv
    assert host.ok(f"test -x {HOME}/.local/bin/pulsed")
    assert host.ok(f"test -f {HOME}/.local/share/systemd/user/pulsed.service")
    assert not host.ok("test -e /usr/local/bin/pulsed || test -e /etc/pulsed")

    # Configure as the page says: the example copied, the secret in the folder, 0600.
    user.sh(f"cp {CONFIG}/pulsed.toml.example {CONFIG}/pulsed.toml")
    host.write(f"{CONFIG}/pulsed.toml", steps.config(receiver.port))
    host.write(f"{CONFIG}/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)
    host.run(["chown", "-R", f"{USER}:{USER}", CONFIG])
    checked = user.sh(
        f"CREDENTIALS_DIRECTORY={CONFIG}/credentials PULSED_CONFIG={CONFIG}/pulsed.toml "
        f"{HOME}/.local/bin/pulsed check"
    )
    assert f"{HOME}/.local/state/pulsed  [default: ~/.local/state, not root]" in checked

    # cron's line, as printed, twice a moment apart: one heartbeat, and a state.
    command = cron_command()
    user.sh("mkdir -p ~/.local/state")  # the page's step before crontab -e
    as_cron(user, command)
    receiver.wait_for(1, SHOP_DOMAIN)
    as_cron(user, command)
    assert host.ok(f"test -f {STATE}")
    # Warnings only: the run that sent says the bot token is missing, the other nothing.
    logged = host.run(["cat", f"{HOME}/.local/state/pulsed.log"]).stdout.splitlines()
    assert [event_of(line)["event"] for line in logged] == steps.EXPECTED_WARNINGS
    assert len(receiver.accepted(SHOP_DOMAIN)) == 1
    host.run(["rm", STATE])  # a fresh start for the unit, which must deliver on its own

    # The user unit, kept running by linger: no login session anywhere.
    host.run(["loginctl", "enable-linger", USER])
    wait_until(
        lambda: host.ok(f"systemctl -q is-active user@{user.uid}.service"),
        30,
        f"user@{user.uid}.service, the user manager linger starts",
    )
    user.ctl("daemon-reload")
    user.ctl("enable", "--now", "pulsed")
    receiver.wait_for(2, SHOP_DOMAIN)
    assert user.show("ActiveState") == "active"
    assert user.show("Type") == "notify"
    assert user.show("WatchdogUSec") == "1min"
    assert host.ok(f"test -f {STATE}")
    # The status file under the runtime folder, the user's own default.
    status = host.run(["cat", f"{user.runtime}/pulsed/status.json"]).stdout
    assert '"last_success"' in status
    assert [e["event"] for e in user.journal() if e["level"] == "warning"] == (
        steps.EXPECTED_WARNINGS
    )
    # The user's own `pulsed status`, with no variable set, reads the unit's state; with
    # the unit's config named, it knows the shop's domain too.
    shown = user.sh(f"{HOME}/.local/bin/pulsed status --json")
    assert '"last_success": "' in shown, shown
    shown = user.sh(f"PULSED_CONFIG={CONFIG}/pulsed.toml {HOME}/.local/bin/pulsed status --json")
    assert f'"domain": "{SHOP_DOMAIN}"' in shown and '"last_success": "' in shown, shown

    # Reload re-reads the config file.
    host.write(
        f"{CONFIG}/pulsed.toml",
        steps.config(receiver.port).replace("interval = 3600", "interval = 3500"),
    )
    user.ctl("reload", "pulsed")
    wait_until(lambda: bool(user.events("config.reloaded")), 30, "config.reloaded")
    assert user.show("ActiveState") == "active"

    # A restart keeps the state: the new process plans its next heartbeat an interval
    # after the last, and sends nothing.
    before = host.run(["cat", STATE]).stdout
    pid = user.show("MainPID")
    user.ctl("restart", "pulsed")
    wait_until(
        lambda: user.show("MainPID") not in (pid, "0") and len(user.events("daemon.started")) == 2,
        30,
        "daemon.started from the restarted process",
    )
    again = user.events("daemon.started")[-1]
    assert stamp(str(again["next_due"])) > time.time() + 3000, again
    time.sleep(1)  # a send at start would already have reached the receiver
    assert len(receiver.accepted(SHOP_DOMAIN)) == 2
    assert host.run(["cat", STATE]).stdout == before

    user.ctl("stop", "pulsed")
    assert user.show("Result") == "success"
    assert not host.ok(f"test -e {user.runtime}/pulsed")  # RuntimeDirectory=, gone
    print(f"user unit scenario: {time.monotonic() - started:.1f} s")


def test_the_pages_sandbox_drop_in_works_where_user_namespaces_are_allowed(
    host: Container, receiver: Received
) -> None:
    """The drop-in docs/without-root.md offers (PrivateUsers= and the file-system
    settings), on the package's user unit: it starts, sends and writes its state."""
    if not host.ok("test -e /etc/pam.d/systemd-user"):
        host.write("/etc/pam.d/systemd-user", PAM_SYSTEMD_USER)
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    assert host.ok("test -f /usr/lib/systemd/user/pulsed.service")
    host.run(["useradd", "-m", "-s", "/bin/sh", USER])
    user = User(host, USER)
    host.write(f"{CONFIG}/pulsed.toml", steps.config(receiver.port))
    host.write(f"{CONFIG}/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)
    (drop_in,) = re.findall(r"^```ini\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.M | re.S)
    host.write(f"{HOME}/.config/systemd/user/pulsed.service.d/sandbox.conf", drop_in)
    host.run(["chown", "-R", f"{USER}:{USER}", f"{HOME}/.config"])
    host.run(["chmod", "0700", f"{CONFIG}/credentials"])
    user.sh("mkdir -p -m 0700 ~/.local/state/pulsed")  # the page: before the drop-in
    host.run(["loginctl", "enable-linger", USER])
    wait_until(
        lambda: host.ok(f"systemctl -q is-active user@{user.uid}.service"), 30, "user manager"
    )
    started = host.run(
        ["systemctl", "--user", "enable", "--now", "pulsed"],
        user=USER,
        env={"XDG_RUNTIME_DIR": user.runtime},
        check=False,
    )
    assert started.returncode == 0, host.run(
        ["journalctl", "--no-pager", "-n", "30", f"_UID={user.uid}"], check=False
    ).stdout
    receiver.wait_for(1, SHOP_DOMAIN)
    assert user.show("ActiveState") == "active"
    assert user.ctl("show", "-p", "PrivateUsers", "--value", "pulsed").strip() == "yes"
    wait_until(lambda: host.ok(f"test -f {STATE}"), 10, "the state, written through the sandbox")
    assert not user.events("state.unwritable")
