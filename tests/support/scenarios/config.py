"""Hostile configuration (contract §1): one clear line and exit 78, or a warning and a start.

Every case runs ``pulsed run`` as a process with a config file (or an environment)
that cannot work: garbage bytes, broken TOML, a section that is not a table, values
of the wrong type or out of range, empty or padded secrets, ``http://`` to a host
that only looks like loopback, a malformed bot token. Each must exit 78 at once with
exactly one ``config.invalid`` line on stderr that names the setting, nothing on
stdout, and — whatever the value was — no secret in what it printed.

What can work but is risky starts, with a warning: a config file others may read
while it holds a secret, and unknown keys (each named).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.lab import SECRET, TOKEN, Lab


@dataclass(frozen=True)
class Bad:
    """A configuration that cannot work, and the setting its one line must name.

    ``toml`` is the config file's bytes (``None``: no file); ``env`` changes the
    rig's environment (a ``None`` value removes the variable).
    """

    toml: bytes | None
    setting: str
    env: tuple[tuple[str, str | None], ...] = ()


NO_SECRET_IN_ENV = (("PULSE_HEARTBEAT_SECRET", None),)
NO_HOST_IN_ENV = (("PULSE_API_HOST", None),)


BAD: dict[str, Bad] = {
    "garbage-bytes": Bad(b"\x00\xff\xfe\x80garbage", "config"),
    "broken-toml": Bad(b"[pulse\napi_host = ", "config"),
    "section-not-a-table": Bad(b"pulse = 3\n", "pulse"),
    "interval-a-word": Bad(b'[daemon]\ninterval = "soon"\n', "daemon.interval"),
    "interval-an-array": Bad(b"[daemon]\ninterval = [60]\n", "daemon.interval"),
    "interval-zero": Bad(b"[daemon]\ninterval = 0\n", "daemon.interval"),
    "interval-infinite": Bad(b"[daemon]\ninterval = inf\n", "daemon.interval"),
    # No calendar date can be written for a next heartbeat 30,000 years away.
    "interval-absurd": Bad(b"[daemon]\ninterval = 1e12\n", "daemon.interval"),
    "timeout-a-boolean": Bad(b"[pulse]\ntimeout = true\n", "pulse.timeout"),
    "api-host-a-number": Bad(b"[pulse]\napi_host = 5\n", "pulse.api_host", NO_HOST_IN_ENV),
    "http-to-a-remote-host": Bad(
        b'[pulse]\napi_host = "http://pulse.example.com"\n', "pulse.api_host", NO_HOST_IN_ENV
    ),
    "http-to-a-loopback-lookalike": Bad(
        None, "pulse.api_host", (("PULSE_API_HOST", "http://127.0.0.1.nip.io:8080"),)
    ),
    "http-with-loopback-userinfo": Bad(
        None, "pulse.api_host", (("PULSE_API_HOST", "http://127.0.0.1@pulse.example.com"),)
    ),
    "telegram-over-http-to-a-remote-host": Bad(
        None, "telegram.api_base", (("TELEGRAM_API_BASE", "http://api.telegram.org"),)
    ),
    "secret-empty": Bad(
        b'[pulse]\nheartbeat_secret = ""\n', "pulse.heartbeat_secret", NO_SECRET_IN_ENV
    ),
    "secret-whitespace": Bad(
        b'[pulse]\nheartbeat_secret = "  \\t "\n', "pulse.heartbeat_secret", NO_SECRET_IN_ENV
    ),
    "secret-padded": Bad(
        f'[pulse]\nheartbeat_secret = " {SECRET} "\n'.encode(),
        "pulse.heartbeat_secret",
        NO_SECRET_IN_ENV,
    ),
    "secret-a-number": Bad(
        b"[pulse]\nheartbeat_secret = 12345\n", "pulse.heartbeat_secret", NO_SECRET_IN_ENV
    ),
    "secret-whitespace-in-env": Bad(
        None, "pulse.heartbeat_secret", (("PULSE_HEARTBEAT_SECRET", " \t "),)
    ),
    "secret-only-in-api-key": Bad(
        None,
        "pulse.heartbeat_secret",
        (("PULSE_HEARTBEAT_SECRET", None), ("PULSE_API_KEY", SECRET)),
    ),
    "token-malformed": Bad(
        f'[telegram]\nbot_token = "{TOKEN.replace(":", "-")}"\n'.encode(),
        "telegram.bot_token",
        (("TELEGRAM_BOT_TOKEN", None),),
    ),
    "token-padded": Bad(None, "telegram.bot_token", (("TELEGRAM_BOT_TOKEN", TOKEN + "\n"),)),
    "log-level-unknown": Bad(b'[daemon]\nlog_level = "loud"\n', "daemon.log_level"),
}


def check_bad(lab: Lab, name: str) -> dict[str, Any]:
    bad = BAD[name]
    rig = lab.rig("http://127.0.0.1:9", name)
    env: dict[str, str | None] = dict(bad.env)
    if bad.toml is not None:
        path = rig.home / "pulsed.toml"
        path.write_bytes(bad.toml)
        path.chmod(0o600)
        env["PULSED_CONFIG"] = str(path)
    result = rig.run("run", env=env, timeout=20)
    assert result.code == 78, result.err
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    (invalid,) = result.events
    assert (invalid["event"], invalid["level"]) == ("config.invalid", "error")
    assert invalid["setting"] == bad.setting, invalid
    assert bad.setting in invalid["message"]
    assert not rig.state.exists(), "a refused start touches nothing"
    return {
        "code": result.code,
        "stderr_lines": len(lines),
        "setting": invalid["setting"],
        "elapsed_s": round(result.elapsed, 2),
    }


def check_risky_but_workable(lab: Lab) -> dict[str, Any]:
    """Unknown keys, and a file others may read while it holds a secret: warnings, a start."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "risky")
    rig.seed()
    path = rig.home / "pulsed.toml"
    path.write_text(
        f'[pulse]\nheartbeat_secret = "{SECRET}"\napi_hots = "typo"\n'
        '[daemon]\ninterval = 3600\nlog_levle = "debug"\n'
        "[extras]\nanything = 1\n"
    )
    env: dict[str, str | None] = {"PULSED_CONFIG": str(path), "PULSE_HEARTBEAT_SECRET": None}

    def warned(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        texts = [e["message"] for e in events if e.get("event") == "config.warning"]
        unknown = [w for w in texts if "unknown settings" in w]
        assert len(unknown) == 1, texts
        for name in ("daemon.log_levle", "pulse.api_hots", "extras"):
            assert name in unknown[0]
        return unknown, [w for w in texts if "others may read" in w]

    path.chmod(0o644)
    result = rig.run("check", env=env)
    assert result.code == 0, result.err
    unknown, readable = warned(result.events)
    assert len(readable) == 1
    path.chmod(0o600)  # only the owner may read it now: no warning about that
    daemon = rig.start("run", env=env)
    daemon.wait_for("heartbeat.sent")
    assert daemon.stop() == 0
    assert warned(daemon.events)[1] == []
    return {
        "unknown_warnings": unknown,
        "readable_warnings": readable,
        "heartbeats": len(receiver.unique_accepted),
    }
