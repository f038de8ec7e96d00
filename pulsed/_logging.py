"""Log lines: one JSON object per line on stderr, journald priorities, no secrets.

Every record carries ``time`` (UTC), ``level``, ``message`` and a dotted
``event``; context travels in ``extra``. When ``$JOURNAL_STREAM`` names the same
file as fd 2, each line starts with the syslog priority (``<4>`` …) so
``journalctl -p warning`` filters correctly. The :class:`Redactor` is applied to
the finished line, after every field is rendered, so no path through logging can
print a registered secret.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class Redactor:
    """Replaces every registered secret, raw or JSON-escaped, in a string."""

    def __init__(self) -> None:
        self._needles: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        needles = set(self._needles)
        for secret in secrets:
            if secret:
                needles.add(secret)
                needles.add(json.dumps(secret)[1:-1])
                needles.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        # Longest first, so a secret that contains another is replaced whole.
        self._needles = tuple(sorted(needles, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text


REDACT = Redactor()


def priority(levelno: int) -> int:
    for threshold in (logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _PRIORITY[threshold]
    return _PRIORITY[logging.DEBUG]


class _Formatter(JsonFormatter):
    def __init__(self, journal: bool, redact: Redactor) -> None:
        super().__init__("%(message)s", json_ensure_ascii=False)
        self._journal = journal
        self._redact = redact

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        )
        log_data["level"] = record.levelname.lower()
        log_data["event"] = getattr(record, "event", "log")
        super().add_fields(log_data, record, message_dict)

    def format(self, record: logging.LogRecord) -> str:
        line = self._redact(super().format(record))
        return f"<{priority(record.levelno)}>{line}" if self._journal else line


def stderr_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """Whether ``$JOURNAL_STREAM`` (``device:inode``) names the file behind ``stream``."""
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def setup(
    level: str = "info", environ: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> None:
    """Send the ``pulsed`` logger tree to stderr as JSON lines; idempotent."""
    out = stream if stream is not None else sys.stderr
    env = os.environ if environ is None else environ
    root = logging.getLogger("pulsed")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter(stderr_is_journal(env, out), REDACT))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    root.propagate = False


def set_level(level: str) -> None:
    logging.getLogger("pulsed").setLevel(LEVELS.get(level, logging.INFO))
