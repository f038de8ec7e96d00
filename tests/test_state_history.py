"""The delivery history: how a state keeps it, how state.json writes it (its packed
entries, in base64), and how the files of earlier versions are read into it (contract
§5, §11)."""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as hyp

from pulsed import _state as st
from pulsed._errors import REASONS, StateError

NOW = 1_800_000_000.0
DATA = Path(__file__).resolve().parent / "data"
COLUMNS = ["at_us", "outcome", "status", "attempts", "elapsed_ms", "reason"]
ROW: list[Any] = [1_800_000_000_000_000, "sent", 200, 1, 312, None]


def us(text: str) -> int:
    """An RFC 3339 time in microseconds from the epoch, worked out without pulsed."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def sent(at: float, status: int = 200, attempts: int = 1, elapsed_ms: int = 100) -> st.Delivery:
    return st.Delivery(at, "sent", status, attempts, elapsed_ms)


def failed(at: float, reason: str = "timeout", status: int | None = None) -> st.Delivery:
    return st.Delivery(at, "failed", status, 3, 2000, reason)  # type: ignore[arg-type]


# --- in memory ---------------------------------------------------------------------------


def test_an_empty_history_has_nothing_in_it() -> None:
    assert (len(st.History()), list(st.History()), bool(st.History())) == (0, [], False)
    assert st.History.of([]) == st.History() == st.State().history


def test_a_history_gives_back_each_delivery_to_the_microsecond() -> None:
    history = st.History.of(
        [sent(NOW + 0.1234564, 204, 2, 1999), failed(NOW + 0.1234566, "status", 503)]
    )
    assert list(history) == [
        st.Delivery(1_800_000_000_123_456 / 1e6, "sent", 204, 2, 1999),
        st.Delivery(1_800_000_000_123_457 / 1e6, "failed", 503, 3, 2000, "status"),
    ]
    assert bool(history) and len(history) == 2


@pytest.mark.parametrize("reason", REASONS)
def test_every_reason_and_outcome_is_kept(reason: str) -> None:
    deliveries = [failed(NOW, reason), sent(NOW + 1), st.Delivery(NOW + 2, "failed", 500, 1, 5)]
    assert list(st.History.of(deliveries)) == deliveries


def test_a_history_keeps_the_last_168_and_each_takes_16_bytes() -> None:
    history = st.History.of(sent(NOW + n) for n in range(200))
    assert len(history) == st.HISTORY_LIMIT == 168
    assert (history[0].at, history[-1].at) == (NOW + 32, NOW + 199)
    assert len(history.packed) == 168 * 16  # a week in 2.7 KiB, not 22 as Delivery objects
    assert history.added(sent(NOW + 200))[0].at == NOW + 33


def test_a_history_is_read_from_either_end() -> None:
    history = st.History.of(sent(NOW + n, 200 + n) for n in range(3))
    assert [history[i].status for i in (0, 1, 2, -1, -2, -3)] == [200, 201, 202, 202, 201, 200]
    assert [d.status for d in reversed(history)] == [202, 201, 200]
    for index in (3, -4):
        with pytest.raises(IndexError, match=r"^history index out of range$"):
            history[index]
    with pytest.raises(IndexError):
        st.History()[0]
    with pytest.raises(IndexError):
        st.History()[-1]


def test_since_counts_the_deliveries_from_a_moment_on_and_those_sent() -> None:
    history = st.History.of(
        [sent(NOW - 10), failed(NOW - 5), sent(NOW), failed(NOW + 0.000001, "status", 503)]
    )
    assert history.since(NOW - 10) == (4, 2)
    assert history.since(NOW - 5) == (3, 1)  # a delivery at the moment itself counts
    assert history.since(NOW - 4.999999) == (2, 1)
    assert history.since(NOW + 0.000001) == (1, 0)
    assert history.since(NOW + 1) == (0, 0)


def test_since_counts_times_before_1970_and_a_send_that_names_a_reason() -> None:
    history = st.History.of([sent(-10.0), st.Delivery(NOW, "sent", 200, 1, 5, "tls")])
    assert history.since(0) == (1, 1)  # a time before the epoch is no huge one
    assert history.since(-20) == (2, 2)  # what matters is the outcome, not the reason


def test_since_takes_the_moment_to_the_microsecond() -> None:
    history = st.History.of([sent(NOW - 5)])
    assert history.since(NOW - 5 + 0.0000004) == (1, 1)
    assert history.since(NOW - 5 + 0.0000006) == (0, 0)
    assert st.History().since(0) == (0, 0)


def test_a_clock_that_went_back_leaves_the_history_in_its_order_and_counted_right() -> None:
    history = st.History.of([failed(NOW), sent(NOW - 3600), sent(NOW + 1), failed(NOW - 7200)])
    assert [d.at for d in history] == [NOW, NOW - 3600, NOW + 1, NOW - 7200]
    assert history.since(NOW - 1) == (2, 1)
    assert history.since(NOW - 3600) == (3, 2)
    assert history.since(NOW - 7200) == (4, 2)
    assert history.since(NOW + 2) == (0, 0)


def test_what_an_entry_cannot_hold_is_kept_as_its_bound() -> None:
    history = st.History.of(
        [
            st.Delivery(NOW, "sent", 1000, 256, 2**32),
            st.Delivery(NOW, "failed", 99, -1, -5, "tls"),
            st.Delivery(NOW, "sent", 100, 255, 2**32 - 1),
            st.Delivery(NOW, "sent", 999, 0, 0),
        ]
    )
    assert [(d.status, d.attempts, d.elapsed_ms) for d in history] == [
        (None, 255, 2**32 - 1),
        (None, 0, 0),
        (100, 255, 2**32 - 1),
        (999, 0, 0),
    ]


def test_the_rows_are_what_the_file_holds() -> None:
    history = st.History.of([sent(NOW + 0.5, 202, 2, 457), failed(NOW + 1, "connect")])
    assert history.rows() == [
        (1_800_000_000_500_000, "sent", 202, 2, 457, None),
        (1_800_000_001_000_000, "failed", None, 3, 2000, "connect"),
    ]


# --- in the file -------------------------------------------------------------------------


def entry(at_us: int, kind: int, status: int, attempts: int, elapsed_ms: int) -> bytes:
    """One entry as docs/status.md lays it out, made without pulsed's struct."""
    return b"".join(
        value.to_bytes(size, "little", signed=size == 8)
        for value, size in ((at_us, 8), (kind, 1), (status, 2), (attempts, 1), (elapsed_ms, 4))
    )


def test_the_file_holds_the_history_as_its_entries_in_base64(tmp_path: Path) -> None:
    store = st.StateStore(tmp_path)
    state = st.State(history=st.History.of([sent(NOW - 3600.25, 204, 2, 457), failed(NOW)]))
    store.save(state)
    text = store.path.read_text()
    timeout = 1 | 2 << 1  # failed, for the second reason
    packed = entry(1_799_996_399_750_000, 0, 204, 2, 457) + entry(
        1_800_000_000_000_000, timeout, 0, 3, 2000
    )
    written = base64.b64encode(packed).decode()
    assert f'"history":{{"entries":"{written}","layout":"<qBHBI"}}' in text
    assert text == st.encoded(state).decode()
    assert json.loads(text)["version"] == st.STATE_VERSION == 4
    assert store.read() == state


def test_each_reason_has_the_number_the_files_hold() -> None:
    """The numbers are in every version-4 file: a new reason goes at the end."""
    numbered = ["connect", "timeout", "network", "tls", "status", "redirect", "protocol"]
    assert list(REASONS) == [*numbered, "internal"]
    for number, reason in enumerate(REASONS, start=1):
        history = st.History.of([st.Delivery(0, "sent", None, 0, 0, reason)])
        assert history.packed == entry(0, number << 1, 0, 0, 0)


def test_the_first_and_last_times_are_those_rfc_3339_writes() -> None:
    first, last = us("0001-01-01T00:00:00Z"), us("9999-12-31T23:59:59.999999Z")
    assert (first, last + 1) == (st.FIRST_US, st.END_US)


def test_the_bounds_of_every_column_are_read_and_written_back_exactly(tmp_path: Path) -> None:
    rows = [
        [st.FIRST_US, "sent", 100, 0, 0, None],
        [st.END_US - 1, "failed", 999, 255, 2**32 - 1, "internal"],
        [0, "failed", None, 3, 2000, None],
        [1_800_000_000_000_001, "sent", 200, 1, 1, "tls"],  # as version 2 did, not refused
        *([1_800_000_000_000_000 + n, "failed", 503, 1, 1, r] for n, r in enumerate(REASONS)),
    ]
    doc = {"version": 3, "history": {"columns": COLUMNS, "rows": rows}}
    (tmp_path / "state.json").write_text(json.dumps(doc))
    store = st.StateStore(tmp_path)
    state = store.read()
    assert state is not None
    assert state.history.rows() == [tuple(row) for row in rows]  # type: ignore[arg-type]
    store.save(state)
    assert json.loads(store.path.read_text())["version"] == 4
    again = st.StateStore(tmp_path).read()
    assert again is not None and again.history.rows() == [tuple(row) for row in rows]  # type: ignore[arg-type]


def test_a_longer_list_of_rows_keeps_its_newest() -> None:
    rows = [[1_800_000_000_000_000 + n, "sent", 200, 1, n, None] for n in range(170)]
    state = st.from_json({"version": 3, "history": {"columns": COLUMNS, "rows": rows}})
    assert [d.elapsed_ms for d in state.history] == list(range(2, 170))


def test_a_version_3_document_without_a_history_has_none() -> None:
    assert st.from_json({"version": 3}) == st.State()
    assert st.from_json({"version": 3, "history": None}).history == st.History()


def test_a_version_2_state_is_carried_forward_whole(tmp_path: Path) -> None:
    """A file of the version-2 writer, a week of deliveries and a body in flight: every
    field and every delivery survives to the microsecond, and the next save is version 4."""
    raw = json.loads((DATA / "state-v2.json").read_text())
    assert raw["version"] == 2 and len(raw["history"]) == 168
    assert {e["reason"] for e in raw["history"]} == {None, *REASONS}
    (tmp_path / "state.json").write_bytes((DATA / "state-v2.json").read_bytes())
    store = st.StateStore(tmp_path)
    state = store.load(NOW)
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert state.pending is not None and state.identity is not None
    assert state.counters == st.Counters(**raw["counters"])
    written = [
        (us(e["at"]), e["outcome"], e["status"], e["attempts"], e["elapsed_ms"], e["reason"])
        for e in raw["history"]
    ]
    assert state.history.rows() == written
    assert [st._rfc3339_us(d.at) for d in state.history] == [e["at"] for e in raw["history"]]

    store.save(state)
    doc = json.loads(store.path.read_text())
    assert doc["version"] == 4
    assert doc["history"]["entries"] == base64.b64encode(state.history.packed).decode()
    # Every other field is written exactly as version 2 wrote it.
    assert {k: v for k, v in doc.items() if k not in ("version", "history")} == {
        k: v for k, v in raw.items() if k not in ("version", "history")
    }
    assert store.read() == state


def test_a_version_3_state_is_carried_forward_whole(tmp_path: Path) -> None:
    """The version-3 writer's file (tests/data/state-v3.json: state-v2.json as it
    wrote it back): every field and every row survives, and the next save is version 4."""
    raw = json.loads((DATA / "state-v3.json").read_text())
    assert raw["version"] == 3 and len(raw["history"]["rows"]) == 168
    (tmp_path / "state.json").write_bytes((DATA / "state-v3.json").read_bytes())
    store = st.StateStore(tmp_path)
    state = store.load(NOW)
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert store.held is None  # not today's version: the next save writes it
    assert state.history.rows() == [tuple(row) for row in raw["history"]["rows"]]

    store.save(state)
    doc = json.loads(store.path.read_text())
    assert doc["version"] == 4
    assert {k: v for k, v in doc.items() if k not in ("version", "history")} == {
        k: v for k, v in raw.items() if k not in ("version", "history")
    }
    again = st.StateStore(tmp_path)
    assert again.read() == state and again.held == state


def moved_aside(tmp_path: Path, doc: object, caplog: pytest.LogCaptureFixture) -> str:
    """Start on a state file holding ``doc``: it reads as no state and is moved aside,
    its bytes kept, with one ``state.corrupt`` warning, whose error is returned."""
    content = json.dumps(doc).encode()
    store = st.StateStore(tmp_path)
    store.path.write_bytes(content)
    assert store.load(NOW) == st.State()
    (aside,) = tmp_path.glob("state.json.corrupt-*")
    assert aside.read_bytes() == content
    (record,) = caplog.records
    assert record.event == "state.corrupt"  # type: ignore[attr-defined]
    return str(record.error)  # type: ignore[attr-defined]


def packed(*entries: bytes, layout: object = "<qBHBI") -> dict[str, Any]:
    return {"entries": base64.b64encode(b"".join(entries)).decode(), "layout": layout}


GOOD = entry(1_800_000_000_000_000, 0, 200, 1, 312)

MALFORMED_PACKED = [
    ([], "history is not an object"),
    ({"entries": ""}, "history.layout is not <qBHBI"),
    (packed(GOOD, layout=">qBHBI"), "history.layout is not <qBHBI"),
    ({"layout": "<qBHBI"}, "history.entries is not a string"),
    ({"layout": "<qBHBI", "entries": [1]}, "history.entries is not a string"),
    ({"layout": "<qBHBI", "entries": "AAAA*AAA"}, "history.entries is not base64"),
    ({"layout": "<qBHBI", "entries": "AAA"}, "history.entries is not base64"),
    # Whole entries once the character that is not base64's is dropped: still refused.
    ({**packed(GOOD), "entries": "*" + packed(GOOD)["entries"]}, "history.entries is not base64"),
    ({"layout": "<qBHBI", "entries": "AAAAé"}, "history.entries is not base64"),
    (packed(GOOD[:-1]), "history.entries is not a whole number of 16-byte entries"),
    (packed(GOOD, b"\0"), "history.entries is not a whole number of 16-byte entries"),
    (packed(entry(st.FIRST_US - 1, 0, 200, 1, 1)), "history.entries holds a time out of range"),
    (packed(GOOD, entry(st.END_US, 0, 200, 1, 1)), "history.entries holds a time out of range"),
    (packed(entry(0, 2 * 9, 200, 1, 1)), "history.entries holds a reason pulsed does not know"),
    (packed(GOOD, entry(0, 255, 0, 1, 1)), "history.entries holds a reason pulsed does not know"),
    (packed(entry(0, 0, 99, 1, 1)), "history.entries holds a status that is not HTTP's"),
    (packed(GOOD, entry(0, 1, 1000, 1, 1)), "history.entries holds a status that is not HTTP's"),
    (packed(entry(0, 0, 0xFFFF, 1, 1), GOOD), "history.entries holds a status that is not HTTP's"),
]


@pytest.mark.parametrize(("history", "problem"), MALFORMED_PACKED)
def test_malformed_entries_are_corrupt_and_moved_aside_with_a_warning(
    tmp_path: Path, history: object, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = moved_aside(tmp_path, {"version": 4, "history": history}, caplog)
    assert error == f"{tmp_path / 'state.json'}: cannot be parsed ({problem})"


def test_the_bounds_of_every_field_of_an_entry_are_read() -> None:
    entries = [
        entry(st.FIRST_US, 0, 100, 0, 0),
        entry(st.END_US - 1, 2 * 9 - 1, 999, 255, 2**32 - 1),  # failed, the last reason
        entry(-1, 1, 0, 3, 2000),
    ]
    history = st.from_json({"version": 4, "history": packed(*entries)}).history
    assert history.rows() == [
        (st.FIRST_US, "sent", 100, 0, 0, None),
        (st.END_US - 1, "failed", 999, 255, 2**32 - 1, "internal"),
        (-1, "failed", None, 3, 2000, None),
    ]


def test_longer_entries_keep_their_newest_and_none_are_none() -> None:
    entries = [entry(1_800_000_000_000_000 + n, 0, 200, 1, n) for n in range(170)]
    state = st.from_json({"version": 4, "history": packed(*entries)})
    assert [d.elapsed_ms for d in state.history] == list(range(2, 170))
    assert st.from_json({"version": 4, "history": packed()}).history == st.History()
    assert st.from_json({"version": 4, "history": None}).history == st.History()


def rows(*entries: object) -> dict[str, Any]:
    return {"columns": COLUMNS, "rows": list(entries)}


def row(**changed: object) -> list[Any]:
    fields = dict(zip(COLUMNS, ROW, strict=True))
    fields.update(changed)
    return list(fields.values())


MALFORMED = [
    ([], "history is not an object"),
    ({"rows": []}, "history.columns are not at_us, outcome, status, attempts, elapsed_ms, reason"),
    ({"columns": COLUMNS[:-1], "rows": []}, "history.columns are not at_us, outcome, status, "),
    ({"columns": COLUMNS}, "history.rows is not a list"),
    ({"columns": COLUMNS, "rows": {}}, "history.rows is not a list"),
    (rows(5), "a history row is not a list of 6 values"),
    (rows(ROW[:-1]), "a history row is not a list of 6 values"),
    (rows([*ROW, None]), "a history row is not a list of 6 values"),
    (rows(row(at_us="1800000000000000")), "history.at_us is not a time in microseconds"),
    (rows(row(at_us=True)), "history.at_us is not a time in microseconds"),
    (rows(row(at_us=1.8e15)), "history.at_us is not a time in microseconds"),
    (rows(row(at_us=None)), "history.at_us is not a time in microseconds"),
    (rows(row(at_us=st.FIRST_US - 1)), "history.at_us is not a time in microseconds"),
    (rows(row(at_us=st.END_US)), "history.at_us is not a time in microseconds"),
    (rows(row(outcome="lost")), "history.outcome is neither sent nor failed"),
    (rows(row(outcome=None)), "history.outcome is neither sent nor failed"),
    (rows(row(status="200")), "history.status is not a number"),
    (rows(row(status=True)), "history.status is not a number"),
    (rows(row(status=99)), "history.status is not an HTTP status"),
    (rows(row(status=1000)), "history.status is not an HTTP status"),
    (rows(row(attempts=-1)), "history.attempts is not a count"),
    (rows(row(attempts=None)), "history.attempts is not a count"),
    (rows(row(attempts=256)), "history.attempts is over 255"),
    (rows(row(elapsed_ms=1.5)), "history.elapsed_ms is not a count"),
    (rows(row(elapsed_ms=2**32)), "history.elapsed_ms is over 4294967295"),
    (rows(row(reason=5)), "reason is not a string"),
    (rows(row(outcome="failed", reason="timeuot")), "history.reason is not a failure reason"),
    (rows(ROW, row(status=1000)), "history.status is not an HTTP status"),  # after a good one
]


@pytest.mark.parametrize(("history", "problem"), MALFORMED)
def test_a_malformed_history_is_corrupt_and_moved_aside_with_a_warning(
    tmp_path: Path, history: object, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = moved_aside(tmp_path, {"version": 3, "history": history}, caplog)
    assert error.startswith(f"{tmp_path / 'state.json'}: cannot be parsed ({problem}")
    assert error.endswith(")")


SENT = {"at": "2027-01-15T08:00:00Z", "outcome": "sent", "status": 200, "attempts": 1}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({**SENT, "status": 99}, "history.status is not an HTTP status"),
        ({**SENT, "status": 1000}, "history.status is not an HTTP status"),
        ({**SENT, "attempts": 256}, "history.attempts is over 255"),
        ({**SENT, "elapsed_ms": 2**32}, "history.elapsed_ms is over 4294967295"),
        ({**SENT, "at": "9999-12-31T23:00:00-02:00"}, "history.at is out of range"),
        ({**SENT, "at": "0001-01-01T00:00:00+14:00"}, "history.at is out of range"),
        ({**SENT, "at": "9999-12-31T23:59:00-00:01"}, "history.at is out of range"),  # year 10000
        ({**SENT, "at": 5}, "history.at is not a time string"),
        ({**SENT, "at": "yesterday"}, "history.at is not an RFC 3339 time"),
        ({**SENT, "at": "2027-01-15T08:00:00"}, "history.at has no time zone"),
        ({**SENT, "outcome": None}, "history.outcome is neither sent nor failed"),
        ({"at": "2027-01-15T08:00:00Z"}, "a history entry lacks its time or outcome"),
        ({**SENT, "at": None}, "a history entry lacks its time or outcome"),
    ],
)
def test_a_version_2_entry_that_version_3_cannot_hold_is_corrupt(
    entry: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=f"^{problem}$"):
        st.from_json({"version": 2, "history": [SENT, entry]})


def test_a_version_2_entry_is_read_to_the_microsecond_whatever_the_year() -> None:
    first, last = (
        {**SENT, "at": "0001-01-01T00:00:00Z"},
        {**SENT, "at": "9999-12-31T23:59:59.999999Z"},
    )
    state = st.from_json({"version": 2, "history": [first, last]})
    assert [row[0] for row in state.history.rows()] == [st.FIRST_US, st.END_US - 1]


# --- the save: one write, the folder made only when missing ---------------------------------


def replaces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The temp names renamed over a file from now on."""
    seen: list[str] = []
    real = os.replace

    def spy(src: Any, dst: Any, **where: Any) -> None:
        seen.append(str(src))
        real(src, dst, **where)

    monkeypatch.setattr(os, "replace", spy)
    return seen


def test_a_save_into_a_missing_folder_makes_it_and_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = replaces(monkeypatch)
    store = st.StateStore(tmp_path / "a" / "b")
    store.write(st.encoded(st.State(last_success=NOW)))
    assert (len(seen), store.read()) == (1, st.State(last_success=NOW))
    assert oct((tmp_path / "a" / "b").stat().st_mode & 0o777) == oct(0o700)
    assert oct(store.path.stat().st_mode & 0o777) == oct(0o600)


def test_a_save_that_fails_for_another_reason_is_tried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = st.StateStore(tmp_path)
    store.path.mkdir()  # the rename over it fails, the folder is there
    made: list[Path] = []
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(StateError, match="Is a directory"):
        store.write(b"{}\n")
    assert made == []


def test_the_rows_shown_in_docs_status_are_what_pulsed_writes() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "status.md").read_text("utf-8")
    (example,) = re.findall(r'```\n("history": .*?)```', page, re.DOTALL)
    deliveries = [
        st.Delivery(1_800_000_000.123456, "sent", 200, 1, 312),
        st.Delivery(1_800_003_600.25, "failed", None, 3, 2000, "timeout"),
    ]
    written = st.to_json(st.State(history=st.History.of(deliveries)))["history"]
    assert json.loads("{" + example + "}")["history"] == json.loads(json.dumps(written))


def test_a_write_that_fails_in_the_folder_it_made_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    # In this process, so the code under test is the code measured: a file size limit
    # turns the write into EFBIG (SIGXFSZ ignored, as root too), then both are restored.
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, limit[1]))
    try:
        with pytest.raises(StateError) as caught:
            st.StateStore(folder).write(st.encoded(st.State()))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    path = folder / "state.json"
    assert (str(caught.value), caught.value.why) == (
        f"{path}: cannot be written (File too large)",
        "File too large",
    )
    assert folder.is_dir() and list(folder.iterdir()) == []


# --- the rows read a column at a time ------------------------------------------------------

# What a hand or another program may put in a row: each column's bounds and one past
# them, the other columns' values, and what JSON has that pulsed never writes there.
EDGES = [
    *(st.FIRST_US - 1, st.FIRST_US, st.END_US - 1, st.END_US),
    *(-1, 0, 1, st.MOST_ATTEMPTS, st.MOST_ATTEMPTS + 1),
    *(st.MOST_ELAPSED_MS, st.MOST_ELAPSED_MS + 1),
    *(st.FIRST_STATUS - 1, st.FIRST_STATUS, st.LAST_STATUS, st.LAST_STATUS + 1),
    *(None, True, False, 200.0, 1.5, "200", "sent", "failed", "lost", [], {}, [1], {"a": 1}),
    *REASONS,
]
VALUES = hyp.one_of(hyp.sampled_from(EDGES), hyp.integers(st.FIRST_US, st.END_US))
GOOD_ROWS = hyp.tuples(
    hyp.integers(st.FIRST_US, st.END_US - 1),
    hyp.sampled_from(["sent", "failed"]),
    hyp.one_of(hyp.none(), hyp.integers(st.FIRST_STATUS, st.LAST_STATUS)),
    hyp.integers(0, st.MOST_ATTEMPTS),
    hyp.integers(0, st.MOST_ELAPSED_MS),
    hyp.sampled_from([None, *REASONS]),
).map(list)
ROW_VALUES = hyp.one_of(VALUES, hyp.lists(VALUES, min_size=5, max_size=7))


def changed(rows: list[list[Any]], change: tuple[int, int, Any, Any]) -> list[Any]:
    """``rows`` with one value, or one whole row, changed to something else."""
    at, column, value, row = change
    rows = [list(r) for r in rows]
    if column < len(COLUMNS):
        rows[at % len(rows)][column] = value
    else:
        rows[at % len(rows)] = row
    return rows


ANY_ROWS = hyp.one_of(
    hyp.lists(GOOD_ROWS, max_size=6),
    hyp.tuples(
        hyp.lists(GOOD_ROWS, min_size=1, max_size=6),
        hyp.tuples(hyp.integers(0, 5), hyp.integers(0, len(COLUMNS)), VALUES, ROW_VALUES),
    ).map(lambda pair: changed(*pair)),
)


def read_one_at_a_time(rows: list[Any]) -> st.History | None:
    try:
        return st._kept(rows, st._row)
    except ValueError:
        return None


@settings(max_examples=400, deadline=None)
@given(ANY_ROWS)
@example([[*ROW[:5], "lost"]])
@example([[*ROW[:5], []]])
@example([ROW, [ROW[0], {}, *ROW[2:]]])
def test_the_rows_read_a_column_at_a_time_are_those_read_one_at_a_time(rows: list[Any]) -> None:
    assert st._columns(rows) == read_one_at_a_time(rows)


@settings(max_examples=200, deadline=None)
@given(hyp.lists(GOOD_ROWS, max_size=8))
# A week that failed for every reason as well as sent: a column's values are then all
# the values it may hold, which must still read a column at a time.
@example([ROW, *([ROW[0], "failed", None, 3, 1958, reason] for reason in REASONS)])
def test_every_history_pulsed_writes_is_read_a_column_at_a_time(rows: list[Any]) -> None:
    history = st._columns(rows)
    assert history is not None and history == read_one_at_a_time(rows)
    assert st._columns(json.loads(json.dumps(history.rows()))) == history


# --- the entries checked in C ----------------------------------------------------------------

TIME_EDGES = [st.FIRST_US - 1, st.FIRST_US, st.END_US - 1, st.END_US]
ENTRIES = hyp.lists(
    hyp.tuples(
        hyp.one_of(hyp.sampled_from(TIME_EDGES), hyp.integers(-(2**63), 2**63 - 1)),
        hyp.one_of(hyp.sampled_from([0, 1, 2 * 9 - 1, 2 * 9]), hyp.integers(0, 255)),
        hyp.one_of(hyp.sampled_from([0, 99, 100, 999, 1000]), hyp.integers(0, 2**16 - 1)),
        hyp.integers(0, 255),
        hyp.integers(0, 2**32 - 1),
    ),
    max_size=6,
)


def read_each(fields: list[tuple[int, int, int, int, int]]) -> st.History | None:
    """What a history of these entries is, each one checked by itself; None if one is bad."""
    for at_us, kind, status, _, _ in fields:
        if not st.FIRST_US <= at_us < st.END_US or kind >= 2 * 9:
            return None
        if status != 0 and not 100 <= status <= 999:
            return None
    return st.History(b"".join(entry(*f) for f in fields))


@settings(max_examples=400, deadline=None)
@given(ENTRIES)
@example([(0, 0, 0, 0, 0), (0, 0, 1000, 0, 0)])  # a bad status after a good one
@example([(st.END_US, 0, 200, 1, 1), (0, 0, 200, 1, 1)])
def test_entries_checked_at_once_are_those_checked_one_at_a_time(
    fields: list[tuple[int, int, int, int, int]],
) -> None:
    doc = packed(*(entry(*f) for f in fields))
    try:
        history: st.History | None = st._entries(doc)
    except ValueError:
        history = None
    assert history == read_each(fields)
    if history is not None:
        assert st._entries(st.to_json(st.State(history=history))["history"]) == history


def test_the_command_in_docs_status_reads_a_history_as_rows(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "status.md").read_text("utf-8")
    (command,) = re.findall(r"```\npython3 -c '(.*?)' state\.json\n```", page, re.DOTALL)
    first, second = re.findall(r"prints `(.*?)` and `(.*?)` for the\nexample", page)[0]
    deliveries = [
        st.Delivery(1_800_000_000.123456, "sent", 200, 1, 312),
        st.Delivery(1_800_003_600.25, "failed", None, 3, 2000, "timeout"),
    ]
    st.StateStore(tmp_path).save(st.State(history=st.History.of(deliveries)))
    shown = subprocess.run(
        [sys.executable, "-c", command, str(tmp_path / "state.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.splitlines() == [first, second]
