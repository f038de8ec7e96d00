"""The state folder when the disk misbehaves (contract §5): keep running, warn, lose nothing.

- A read-only state folder (a read-only bind mount: root ignores file modes), a
  full file system (a 64 KiB tmpfs, filled), a file size limit (``prlimit
  --fsize``): the daemon keeps its state in memory, sends every interval, and warns
  ``state.unwritable`` at each cycle; when space comes back, the next cycle writes
  the state again, and no temp file is left behind.
- A state folder that cannot even be created (missing, under a read-only parent):
  a warning, and the daemon runs without the lock.
- A ``state.json`` that is truncated, empty, binary, of the wrong shape, of another
  version, or holds times no calendar has: moved aside (``state.json.corrupt-…``,
  with the original bytes) with a ``state.corrupt`` warning, and a heartbeat goes.
  One that is a directory is not a file pulsed wrote: moved aside (``state.corrupt``)
  like any corrupt state, and the heartbeat still goes.

Mounting needs root with CAP_SYS_ADMIN; those cases are skipped without it.
"""

from __future__ import annotations

import errno
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pulsed import _state as st
from tests.support.lab import Lab, Rig
from tests.support.process import Result

HOUR = 3600.0


def _due_rig(lab: Lab, name: str) -> tuple[Rig, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, name)
    rig.env["PULSED_INTERVAL"] = "1"
    rig.seed(st.State(last_success=time.time() - 2 * HOUR, identity=rig.identity()))
    return rig, receiver


def _warnings(result: Result) -> list[str]:
    return [e["event"] for e in result.events if e.get("level") == "warning"]


def _temp_files(folder: Path) -> list[Path]:
    return list(folder.glob(f".{st.STATE_FILE}.tmp-*"))


def check_read_only_state_dir(lab: Lab) -> dict[str, Any]:
    rig, receiver = _due_rig(lab, "read-only")
    before = (rig.state / "state.json").read_bytes()
    lab.mount(rig.state, "--bind", str(rig.state), str(rig.state))
    lab.mount(rig.state, "-o", "remount,bind,ro", str(rig.state))
    daemon = rig.start("run")
    daemon.wait_for("heartbeat.sent", count=3)
    warnings = daemon.wait_for("state.unwritable", count=3)
    assert "restart" in warnings[0]["message"] and warnings[0]["level"] == "warning"
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0
    assert (rig.state / "state.json").read_bytes() == before
    assert len(receiver.unique_accepted) >= 3
    return {
        "heartbeats": len(receiver.unique_accepted),
        "sent": len(daemon.named("heartbeat.sent")),
        "warnings": len(warnings),
    }


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def check_full_disk(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "full")
    rig.env["PULSED_INTERVAL"] = "1"
    lab.mount(rig.state, "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(rig.state))
    rig.seed(st.State(last_success=time.time() - 2 * HOUR, identity=rig.identity()))
    filler = _fill(rig.state)
    daemon = rig.start("run")
    sent = len(daemon.wait_for("heartbeat.sent", count=2))
    daemon.wait_for("state.unwritable", count=2)
    assert _temp_files(rig.state) == [], "a failed write leaves no temp file"
    filler.unlink()  # space again: the next cycle writes the state
    freed = time.time()
    daemon.wait_for("heartbeat.sent", count=sent + 2)
    assert daemon.stop() == 0
    rewritten = (rig.state_of().last_success or 0.0) >= freed
    assert rewritten
    assert _temp_files(rig.state) == []
    return {
        "heartbeats": len(receiver.unique_accepted),
        "sent": len(daemon.named("heartbeat.sent")),
        "rewritten_when_space_returned": rewritten,
    }


def check_file_size_limit(lab: Lab) -> dict[str, Any]:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit is not here")
    rig, receiver = _due_rig(lab, "fsize")
    before = (rig.state / "state.json").read_bytes()
    # Python ignores SIGXFSZ, so an over-long write is EFBIG, not a killed daemon.
    daemon = rig.start("run", prefix=("prlimit", "--fsize=256", "--"))
    daemon.wait_for("heartbeat.sent", count=2)
    warnings = daemon.wait_for("state.unwritable", count=2)
    assert "File too large" in warnings[0]["message"]
    assert daemon.stop() == 0
    assert (rig.state / "state.json").read_bytes() == before
    assert _temp_files(rig.state) == []
    return {
        "heartbeats": len(receiver.unique_accepted),
        "sent": len(daemon.named("heartbeat.sent")),
        "warnings": len(warnings),
    }


def check_state_dir_cannot_be_created(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "uncreatable")
    parent = rig.home / "ro-parent"
    lab.mount(parent, "--bind", str(parent), str(parent))
    lab.mount(parent, "-o", "remount,bind,ro", str(parent))
    env = {"PULSED_STATE_DIR": str(parent / "state")}
    # once keeps nothing in memory past its end: without a state it sends nothing (75),
    # or from cron it would send at every run; --force sends and warns (contract §12).
    refused = rig.run("once", env=env)
    assert refused.code == 75, refused.err
    assert [e["event"] for e in refused.events] == ["heartbeat.withheld"]
    assert receiver.unique_accepted == []
    result = rig.run("once", "--force", env=env)
    assert result.code == 0, result.err
    assert result.named("state.unlocked") and result.named("state.unwritable")
    assert len(receiver.unique_accepted) == 1
    return {
        "code": refused.code,
        "forced_code": result.code,
        "heartbeats": 1,
        "warnings": _warnings(result),
    }


def _real_state_text() -> str:
    state = st.State(last_success=time.time() - 2 * HOUR, last_attempt=time.time() - 2 * HOUR)
    return json.dumps(st.to_json(state), indent=2)


CORRUPT: dict[str, bytes] = {
    "truncated": _real_state_text().encode()[:97],
    "empty": b"",
    "binary": bytes(random.Random(7).randrange(256) for _ in range(512)),
    "not-utf8": b'{"version": 1, "last_error": "\xff\xfe"}',
    "not-an-object": b"[1, 2, 3]",
    "wrong-types": json.dumps(
        {"version": 1, "last_success": 5, "consecutive_failures": "many"}
    ).encode(),
    "another-version": b'{"version": 99}',
    "time-past-year-9999": json.dumps(
        {"version": 1, "last_attempt": "9999-12-31T23:59:59.999999Z"}
    ).encode(),
    "time-before-year-1": json.dumps(
        {"version": 1, "last_success": "0001-01-01T00:00:00+14:00"}
    ).encode(),
    "identity-from-year-9999": json.dumps(
        {
            "version": 1,
            "identity": {
                "username": "x",
                "fetched_at": "9999-12-31T23:59:59-01:00",
                "token_fingerprint": "hmac-sha256:00",
            },
        }
    ).encode(),
}


# tests/test_state.py parses these in-process; `make soak` runs them as processes too.
SOAK_ONLY_CORRUPT = ("empty", "not-utf8", "not-an-object", "wrong-types", "another-version")


def check_corrupt_state(lab: Lab, kind: str) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"corrupt-{kind}")
    rig.state.mkdir(mode=0o700)
    (rig.state / "state.json").write_bytes(CORRUPT[kind])
    if kind.startswith("time") or kind in SOAK_ONLY_CORRUPT:
        status = rig.run("status", "--json")  # a reader: it says what is wrong, moves nothing
        doc = json.loads(status.out)
        assert status.code == 0 and "cannot be parsed" in " ".join(doc["errors"])
        assert doc["shops"][0]["problem"] == "corrupt"
    result = rig.run("once")
    assert result.code == 0, result.err
    (corrupt,) = result.named("state.corrupt")
    assert corrupt["level"] == "warning"
    (aside,) = rig.state.glob("state.json.corrupt-*")
    assert aside.read_bytes() == CORRUPT[kind]
    assert len(receiver.unique_accepted) == 1
    assert rig.state_of().last_success is not None  # the new state parses
    return {
        "heartbeats": len(receiver.unique_accepted),
        "warnings": _warnings(result),
        "aside": aside.read_bytes(),
    }


def check_state_file_is_a_directory(lab: Lab) -> dict[str, Any]:
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, "state-is-a-dir")
    (rig.state / "state.json").mkdir(parents=True)
    result = rig.run("once")
    assert result.code == 0, result.err
    # Not a file pulsed wrote: moved aside like any corrupt state, and a real one written.
    assert result.named("state.corrupt") and not result.named("state.unwritable")
    assert [p.is_dir() for p in rig.state.glob("state.json.corrupt-*")] == [True]
    assert rig.state_of().last_success is not None
    assert len(receiver.unique_accepted) == 1
    assert _temp_files(rig.state) == []
    return {"code": result.code, "heartbeats": 1, "warnings": _warnings(result)}
