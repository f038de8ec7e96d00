"""Bot API and identity-child faults through the daemon (contract §2): the heartbeat still goes.

Whatever ``getMe`` does — refuses the token (401), fails (5xx), answers something
that is not JSON, never answers — and whatever the identity child does — exits at
once, is killed, hangs until the daemon kills it at its deadline — the heartbeat is
sent, on time, with the kept ``bot_username`` when there is one and ``null``
otherwise, and one ``identity.failed`` warning says why.

While the child is alive, its ``/proc/<pid>/cmdline`` and ``environ`` are read from
outside (children of the daemon's pid) and scanned with everything else: the token
reaches it by its stdin pipe only. One case takes both secrets as systemd
credentials, so the daemon's own environment is clean too and is scanned as well.

The real child imports aiogram (seconds of CPU), so the fast suite runs one real
failure (no answer: a timeout, read live from /proc) and the cheap child faults, with
and without a kept identity; ``make soak`` runs every mode both ways, including the
child that hangs until the daemon kills it at its deadline (timeout + 30 s).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulsed._identity import IMPORT_ALLOWANCE, MAX_AGE
from pulsed._state import State
from tests.support.lab import BOT, SECRET, TOKEN, Lab
from tests.support.process import stamp
from tests.support.wait import wait_until

# The Bot API call's timeout: long enough for the test to read the waiting child's /proc.
TIMEOUT = 2.0


@dataclass(frozen=True)
class Mode:
    """How ``getMe`` fails: the Bot API stand-in's mode and the child's, and the kind."""

    telegram: str  # FakeTelegram mode
    child: str  # PULSED_TEST_CHILD
    kind: str  # identity.failed's kind (a timeout inside aiohttp is a "network" one)
    kill_child: bool = False  # the scenario SIGKILLs the child while it waits
    live: bool = False  # the child stays alive long enough to be read from outside


MODES = {
    "401": Mode("unauthorized", "real", "unauthorized"),
    "5xx": Mode("server_error", "real", "server"),
    "malformed-json": Mode("malformed", "real", "bad_response"),
    "timeout": Mode("hang", "real", "timeout", live=True),
    "child-killed": Mode("hang", "real", "child", kill_child=True, live=True),
    "child-exits": Mode("ok", "exit", "child"),
    "child-dies": Mode("ok", "die", "child"),
    "child-hangs": Mode("ok", "hang", "child", live=True),
}


def check_telegram(lab: Lab, name: str, *, kept: bool, credentials: bool = False) -> dict[str, Any]:
    """One heartbeat through ``pulsed run`` while ``getMe`` fails as ``MODES[name]``."""
    mode = MODES[name]
    telegram = lab.telegram()
    telegram.set_mode(mode.telegram)  # type: ignore[arg-type]
    receiver = lab.receiver()
    rig = lab.rig(
        receiver.url,
        f"{name}-{'kept' if kept else 'none'}",
        child=mode.child,
        telegram_url=telegram.url,
    )
    env: dict[str, str | None] = {"PULSE_TIMEOUT": str(TIMEOUT)}
    if credentials:
        creds = rig.home / "credentials"
        creds.mkdir(mode=0o700)
        (creds / "pulse_heartbeat_secret").write_text(SECRET + "\n")
        (creds / "telegram_bot_token").write_text(TOKEN + "\n")
        env.update(
            CREDENTIALS_DIRECTORY=str(creds), PULSE_HEARTBEAT_SECRET=None, TELEGRAM_BOT_TOKEN=None
        )
    if kept:  # kept, but two days old: getMe is due again
        rig.seed(State(identity=rig.identity(time.time() - 2 * MAX_AGE)))
    daemon = rig.start("run", env=env)
    live: list[int] = []
    if mode.live:
        if mode.child == "real":  # the request reached the Bot API: the child waits for it
            telegram.wait_for_calls(1, timeout=60)
        else:  # the child wrote what it was given, then sleeps
            wait_until(lambda: bool(rig.dumps("child")), 30, "the identity child's dump")
        live = rig.capture_children(daemon)
        assert live, "the identity child is alive and a child of the daemon"
        if credentials:
            own = Path(f"/proc/{daemon.pid}/environ").read_bytes()
            rig.captured.append(("the daemon's own environ", own))
        if mode.kill_child:
            for pid in live:
                os.kill(pid, signal.SIGKILL)
    started = daemon.wait_for("daemon.started")[0]
    (sent,) = daemon.wait_for("heartbeat.sent", timeout=IMPORT_ALLOWANCE + TIMEOUT + 30)
    (failed,) = daemon.named("identity.failed")
    assert failed["level"] == "warning"
    assert failed["kind"] in (mode.kind, "network" if mode.kind == "timeout" else ""), failed
    assert failed["kept"] == (BOT if kept else None)
    (beat,) = receiver.unique_accepted
    assert beat["bot_username"] == (BOT if kept else None)
    late = stamp(sent["time"]) - stamp(started["time"])
    assert late <= IMPORT_ALLOWANCE + TIMEOUT + 5, f"heartbeat {late:.1f} s after the start"
    assert daemon.stop() == 0
    assert rig.dumps("child"), "the identity child ran"
    if mode.telegram != "ok" and mode.child == "real":
        assert telegram.calls == [TOKEN]
    return {
        "late_s": round(late, 1),
        "live_children_read": len(live),
        "bot_username": beat["bot_username"],
        "identity_failed": failed["kind"],
    }
