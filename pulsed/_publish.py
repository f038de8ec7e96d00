"""Writing the status file and the metrics textfile: the file edge of contract §11.

:func:`publish` builds the status document once (:mod:`pulsed._status`), writes
it to ``daemon.status_file`` and its Prometheus rendering (:mod:`pulsed._metrics`)
to ``daemon.metrics_file``, each through :func:`pulsed._files.write_public` (the
folder's descriptor, checked as the state folder is) with mode 0644 so the web
server's user and node_exporter can read them. It is meant to be called after
start and after each cycle, never on a timer, so it adds no idle wake-up.
A file that cannot be written costs one ``status.unwritable`` warning for that
call and nothing else: the heartbeat never fails because of it. At a clean stop
:func:`withdraw` takes the status file back, and only that one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulsed import _metrics, _status
from pulsed._errors import FileError
from pulsed._events import event
from pulsed._files import write_public
from pulsed._status import ShopView

log = logging.getLogger("pulsed.status")

# Read by the web server's user and by node_exporter, never written by them.
PUBLIC_MODE = 0o644


def status_bytes(document: dict[str, Any]) -> bytes:
    """The status file's content: the document as indented ASCII JSON, any reader can parse it."""
    return json.dumps(document, indent=2, allow_nan=False).encode("ascii") + b"\n"


def publish(
    shops: Sequence[ShopView],
    now: float,
    *,
    status_file: Path | None,
    metrics_file: Path | None,
    version: str,
) -> bool:
    """Write whichever of the two files is configured; ``False`` when one could not be written.

    Never raises for a file that cannot be written: that is one warning naming
    every file that failed and why.
    """
    if status_file is None and metrics_file is None:
        return True
    document = _status.document(shops, now)
    failures: list[str] = []
    if status_file is not None:
        try:
            write_public(
                status_file,
                status_bytes(_status.public(document)),
                PUBLIC_MODE,
                "daemon.status_file",
            )
        except FileError as exc:
            failures.append(str(exc))
    if metrics_file is not None:
        text = _metrics.render(document, version)
        try:
            write_public(metrics_file, text.encode("utf-8"), PUBLIC_MODE, "daemon.metrics_file")
        except FileError as exc:
            failures.append(str(exc))
    if failures:
        log.warning(
            "status cannot be written (%s); heartbeats are not affected",
            "; ".join(failures),
            extra=event("status.unwritable", errors=failures),
        )
    return not failures


def withdraw(status_file: Path | None) -> None:
    """Remove the status file at a clean stop.

    A status file left behind would go on telling the admin page when the next
    heartbeat is due; without it the page says pulsed is not running, which is the
    truth. The shipped units' runtime folder goes with the unit anyway; this is for
    every other place the file may be set (a folder of the operator's, ``make run``).
    The metrics file stays: its series go stale rather than vanish. A file that
    cannot be removed is one ``status.unwritable`` warning.
    """
    if status_file is None:
        return
    try:
        status_file.unlink(missing_ok=True)
    except OSError as exc:
        error = f"daemon.status_file {status_file} cannot be removed: {exc.strerror or exc}"
        log.warning(
            "status cannot be withdrawn (%s); it will say pulsed runs until the next start",
            error,
            extra=event("status.unwritable", errors=[error]),
        )
