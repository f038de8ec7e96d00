"""state.json and the state-folder lock, on real files (contract §5)."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulsed import _schedule, _timefmt
from pulsed import _state as st
from pulsed._cycle import Cycle
from pulsed._errors import ConfigError, LockHeldError, StateError, StateUnwritableError
from pulsed._files import temp_prefix
from tests.support.loop import loop_config
from tests.support.nobody import as_nobody, reachable_folder

NOW = 1_800_000_000.0


def full_state() -> st.State:
    return st.State(
        last_success=NOW - 5.25,
        last_attempt=NOW - 5.25,
        last_error=None,
        last_status=200,
        consecutive_failures=0,
        next_due=NOW + 3594.75,
        identity=st.Identity("acme_shop_bot", NOW - 100, "hmac-sha256:abc"),
        pending=st.Pending('{"domain":"x"}', NOW - 5, "sha256=00ff"),
        counters=st.Counters(heartbeats_sent=40, deliveries_failed=2, delivery_attempts=45),
        history=st.History.of(
            [
                st.Delivery(NOW - 7200.5, "failed", 503, 3, 1958, "status"),
                st.Delivery(NOW - 5.25, "sent", 200, 1, 312),
            ]
        ),
    )


def test_round_trip_keeps_every_field_to_the_microsecond(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(full_state())
    assert store.read() == full_state()


def test_a_store_holds_the_state_it_last_read_in_todays_version_only(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    assert store.held is None
    store.save(full_state())
    assert store.held is None  # what was written is the writer's to know
    assert store.read() == store.held == full_state()
    store.path.write_text('{"version": 1, "next_due": "2027-01-15T09:00:00Z"}')
    assert store.read() == st.State(next_due=NOW + 3600)
    assert store.held is None  # to be written again in today's version


def test_file_has_a_version_and_mode_0600(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(st.State(last_success=NOW))
    doc = json.loads(store.path.read_text())
    assert doc["version"] == st.STATE_VERSION
    assert doc["last_success"] == "2027-01-15T08:00:00.000000Z"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_no_file_is_no_state(tmp_path: Path) -> None:
    assert st.StateStore(tmp_path).read() is None
    assert st.StateStore(tmp_path).load(NOW) == st.State()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\x00\xff garbage",
        b"[]",
        b'{"version": 99}',
        b'{"version": 1, "last_success": "yesterday"}',
        b'{"version": 1, "consecutive_failures": -1}',
        b'{"version": 1, "identity": {"username": "x"}}',
        b'{"version": 1, "last_success": "2026-11-29T05:42:28"}',
        b'{"version": true}',
        b'{"version": 2, "counters": {"heartbeats_sent": -1}}',
        b'{"version": 2, "counters": []}',
        b'{"version": 2, "history": {}}',
        b'{"version": 2, "history": [{"outcome": "sent"}]}',
        b'{"version": 2, "history": [{"at": "2026-11-29T05:42:28Z", "outcome": "lost"}]}',
        b'{"version": 2, "history": [{"at": "2026-11-29T05:42:28Z", "outcome": "sent", '
        b'"attempts": 1.5}]}',
    ],
)
def test_unparseable_state_is_moved_aside_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = st.StateStore(tmp_path)
    store.path.write_bytes(content)
    assert store.load(NOW) == st.State()
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == content  # nothing lost: the evidence is kept
    assert aside[0].name == "state.json.corrupt-20270115T080000Z"
    assert not store.path.exists()
    assert [r.event for r in caplog.records] == ["state.corrupt"]  # type: ignore[attr-defined]


def test_read_never_moves_anything(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.path.write_bytes(b"{")
    with pytest.raises(StateError, match="cannot be parsed"):
        store.read()
    assert store.path.exists()


def test_save_into_a_read_only_folder_is_a_state_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = tmp_path / "file-not-dir" / "sub"
        (tmp_path / "file-not-dir").write_text("x")
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    with pytest.raises(StateError, match="cannot be written"):
        st.StateStore(target).save(st.State())


def test_a_save_whose_folder_cannot_be_made_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = st.StateStore(tmp_path / "file" / "state")
    with pytest.raises(StateError) as caught:
        store.save(st.State())
    assert (str(caught.value), caught.value.why) == (
        f"{store.path}: cannot be written (Not a directory)",
        "Not a directory",
    )


def test_a_save_whose_file_cannot_be_written_says_why(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.path.mkdir()  # a folder where the file goes: the rename over it fails
    with pytest.raises(StateError) as caught:
        store.save(st.State())
    assert (str(caught.value), caught.value.why) == (
        f"{store.path}: cannot be written (Is a directory)",
        "Is a directory",
    )


SAVE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from pulsed import _schedule, _timefmt
from pulsed import _state as st
from pulsed._errors import StateError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as root too
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
try:
    st.StateStore(Path(sys.argv[1])).save(st.State(last_success=float(sys.argv[2])))
except StateError as exc:
    print(exc)
"""


def test_failed_save_keeps_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(st.State(last_success=NOW))
    before = store.path.read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_A_FILE_SIZE_LIMIT, str(tmp_path), str(NOW + 1)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cannot be written" in done.stdout  # the write failed midway
    assert store.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_planted_symlink_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_text("precious")
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    for guess in (f".state.json.tmp-{os.getpid()}", ".state.json.tmp", "state.json"):
        (folder / guess).symlink_to(victim)
    st.StateStore(folder).save(st.State(last_success=NOW))
    assert victim.read_text() == "precious"
    assert not (folder / "state.json").is_symlink()  # replaced by a real file
    assert st.StateStore(folder).read() == st.State(last_success=NOW)


def test_temp_names_are_unpredictable(tmp_path: Path) -> None:
    seen: set[str] = set()
    store = st.StateStore(tmp_path)
    real_replace = os.replace

    def spy(src: Any, dst: Any, **where: Any) -> None:
        seen.add(str(src))
        real_replace(src, dst, **where)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        for _ in range(5):
            store.save(st.State())
    assert len(seen) == 5 and all(n.startswith(temp_prefix(store.path.name)) for n in seen)


def test_a_state_file_through_a_symlink_is_corrupt_and_moved_aside(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    st.StateStore(tmp_path).save(st.State(last_success=NOW))
    (tmp_path / "state.json").rename(elsewhere)
    (tmp_path / "state.json").symlink_to(elsewhere)
    with pytest.raises(StateError, match="symlink"):
        st.StateStore(tmp_path).read()
    assert st.StateStore(tmp_path).load(NOW) == st.State()
    assert elsewhere.exists() and not (tmp_path / "state.json").exists()


def test_an_oversized_state_file_is_corrupt_without_being_read_whole(tmp_path: Path) -> None:
    big = b'{"version": 1, "last_error": "' + b"x" * (st.MAX_STATE_BYTES + 10) + b'"}'
    (tmp_path / "state.json").write_bytes(big)
    with pytest.raises(StateError, match="over 1048576 bytes") as caught:
        st.StateStore(tmp_path).read()
    assert caught.value.corrupt
    assert st.StateStore(tmp_path).load(NOW) == st.State()
    assert list(tmp_path.glob("state.json.corrupt-*"))


def test_the_default_shop_keeps_the_top_folder_and_others_have_their_own() -> None:
    top = Path("/var/lib/pulsed")
    assert (st.shop_state_dir(top, "default"), st.shop_state_dir(top, "b")) == (
        top,
        top / "shops" / "b",
    )


@pytest.mark.parametrize(
    ("files", "shops"),
    [
        ([], ["default"]),
        (["state.json"], ["default"]),
        (["shops/b/state.json", "shops/a/state.json", "shops/c/x"], ["a", "b"]),
        (["state.json", "shops/a/state.json"], ["default", "a"]),
    ],
    ids=["nothing", "one-shop", "shops-only", "both"],
)
def test_shops_on_disk_are_those_with_a_state(
    tmp_path: Path, files: list[str], shops: list[str]
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert st.shops_on_disk(tmp_path) == shops


def test_a_shop_whose_state_cannot_be_looked_at_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shops" / "a").mkdir(parents=True)

    def refuse(self: Path) -> bool:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", refuse)
    assert st.shops_on_disk(tmp_path) == ["default", "a"]


def test_sweep_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(st.State(last_success=NOW))
    (tmp_path / f"{temp_prefix(store.path.name)}dead").write_text("half")
    store.sweep()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize(
    ("mode", "owner", "refused"),
    [
        (0o700, "self", None),
        (0o755, "self", None),
        (0o770, "self", "writable by others"),  # by its group alone
        (0o775, "self", "writable by others"),
        (0o1777, "self", "writable by others"),
        (0o700, "other", r"owned by uid \d+, not by pulsed's user or root; refusing to keep"),
    ],
)
def test_only_a_private_state_folder_is_accepted(
    tmp_path: Path, mode: int, owner: str, refused: str | None
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(mode)
    euid = os.geteuid()
    if owner == "other":
        if euid == 0:
            os.chown(folder, 4242, -1)  # root owns everything else: make it someone's
        euid = 4343  # pulsed runs as neither root nor the folder's owner
    if refused is None:
        st.check_private(folder, euid)
        return
    with pytest.raises(ConfigError, match=refused) as caught:
        st.check_private(folder, euid)
    assert caught.value.setting == "daemon.state_dir"
    assert caught.value.reason.startswith(f"{folder} is ")


def refusal(folder: Path, euid: int | None = None) -> ConfigError | None:
    try:
        st.check_private(folder, euid)
    except ConfigError as exc:
        return exc
    return None


def test_a_folder_owned_by_root_is_accepted_whoever_pulsed_runs_as() -> None:
    assert refusal(Path("/"), 4343) is None  # root's, mode 0755


def test_a_folder_owned_by_pulsed_s_user_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    owner = os.geteuid()
    if owner == 0:
        owner = 4242  # root is accepted anyway: give the folder to someone else
        os.chown(folder, owner, -1)
    assert refusal(folder, owner) is None


def test_without_a_uid_the_folder_is_checked_against_pulsed_s_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    owner = os.geteuid()
    if owner == 0:
        owner = 4242
        os.chown(folder, owner, -1)
        monkeypatch.setattr(os, "geteuid", lambda: owner)
    assert refusal(folder) is None


def test_a_state_folder_that_cannot_be_looked_at_is_refused_saying_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as caught:
        st.check_private(tmp_path / "file" / "state")
    assert (caught.value.setting, str(caught.value)) == (
        "daemon.state_dir",
        f"daemon.state_dir: {tmp_path / 'file' / 'state'}: Not a directory",
    )


def test_a_missing_state_folder_is_private_enough(tmp_path: Path) -> None:
    st.check_private(tmp_path / "not-yet")  # no refusal: pulsed makes it 0700
    assert not (tmp_path / "not-yet").exists()  # and checking it made nothing


# --- check_writable: the folder once must be able to keep its state in -------------------


def unwritable(folder: Path) -> tuple[str, str, str] | None:
    """What check_writable says of ``folder``, if it refuses: the folder, why, the message."""
    try:
        st.check_writable(folder)
    except StateUnwritableError as exc:
        return (exc.folder, exc.why, str(exc))
    return None


def test_a_missing_state_folder_is_made_0700_with_its_parents(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "state"
    assert unwritable(folder) is None
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert unwritable(folder) is None  # and one that is there already passes


def test_a_state_folder_that_cannot_be_made_is_refused_in_the_kernels_words(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "state"
    assert unwritable(folder) == (
        str(folder),
        "Not a directory",
        f"state folder {folder} cannot be written (Not a directory)",
    )


def test_a_state_folder_its_owner_may_write_is_refused_to_another_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a folder of another user's: run as root")
    with reachable_folder("pulsed-state-") as folder:  # root's, 0755
        assert unwritable(folder) is None

        def check() -> int:
            print(json.dumps(unwritable(folder)))
            return 0

        code, printed = as_nobody(check)
    assert code == 0
    assert json.loads(printed) == [
        str(folder),
        "Permission denied",
        f"state folder {folder} cannot be written (Permission denied)",
    ]


CHECK_WRITABLE = """
import json, sys
from pathlib import Path
from pulsed import _state as st
from pulsed._errors import StateUnwritableError
try:
    st.check_writable(Path(sys.argv[1]))
except StateUnwritableError as exc:
    print(json.dumps([exc.folder, exc.why, str(exc)]))
else:
    print("null")
"""
# In a mount namespace of its own: a read-only file system on the folder, seen by the
# command it execs and by nothing else on the host.
READ_ONLY_MOUNT = (
    "unshare",
    "--mount",
    "sh",
    "-c",
    'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"',
    "sh",
)


def test_a_state_folder_on_a_read_only_file_system_is_refused_saying_so(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    assert unwritable(folder) is None  # before the mount
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not here")
    probe = subprocess.run(
        [*READ_ONLY_MOUNT, str(folder), "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {probe.stderr.decode()}")
    done = subprocess.run(
        [*READ_ONLY_MOUNT, str(folder), sys.executable, "-c", CHECK_WRITABLE, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [
        str(folder),
        "Read-only file system",
        f"state folder {folder} cannot be written (Read-only file system)",
    ]


def test_transitions() -> None:
    s = st.with_pending(st.State(consecutive_failures=2), b'{"a":1}', NOW, "sha256=ab")
    assert s.pending == st.Pending('{"a":1}', NOW, "sha256=ab")
    ok = st.succeeded(s, NOW + 1, 200, NOW + 3601, attempts=2, elapsed=0.3124)
    assert (ok.consecutive_failures, ok.pending, ok.last_error) == (0, None, None)
    assert ok.last_success == ok.last_attempt == NOW + 1
    bad = st.failed(
        ok, NOW + 2, "timeout: no answer", None, NOW + 400, reason="timeout", attempts=2, elapsed=2
    )
    assert (bad.consecutive_failures, bad.last_success, bad.last_error) == (
        1,
        NOW + 1,
        "timeout: no answer",
    )
    assert bad.counters == st.Counters(heartbeats_sent=1, deliveries_failed=1, delivery_attempts=4)
    assert list(bad.history) == [
        st.Delivery(NOW + 1, "sent", 200, 2, 312),
        st.Delivery(NOW + 2, "failed", None, 2, 2000, "timeout"),
    ]


def _a_week_and_more(start: st.State, deliveries: int) -> st.State:
    state = start
    for i in range(deliveries):
        at = NOW + i * 3600.0
        if i % 3:
            state = st.succeeded(state, at, 200, at + 3600, attempts=1, elapsed=0.25)
        else:
            state = st.failed(
                state,
                at,
                "status: HTTP 503 " + "x" * 200,
                503,
                at + 300,
                reason="status",
                attempts=3,
                elapsed=1.999,
            )
    return state


def test_history_keeps_the_last_168_deliveries_and_counters_keep_everything() -> None:
    state = _a_week_and_more(st.State(), 500)
    assert len(state.history) == st.HISTORY_LIMIT == 168
    assert state.history[-1].at == NOW + 499 * 3600.0
    assert state.history[0].at == NOW + (500 - 168) * 3600.0
    sent = sum(1 for i in range(500) if i % 3)
    assert state.counters == st.Counters(sent, 500 - sent, sent + 3 * (500 - sent))


def test_a_full_history_keeps_the_file_far_under_the_corrupt_limit(tmp_path: Path) -> None:
    state = _a_week_and_more(full_state(), 1000)
    store = st.StateStore(tmp_path)
    store.save(state)
    size = store.path.stat().st_size
    assert size < 64 * 1024 < st.MAX_STATE_BYTES  # about 30 KiB as written
    assert store.read() == state


DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["state-v1.json", "state-v1-failing.json"])
def test_a_version_1_state_is_carried_forward_whole(tmp_path: Path, name: str) -> None:
    """Files written by the version-1 writer: every field survives, counting starts empty."""
    raw = json.loads((DATA / name).read_text())
    assert raw["version"] == 1
    (tmp_path / "state.json").write_bytes((DATA / name).read_bytes())
    store = st.StateStore(tmp_path)
    state = store.load(NOW)
    assert not list(tmp_path.glob("*.corrupt-*"))
    for key in ("last_success", "last_attempt", "next_due"):
        assert st._rfc3339_us(getattr(state, key)) == raw[key], key
    assert (state.last_error, state.last_status) == (raw["last_error"], raw["last_status"])
    assert state.consecutive_failures == raw["consecutive_failures"]
    assert state.identity is not None
    assert st._rfc3339_us(state.identity.fetched_at) == raw["identity"]["fetched_at"]
    assert state.identity.username == raw["identity"]["username"]
    assert state.identity.token_fingerprint == raw["identity"]["token_fingerprint"]
    if raw["pending"] is None:
        assert state.pending is None
    else:
        assert state.pending == st.Pending(
            raw["pending"]["body"],
            _timefmt.parse(raw["pending"]["timestamp"]),
            raw["pending"]["signature"],
        )
    assert (state.counters, state.history) == (st.Counters(), st.History())
    # Written back, it is a file of today's version that reads as the same state.
    store.save(state)
    assert json.loads(store.path.read_text())["version"] == st.STATE_VERSION == 4
    assert store.read() == state


def test_a_version_1_state_is_due_exactly_when_it_was() -> None:
    raw = json.loads((DATA / "state-v1.json").read_text())
    state = st.from_json(raw)
    interval = 3600.0
    due = _schedule.due_at(state.last_success, state.next_due, NOW, interval)
    assert due.at == _timefmt.parse(raw["next_due"]) > NOW  # not due: nothing sent early
    assert not due.clock_went_back


HOLDER = """
import sys, time
from pathlib import Path
from pulsed._state import StateLock
lock = StateLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_lock_is_exclusive_across_processes_and_names_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as info:
            st.StateLock(tmp_path).acquire()
        # named by pid and command line, so an operator can tell which daemon holds it
        assert f"pid {holder.pid} ({sys.executable} -c " in str(info.value)
    finally:
        holder.communicate("")
    lock = st.StateLock(tmp_path)
    lock.acquire()  # free again once the holder is gone
    lock.release()


def test_lock_works_on_a_folder_that_is_created(tmp_path: Path) -> None:
    lock = st.StateLock(tmp_path / "new" / "state")
    lock.acquire()
    assert (tmp_path / "new" / "state").is_dir()
    lock.release()


# --- what the file says, and what a corrupt one is reported as ---------------------------


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local zone far from UTC, so a time written in local time would show."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_round_trip_keeps_a_failure(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    failing = st.State(
        last_success=NOW - 7200,
        last_attempt=NOW,
        last_error="timeout",
        last_status=503,
        consecutive_failures=3,
        next_due=NOW + 3600,
    )
    store.save(failing)
    assert store.read() == failing


def test_round_trip_keeps_every_microsecond_digit(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(st.State(last_success=NOW + 0.123456))
    assert store.read() == st.State(last_success=NOW + 0.123456)


def test_a_hand_edited_time_before_the_year_1000_is_written_back_readable(
    tmp_path: Path,
) -> None:
    store = st.StateStore(tmp_path)
    store.path.write_text('{"version": 3, "last_success": "0999-06-01T00:00:00Z"}')
    read = store.read()
    assert read is not None
    store.save(read)
    assert json.loads(store.path.read_text())["last_success"] == "0999-06-01T00:00:00.000000Z"
    assert store.read() == read  # not moved aside as unreadable at the next start


def test_a_time_with_an_explicit_offset_is_read() -> None:
    doc = {"version": 1, "last_success": "2027-01-15T10:00:00+02:00"}
    assert st.from_json(doc).last_success == NOW


def test_times_are_written_in_utc_whatever_the_local_zone(tmp_path: Path, new_york: None) -> None:
    store = st.StateStore(tmp_path)
    store.save(st.State(last_success=NOW))
    assert json.loads(store.path.read_text())["last_success"] == "2027-01-15T08:00:00.000000Z"


def test_a_minimal_document_is_an_empty_state() -> None:
    assert st.from_json({"version": 1}) == st.State()


def test_file_holds_exactly_the_documented_keys(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(full_state())
    assert set(json.loads(store.path.read_text())) == {
        "version",
        "counters",
        "history",
        "last_success",
        "last_attempt",
        "last_error",
        "last_status",
        "consecutive_failures",
        "next_due",
        "identity",
        "pending",
        "domain",
    }


def test_the_domain_a_state_belongs_to_is_written_and_read_back(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(st.State(domain="shop.example"))
    assert json.loads(store.path.read_text())["domain"] == "shop.example"
    assert store.read() == st.State(domain="shop.example")


def test_a_state_without_a_domain_still_loads_and_a_bad_one_is_corrupt() -> None:
    assert st.from_json({"version": 2}).domain is None
    with pytest.raises(ValueError, match="domain is not a string"):
        st.from_json({"version": 2, "domain": ["a"]})


def test_file_is_compact_sorted_json_ending_in_a_newline(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    store.save(full_state())
    text = store.path.read_text()
    assert text == json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True) + "\n"


def test_save_creates_missing_folders_with_mode_0700(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path / "var" / "pulsed")
    store.save(st.State())
    assert stat.S_IMODE((tmp_path / "var" / "pulsed").stat().st_mode) == 0o700
    assert store.read() == st.State()


SENT = {"at": "2027-01-15T08:00:00Z", "outcome": "sent", "status": 200, "attempts": 1}


def test_a_version_1_document_has_no_counters_or_history_whatever_it_holds() -> None:
    doc = {"version": 1, "counters": {"heartbeats_sent": 5}, "history": [SENT]}
    assert (st.from_json(doc).counters, st.from_json(doc).history) == (st.Counters(), st.History())


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "not a JSON object"),
        ({"version": 99}, "unknown version 99"),
        ({"version": 1, "consecutive_failures": -1}, "consecutive_failures is not a count"),
        ({"version": 1, "consecutive_failures": True}, "consecutive_failures is not a count"),
        ({"version": 1, "last_status": "200"}, "last_status is not a number"),
        ({"version": 1, "last_status": True}, "last_status is not a number"),
        ({"version": 1, "last_error": 5}, "last_error is not a string"),
        ({"version": 1, "last_success": 5}, "last_success is not a time string"),
        ({"version": 1, "last_attempt": 5}, "last_attempt is not a time string"),
        ({"version": 1, "next_due": 5}, "next_due is not a time string"),
        ({"version": 1, "next_due": "2027-01-15T08:00:00"}, "next_due has no time zone"),
        ({"version": 1, "next_due": "9999-12-31T23:00:00-02:00"}, "next_due is out of range"),
        ({"version": 1, "identity": "bot"}, "identity is not an object"),
        (
            {"version": 1, "identity": {"fetched_at": 5, "token_fingerprint": "f"}},
            "identity.fetched_at is not a time string",
        ),
        (
            {"version": 1, "identity": {"fetched_at": "2027-01-15T08:00:00Z"}},
            "identity lacks fetched_at or token_fingerprint",
        ),
        ({"version": 1, "pending": "{}"}, "pending is not an object"),
        ({"version": 1, "pending": {"body": "{}"}}, "pending lacks body or timestamp"),
        (
            {"version": 1, "pending": {"body": "{}", "timestamp": 5}},
            "pending.timestamp is not a time string",
        ),
        ({"version": 2, "counters": []}, "counters is not an object"),
        (
            {"version": 2, "counters": {"delivery_attempts": -1}},
            "counters.delivery_attempts is not a count",
        ),
        ({"version": 2, "history": {}}, "history is not a list"),
        ({"version": 2, "history": [1]}, "a history entry is not an object"),
        (
            {"version": 2, "history": [{"at": 5, "outcome": "sent"}]},
            "history.at is not a time string",
        ),
        (
            {"version": 2, "history": [{"outcome": "sent"}]},
            "a history entry lacks its time or outcome",
        ),
        (
            {"version": 2, "history": [{**SENT, "status": "200"}]},
            "history.status is not a number",
        ),
        (
            {"version": 2, "history": [{**SENT, "attempts": 1.5}]},
            "history.attempts is not a count",
        ),
        (
            {"version": 2, "history": [{**SENT, "elapsed_ms": -1}]},
            "history.elapsed_ms is not a count",
        ),
        (
            {"version": 2, "history": [{**SENT, "outcome": "failed", "reason": "timeuot"}]},
            "history.reason is not a failure reason",
        ),
    ],
)
def test_a_corrupt_document_is_refused_naming_what_is_wrong(doc: object, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}$"):
        st.from_json(doc)


def test_a_corrupt_file_moved_aside_is_logged_with_where_it_went(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = st.StateStore(tmp_path)
    store.path.write_bytes(b"[]")
    store.load(NOW)
    (rec,) = caplog.records
    assert rec.getMessage() == "state file cannot be parsed; moved aside, starting without state"
    assert rec.moved_to == str(tmp_path / "state.json.corrupt-20270115T080000Z")  # type: ignore[attr-defined]
    assert rec.error == f"{store.path}: cannot be parsed (not a JSON object)"  # type: ignore[attr-defined]


def test_a_corrupt_file_that_cannot_be_moved_is_logged_and_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, target: Path) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied")

    store = st.StateStore(tmp_path)
    store.path.write_bytes(b"[]")
    monkeypatch.setattr(Path, "replace", refuse)
    assert store.load(NOW) == st.State()
    (rec,) = caplog.records
    assert rec.getMessage() == (
        "state file cannot be parsed and cannot be moved aside; starting without state"
    )
    assert rec.event == "state.corrupt"  # type: ignore[attr-defined]
    assert rec.move_error == "Permission denied"  # type: ignore[attr-defined]
    assert rec.error == f"{store.path}: cannot be parsed (not a JSON object)"  # type: ignore[attr-defined]
    assert store.path.read_bytes() == b"[]"


def test_an_unreadable_state_file_is_warned_about_and_left(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    (folder / "state.json").write_text('{"version": 1}')
    (folder / "state.json").chmod(0o600 if os.geteuid() == 0 else 0)
    tmp_path.chmod(0o755)

    def load() -> int:
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign,assignment]
        logging.getLogger("pulsed").addHandler(handler)
        empty = st.StateStore(folder).load(NOW) == st.State()
        events = [(r.event, r.getMessage()) for r in records]  # type: ignore[attr-defined]
        print(json.dumps([empty, *events]))
        return 0

    code, printed = as_nobody(load)
    assert code == 0
    report = json.loads(printed)
    assert report == [True, ["state.unreadable", "state cannot be read; starting without state"]]
    assert (folder / "state.json").exists()  # left where it is: it may be fine for its owner


def refuse_to_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads a mode-000 file, so the kernel's refusal is simulated.
    def refuse(path: object, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)


def test_a_state_file_the_kernel_refuses_is_unreadable_not_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = st.StateStore(tmp_path)
    refuse_to_open(monkeypatch)
    with pytest.raises(StateError) as caught:
        store.read()
    assert (str(caught.value), caught.value.corrupt) == (
        f"{store.path}: permission denied",
        False,
    )


def test_an_unreadable_state_file_is_logged_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = st.StateStore(tmp_path)
    refuse_to_open(monkeypatch)
    assert store.load(NOW) == st.State()
    (rec,) = caplog.records
    assert (rec.getMessage(), rec.event, rec.error) == (  # type: ignore[attr-defined]
        "state cannot be read; starting without state",
        "state.unreadable",
        f"{store.path}: permission denied",
    )


def test_a_state_file_that_is_a_folder_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = st.StateStore(tmp_path)
    store.path.mkdir()
    assert store.load(NOW) == st.State()
    (rec,) = caplog.records
    assert rec.event == "state.corrupt"  # type: ignore[attr-defined]
    assert "not a regular file" in rec.error  # type: ignore[attr-defined]
    assert not store.path.exists()


def test_success_clears_the_failure_and_the_pending_body() -> None:
    before = st.State(
        last_error="timeout",
        last_status=503,
        consecutive_failures=2,
        next_due=NOW + 300,
        pending=st.Pending("{}", NOW),
    )
    after = st.succeeded(before, NOW + 1, 200, NOW + 3601, attempts=2, elapsed=0.25)
    assert after == st.State(
        last_success=NOW + 1,
        last_attempt=NOW + 1,
        last_status=200,
        consecutive_failures=0,
        next_due=NOW + 3601,
        counters=st.Counters(heartbeats_sent=1, deliveries_failed=0, delivery_attempts=2),
        history=st.History.of([st.Delivery(NOW + 1, "sent", 200, 2, 250)]),
    )


def test_failure_counts_up_and_keeps_the_last_success() -> None:
    before = st.State(
        last_success=NOW - 3600,
        last_attempt=NOW - 3600,
        last_status=200,
        consecutive_failures=1,
        next_due=NOW,
        pending=st.Pending("{}", NOW),
    )
    after = st.failed(
        before, NOW + 2, "status", 503, NOW + 400, reason="status", attempts=3, elapsed=1.5
    )
    assert after == st.State(
        last_success=NOW - 3600,
        last_attempt=NOW + 2,
        last_error="status",
        last_status=503,
        consecutive_failures=2,
        next_due=NOW + 400,
        counters=st.Counters(heartbeats_sent=0, deliveries_failed=1, delivery_attempts=3),
        history=st.History.of([st.Delivery(NOW + 2, "failed", 503, 3, 1500, "status")]),
    )


def test_lock_names_the_folder_it_guards(tmp_path: Path) -> None:
    first = st.StateLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(LockHeldError) as info:
            st.StateLock(tmp_path).acquire()
    finally:
        first.release()
    assert info.value.lock_path == str(tmp_path)


def test_a_released_lock_can_be_taken_again_in_the_same_process(tmp_path: Path) -> None:
    first = st.StateLock(tmp_path)
    first.acquire()
    first.release()
    first.release()  # a second release is harmless
    second = st.StateLock(tmp_path)
    second.acquire()  # would raise LockHeldError had the first kept it
    assert second._fd is not None
    second.release()
    assert second._fd is None


def test_releasing_a_lock_never_taken_is_harmless(tmp_path: Path) -> None:
    lock = st.StateLock(tmp_path)
    lock.release()
    assert lock._fd is None


def test_lock_creates_a_missing_folder_with_mode_0700(tmp_path: Path) -> None:
    lock = st.StateLock(tmp_path / "state")
    lock.acquire()
    lock.release()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_lock_on_a_path_that_is_a_file_says_it_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(StateError, match="state: cannot be created"):
        st.StateLock(tmp_path / "state").acquire()


def test_a_lock_on_a_folder_this_user_may_not_open_says_so() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a folder of another user's: run as root")
    with reachable_folder("pulsed-lock-") as top:
        folder = top / "state"
        lock = st.StateLock(folder)  # root's, 0700: its owner may take the lock
        lock.acquire()
        lock.release()

        def take() -> int:
            try:
                st.StateLock(folder).acquire()
            except StateError as exc:
                print(exc)
                return 0
            return 1

        code, printed = as_nobody(take)
    assert (code, printed) == (0, f"{folder}: cannot be opened (Permission denied)\n")


def test_a_folder_nobody_locked_has_no_named_holder(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert st._lock_holder(fd) == "another process"
    finally:
        os.close(fd)


def test_the_holder_is_the_flock_on_this_folder_not_another_lock_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    info = os.fstat(fd)
    here = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    locks = "\n".join(
        [
            "1: POSIX  ADVISORY  WRITE 11 " + here + " 0 EOF",  # a POSIX lock, not ours
            "2: FLOCK  ADVISORY  WRITE 22 00:01:1 0 EOF",  # an flock on another file
            "3: -> FLOCK  ADVISORY  WRITE 33 " + here + " 0 EOF",  # a waiter, not the holder
            "4: FLOCK",  # cut short
            "5: FLOCK  ADVISORY  WRITE 999999999 " + here + " 0 EOF",  # no such pid
        ]
    )
    real_read_text = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self == Path("/proc/locks"):
            return locks
        return real_read_text(self)

    monkeypatch.setattr(Path, "read_text", read_text)
    try:
        assert st._lock_holder(fd) == "pid 999999999"
    finally:
        os.close(fd)


def test_the_corrupt_copy_is_named_in_utc_whatever_the_local_zone(
    tmp_path: Path, new_york: None
) -> None:
    store = st.StateStore(tmp_path)
    store.path.write_bytes(b"{")
    store.load(NOW)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json.corrupt-20270115T080000Z"]


def test_a_daemon_started_on_a_version_1_state_waits_for_its_due_time(tmp_path: Path) -> None:
    """Nothing sent early: the cycle the daemon and `once` use reads the old file's schedule."""
    (tmp_path / "state.json").write_bytes((DATA / "state-v1.json").read_bytes())
    cycle = Cycle.open(loop_config(tmp_path), writable=True, environ={}, wall=lambda: NOW)
    raw = json.loads((DATA / "state-v1.json").read_text())
    assert not cycle.is_due()
    assert cycle.wait_time() == pytest.approx(_timefmt.parse(raw["next_due"]) - NOW)
