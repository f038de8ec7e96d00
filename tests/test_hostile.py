"""A hostile host, on real processes: what another user on the machine may try.

The attacker's side runs as ``nobody`` where the test runs as root (as CI does):
it owns the folder it makes, plants files there, answers ``getMe`` with control
characters, and hangs ``php`` through a wrapper that starts a grandchild.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from devtools.fake_telegram import FakeTelegram
from devtools.receiver import Receiver
from pulsed.verify import signature
from tests.support.process import TOKEN, Shop, events_of, run_pulsed

AS_ROOT = os.geteuid() == 0


def as_nobody(*argv: str) -> None:
    """Run ``argv`` as the attacker: ``nobody`` when we are root, else ourselves."""
    user = "nobody" if AS_ROOT else None
    subprocess.run(argv, check=True, user=user, group="nogroup" if user else None)


def only_json_lines(stderr: str) -> list[dict[str, object]]:
    lines = stderr.splitlines()
    parsed = [json.loads(line) for line in lines]  # raises on anything but a JSON line
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


@pytest.fixture
def open_folder(tmp_path: Path) -> Path:
    """A state folder the attacker made and anyone may write."""
    folder = tmp_path / "shared-state"
    tmp_path.chmod(0o755)
    if AS_ROOT:
        nobody = pwd.getpwnam("nobody")
        folder.mkdir()
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    else:
        folder.mkdir()
    folder.chmod(0o777)
    return folder


@pytest.mark.parametrize("command", [["run"], ["once", "--force"]])
def test_a_state_folder_others_can_write_is_refused_for_writing(
    shop: Shop, receiver: Receiver, open_folder: Path, command: list[str]
) -> None:
    env = {**shop.env, "PULSED_STATE_DIR": str(open_folder)}
    code, _, err = run_pulsed(command, env)
    assert code == 78
    (refused,) = only_json_lines(err)
    assert refused["event"] == "config.invalid"
    assert refused["setting"] == "daemon.state_dir"
    assert str(open_folder) in str(refused["message"])
    assert receiver.accepted == []
    assert list(open_folder.iterdir()) == []


@pytest.mark.parametrize("command", [["status"], ["check"], ["once", "--dry-run"]])
def test_reading_commands_still_work_on_such_a_folder(
    shop: Shop, open_folder: Path, command: list[str]
) -> None:
    env = {**shop.env, "PULSED_STATE_DIR": str(open_folder)}
    code, out, err = run_pulsed(command, env)
    assert code == 0, err
    assert out
    assert list(open_folder.iterdir()) == []


def test_a_planted_pending_body_is_never_signed_and_sent(shop: Shop, receiver: Receiver) -> None:
    forged = json.dumps(
        {
            "domain": "demo-shop.example",
            "bot_username": "attacker_bot",
            "php_version": None,
            "module_version": "6.6.6",
            "ecommerce_version": None,
            "ecommerce_core_version": None,
            "timestamp": "2026-11-30T00:00:00Z",
        },
        separators=(",", ":"),
    )
    shop.state.mkdir(mode=0o700)
    for kept in (None, signature("a guess", forged.encode())):
        planted = {
            "version": 1,
            "consecutive_failures": 0,
            "pending": {"body": forged, "timestamp": "2026-11-30T00:00:00Z", "signature": kept},
        }
        (shop.state / "state.json").write_text(json.dumps(planted))
        code, _, err = run_pulsed(["once", "--force"], shop.env)
        assert code == 0, err
        assert any(e["event"] == "heartbeat.interrupted" for e in events_of(err))
    assert [b["module_version"] for b in receiver.accepted] == ["1.4.0", "1.4.0"]
    assert all(b["bot_username"] != "attacker_bot" for b in receiver.accepted)


HANGING_PHP = """#!/bin/sh
sleep 300 &
echo $! > {pidfile}
wait
"""


def test_a_hanging_php_leaves_no_grandchild_and_no_traceback(
    shop: Shop, receiver: Receiver, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    shop.php.write_text(HANGING_PHP.format(pidfile=pidfile))
    env = {**shop.env, "PULSE_TIMEOUT": "1"}
    code, _, err = run_pulsed(["once", "--force"], env)
    assert code == 0
    events = only_json_lines(err)
    (unavailable,) = [e for e in events if e["event"] == "collect.unavailable"]
    assert unavailable["field"] == "php_version"
    grandchild = int(pidfile.read_text())
    try:
        state = Path(f"/proc/{grandchild}/stat").read_text().split(") ")[1][0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z"), f"the php wrapper's grandchild is still running ({state})"


def test_a_forged_bot_username_goes_nowhere(shop: Shop, receiver: Receiver) -> None:
    # Each shape of forgery is a unit test of _identity.username_of; this is the path.
    forged = "evil\x1b[31mbot\u2028"
    with FakeTelegram(username=forged, valid_token=TOKEN) as telegram:
        env = {**shop.env, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": telegram.url}
        code, _, err = run_pulsed(["once", "--force"], env)
        assert code == 0, err
    (failed,) = [e for e in events_of(err) if e["event"] == "identity.failed"]
    assert failed["kind"] == "bad_response"
    assert receiver.accepted[0]["bot_username"] is None
    assert forged not in (shop.state / "state.json").read_text(encoding="utf-8")
    code, out, _ = run_pulsed(["status"], shop.env)
    assert code == 0
    assert all(ch.isprintable() for line in out.splitlines() for ch in line)


def test_status_shows_what_the_state_holds_without_obeying_it(shop: Shop) -> None:
    shop.state.mkdir(mode=0o700)
    (shop.state / "state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "consecutive_failures": 1,
                "last_error": "status: HTTP 500: \x1b]0;pwned\x07\u2028",
                "last_attempt": "2026-11-30T00:00:00Z",
            }
        )
    )
    code, out, _ = run_pulsed(["status"], shop.env)
    assert code == 0
    assert "\x1b" not in out and "\u2028" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\u2028" in out


CONFIG = """
[shop]
php_binary = "/bin/true"
[pulse]
heartbeat_secret = "a-secret-kept-in-the-file"
"""


@pytest.mark.parametrize("where", ["file", "folder", "owner"])
def test_a_config_file_another_user_could_change_is_refused(
    shop: Shop, receiver: Receiver, tmp_path: Path, where: str
) -> None:
    if where == "owner" and not AS_ROOT:
        pytest.skip("only root can give a file to another user")
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    config = folder / "pulsed.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    named = {"file": config, "folder": folder, "owner": config}[where]
    if where == "file":
        config.chmod(0o666)
    elif where == "folder":
        folder.chmod(0o777)
    else:
        os.chown(config, pwd.getpwnam("nobody").pw_uid, -1)
    for command in (["run"], ["check"], ["once", "--dry-run"]):
        code, _, err = run_pulsed([*command, "--config", str(config)], shop.env)
        assert code == 78, command
        (refused,) = only_json_lines(err)
        assert refused["event"] == "config.invalid"
        assert str(named) in str(refused["message"])
    assert receiver.accepted == []


def test_a_secret_in_a_readable_file_shadowed_by_a_variable_is_warned_about(
    shop: Shop, tmp_path: Path
) -> None:
    config = tmp_path / "pulsed.toml"
    config.write_text(CONFIG)
    config.chmod(0o644)
    code, _, err = run_pulsed(["check", "--config", str(config)], shop.env)
    assert code == 0, err
    warnings = [str(e["message"]) for e in only_json_lines(err) if e["event"] == "config.warning"]
    assert any("others may read it" in w for w in warnings)
    assert any("shadowed by the env value" in w for w in warnings)
