"""docs/systemd.md as printed: every ```sh block, in order, run by an operator account.

Each line runs as written, from the operator's checkout, through sudo where the page
says sudo. Only what a person supplies is supplied: the secrets the page's ``read``
and ``--secret-stdin`` ask for (on stdin), an editor for ``sudoedit`` that writes the
config a person would, an end to ``journalctl -f``, which follows until interrupted,
and a second shop on the host, ``/var/www/anna``, for the page's shop added later.
"""

from __future__ import annotations

import re

from tests.system import steps
from tests.system.conftest import OPERATOR, REPO
from tests.system.container import Container
from tests.system.steps import SECRET, Received
from tests.system.test_operator import SOURCE, source_tree

DOC = REPO / "docs" / "systemd.md"
TOKEN = "123456:ABC-docs-test-token"
EDITOR = f"/home/{OPERATOR}/edit"
ANNA = "anna.example"
FOLLOW_FOR = 3  # seconds of `journalctl -f` before the interrupt a person would type


def command_lines() -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_every_command_of_the_systemd_page_works_as_printed(
    host: Container, receiver: Received
) -> None:
    source_tree(host)
    host.sh("cp -r /var/www/opencart /var/www/anna && chmod -R a+rX /var/www/anna")
    host.write("/var/www/anna/config.php", f"<?php define('HTTPS_SERVER', 'https://{ANNA}/');")
    host.write(f"/home/{OPERATOR}/pulsed.toml", steps.config(receiver.port))
    host.write(EDITOR, f'#!/bin/sh\ncat /home/{OPERATOR}/pulsed.toml > "$1"\n', mode=0o755)
    lines = command_lines()
    assert len(lines) > 20, lines
    for line in lines:
        stdin = ""
        if "read -r s" in line or "--secret-stdin" in line:
            # The shop's own secret: the receiver's, so that its heartbeat verifies.
            stdin = (TOKEN if "telegram_bot_token" in line else SECRET) + "\n"
        command = line
        if re.search(r"journalctl .*-f\b", line):
            command = f"timeout {FOLLOW_FOR} {line.split('#', 1)[0]}"
        done = host.run(
            ["sh", "-c", f"cd {SOURCE} && {command}"],
            user=OPERATOR,
            stdin=stdin,
            env={"SUDO_EDITOR": EDITOR},
            check=False,
            timeout=300,
        )
        ok = done.returncode == 0 or (command != line and done.returncode == 124)
        assert ok, f"{line}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    receiver.wait_for(1, steps.SHOP_DOMAIN)
    receiver.wait_for(1, ANNA)  # the shop added with its own secret
    # Added to a host of one shop, whose shop was listed as shops.d/default.toml.
    assert host.ok("test -f /etc/pulsed/shops.d/default.toml")
    assert host.ok("test -f /etc/pulsed/credentials/pulse_heartbeat_secret.anna")
    assert steps.no_pulsed_unit_failed(host)
