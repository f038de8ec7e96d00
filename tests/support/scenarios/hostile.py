"""A hostile host (contract §1, §2, §5, §7): what another user on the machine may try.

The attacker's side runs as ``nobody`` where the scenario runs as root (as CI does):
it owns the folder it makes and the files it plants. Each ``check_*`` runs real
``pulsed`` processes in a :class:`~tests.support.lab.Lab` (whose closing scan finds
no secret anywhere), asserts what must hold and returns what it observed:

- a state folder another user owns, or anyone may write: ``run`` and ``once`` exit 78
  naming it and write nothing; ``status``, ``check`` and ``once --dry-run`` still work;
- a config file, or its folder, that another user could change: 78 naming it;
- a secret in a readable config file, shadowed by a variable: warned about;
- a ``pending`` body planted in the state (unsigned, or signed with a guess): never
  sent; a fresh heartbeat goes instead;
- a php wrapper that hangs and starts a grandchild: killed with its group at the
  timeout, and nothing but JSON lines on stderr;
- a ``getMe`` answer with ESC, a newline and U+2028 in the username: refused;
- a state whose ``last_error`` holds terminal escapes: ``status`` shows them escaped;
- a 50 MB ``state.json``: moved aside, never read whole.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path
from typing import Any

import pytest

from devtools import faultserver as fs
from pulsed._toml import tomllib
from pulsed.verify import signature
from tests.support.lab import CLOSED_PORT_URL, Lab, Rig
from tests.support.process import Result

AS_ROOT = os.geteuid() == 0
FORGED_BOT = "evil\x1b[31mbot\u2028"


def give_to_nobody(path: Path) -> None:
    """The attacker owns ``path`` (only root can give it away)."""
    if AS_ROOT:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)


def json_lines(result: Result) -> list[dict[str, Any]]:
    """Every stderr line, each of which must be a JSON object (§7: nothing else)."""
    parsed = [json.loads(line) for line in result.err.splitlines()]
    assert all(isinstance(p, dict) for p in parsed), result.err
    return parsed


def _refused(result: Result, named: Path) -> dict[str, Any]:
    assert result.code == 78, result.err
    (line,) = json_lines(result)
    assert line["event"] == "config.invalid", line
    assert str(named) in line["message"], line
    return line


def check_open_state_folder(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "open-state")
    folder = rig.home / "shared-state"
    folder.mkdir()
    give_to_nobody(folder)
    folder.chmod(0o777)
    env = {"PULSED_STATE_DIR": str(folder)}
    for command in (("run",), ("once", "--force")):
        line = _refused(rig.run(*command, env=env), folder)
        assert line["setting"] == "daemon.state_dir"
    for command in (("status",), ("check",), ("once", "--dry-run")):
        result = rig.run(*command, env=env)
        assert result.code == 0, result.err
        assert result.out
    assert list(folder.iterdir()) == []
    assert receiver.accepted == []
    return {"refused": 2, "read": 3}


def check_untrusted_config(lab: Lab, where: str) -> dict[str, Any]:
    """``where``: the ``file`` or its ``folder`` is writable by others, or ``owner`` is nobody."""
    if where == "owner" and not AS_ROOT:
        pytest.skip("only root can give a file to another user")
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"config-{where}")
    folder = rig.home / "etc"
    folder.mkdir(mode=0o755)
    config = folder / "pulsed.toml"
    config.write_text(f'[shop]\nphp_binary = "{rig.home}/planted-php"\n')
    config.chmod(0o600)
    named = folder if where == "folder" else config
    if where == "file":
        config.chmod(0o666)
    elif where == "folder":
        folder.chmod(0o777)
    else:
        give_to_nobody(config)
    for command in (("run",), ("check",), ("once", "--dry-run")):
        _refused(rig.run(*command, "--config", str(config)), named)
    assert receiver.accepted == []
    return {"refused": 3}


def check_shadowed_secret(lab: Lab) -> dict[str, Any]:
    rig = lab.rig("http://127.0.0.1:9", "shadowed")
    config = rig.home / "pulsed.toml"
    config.write_text('[pulse]\nheartbeat_secret = "an-old-secret-left-in-the-file"\n')
    config.chmod(0o644)
    result = rig.run("check", "--config", str(config))
    assert result.code == 0, result.err
    said = [str(e["message"]) for e in json_lines(result) if e["event"] == "config.warning"]
    assert any("others may read it" in w for w in said), said
    assert any("shadowed by the env value" in w for w in said), said
    return {"warnings": len(said)}


def _forged_body() -> str:
    beat = {
        "domain": "demo-shop.example",
        "bot_username": "attacker_bot",
        "php_version": None,
        "module_version": "6.6.6",
        "ecommerce_version": None,
        "ecommerce_core_version": None,
        "timestamp": "2026-11-30T00:00:00Z",
    }
    return json.dumps(beat, separators=(",", ":"))


def check_planted_pending(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "planted")
    forged = _forged_body()
    rig.state.mkdir(mode=0o700, exist_ok=True)
    for kept in (None, signature("a guessed secret", forged.encode())):
        planted = {
            "version": 1,
            "consecutive_failures": 0,
            "pending": {"body": forged, "timestamp": "2026-11-30T00:00:00Z", "signature": kept},
        }
        (rig.state / "state.json").write_text(json.dumps(planted))
        result = rig.run("once", "--force")
        assert result.code == 0, result.err
        assert result.named("heartbeat.interrupted"), result.err
    assert [b["module_version"] for b in receiver.accepted] == ["1.4.0", "1.4.0"]
    assert all(b["bot_username"] != "attacker_bot" for b in receiver.accepted)
    return {"planted": 2, "sent_fresh": len(receiver.accepted)}


HANGING_PHP = """#!/bin/sh
sleep 300 &
echo $! > {pidfile}
wait
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


def check_hanging_php(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "hanging-php")
    pidfile = rig.home / "grandchild.pid"
    rig.php.write_text(HANGING_PHP.format(pidfile=pidfile))
    result = rig.run("once", "--force", env={"PULSE_TIMEOUT": "1"})
    assert result.code == 0, result.err
    (missing,) = [e for e in json_lines(result) if e["event"] == "collect.unavailable"]
    assert missing["field"] == "php_version", missing
    grandchild = int(pidfile.read_text())
    assert not _running(grandchild), "the php wrapper's grandchild outlived its timeout"
    return {"stderr_lines": len(result.err.splitlines())}


def check_forged_username(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    telegram = lab.telegram(username=FORGED_BOT)
    rig: Rig = lab.rig(receiver.url, "forged-getme", child="real", telegram_url=telegram.url)
    result = rig.run("once", "--force")
    assert result.code == 0, result.err
    (failed,) = result.named("identity.failed")
    assert failed["kind"] == "bad_response", failed
    assert receiver.accepted[0]["bot_username"] is None
    state = (rig.state / "state.json").read_text(encoding="utf-8")
    assert FORGED_BOT not in state and "evil" not in state
    status = rig.run("status")
    assert all(ch.isprintable() for line in status.out.splitlines() for ch in line)
    return {"refused": 1}


def check_escapes_in_state(lab: Lab) -> dict[str, Any]:
    rig = lab.rig("http://127.0.0.1:9", "escapes")
    rig.state.mkdir(mode=0o700, exist_ok=True)
    state = {
        "version": 1,
        "consecutive_failures": 1,
        "last_error": "status: HTTP 500: \x1b]0;pwned\x07\u2028",
        "last_attempt": "2026-11-30T00:00:00Z",
    }
    (rig.state / "state.json").write_text(json.dumps(state))
    result = rig.run("status")
    assert result.code == 0, result.err
    assert not {"\x1b", "\x07", "\u2028"} & set(result.out), result.out
    assert "\\x1b]0;pwned\\x07\\u2028" in result.out
    return {"escaped": 3}


def check_oversized_state(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "oversized")
    rig.state.mkdir(mode=0o700, exist_ok=True)
    with (rig.state / "state.json").open("wb") as fh:
        fh.write(b'{"version": 1, "last_error": "')
        fh.write(b"x" * (50 << 20))
        fh.write(b'"}')
    result = rig.run("once")
    assert result.code == 0, result.err
    assert result.named("state.corrupt"), result.err
    assert list(rig.state.glob("state.json.corrupt-*"))
    assert len(receiver.accepted) == 1
    return {"state_mib": 50}


def _strict_json_lines(result: Result) -> list[dict[str, Any]]:
    """Every stderr line as JSON that a strict parser takes: no NaN, no Infinity."""

    def refuse(word: str) -> object:
        raise AssertionError(f"a log line carries {word}, which is not JSON: {result.err}")

    parsed = [json.loads(line, parse_constant=refuse) for line in result.err.splitlines()]
    assert all(isinstance(p, dict) for p in parsed), result.err
    return parsed


def check_unreadable_date(lab: Lab) -> dict[str, Any]:
    """A 200 whose ``Date`` overflows every clock type: a delivery, not a failure."""
    server = lab.server()
    server.plan(then=fs.ok(headers={"Date": "Sun, 29 Nov 99999999999999 05:42:28 GMT"}))
    rig = lab.rig(server.url, "unreadable-date")
    result = rig.run("once", "--force")
    assert result.code == 0, result.err
    lines = _strict_json_lines(result)
    assert [e["event"] for e in lines if e["event"].startswith("heartbeat.")] == [
        "heartbeat.sent"
    ], result.err
    state = rig.state_of()
    assert (state.consecutive_failures, state.counters.heartbeats_sent) == (0, 1)
    return {"sent": len(server.requests)}


def check_hostile_retry_after(lab: Lab) -> dict[str, Any]:
    """``Retry-After: ²`` is no number (the 503 is retried); 400 digits are clamped."""
    server = lab.server()
    server.plan(fs.status(503, {"Retry-After": "\u00b2"}), then=fs.ok())
    rig = lab.rig(server.url, "retry-after")
    result = rig.run("once", "--force")
    assert result.code == 0, result.err
    assert len(server.requests) == 2
    server.plan(then=fs.status(503, {"Retry-After": "9" * 400}))
    result = rig.run("once", "--force")
    assert result.code == 75, result.err
    (failed,) = [e for e in _strict_json_lines(result) if e["event"] == "heartbeat.failed"]
    assert isinstance(failed["retry_after"], float) and failed["retry_after"] < 1e9, failed
    return {"retried": 1, "clamped": 1}


def check_echoing_receiver(lab: Lab) -> dict[str, Any]:
    """A 422 that echoes the body (versions and all), then a 302 with a 12 KB Location:
    the public status file says the reason and status only; state and logs keep 200
    characters of the receiver's text at most."""
    server = lab.server()
    rig = lab.rig(server.url, "echoing")
    public = rig.home / "run"
    public.mkdir(mode=0o755)
    env = {"PULSED_STATUS_FILE": str(public / "status.json")}
    kept: list[int] = []
    for reply, word in (
        (
            fs.status(422, body=b'{"detail":{"input":{"php_version":"8.2.7","x":"' + b"y" * 20000),
            "status HTTP 422",
        ),
        (
            fs.status(302, {"Location": "https://elsewhere.example/" + "z" * 12000}),
            "redirect HTTP 302",
        ),
    ):
        server.plan(then=reply)
        result = rig.run("once", "--force", env=env)
        assert result.code == 75, result.err
        written = (public / "status.json").read_text(encoding="ascii")
        (shop,) = json.loads(written)["shops"]
        assert shop["last_error"] == word, shop
        assert "8.2.7" not in written and "1.4.0" not in written and "elsewhere" not in written
        error = rig.state_of().last_error or ""
        (failed,) = [e for e in json_lines(result) if e["event"] == "heartbeat.failed"]
        assert len(error) <= 240 and len(failed["message"]) <= 280, (error, failed)
        kept.append(len(error))
    return {"public": 2, "cut": sum(1 for n in kept if n <= 240)}


def check_short_secret(lab: Lab) -> dict[str, Any]:
    """A one-letter heartbeat secret: refused with 78 naming the setting and the rule, and
    the refusal is readable (the letter is not cut out of its words)."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "short-secret")
    for command in (("run",), ("once", "--force"), ("check",)):
        result = rig.run(*command, env={"PULSE_HEARTBEAT_SECRET": "e"})
        assert result.code == 78, result.err
        (line,) = [e for e in json_lines(result) if e["event"] == "config.invalid"]
        assert line["setting"] == "pulse.heartbeat_secret", line
        assert "pulse.heartbeat_secret: is shorter than 16 bytes" in line["message"], line
    assert receiver.accepted == []
    return {"refused": 3}


PUBLIC_SETTINGS = {"status": "daemon.status_file", "metrics": "daemon.metrics_file"}


def check_public_folder(lab: Lab, how: str, which: str = "status") -> dict[str, Any]:
    """The folder of the status (or metrics) file is a tenant's link to a folder of
    root's, is the tenant's own, or anyone may write it: ``run`` and ``once`` exit 78
    naming the setting, and nothing is written where the folder points."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"public-{how}-{which}")
    target = rig.home / "roots-folder"  # what a link would make root write into
    target.mkdir(mode=0o755)
    folder = rig.home / "public"
    if how == "link":
        folder.symlink_to(target)
        if AS_ROOT:
            nobody = pwd.getpwnam("nobody")
            os.lchown(folder, nobody.pw_uid, nobody.pw_gid)
    else:
        folder.mkdir(mode=0o755)
        if how == "owned":
            if not AS_ROOT:
                pytest.skip("only root can give a folder to another user")
            give_to_nobody(folder)
        else:
            folder.chmod(0o777)
    name = "status.json" if which == "status" else "pulsed.prom"
    variable = "PULSED_STATUS_FILE" if which == "status" else "PULSED_METRICS_FILE"
    env = {variable: str(folder / name)}
    for command in (("run",), ("once", "--force")):
        line = _refused(rig.run(*command, env=env), folder)
        assert line["setting"] == PUBLIC_SETTINGS[which], line
    assert list(target.iterdir()) == []
    if how != "link":
        assert list(folder.iterdir()) == []
    assert receiver.accepted == []
    return {"refused": 2}


def check_public_file_in_state(lab: Lab, which: str) -> dict[str, Any]:
    """A status or metrics file set to the state file, inside the state folder, or in a
    folder that links into it: refused with 78 naming the setting; no heartbeat goes."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"public-in-state-{which}")
    rig.seed()
    link = rig.home / "into-state"
    link.symlink_to(rig.state)
    places = {
        "status": [rig.state / "state.json", rig.state / "shops" / "x" / "status.json"],
        "metrics": [rig.state / "pulsed.prom", link / "pulsed.prom"],
    }[which]
    variable = "PULSED_STATUS_FILE" if which == "status" else "PULSED_METRICS_FILE"
    before = (rig.state / "state.json").read_bytes()
    refused = 0
    for place in places:
        for command in (("run",), ("once",), ("once", "--force")):
            result = rig.run(*command, env={variable: str(place)})
            assert result.code == 78, result.err
            (line,) = json_lines(result)
            assert line["setting"] == PUBLIC_SETTINGS[which], line
            assert "inside the state folder" in line["message"], line
            refused += 1
    assert (rig.state / "state.json").read_bytes() == before
    assert receiver.accepted == []
    return {"refused": refused}


def check_shop_outside_state(lab: Lab) -> dict[str, Any]:
    """``status --shop ../../outside`` (and other names no shop may have): refused with 78
    naming ``--shop``; the state file outside the state folder is never read."""
    rig = lab.rig(CLOSED_PORT_URL, "shop-outside")
    outside = rig.home / "outside"
    outside.mkdir()
    planted = {"version": 2, "consecutive_failures": 7, "last_error": "read-from-outside"}
    (outside / "state.json").write_text(json.dumps(planted))
    (rig.state / "shops").mkdir(parents=True)  # so that shops/../../outside resolves
    refused = 0
    for name in ("../../outside", "../shop-outside/outside", "a/b", "", "x" * 33, "caf\u00e9"):
        for command in (("status",), ("status", "--json"), ("check",), ("once", "--dry-run")):
            result = rig.run(*command, "--shop", name, env={"PULSED_STATE_DIR": str(rig.state)})
            assert result.code == 78, (name, result.err)
            (line,) = json_lines(result)
            assert line["setting"] == "--shop" and "is not a shop name" in line["message"], line
            assert "read-from-outside" not in result.out + result.err
            refused += 1
    return {"refused": refused}


ESCAPING_NAME = "x\x1b]0;pwned\x07\nforged line"


def check_escaped_shop_names(lab: Lab) -> dict[str, Any]:
    """A ``shops.d`` file whose name holds ESC, BEL and a newline: ``check`` and ``status``
    show the name escaped, never obey it or break a line with it."""
    rig = lab.rig(CLOSED_PORT_URL, "escaped-names")
    etc = rig.home / "etc"
    (etc / "shops.d").mkdir(parents=True, mode=0o755)
    etc.chmod(0o755)
    config = etc / "pulsed.toml"
    config.write_text(f'[shops.main]\nroot = "{rig.root}"\n')
    config.chmod(0o600)
    (etc / "shops.d" / f"{ESCAPING_NAME}.toml").write_text(f'[shop]\nroot = "{rig.root}"\n')
    env = {"PULSED_CONFIG": str(config)}
    shown = 0
    for command in (("check",), ("status",)):
        result = rig.run(*command, env=env)
        assert result.code in (0, 78), result.err
        assert not {"\x1b", "\x07"} & set(result.out), result.out
        assert not any(line.startswith("forged line") for line in result.out.splitlines())
        json_lines(result)
        shown += "\\x1b]0;pwned\\x07\\n" in result.out
    return {"escaped": shown}


def check_discover_linked_config(lab: Lab) -> dict[str, Any]:
    """A tenant (nobody) makes its ``config.php`` a link to another tenant's unreadable
    staging config; ``discover`` run as root neither prints that domain nor lists the
    tenant's tree as a shop, and its output parses as TOML."""
    rig = lab.rig(CLOSED_PORT_URL, "discover-link")
    staging = rig.home / "other-tenant" / "config.php"
    staging.parent.mkdir()
    staging.write_text("<?php define('HTTPS_SERVER', 'https://staging.other-tenant.example/');")
    staging.chmod(0o600)
    www = rig.home / "www"
    tenant = www / "tenant"
    shutil.copytree(rig.root, tenant)
    (tenant / "config.php").unlink()
    (tenant / "config.php").symlink_to(staging)
    for path in (www, tenant):
        give_to_nobody(path)
    if AS_ROOT:
        nobody = pwd.getpwnam("nobody")
        os.lchown(tenant / "config.php", nobody.pw_uid, nobody.pw_gid)
    result = rig.run("discover", str(www))
    assert result.code == 0, result.err
    assert "staging" not in result.out and "other-tenant" not in result.out, result.out
    assert tomllib.loads(result.out).get("shops", {}) == {}
    return {"listed": 0}


CASES = {
    "open-state-folder": check_open_state_folder,
    "config-file-writable": lambda lab: check_untrusted_config(lab, "file"),
    "config-folder-writable": lambda lab: check_untrusted_config(lab, "folder"),
    "config-owned-by-nobody": lambda lab: check_untrusted_config(lab, "owner"),
    "shadowed-secret": check_shadowed_secret,
    "planted-pending": check_planted_pending,
    "hanging-php": check_hanging_php,
    "forged-getme": check_forged_username,
    "escapes-in-state": check_escapes_in_state,
    "oversized-state": check_oversized_state,
    "unreadable-date": check_unreadable_date,
    "hostile-retry-after": check_hostile_retry_after,
    "echoing-receiver": check_echoing_receiver,
    "short-secret": check_short_secret,
    "public-folder-link": lambda lab: check_public_folder(lab, "link"),
    "public-folder-owned": lambda lab: check_public_folder(lab, "owned"),
    "metrics-folder-open": lambda lab: check_public_folder(lab, "open", "metrics"),
    "status-file-in-state": lambda lab: check_public_file_in_state(lab, "status"),
    "metrics-file-in-state": lambda lab: check_public_file_in_state(lab, "metrics"),
    "shop-outside-state": check_shop_outside_state,
    "escaped-shop-names": check_escaped_shop_names,
    "discover-linked-config": check_discover_linked_config,
}
