"""Log lines: one JSON object per line on stderr, journald priorities, no secrets.

Every record carries ``time`` (UTC), ``level``, ``message`` and a dotted
``event``; context travels in ``extra``, and a line logged while a shop's work runs
carries ``shop`` (from :data:`SHOP`). When ``$JOURNAL_STREAM`` names the same
file as fd 2, each line starts with the syslog priority (``<4>`` …) so
``journalctl -p warning`` filters correctly. The :class:`Redactor` is applied to
the finished line, after every field is rendered, so no path through logging can
print a registered secret.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from pulsed._redact import REDACT, Redactor
from pulsed._settings import LEVELS
from pulsed._timefmt import rfc3339

# The shop a task works for: set where a shop's work starts, so every line logged in
# that task (the cycle's, collect's, the identity's) names its shop without passing it.
SHOP: ContextVar[str | None] = ContextVar("pulsed_shop", default=None)
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def priority(levelno: int) -> int:
    for threshold in (logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _PRIORITY[threshold]
    return _PRIORITY[logging.DEBUG]


class _Formatter(JsonFormatter):
    def __init__(self, journal: bool, redact: Redactor) -> None:
        # No format: the default, ``%(message)s``, is the one field taken from it.
        super().__init__(json_ensure_ascii=False)
        self._journal = journal
        self._redact = redact

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = rfc3339(record.created, "ms")
        log_data["level"] = record.levelname.lower()
        # A record's own ``event`` is an extra, which the base class copies over this.
        log_data["event"] = "log"
        shop = SHOP.get()
        if shop is not None:
            log_data["shop"] = shop
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
