"""What an operator does with pulsed on a host, one step each, with what must follow.

Every step takes the container (and the receiver when heartbeats matter) and asserts
what an operator would see; the scenarios in ``test_operator.py`` chain them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.process import event_of, stamp
from tests.support.wait import wait_until
from tests.system.container import Container

SECRET = "system-test-heartbeat-secret-0001"
SHOP_DOMAIN = "demo-shop.example"  # what examples/shop's config.php names
# Without a bot token the only warning of a healthy start is the missing identity.
EXPECTED_WARNINGS = ["identity.missing"]


def config(port: int, **shop: str) -> str:
    lines = "".join(f'{key} = "{value}"\n' for key, value in shop.items())
    return (
        f'[pulse]\napi_host = "http://127.0.0.1:{port}"\n\n'
        f'[shop]\nroot = "/var/www/opencart"\n{lines}\n'
        "[daemon]\ninterval = 3600\n"
    )


def show(host: Container, unit: str, prop: str) -> str:
    return host.run(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()


def journal(host: Container, unit: str, *args: str) -> list[dict[str, Any]]:
    """The daemon's JSON lines in ``unit``'s journal (``journalctl -o cat``)."""
    out = host.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit, *args]).stdout
    return [event for event in map(event_of, out.splitlines()) if event]


def wait_event(host: Container, unit: str, event: str, after: int = 0, timeout: float = 30) -> None:
    """Until ``unit``'s journal holds more than ``after`` lines of ``event``."""
    wait_until(
        lambda: len([e for e in journal(host, unit) if e.get("event") == event]) > after,
        timeout,
        f"{event} in the journal of {unit}",
    )


def count(host: Container, unit: str, event: str) -> int:
    return len([e for e in journal(host, unit) if e.get("event") == event])


class Received:
    """The receiver's printed lines: one ``accepted <domain> … sig ok`` per heartbeat."""

    def __init__(self, out: Path, port: int) -> None:
        self.out = out
        self.port = port

    def accepted(self, domain: str | None = None) -> list[str]:
        lines = self.out.read_text(errors="replace").splitlines()
        return [
            line
            for line in lines
            if line.startswith("accepted ")
            and "sig ok" in line
            and "duplicate" not in line
            and (domain is None or line.startswith(f"accepted {domain} "))
        ]

    def wait_for(self, count: int, domain: str | None = None, timeout: float = 30) -> None:
        wait_until(
            lambda: len(self.accepted(domain)) >= count,
            timeout,
            f"{count} heartbeat(s) from {domain or 'any shop'}: {self.out.read_text()[-1500:]}",
        )


# --- the steps --------------------------------------------------------------------------


def unconfigured_is_quiet(host: Container) -> None:
    """Installed, not configured: nothing runs, nothing failed, nothing logged."""
    assert no_pulsed_unit_failed(host)
    assert not host.ok("systemctl -q is-active pulsed.service")
    assert not host.ok("systemctl -q is-enabled pulsed.service")
    assert journal(host, "pulsed") == []


def no_pulsed_unit_failed(host: Container) -> bool:
    return (
        host.run(
            ["systemctl", "list-units", "--failed", "--no-legend", "--plain", "pulsed*"]
        ).stdout
        == ""
    )


def configure(host: Container, port: int) -> None:
    host.write("/etc/pulsed/pulsed.toml", config(port))
    host.write("/etc/pulsed/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)


def start_and_heartbeat(host: Container, receiver: Received) -> None:
    host.run(["systemctl", "enable", "--now", "pulsed"])
    receiver.wait_for(1, SHOP_DOMAIN)
    assert show(host, "pulsed", "ActiveState") == "active"


def exactly_the_expected_warnings(host: Container) -> None:
    events = [e.get("event") for e in journal(host, "pulsed", "-p", "warning")]
    assert events == EXPECTED_WARNINGS


def reload_rereads(host: Container, port: int) -> None:
    before = count(host, "pulsed", "config.reloaded")
    host.write(
        "/etc/pulsed/pulsed.toml", config(port).replace("interval = 3600", "interval = 3500")
    )
    host.run(["systemctl", "reload", "pulsed"])
    wait_event(host, "pulsed", "config.reloaded", after=before)
    assert show(host, "pulsed", "ActiveState") == "active"


def restart_sends_nothing_early(host: Container, receiver: Received, unit: str = "pulsed") -> None:
    """After a (re)start: the new process is up and planned its next heartbeat an
    interval after the last, and the receiver got nothing more."""
    sent = len(receiver.accepted())
    wait_until(lambda: show(host, unit, "ActiveState") == "active", 30, f"{unit} active")
    pid = show(host, unit, "MainPID")
    wait_until(
        lambda: any(e.get("event") == "daemon.started" for e in journal(host, unit, f"_PID={pid}")),
        30,
        f"daemon.started from {unit}'s new process {pid}",
    )
    (started,) = [e for e in journal(host, unit, f"_PID={pid}") if e["event"] == "daemon.started"]
    assert stamp(started["next_due"]) > time.time() + 3000, started
    time.sleep(1)  # a send at start would already have reached the receiver
    assert len(receiver.accepted()) == sent


def watchdog_restarts_a_stuck_daemon(host: Container, receiver: Received) -> None:
    host.write(
        "/etc/systemd/system/pulsed.service.d/watchdog.conf",
        "[Service]\nWatchdogSec=2s\nRestartSec=1s\n",
    )
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "restart", "pulsed"])
    restart_sends_nothing_early(host, receiver)
    stuck = show(host, "pulsed", "MainPID")
    restarts = int(show(host, "pulsed", "NRestarts"))
    host.run(["kill", "-STOP", stuck])
    wait_until(
        lambda: show(host, "pulsed", "MainPID") not in (stuck, "0"),
        30,
        "a new main process after the watchdog's kill",
    )
    assert int(show(host, "pulsed", "NRestarts")) == restarts + 1
    system_log = host.run(["journalctl", "--no-pager", "-o", "cat", "-u", "pulsed"]).stdout
    assert "Watchdog timeout" in system_log
    restart_sends_nothing_early(host, receiver)
    host.run(["rm", "-r", "/etc/systemd/system/pulsed.service.d"])
    host.run(["systemctl", "daemon-reload"])


def stop_is_fast_and_clean(host: Container, unit: str = "pulsed") -> None:
    start = time.monotonic()
    host.run(["systemctl", "stop", unit])
    took = time.monotonic() - start
    assert took < 3, f"systemctl stop {unit} took {took:.1f} s"
    assert show(host, unit, "ExecMainStatus") == "0"
    assert show(host, unit, "Result") == "success"


def template_instance_beside_the_single_unit(
    host: Container, receiver: Received, shop: str = "shop2"
) -> None:
    """pulsed@shop2 starts on a host where pulsed.service runs and has state."""
    assert show(host, "pulsed", "ActiveState") == "active"
    host.write(f"/etc/pulsed/{shop}.toml", config(receiver.port, domain=f"{shop}.example"))
    host.write(f"/etc/pulsed/credentials/{shop}/pulse_heartbeat_secret", SECRET, mode=0o600)
    host.run(["chmod", "0700", f"/etc/pulsed/credentials/{shop}"])
    host.run(["systemctl", "enable", "--now", f"pulsed@{shop}"])
    receiver.wait_for(1, f"{shop}.example")
    assert host.ok(f"test -f /var/lib/pulsed-instances/{shop}/state.json")
    assert show(host, "pulsed", "ActiveState") == "active"


def named_credential_reaches_the_daemon(host: Container, shop: str = "shop7") -> None:
    """A file <credential>.<shop> is in the running daemon's $CREDENTIALS_DIRECTORY
    under that exact name, once the generator has run (daemon-reload)."""
    name = f"pulse_heartbeat_secret.{shop}"
    host.write(f"/etc/pulsed/credentials/{name}", "per-shop-secret", mode=0o600)
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "restart", "pulsed"])
    wait_until(lambda: show(host, "pulsed", "ActiveState") == "active", 30, "pulsed active")
    pid = show(host, "pulsed", "MainPID")
    environ = host.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")
    (directory,) = [v.split("=", 1)[1] for v in environ if v.startswith("CREDENTIALS_DIRECTORY=")]
    assert host.run(["cat", f"{directory}/{name}"]).stdout == "per-shop-secret"
    # Beside the per-shop one, the shared secret is still loaded as before.
    assert host.run(["cat", f"{directory}/pulse_heartbeat_secret"]).stdout == SECRET


def pids(host: Container, *units: str) -> dict[str, str]:
    return {unit: show(host, unit, "MainPID") for unit in units}


# --- what the package declares ----------------------------------------------------------


def package_names(field: str) -> list[str]:
    """The package names of a ``Depends:`` field, alternatives included."""
    names = []
    for alternative in field.replace("|", ",").split(","):
        name = alternative.strip().split(" ", 1)[0].split(":", 1)[0]
        if name:
            names.append(name)
    return names


def dependency_closure(host: Container, names: list[str]) -> set[str]:
    """``names`` and every installed package they depend on, directly or not."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        fields = host.run(
            ["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", name], check=False
        )
        if fields.returncode == 0:  # else virtual, or not installed: nothing further
            todo += package_names(fields.stdout)
    return seen


def programs_of_the_units(host: Container) -> list[str]:
    """What the installed package's units start (every ``Exec…=``) and its generators."""
    files = host.run(["dpkg-query", "-L", "pulsed"]).stdout.split()
    programs = [path for path in files if "/systemd/system-generators/" in path]
    for unit in (path for path in files if path.endswith(".service")):
        for line in host.run(["cat", unit]).stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("Exec") and value.strip():
                # systemd's prefixes (@, -, :, +, !) are not part of the path.
                programs.append(value.split()[0].lstrip("@-:+!|"))
    return programs


def provider(host: Container, program: str) -> str:
    """The package a program comes from; for pulsed's own scripts, the package of the
    interpreter their ``#!`` line names, followed through links."""
    real = host.run(["readlink", "-f", program]).stdout.strip()
    # dpkg knows a file by the path its package ships, /bin/kill on Debian 12 and
    # /usr/bin/kill on 13: ask for both spellings.
    aliases = [real, real.removeprefix("/usr"), program]
    for path in aliases:
        found = host.run(["dpkg-query", "-S", path], check=False)
        if found.returncode == 0:
            package = found.stdout.splitlines()[0].split(": ", 1)[0].split(",")[0]
            break
    else:
        raise AssertionError(f"no package ships {program} ({real})")
    if package != "pulsed":
        return package
    first = host.run(["head", "-n", "1", real]).stdout
    assert first.startswith("#!"), f"{program}: pulsed's own program, not a script"
    return provider(host, first[2:].split()[0])


def every_program_is_declared(host: Container) -> None:
    """Each program the units run comes from a package pulsed depends on (or one of
    theirs), or from an Essential one, which every Debian host has."""
    depends = host.run(["dpkg-query", "-W", "-f", "${Depends}", "pulsed"]).stdout
    declared = dependency_closure(host, package_names(depends))
    programs = programs_of_the_units(host)
    assert any(program.endswith("/kill") for program in programs), programs
    undeclared = []
    for program in programs:
        package = provider(host, program)
        essential = host.run(["dpkg-query", "-W", "-f", "${Essential}", package]).stdout
        if package not in declared and essential != "yes":
            undeclared.append(f"{program} ({package})")
    assert not undeclared, f"not in Depends: {undeclared}; Depends: {depends}"
