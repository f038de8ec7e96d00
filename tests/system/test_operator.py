"""pulsed as an operator installs and runs it, under a real systemd and journald.

Each test is one scenario on a freshly booted host (see ``conftest.py``); a new
scenario is one more function here, built from the steps in ``steps.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until
from tests.system import steps
from tests.system.conftest import OPERATOR, REPO, SHOWN, Built, receiving
from tests.system.container import Container
from tests.system.release import tracked_files
from tests.system.steps import SECRET, Received

SOURCE = "/home/admin/pulsed"


def source_tree(host: Container) -> None:
    """The operator's checkout: the files git tracks, as they are in this tree."""
    host.copy_tree_files(REPO, tracked_files(), SOURCE)
    host.run(["chown", "-R", f"{OPERATOR}:{OPERATOR}", SOURCE])


def test_the_debian_package_from_install_to_purge(
    host: Container, receiver: Received, built: Built
) -> None:
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    steps.unconfigured_is_quiet(host)

    steps.configure(host, receiver.port)
    steps.start_and_heartbeat(host, receiver)
    steps.exactly_the_expected_warnings(host)
    steps.reload_rereads(host, receiver.port)
    steps.watchdog_restarts_a_stuck_daemon(host, receiver)
    steps.stop_is_fast_and_clean(host)
    host.run(["systemctl", "start", "pulsed"])
    steps.restart_sends_nothing_early(host, receiver)
    steps.template_instance_beside_the_single_unit(host, receiver)

    # Upgrade: both running units restart on the new package, keep their state and
    # send nothing before due.
    before = steps.pids(host, "pulsed", "pulsed@shop2")
    host.run(["dpkg", "-i", "/root/pulsed-upgrade.deb"])
    assert host.run(["dpkg-query", "-W", "-f", "${Version}", "pulsed"]).stdout == (
        built.upgrade_version
    )
    for unit, pid in before.items():
        assert steps.pids(host, unit)[unit] != pid, f"{unit} was not restarted"
        steps.restart_sends_nothing_early(host, receiver, unit)

    # Remove stops everything and keeps state and configuration.
    host.run(["dpkg", "-r", "pulsed"])
    for unit in before:
        assert not host.ok(f"systemctl -q is-active {unit}")
    assert host.ok("test -f /var/lib/private/pulsed/state.json")
    assert host.ok("test -f /etc/pulsed/credentials/pulse_heartbeat_secret")

    # Purge removes the state, the secrets and the package's files; the operator's
    # own config files stay.
    host.run(["dpkg", "-P", "pulsed"])
    for gone in (
        "/var/lib/pulsed",
        "/var/lib/private/pulsed",
        "/var/lib/pulsed-instances",
        "/var/lib/private/pulsed-instances",
        "/etc/pulsed/credentials",
        "/etc/default/pulsed",
        "/etc/pulsed/pulsed.toml.example",
        "/lib/systemd/system/pulsed.service",
        "/usr/lib/pulsed",
        "/etc/systemd/system/multi-user.target.wants/pulsed.service",
        "/etc/systemd/system/multi-user.target.wants/pulsed@shop2.service",
    ):
        assert not host.ok(f"test -e {gone} || test -L {gone}"), f"{gone} left after purge"
    assert host.ok("test -f /etc/pulsed/pulsed.toml")
    assert steps.no_pulsed_unit_failed(host)


def test_the_package_is_built_for_the_release_it_runs_on(host: Container, built: Built) -> None:
    """Contract §12: Depends names this release's Python, the version names the release,
    and every program the units run comes from a declared package."""
    python = host.run(["python3", "-c", "import sys; print(*sys.version_info[:2])"]).stdout
    major, minor = python.split()
    depends = host.run(["dpkg-deb", "-f", "/root/pulsed.deb", "Depends"]).stdout.strip()
    assert depends.split(", ")[:3] == [
        f"python3 (>= {major}.{minor})",
        f"python3 (<< {major}.{int(minor) + 1})",
        f"python{major}.{minor}",
    ], depends
    release = host.sh('. /usr/lib/os-release && echo "$VERSION_ID"').strip()
    assert built.version.endswith(f"+deb{release}"), built.version

    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    steps.every_program_is_declared(host)
    # The copyright file speaks of the venv the package holds, not of another Python's.
    site = f"/usr/lib/pulsed/venv/lib/python{major}.{minor}/site-packages/"
    assert host.ok(f"test -d {site}")
    copyright_paths = re.findall(
        r"/?usr/lib/pulsed/venv/lib/[^/]+/site-packages/",
        host.run(["cat", "/usr/share/doc/pulsed/copyright"]).stdout,
    )
    assert copyright_paths, "the copyright file names no site-packages"
    assert {"/" + path.lstrip("/") for path in copyright_paths} == {site}
    # What an operator reaches for on the host: the pages, the admin page's function and
    # the folder for one file per shop (issue 15's "the package ships ...").
    for page in ("systemd.md", "status.md", "admin-panel.md", "protocol.md", "contract.md"):
        assert host.ok(f"test -f /usr/share/doc/pulsed/{page}"), page
    assert host.run(["cat", "/usr/share/pulsed/admin-panel.php"]).stdout == (
        REPO / "docs" / "admin-panel.php"
    ).read_text(encoding="utf-8")
    assert host.sh("stat -c %a /etc/pulsed/shops.d").strip() == "755"


def test_purging_the_package_keeps_a_make_install_beside_it(
    host: Container, receiver: Received
) -> None:
    """Contract §12: purge removes only what the package created. A make install's
    running services keep their state, their secrets and their process; so does what
    a make uninstall left, whether the package configured here or never did."""
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    source_tree(host)
    host.run(["sh", "-c", f"cd {SOURCE} && make install"])
    steps.configure(host, receiver.port)
    host.run(["systemctl", "enable", "--now", "pulsed"])
    receiver.wait_for(1, steps.SHOP_DOMAIN)
    steps.template_instance_beside_the_single_unit(host, receiver)
    running = steps.pids(host, "pulsed", "pulsed@shop2")
    kept = (
        "/var/lib/private/pulsed/state.json",
        "/var/lib/private/pulsed-instances/shop2/state.json",
        "/etc/pulsed/credentials/pulse_heartbeat_secret",
        "/etc/pulsed/credentials/shop2/pulse_heartbeat_secret",
    )

    # The package upgraded, removed and purged while the make install's units run:
    # they are not its own to restart or stop, and what they use is not its to delete.
    host.run(["dpkg", "-i", "/root/pulsed-upgrade.deb"])
    host.run(["dpkg", "--purge", "pulsed"])
    assert steps.pids(host, "pulsed", "pulsed@shop2") == running
    for path in kept:
        assert host.ok(f"test -f {path}"), f"{path} gone with the package"
    assert host.ok("test -L /etc/systemd/system/multi-user.target.wants/pulsed.service")
    assert len(receiver.accepted()) == 2

    # What make uninstall keeps, beside a package that never configured, then one that
    # did: neither made it, neither removes it.
    host.run(["sh", "-c", f"cd {SOURCE} && make uninstall"])
    for install in ("--unpack", "--install"):
        host.run(["dpkg", install, "/root/pulsed.deb"])
        host.run(["dpkg", "--purge", "pulsed"])
        for path in kept:
            assert host.ok(f"test -f {path}"), f"{path} gone with a package {install}ed"

    # Installed again, it picks up where it was: the secret is read, nothing sent early.
    host.run(["sh", "-c", f"cd {SOURCE} && make install"])
    host.run(["systemctl", "enable", "--now", "pulsed", "pulsed@shop2"])
    steps.restart_sends_nothing_early(host, receiver)
    steps.restart_sends_nothing_early(host, receiver, "pulsed@shop2")
    assert len(receiver.accepted()) == 2


def test_make_install_from_a_checkout_to_uninstall(host: Container, receiver: Received) -> None:
    source_tree(host)
    installed = host.run(["sh", "-c", f"cd {SOURCE} && make install"]).stdout
    steps.unconfigured_is_quiet(host)

    # The next steps make install prints, run as printed (the config edited between).
    printed = [
        line.strip() for line in installed.split("Next (docs/systemd.md):", 1)[1].splitlines()
    ]
    copy = [line for line in printed if line.startswith("cp ")]
    assert len(copy) == 1
    host.run(["sh", "-ec", copy[0].split("#", 1)[0]])
    host.write("/etc/pulsed/pulsed.toml", steps.config(receiver.port))
    host.write("/etc/pulsed/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)
    (check_and_start,) = [line for line in printed if "pulsed check" in line]
    host.run(["sh", "-ec", check_and_start], user=OPERATOR)
    receiver.wait_for(1, steps.SHOP_DOMAIN)
    steps.exactly_the_expected_warnings(host)
    steps.reload_rereads(host, receiver.port)
    steps.stop_is_fast_and_clean(host)
    host.run(["systemctl", "start", "pulsed"])
    steps.template_instance_beside_the_single_unit(host, receiver)
    steps.named_credential_reaches_the_daemon(host)

    # Upgrade from the checkout: install again, restart as printed.
    host.run(["sh", "-c", f"cd {SOURCE} && make install"])
    (restart,) = [line for line in printed if "restart" in line]
    host.run(["sh", "-ec", restart.strip("()").split("? ", 1)[1]], user=OPERATOR)
    steps.restart_sends_nothing_early(host, receiver)

    listed = host.run(["cat", "/usr/local/lib/pulsed/created-dirs"]).stdout.split()
    host.run(["sh", "-c", f"cd {SOURCE} && make uninstall"])
    assert not host.ok("systemctl -q is-active pulsed.service")
    assert not host.ok("test -e /etc/systemd/system/pulsed.service")
    assert listed, "make install recorded no folder it created"
    for folder in listed:
        assert host.ok(f'! test -d {folder} || test -n "$(ls -A {folder})"'), (
            f"make uninstall left {folder} empty"
        )
    assert host.ok("test -f /var/lib/private/pulsed/state.json")


def test_moving_a_shop_from_the_single_unit_to_the_template(
    host: Container, receiver: Received
) -> None:
    """The documented move (pulsed adopt, no file moved by hand): nothing sent early."""
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    steps.configure(host, receiver.port)
    steps.start_and_heartbeat(host, receiver)
    for command in _doc_block(REPO / "docs" / "systemd.md", "move-to-template"):
        host.run(["sh", "-ec", command], user=OPERATOR)
    steps.restart_sends_nothing_early(host, receiver, "pulsed@shop1")
    assert host.ok("test -f /var/lib/pulsed-instances/shop1/state.json")
    assert len(receiver.accepted()) == 1


def test_an_instance_from_before_the_own_state_root_keeps_its_state(
    host: Container, receiver: Received
) -> None:
    """A host upgraded while pulsed@shop1 kept its state in /var/lib/pulsed/shop1."""
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    host.write("/etc/pulsed/shop1.toml", steps.config(receiver.port))
    host.write("/etc/pulsed/credentials/shop1/pulse_heartbeat_secret", SECRET, mode=0o600)
    # The old layout, made by the old unit line itself: StateDirectory=pulsed/%i.
    host.write(
        "/etc/systemd/system/pulsed@shop1.service.d/old.conf",
        "[Service]\nStateDirectory=\nStateDirectory=pulsed/%i\nExecStartPre=\n",
    )
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "start", "pulsed@shop1"])
    receiver.wait_for(1)
    host.run(["systemctl", "stop", "pulsed@shop1"])
    assert host.ok("test -f /var/lib/private/pulsed/shop1/state.json")
    host.run(["rm", "-r", "/etc/systemd/system/pulsed@shop1.service.d"])
    host.run(["systemctl", "daemon-reload"])

    # No unit moves a state when it starts: the documented, explicit move.
    for command in _doc_block(REPO / "docs" / "systemd.md", "old-instance-layout"):
        host.run(["sh", "-ec", command], user=OPERATOR)
    steps.restart_sends_nothing_early(host, receiver, "pulsed@shop1")
    assert len(receiver.accepted()) == 1
    # The old folder is gone, so the single unit can start on this host.
    assert not host.ok("test -e /var/lib/pulsed || test -L /var/lib/pulsed")
    steps.configure(host, receiver.port)
    host.run(["systemctl", "start", "pulsed"])
    receiver.wait_for(2)


def _doc_block(doc: Path, name: str) -> list[str]:
    """The command lines of the ```sh (or ```shell) block marked ``<!-- name -->`` in
    ``doc``. A ```shell block is one for a host in a given state (a move, an upgrade
    from an old layout): its own test makes that host, so test_docs does not run it."""
    text = doc.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name} -->\s*```(?:sh|shell)\n(.*?)```", text, re.DOTALL)
    assert found, f"no block {name} in {doc.name}"
    return [line for line in found.group(1).splitlines() if line.strip()]


SHOP_PHP = "<?php\ndefine('HTTPS_SERVER', 'https://{domain}/');\n"
FIGURES = (
    'require "/usr/share/pulsed/admin-panel.php"; '
    'echo json_encode(pulsed_heartbeat_figures("/run/pulsed/status.json", "{shop}"));'
)


def test_one_service_serves_several_shops_each_with_its_own_secret(
    host: Container, tmp_path: Path, built: Built
) -> None:
    """Contract §10 and §11 on the shipped unit: two shops, one signing with its own
    credential, per-shop journal lines, and the status file the web server's user reads."""
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    for name in ("alpha", "beta"):
        host.sh(f"cp -r /var/www/opencart /var/www/{name}")
        host.write(f"/var/www/{name}/config.php", SHOP_PHP.format(domain=f"{name}.example"))
    host.sh("chmod -R a+rX /var/www")
    with receiving(host, tmp_path, {"alpha.example": "alpha's-own-secret"}) as receiver:
        host.write(
            "/etc/pulsed/pulsed.toml",
            f'[pulse]\napi_host = "http://127.0.0.1:{receiver.port}"\n\n'
            '[shops.alpha]\nroot = "/var/www/alpha"\n\n[shops.beta]\nroot = "/var/www/beta"\n',
        )
        host.write("/etc/pulsed/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)
        host.write(
            "/etc/pulsed/credentials/pulse_heartbeat_secret.alpha",
            "alpha's-own-secret",
            mode=0o600,
        )
        host.run(["systemctl", "daemon-reload"])  # the generator loads alpha's credential
        host.run(["systemctl", "enable", "--now", "pulsed"])
        receiver.wait_for(1, "alpha.example")
        receiver.wait_for(1, "beta.example")
        # The receiver answers before the daemon logs: wait for both lines in the journal.
        steps.wait_event(host, "pulsed", "heartbeat.sent", after=1)
        sent = [e for e in steps.journal(host, "pulsed") if e.get("event") == "heartbeat.sent"]
        assert sorted(e["shop"] for e in sent) == ["alpha", "beta"]
        # The files are written for the cycles that end within a window (§11), then
        # STATUS= is sent: once it tells of both shops, the status file holds them.
        ok = "2 shops: 2 ok"
        wait_until(lambda: ok in steps.show(host, "pulsed", "StatusText"), 30, ok)

        # The admin page's function the package ships, as the web server's user, on the
        # file pulsed wrote.
        answer = host.run(
            ["runuser", "-u", "www-data", "--", "php", "-n", "-r", FIGURES.format(shop="beta")]
        ).stdout
        assert answer.startswith('{"last_heartbeat":'), answer
        assert "last heartbeat less than a minute ago" in answer

        steps.stop_is_fast_and_clean(host)
        # Gone with the service: it must not go on announcing heartbeats.
        assert not host.ok("test -e /run/pulsed/status.json")


def test_an_outage_names_the_host_and_the_recovery_says_how_long(
    host: Container, tmp_path: Path
) -> None:
    """Contract §11's lines an operator acts on, in the journal of the shipped unit:
    while Pulse cannot be reached each heartbeat.failed names the host; when it is back,
    each shop's heartbeat.recovered says for how long and how many deliveries failed,
    and STATUS= is back to every shop ok. A short interval (a drop-in) so the outage
    spans deliveries: every back-off is at most one interval."""
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    for name in ("alpha", "beta"):
        host.sh(f"cp -r /var/www/opencart /var/www/{name}")
        host.write(f"/var/www/{name}/config.php", SHOP_PHP.format(domain=f"{name}.example"))
    host.sh("chmod -R a+rX /var/www")
    host.write("/etc/pulsed/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)
    host.write(
        "/etc/systemd/system/pulsed.service.d/interval.conf",
        "[Service]\nEnvironment=PULSED_INTERVAL=15\n",
    )
    for part in ("before", "after"):
        (tmp_path / part).mkdir()
    with receiving(host, tmp_path / "before") as receiver:
        port = receiver.port
        host.write(
            "/etc/pulsed/pulsed.toml",
            f'[pulse]\napi_host = "http://127.0.0.1:{port}"\n\n'
            '[shops.alpha]\nroot = "/var/www/alpha"\n\n[shops.beta]\nroot = "/var/www/beta"\n',
        )
        host.run(["systemctl", "daemon-reload"])
        host.run(["systemctl", "enable", "--now", "pulsed"])
        receiver.wait_for(1, "alpha.example")
        receiver.wait_for(1, "beta.example")

    # Pulse is down: each shop's next delivery fails, and says where it went.
    def failed_lines() -> list[dict[str, Any]]:
        return [e for e in steps.journal(host, "pulsed") if e.get("event") == "heartbeat.failed"]

    wait_until(lambda: {e["shop"] for e in failed_lines()} == {"alpha", "beta"}, 60, "failures")
    failed = failed_lines()
    assert all(e["host"] == "127.0.0.1" for e in failed), failed
    assert all("heartbeat to 127.0.0.1 failed: connect" in e["message"] for e in failed), failed
    wait_until(lambda: "2 failing" in steps.show(host, "pulsed", "StatusText"), 30, "2 failing")
    with receiving(host, tmp_path / "after", port=port) as receiver:
        receiver.wait_for(1, "alpha.example", timeout=60)
        receiver.wait_for(1, "beta.example", timeout=60)
        steps.wait_event(host, "pulsed", "heartbeat.recovered", after=1)
        journal = steps.journal(host, "pulsed")
        recovered = [e for e in journal if e.get("event") == "heartbeat.recovered"]
        assert {e["shop"] for e in recovered} == {"alpha", "beta"}, recovered
        for line in recovered:
            failures = [e for e in failed if e["shop"] == line["shop"]]
            assert line["failed_deliveries"] >= len(failures), (line, failures)
            assert line["failing_for_s"] >= 0 and line["level"] == "info", line
        ok = "2 shops: 2 ok"
        wait_until(lambda: ok in steps.show(host, "pulsed", "StatusText"), 30, ok)


SCRAPE = (
    "import urllib.request; print(urllib.request.urlopen("
    "'http://127.0.0.1:9100/metrics', timeout=5).read().decode())"
)
NODE_EXPORTER_LINK = "/var/lib/prometheus/node-exporter/pulsed.prom"
METRICS = "/run/pulsed-metrics/pulsed.prom"


def _scrape(host: Container) -> str:
    return host.run(["python3", "-c", SCRAPE], check=False).stdout


def test_debians_node_exporter_serves_every_shop_also_a_broken_one_and_after_a_stop(
    host: Container, tmp_path: Path
) -> None:
    """Contract §11 through the release's own prometheus-node-exporter: the
    pulsed-node-exporter package links /run/pulsed-metrics/pulsed.prom into the one
    folder it reads; a scrape of :9100 finds each shop's series, pulsed_shop_up 0 for
    a shop that cannot work, and still finds them after systemctl stop pulsed (stale,
    not gone), the folder then root's again. Removing the package takes the link, the
    folder and the drop-in away."""
    host.run(["dpkg", "-i", "/root/pulsed.deb"])
    host.sh("cp -r /var/www/opencart /var/www/alpha && chmod -R a+rX /var/www")
    host.write("/var/www/alpha/config.php", SHOP_PHP.format(domain="alpha.example"))
    with receiving(host, tmp_path) as receiver:
        host.write(
            "/etc/pulsed/pulsed.toml",
            f'[pulse]\napi_host = "http://127.0.0.1:{receiver.port}"\n\n'
            '[shops.alpha]\nroot = "/var/www/alpha"\n\n[shops.beta]\nroot = "/var/www/gone"\n',
        )
        host.write("/etc/pulsed/credentials/pulse_heartbeat_secret", SECRET, mode=0o600)
        host.run(["systemctl", "enable", "--now", "pulsed"])
        receiver.wait_for(1, "alpha.example")
        host.run(
            ["dpkg", "-i", "/root/prometheus-node-exporter.deb", "/root/pulsed-node-exporter.deb"]
        )
        # Started by its postinst on a host; this image's policy-rc.d forbids that.
        host.run(["systemctl", "start", "prometheus-node-exporter"])
        link = host.run(["readlink", NODE_EXPORTER_LINK]).stdout.strip()
        assert link == "/run/pulsed-metrics/pulsed.prom", link
        wanted = ('pulsed_shop_up{shop="alpha"} 1', 'pulsed_shop_up{shop="beta"} 0')
        wait_until(
            lambda: all(line in _scrape(host) for line in wanted), 30, "pulsed's series on :9100"
        )
        scraped = _scrape(host)
        assert 'pulsed_heartbeats_sent_total{shop="alpha"} 1' in scraped, scraped
        assert "node_textfile_scrape_error 0" in scraped, scraped

        host.run(["systemctl", "stop", "pulsed"])
        after = _scrape(host)
        assert all(line in after for line in wanted), after  # stale, not gone
        assert not host.ok("test -e /run/pulsed/status.json")  # gone with the unit
        owners = host.run(["stat", "-c", "%U", "/run/pulsed-metrics", METRICS]).stdout.split()
        assert owners == ["root", "root"], owners  # no dynamic UID owns what outlives it

        host.run(["systemctl", "start", "pulsed"])
        host.run(["dpkg", "-r", "pulsed-node-exporter"])
        assert not host.ok(f"test -e {NODE_EXPORTER_LINK} || test -L {NODE_EXPORTER_LINK}")
        assert not host.ok("test -e /run/pulsed-metrics")
        assert host.ok("systemctl is-active pulsed")  # restarted without the drop-in
        assert "pulsed_shop_up" not in _scrape(host)


SHOPS = 60
EDIT_API_HOST = (
    '#!/bin/sh\nsed -i \'s|^api_host = .*|api_host = "http://127.0.0.1:{port}"|\' "$1"\n'
)


def test_an_operators_day_with_sixty_shops_from_the_package_as_documented(
    host: Container, tmp_path: Path
) -> None:
    """docs/systemd.md §7's block as printed (the package installed with dpkg: the
    container has no network for apt): every shop signs with its own secret, nothing is
    ignored with a warning, and a restart sends nothing early. Then the day goes on:
    node_exporter is added, a shop's config.php breaks and the shop stays in view in
    every listing (STATUS=, the status file as the web server's user reads it through
    the shipped admin-page function, the metrics scraped from node_exporter, status
    --failing), and a shop is added with its own secret as "Adding a shop" says."""
    domains = [f"shop{n:02d}.example" for n in range(1, SHOPS + 1)]
    for n, domain in enumerate(domains, 1):
        host.sh(f"cp -r /var/www/opencart /var/www/shop{n:02d}")
        host.write(f"/var/www/shop{n:02d}/config.php", SHOP_PHP.format(domain=domain))
    host.sh("rm -r /var/www/opencart && chmod -R a+rX /var/www")
    own = {domain: f"{domain}-own-secret-0001" for domain in domains}
    secrets_file = f"/home/{OPERATOR}/pulse-secrets.txt"
    host.write(secrets_file, "".join(f"{d} {own[d]}\n" for d in domains), mode=0o600)
    host.run(["chown", f"{OPERATOR}:{OPERATOR}", secrets_file])
    anna = "anna.example-own-secret-0001"
    with receiving(host, tmp_path, {**own, "anna.example": anna}) as receiver:
        editor = f"/home/{OPERATOR}/edit"
        host.write(editor, EDIT_API_HOST.format(port=receiver.port), mode=0o755)
        lines = _doc_block(REPO / "docs" / "systemd.md", "many-shops")
        assert len(lines) == 7, lines
        assert lines[0] == "sudo apt install ./pulsed_<version>_<arch>.deb"
        host.run(["dpkg", "-i", "/root/pulsed.deb"])
        for line in lines[1:]:
            host.run(["sh", "-ec", f"cd && {line}"], user=OPERATOR, env={"SUDO_EDITOR": editor})
        receiver.wait_for(SHOPS, timeout=60)
        assert sorted(line.split()[1] for line in receiver.accepted()) == domains
        # Each shop's heartbeat verified with its own secret only: none with a shared one.
        assert host.ok("test ! -e /etc/pulsed/credentials/pulse_heartbeat_secret")
        steps.wait_event(host, "pulsed", "heartbeat.sent", after=SHOPS - 1)
        warnings = {e.get("event") for e in steps.journal(host, "pulsed", "-p", "warning")}
        assert warnings == {"identity.missing"}  # no bot tokens; nothing ignored, no shop off
        status = host.run(["pulsed", "status"]).stdout
        assert f"{SHOPS} shops: {SHOPS} ok" in status, status
        host.run(["systemctl", "restart", "pulsed"])
        steps.restart_sends_nothing_early(host, receiver)

        # node_exporter joins (pulsed-node-exporter restarts pulsed: nothing is sent).
        host.run(
            ["dpkg", "-i", "/root/prometheus-node-exporter.deb", "/root/pulsed-node-exporter.deb"]
        )
        host.run(["systemctl", "start", "prometheus-node-exporter"])
        steps.restart_sends_nothing_early(host, receiver)

        # A shop breaks: an edit loses config.php's domain, and the service is reloaded.
        host.write("/var/www/shop07/config.php", "<?php\n// HTTPS_SERVER lost in an edit\n")
        host.run(["systemctl", "reload", "pulsed"])
        broken = f"{SHOPS} shops: {SHOPS - 1} ok, 1 disabled (shop07_example)"
        wait_until(lambda: broken in steps.show(host, "pulsed", "StatusText"), 30, broken)
        php = FIGURES.format(shop="shop07_example")
        answer = host.run(["runuser", "-u", "www-data", "--", "php", "-n", "-r", php]).stdout
        assert "heartbeat off: pulsed cannot work with this shop's shop.domain" in answer, answer
        assert "last heartbeat less than a minute ago" in answer, answer  # kept figures
        down = 'pulsed_shop_up{shop="shop07_example"} 0'
        wait_until(lambda: down in _scrape(host), 30, down)
        scraped = _scrape(host)
        assert scraped.count('pulsed_shop_up{shop="') == SHOPS, scraped
        assert 'pulsed_heartbeats_sent_total{shop="shop07_example"} 1' in scraped, scraped
        failing = host.run(["pulsed", "status", "--failing"]).stdout
        table = host.run(["pulsed", "status"]).stdout.splitlines()
        SHOWN["STATUS= with a shop broken"] = steps.show(host, "pulsed", "StatusText")
        SHOWN["pulsed status, its first and last lines"] = "\n".join([*table[:4], "…", *table[-3:]])
        SHOWN["pulsed status --failing"] = failing
        rows = [line for line in failing.splitlines() if line.split()[:1] == ["shop07_example"]]
        assert len(rows) == 1 and "shop08_example" not in failing, failing

        # A shop is added with its own secret, as "Adding a shop" says.
        host.sh("cp -r /var/www/shop01 /var/www/anna")
        host.write("/var/www/anna/config.php", SHOP_PHP.format(domain="anna.example"))
        host.sh("chmod -R a+rX /var/www/anna")
        lines = _doc_block(REPO / "docs" / "systemd.md", "add-shop")
        assert len(lines) == 3, lines
        host.run(["sh", "-ec", f"cd && printf '%s\\n' '{anna}' | {lines[0]}"], user=OPERATOR)
        host.run(["sh", "-ec", lines[1]], user=OPERATOR)
        receiver.wait_for(1, "anna.example")
        assert len(receiver.accepted()) == SHOPS + 1  # only the new shop sent
        shown = host.run(["sh", "-ec", lines[2]], user=OPERATOR).stdout
        assert "anna.example" in shown, shown
        after = f"{SHOPS + 1} shops: {SHOPS} ok, 1 disabled (shop07_example)"
        wait_until(lambda: after in steps.show(host, "pulsed", "StatusText"), 30, after)
