"""The recorder: each outcome into the state, onto disk, and into one log line (§5, §7, §11)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from pulsed import _state as st
from pulsed._body import Request
from pulsed._delivery import Delivered
from pulsed._errors import DeliveryError, StateError, StateUnwritableError
from pulsed._recorder import Recorder, _duration, failing_since
from pulsed._redact import REDACT
from tests.support.figures import FINGERPRINT

pytestmark = pytest.mark.anyio
NOW = 1_800_000_000.0
REQUEST = Request(b'{"domain":"shop.example"}', {"X-Pulse-Signature": "sha256=ab"}, NOW - 1)


def on_disk(folder: Path) -> st.State | None:
    return st.StateStore(folder).read()


def files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


async def test_a_body_in_flight_is_on_disk_before_it_is_sent(tmp_path: Path) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    await recorder.started(REQUEST)
    expected = st.Pending(REQUEST.body.decode(), REQUEST.at, "sha256=ab")
    assert recorder.state.pending == expected
    saved = on_disk(tmp_path)
    assert saved is not None and saved.pending == expected


async def test_a_success_clears_the_pending_body_and_is_logged_with_its_figures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    await recorder.started(REQUEST)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.sent(Delivered(202, 2, 0.4567), NOW, NOW + 3600)
    assert on_disk(tmp_path) == recorder.state
    assert recorder.state.pending is None and recorder.state.next_due == NOW + 3600
    (line,) = events(caplog, "heartbeat.sent")
    assert line.levelno == logging.INFO
    assert (line.status, line.attempts, line.elapsed_ms) == (202, 2, 457)  # type: ignore[attr-defined]
    assert line.next_due == "2027-01-15T09:00:00Z"  # type: ignore[attr-defined]


async def test_a_failure_is_recorded_redacted_and_logged_as_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    REDACT.register(["recorder-test-secret"])
    recorder = Recorder(st.StateStore(tmp_path), st.State(consecutive_failures=1), writable=True)
    failure = DeliveryError(
        "status", "500 said recorder-test-secret", status=500, attempts=3, elapsed=1.2
    )
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.failed(failure, NOW, NOW + 300)
    state = on_disk(tmp_path)
    assert state == recorder.state
    assert state.last_error == "status: 500 said [redacted]"
    assert (state.consecutive_failures, state.last_status, state.next_due) == (2, 500, NOW + 300)
    (line,) = events(caplog, "heartbeat.failed")
    assert line.levelno == logging.WARNING
    assert line.reason == "status" and line.failures_in_a_row == 2  # type: ignore[attr-defined]
    assert line.attempts == 3 and line.elapsed_ms == 1200  # type: ignore[attr-defined]


async def test_read_only_it_changes_the_state_in_memory_and_writes_nothing(tmp_path: Path) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=False)
    await recorder.started(REQUEST)
    await recorder.sent(Delivered(200, 1, 0.1), NOW, NOW + 3600)
    recorder.save()
    assert recorder.state.counters.heartbeats_sent == 1
    assert files(tmp_path) == []


async def test_a_state_that_cannot_be_written_is_kept_in_memory_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the state folder should be
    recorder = Recorder(st.StateStore(blocked), st.State(), writable=True)
    with caplog.at_level(logging.WARNING, logger="pulsed"):
        await recorder.sent(Delivered(200, 1, 0.1), NOW, NOW + 3600)
        recorder.save()
    assert recorder.state.last_success == NOW
    lines = events(caplog, "state.unwritable")
    assert len(lines) == 2 and "a restart now could send" in lines[0].getMessage()


async def test_a_success_after_failures_says_how_long_and_how_many(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = st.History.of(
        [
            st.Delivery(NOW - 7200, "sent", 200, 1, 50),
            st.Delivery(NOW - 3000, "failed", None, 3, 2000, "connect"),
            st.Delivery(NOW - 2400, "failed", 503, 1, 40, "status"),
        ]
    )
    state = st.State(consecutive_failures=2, last_attempt=NOW - 2400, history=history)
    recorder = Recorder(st.StateStore(tmp_path), state, writable=True)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.sent(Delivered(200, 1, 0.1), NOW, NOW + 3600)
    (line,) = events(caplog, "heartbeat.recovered")
    assert line.levelno == logging.INFO
    assert (line.failed_deliveries, line.failing_for_s) == (2, 3000)  # type: ignore[attr-defined]
    assert line.getMessage() == "heartbeat delivered again after 2 failed deliveries over 50 min"


async def test_a_success_after_a_success_is_no_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.sent(Delivered(200, 1, 0.1), NOW, NOW + 3600)
    assert events(caplog, "heartbeat.recovered") == []


def test_failing_since_is_the_oldest_failure_kept_when_the_history_is_cut() -> None:
    cut = st.History.of(
        st.Delivery(NOW - 60 * n, "failed", None, 1, 1, "connect") for n in (3, 2, 1)
    )
    assert failing_since(st.State(consecutive_failures=500, history=cut)) == NOW - 180
    assert failing_since(st.State(consecutive_failures=1, last_attempt=NOW - 5)) == NOW - 5


async def test_a_failure_names_the_host_it_could_not_reach(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    failure = DeliveryError("connect", "All connection attempts failed", attempts=3)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.failed(failure, NOW, NOW + 300, "pulse.example")
    (line,) = events(caplog, "heartbeat.failed")
    assert line.host == "pulse.example"  # type: ignore[attr-defined]
    assert line.getMessage().startswith("heartbeat to pulse.example failed: connect: All")


async def test_a_sent_heartbeat_is_logged_as_such_with_its_time_in_milliseconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=False)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.sent(Delivered(200, 1, 2.0), NOW, NOW + 3600)
    (line,) = events(caplog, "heartbeat.sent")
    assert (line.getMessage(), line.elapsed_ms) == ("heartbeat sent", 2000)  # type: ignore[attr-defined]


async def test_a_failure_line_says_what_failed_and_when_the_next_try_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=False)
    failure = DeliveryError(
        "status", "HTTP 429 from the receiver", status=429, retry_after=900.0, attempts=1
    )
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await recorder.failed(failure, NOW, NOW + 900)
    (line,) = events(caplog, "heartbeat.failed")
    assert (
        line.getMessage() == "heartbeat to the receiver failed: status: HTTP 429 from the receiver"
    )
    assert (line.status, line.retry_after, line.next_due) == (  # type: ignore[attr-defined]
        429,
        900.0,
        "2027-01-15T08:15:00Z",
    )


def test_a_fetched_identity_is_kept_in_the_state_on_disk(tmp_path: Path) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    identity = st.Identity("acme_shop_bot", NOW, FINGERPRINT)
    recorder.keep_identity(identity)
    recorder.save()
    saved = on_disk(tmp_path)
    assert saved is not None and saved.identity == identity


async def test_a_dropped_body_is_no_longer_pending_on_disk(tmp_path: Path) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    await recorder.started(REQUEST)
    recorder.drop_pending()
    recorder.save()
    saved = on_disk(tmp_path)
    assert saved is not None and saved.pending is None


def test_a_state_that_cannot_be_written_is_logged_with_why_and_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(StateError) as why:
        st.StateStore(blocked).save(st.State())
    recorder = Recorder(st.StateStore(blocked), st.State(), writable=True)
    with caplog.at_level(logging.WARNING, logger="pulsed"):
        recorder.save()
    (line,) = events(caplog, "state.unwritable")
    assert line.getMessage() == (
        f"state cannot be written ({why.value}); kept in memory, so a restart now could send "
        "before the heartbeat is due"
    )
    assert line.path == str(blocked / "state.json")  # type: ignore[attr-defined]


# --- a state that must be kept (once) ----------------------------------------------------


def unwritable(tmp_path: Path) -> Path:
    """A state folder that cannot be made, whoever runs the test (root included)."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "state"


async def test_a_state_is_encoded_in_the_loops_thread_and_only_written_in_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # save_aside's reason: no state's JSON made and dropped in a worker thread's arena.
    encoded_in = []
    encode = st.encoded

    def encoded(state: st.State) -> bytes:
        encoded_in.append(threading.current_thread())
        return encode(state)

    monkeypatch.setattr(st, "encoded", encoded)
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    await recorder.sent(Delivered(200, 1, 0.1), NOW, NOW + 3600)
    assert encoded_in == [threading.current_thread()]
    assert on_disk(tmp_path) == recorder.state


async def test_a_body_that_must_be_kept_is_on_disk_before_it_is_sent(tmp_path: Path) -> None:
    recorder = Recorder(st.StateStore(tmp_path), st.State(), writable=True)
    await recorder.started(REQUEST, must_keep=True)
    saved = on_disk(tmp_path)
    assert saved is not None and saved.pending == recorder.state.pending is not None


async def test_a_body_that_must_be_kept_and_cannot_be_is_not_in_flight(tmp_path: Path) -> None:
    folder = unwritable(tmp_path)
    before = st.State(last_success=NOW - 3600)
    recorder = Recorder(st.StateStore(folder), before, writable=True)
    with pytest.raises(StateUnwritableError) as caught:
        await recorder.started(REQUEST, must_keep=True)
    assert (caught.value.folder, caught.value.why) == (str(folder), "Not a directory")
    assert recorder.state == before


async def test_by_default_a_body_whose_state_cannot_be_saved_still_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # run keeps its state in memory and says so; only once must keep it on disk.
    recorder = Recorder(st.StateStore(unwritable(tmp_path)), st.State(), writable=True)
    await recorder.started(REQUEST)
    assert recorder.state.pending is not None


async def test_a_read_only_recorder_never_refuses_a_body(tmp_path: Path) -> None:
    recorder = Recorder(st.StateStore(unwritable(tmp_path)), st.State(), writable=False)
    await recorder.started(REQUEST, must_keep=True)
    assert recorder.state.pending is not None


def test_failing_since_nothing_recorded_is_the_epoch() -> None:
    assert failing_since(st.State()) == 0.0


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5.0, "0 s"),
        (0.9, "0 s"),
        (119.9, "119 s"),
        (120.0, "2 min"),
        (7199.0, "119 min"),
        (7200.0, "2 h 0 min"),
        (3 * 3600 + 59 * 60, "3 h 59 min"),  # 3600 s / 61 would read 58 here
        (50 * 3600 + 61, "50 h 1 min"),
    ],
)
def test_how_long_a_shop_was_failing_reads_in_the_unit_that_fits(
    seconds: float, shown: str
) -> None:
    assert _duration(seconds) == shown


class CountingStore(st.StateStore):
    """The real store, counting the files it writes."""

    writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


async def test_a_stop_writes_no_state_that_its_file_already_holds(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    recorder = Recorder(store, st.State(), writable=True)
    await recorder.started(REQUEST)
    await recorder.sent(Delivered(200, 1, 0.1), NOW, NOW + 3600)
    assert store.writes == 2
    recorder.save()
    assert store.writes == 2
    assert on_disk(tmp_path) == recorder.state


async def test_a_body_that_must_be_kept_is_not_written_again_at_the_stop(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    recorder = Recorder(store, st.State(), writable=True)
    await recorder.started(REQUEST, must_keep=True)
    recorder.save()
    assert store.writes == 1


async def test_a_state_read_in_todays_version_and_unchanged_is_not_written_at_the_stop(
    tmp_path: Path,
) -> None:
    await Recorder(st.StateStore(tmp_path), st.State(), writable=True).sent(
        Delivered(200, 1, 0.1), NOW, NOW + 3600
    )
    store = CountingStore(tmp_path)
    recorder = Recorder(store, store.load(NOW), writable=True)
    assert store.held is None  # the recorder's now: the store keeps no second week
    recorder.save()
    assert store.writes == 0
    recorder.keep_identity(st.Identity("acme_shop_bot", NOW, FINGERPRINT))
    recorder.save()
    assert store.writes == 1
    recorder.save()
    assert store.writes == 1


def test_a_state_read_in_an_older_version_is_written_in_todays_at_the_stop(
    tmp_path: Path,
) -> None:
    (tmp_path / st.STATE_FILE).write_text('{"version": 1, "next_due": "2027-01-15T09:00:00Z"}')
    store = CountingStore(tmp_path)
    recorder = Recorder(store, store.load(NOW), writable=True)
    recorder.save()
    assert store.writes == 1
    assert json.loads((tmp_path / st.STATE_FILE).read_text())["version"] == st.STATE_VERSION


def test_a_state_that_could_not_be_written_is_tried_again_at_the_stop(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the state folder should be
    recorder = Recorder(st.StateStore(blocked), st.State(), writable=True)
    recorder.save()
    blocked.unlink()
    recorder.save()
    assert on_disk(blocked) == recorder.state
    store = CountingStore(blocked)
    Recorder(store, store.load(NOW), writable=True).save()
    assert store.writes == 0
