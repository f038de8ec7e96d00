"""``make run``'s demo: a signed heartbeat accepted within seconds; Ctrl-C stops all of it (§9)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_accepts_a_signed_heartbeat_and_ctrl_c_stops_everything() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE", "TELEGRAM"))}
    env["PULSED_INTERVAL"] = "3600"
    demo = subprocess.Popen(
        [sys.executable, "devtools/run_demo.py"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    lines: list[str] = []
    accepted = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for raw in demo.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if line.startswith("accepted "):
                accepted.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert accepted.wait(60), "".join(lines)
        # What a terminal's Ctrl-C does: SIGINT to the whole foreground group.
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(15) == 0, "".join(lines)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    reader.join(5)
    text = "".join(lines)
    assert re.search(r"accepted demo-shop\.example bot=@demo_shop_bot .* sig ok", text)
    assert '"event": "daemon.stopped"' in text
    assert group_members(demo.pid) == []  # the daemon and the identity child are gone


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
