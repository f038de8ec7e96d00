"""Writing the status file and the metrics textfile: the file edge of contract §11.

One daemon serves up to thousands of shops, and a cycle changes one of them, so the
files are not rendered whole at each write. A :class:`Publisher` keeps each shop's
piece of either file, encoded: its entry of the status file (its public object as
compact ASCII JSON, :func:`entry`) and its lines of the textfile
(:func:`pulsed._metrics.samples`). It renders a shop's pieces again when that shop
changes (:meth:`Publisher.update`, :meth:`Publisher.sync`), and a write
(:meth:`Publisher.write`) joins the kept pieces, by shop name, under the header it
renders then: its cost per shop is the bytes copied, not Python work.

A shop's delivered shares (24 h, 7 d) are as of its piece's rendering; deliveries
age out of those windows with time alone, so a write first renders again each piece
that is :data:`RENDER_AGE` old. A shop that cycles at least that often never needs
it; a disabled shop, or one with a longer interval, is renewed that way.

Each file goes through :func:`pulsed._files.write_public`: the folder's descriptor,
checked as the state folder is, mode 0644 so the web server's user and node_exporter
can read it, a temp file renamed over the old one, so a reader sees the old file or
the new one, whole. Without fsync: the files are rewritten at every start and the
shipped units keep them in ``/run`` (tmpfs), so what a fsync buys (the file after a
power loss) is worth nothing here, while on a disk folder it costs a wait for the
disk at every write (docs/status.md has the figures). The state keeps every fsync.

When to write is the caller's (:class:`pulsed._supervisor.Supervisor`: after start,
after a reload, and after cycles, sharing one write among cycles that end close
together; never while nothing changed, so no idle wake-up). A file that cannot be
written costs one ``status.unwritable`` warning for that write and nothing else: the
heartbeat never fails because of it. :func:`publish` writes both files once, from
every shop's view (``once``, a refused start). At a clean stop :func:`withdraw` takes
the status file back, and only that one.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
# A piece older than this is rendered again at the next write, so the shares in the
# files are never more than an hour (and the wait for that write) behind.
RENDER_AGE = 3600.0
# Replaced renderings kept beyond twice the shops, before the heap is made again.
SPARE_RENEWALS = 64


def _compact(value: Mapping[str, Any]) -> bytes:
    # The C encoder; ASCII (json.dumps escapes the rest), so a reader need not know the
    # encoding (the admin page's PHP).
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def entry(shop_doc: Mapping[str, Any]) -> bytes:
    """One shop of the status file: its public object (:func:`pulsed._status.public_shop`),
    compact ASCII JSON."""
    return _compact(_status.public_shop(shop_doc))


def status_bytes(kept: Iterable[bytes], now: float) -> bytes:
    """The status file: the header made at ``now``, the shops' entries as kept (each a
    comma, then its :func:`entry`) in the order given, and a line feed."""
    head = _compact(_status.header(now))
    pieces = [head[:-1] + b',"shops":[', *kept, b"]}\n"]
    if len(pieces) > 2:
        pieces[1] = pieces[1][1:]  # the first shop has no comma before it
    return b"".join(pieces)


class Publisher:
    """The status file and the textfile of every shop, each shop's pieces kept ready.

    Either file may be ``None`` (not written, and its pieces never rendered). ``clock``
    is the wall clock, for the shares and the document's ``generated_at``.
    """

    def __init__(
        self,
        *,
        status_file: Path | None,
        metrics_file: Path | None,
        version: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.status_file = status_file
        self.metrics_file = metrics_file
        self.version = version
        self.clock = clock
        self._views: dict[str, tuple[ShopView, float]] = {}  # rendered from, and when
        # The pieces, encoded, by name in name order: a write takes them as they are.
        self._entries: dict[str, bytes] = {}  # a comma, then the shop's entry
        self._columns: list[dict[str, bytes]] = [{} for _ in range(_metrics.COLUMNS)]
        # (rendered at, name) of every rendering; one a newer rendering replaced is
        # skipped when it comes up, and all of those are dropped once they outnumber
        # the shops (a shop at a 1 s interval renders 3,600 times before its first
        # comes up: kept, they grew the heap by 50 KiB a minute at 200 shops).
        self._renewals: list[tuple[float, str]] = []

    def update(self, views: Iterable[ShopView]) -> None:
        """Render the pieces of these shops again where their view changed (a cycle
        ended, a reload changed or added them)."""
        now = self.clock()
        added = False
        for view in views:
            kept = self._views.get(view.name)
            if kept is not None and kept[0] == view:
                continue
            added = added or kept is None
            self._render(view, now)
        if added:
            self._entries = dict(sorted(self._entries.items()))
            self._columns = [dict(sorted(column.items())) for column in self._columns]

    def sync(self, views: Sequence[ShopView]) -> None:
        """Every shop there is now (a start, a reload): the pieces of the others dropped,
        those whose view changed rendered again."""
        names = {view.name for view in views}
        for name in [n for n in self._views if n not in names]:
            del self._views[name]
            self._entries.pop(name, None)
            for column in self._columns:
                column.pop(name, None)
        self.update(views)

    def _render(self, view: ShopView, now: float) -> None:
        doc = _status.shop(view, now)
        self._views[view.name] = (view, now)
        heapq.heappush(self._renewals, (now, view.name))
        if len(self._renewals) > 2 * len(self._views) + SPARE_RENEWALS:
            self._renewals = [(at, name) for name, (_, at) in self._views.items()]
            heapq.heapify(self._renewals)
        if self.status_file is not None:
            self._entries[view.name] = b"," + entry(doc)
        if self.metrics_file is not None:
            texts = _metrics.samples(doc)
            for i, column in enumerate(self._columns):
                column[view.name] = texts[i].encode()

    def _renew(self, now: float) -> None:
        """Render again every piece :data:`RENDER_AGE` old: its shares may have moved."""
        while self._renewals and self._renewals[0][0] <= now - RENDER_AGE:
            rendered, name = heapq.heappop(self._renewals)
            kept = self._views.get(name)
            if kept is not None and kept[1] == rendered:
                self._render(kept[0], now)

    def write(self) -> bool:
        """Write whichever file is configured; ``False`` when one could not be written.

        Never raises for a file that cannot be written: that is one warning naming
        every file that failed and why.
        """
        now = self.clock()
        self._renew(now)
        failures: list[str] = []
        # One file's bytes alive at a time: the allocator then reuses that memory for the
        # next, where two alive together cost fresh pages, a fault per 4 KiB, each write.
        if self.status_file is not None:
            data = status_bytes(self._entries.values(), now)
            _write(self.status_file, data, "daemon.status_file", failures)
            del data
        if self.metrics_file is not None:
            _write(self.metrics_file, self._textfile(), "daemon.metrics_file", failures)
        if failures:
            log.warning(
                "status cannot be written (%s); heartbeats are not affected",
                "; ".join(failures),
                extra=event("status.unwritable", errors=failures),
            )
        return not failures

    def _textfile(self) -> bytes:
        heads = _metrics.heads(self.version)
        pieces = [heads[0].encode()]
        for i, column in enumerate(self._columns):
            pieces.append(heads[i + 1].encode())
            pieces += column.values()
        return b"".join(pieces)


def _write(path: Path, data: bytes, setting: str, failures: list[str]) -> None:
    try:
        write_public(path, data, PUBLIC_MODE, setting)
    except FileError as exc:
        failures.append(str(exc))


def publish(
    shops: Sequence[ShopView],
    now: float,
    *,
    status_file: Path | None,
    metrics_file: Path | None,
    version: str,
) -> bool:
    """Write whichever of the two files is configured, once, from every shop's view;
    ``False`` when one could not be written (one warning, never an exception)."""
    if status_file is None and metrics_file is None:
        return True
    publisher = Publisher(
        status_file=status_file, metrics_file=metrics_file, version=version, clock=lambda: now
    )
    publisher.sync(shops)
    return publisher.write()


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
