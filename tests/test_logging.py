"""Log lines as an operator reads them: one JSON object per line, journald priorities
when stderr is the journal, the shop named, secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

from pulsed import _logging
from pulsed._redact import Redactor

log = logging.getLogger("pulsed.test")
OWN_REDACT = Redactor()


@pytest.fixture
def stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    # A redactor of its own: other tests register their secrets in the shared one, and
    # a short secret would redact parts of these lines.
    monkeypatch.setattr(_logging, "REDACT", OWN_REDACT)
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as out:
        yield out
    logging.getLogger("pulsed").handlers.clear()


def journal_of(stream: TextIO) -> str:
    st = os.fstat(stream.fileno())
    return f"{st.st_dev}:{st.st_ino}"


def lines(stream: TextIO) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def records(stream: TextIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream)]


@pytest.mark.parametrize(
    ("levelno", "priority"),
    [(5, 7), (10, 7), (19, 7), (20, 6), (25, 6), (30, 4), (35, 4), (40, 3), (50, 3)],
)
def test_a_level_has_the_syslog_priority_of_the_nearest_level_below(
    levelno: int, priority: int
) -> None:
    assert _logging.priority(levelno) == priority


def test_a_line_is_json_with_time_level_message_and_event(stream: TextIO) -> None:
    _logging.setup("info", {}, stream)
    log.warning("disk %s", "full", extra={"event": "disk.full", "free": 0})
    (record,) = records(stream)
    assert record["message"] == "disk full"
    assert (record["level"], record["event"], record["free"]) == ("warning", "disk.full", 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert "shop" not in record


def test_a_line_without_an_event_is_a_plain_log_event(stream: TextIO) -> None:
    _logging.setup("info", {}, stream)
    log.info("hello")
    assert records(stream)[0]["event"] == "log"


def test_a_line_logged_for_a_shop_names_it(stream: TextIO) -> None:
    _logging.setup("info", {}, stream)
    token = _logging.SHOP.set("alpha")
    try:
        log.info("sent")
    finally:
        _logging.SHOP.reset(token)
    assert records(stream)[0]["shop"] == "alpha"


def test_text_outside_ascii_is_written_as_itself(stream: TextIO) -> None:
    _logging.setup("info", {}, stream)
    log.info("магазин")
    assert "магазин" in lines(stream)[0]


def test_a_registered_secret_is_redacted_from_the_finished_line(stream: TextIO) -> None:
    OWN_REDACT.register(["logging-test-secret-4711"])
    _logging.setup("info", {}, stream)
    log.info("got %s", "x", extra={"detail": "key=logging-test-secret-4711"})
    assert "logging-test-secret-4711" not in lines(stream)[0]
    assert records(stream)[0]["detail"] == "key=[redacted]"


def test_on_the_journal_each_line_starts_with_its_priority(stream: TextIO) -> None:
    _logging.setup("debug", {"JOURNAL_STREAM": journal_of(stream)}, stream)
    log.debug("a")
    log.error("b")
    got = lines(stream)
    assert [line[:3] for line in got] == ["<7>", "<3>"]
    assert json.loads(got[1][3:])["message"] == "b"


@pytest.mark.parametrize("value", ["", "1:2", "garbage", "12"])
def test_a_journal_stream_naming_another_file_adds_no_priority(stream: TextIO, value: str) -> None:
    _logging.setup("info", {"JOURNAL_STREAM": value}, stream)
    log.info("a")
    assert lines(stream)[0].startswith("{")


def test_by_default_lines_go_to_stderr_and_the_journal_is_read_from_the_environment(
    stream: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("JOURNAL_STREAM", journal_of(stream))
    _logging.setup()
    log.info("to stderr")
    log.debug("below the default level")
    assert lines(stream) == [lines(stream)[0]]
    assert lines(stream)[0].startswith("<6>{")


def test_setting_up_twice_still_writes_each_line_once(stream: TextIO) -> None:
    _logging.setup("info", {}, stream)
    _logging.setup("info", {}, stream)
    log.info("once")
    assert len(lines(stream)) == 1


def test_lines_do_not_reach_the_root_logger(
    stream: TextIO, caplog: pytest.LogCaptureFixture
) -> None:
    _logging.setup("info", {}, stream)
    log.info("only ours")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("debug", ["d", "i", "w", "e"]),
        ("warning", ["w", "e"]),
        ("error", ["e"]),
        ("loud", ["i", "w", "e"]),
    ],
)
def test_the_level_chooses_the_lines_and_an_unknown_one_is_info(
    stream: TextIO, level: str, shown: list[str]
) -> None:
    _logging.setup(level, {}, stream)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [r["message"] for r in records(stream)] == shown


@pytest.mark.parametrize(("level", "shown"), [("error", ["e"]), ("nonsense", ["i", "e"])])
def test_the_level_can_be_changed_after_setup(stream: TextIO, level: str, shown: list[str]) -> None:
    _logging.setup("debug", {}, stream)
    _logging.set_level(level)
    log.info("i")
    log.error("e")
    assert [r["message"] for r in records(stream)] == shown
