"""The systemd notification protocol (``sd_notify``), in a few lines of the standard library.

This module owns everything pulsed says to the service manager: ``READY=1``,
``STATUS=``, ``WATCHDOG=1``, ``STOPPING=1``, ``RELOADING=1``, and reading (then
removing) the three variables systemd hands over for it: ``NOTIFY_SOCKET``,
``WATCHDOG_USEC`` and ``WATCHDOG_PID``. It does not decide *when* to send them;
the daemon does.

The protocol: one ``AF_UNIX``/``SOCK_DGRAM`` datagram per notification, holding
newline-separated ``KEY=VALUE`` assignments, sent to the path in ``NOTIFY_SOCKET``
(``@name`` names a socket in the abstract namespace). See ``sd_notify(3)``.

A notifier never raises once built: a failed send is kept in
:attr:`Notifier.last_error` and logged as one ``notify.failed`` warning each time the
error changes (not at every watchdog ping), because losing a status line must never
take the daemon down, and a broken ``NOTIFY_SOCKET`` must not go unseen either.
Without ``NOTIFY_SOCKET`` (run by hand, in tests, under another supervisor) every
method is a no-op.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import MutableMapping

from pulsed._events import event

__all__ = ["Notifier"]

log = logging.getLogger("pulsed.notify")

# systemd drops a notification datagram longer than its buffer (PIPE_BUF, 4096 bytes,
# in the versions we target) as a whole; STATUS= text is cut well below that.
_STATUS_MAX_BYTES = 1024


class Notifier:
    """Sends ``sd_notify`` messages; a no-op when there is no ``NOTIFY_SOCKET``.

    Build it with :meth:`from_environ` early at start, before any child process is
    spawned, so no child inherits the notification socket or the watchdog settings.
    """

    __slots__ = ("_address", "_sock", "last_error", "watchdog_interval")

    def __init__(self, address: str | None = None, watchdog_interval: float | None = None) -> None:
        """``address``: a filesystem path, or ``"@name"`` for an abstract socket.

        ``watchdog_interval``: how often the daemon should send ``WATCHDOG=1``
        (seconds), or ``None`` for no watchdog. It is ``None`` whenever the notifier
        is disabled, since there would be no one to ping.
        """
        self._address: str | None = None
        self._sock: socket.socket | None = None
        #: Why the last send failed (``"sd_notify to /run/... failed: ENOENT (...)"``), or why
        #: NOTIFY_SOCKET was unusable; ``None`` after a send that worked.
        self.last_error: str | None = None
        if address is not None:
            if len(address) > 1 and address[0] == "@":
                self._address = "\0" + address[1:]
            elif len(address) > 1 and address[0] == "/":
                self._address = address
            else:
                self._failed(f"NOTIFY_SOCKET is neither a path nor @name: {address!r}")
        #: Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), else ``None``.
        self.watchdog_interval: float | None = (
            watchdog_interval if self._address is not None else None
        )

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Notifier:
        """Read and REMOVE ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``WATCHDOG_PID``.

        Pass ``os.environ``: removing the keys there keeps them from every child
        process (``php``, the identity child). The watchdog is on only when
        ``WATCHDOG_USEC`` is a positive integer and ``WATCHDOG_PID``, when set, is
        this process.
        """
        address = environ.pop("NOTIFY_SOCKET", None)
        usec = environ.pop("WATCHDOG_USEC", None)
        pid = environ.pop("WATCHDOG_PID", None)
        return cls(address or None, _watchdog_interval(usec, pid))

    def notify(self, *lines: str) -> None:
        """Send ``lines`` as one datagram, ``"A=1\\nB=2"``. Never raises.

        The lines are sent as given (UTF-8); a line must not hold a newline itself
        (:meth:`status` takes care of that for free text).
        """
        if self._address is None or not lines:
            return
        data = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # Never stall the event loop: a full queue drops the message (and says so).
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(data, self._address)
        except OSError as exc:
            self._failed(_describe(exc, self._address))
        else:
            self.last_error = None

    def _failed(self, error: str) -> None:
        if error != self.last_error:
            log.warning(
                "%s; systemd does not hear from pulsed", error, extra=event("notify.failed")
            )
        self.last_error = error

    def ready(self) -> None:
        """``READY=1``: started (config valid, state loaded), or done reloading."""
        self.notify("READY=1")

    def status(self, text: str) -> None:
        """``STATUS=<text>`` on one line: newlines become spaces, NULs go, long text is cut."""
        parts = (part.strip() for part in text.replace("\0", "").splitlines())
        line = " ".join(part for part in parts if part)
        encoded = line.encode("utf-8", "replace")
        if len(encoded) > _STATUS_MAX_BYTES:
            line = encoded[: _STATUS_MAX_BYTES - 3].decode("utf-8", "ignore") + "..."
        self.notify("STATUS=" + line)

    def watchdog(self) -> None:
        """``WATCHDOG=1``: the loop is alive. Send it every :attr:`watchdog_interval`."""
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """``STOPPING=1``: shutting down."""
        self.notify("STOPPING=1")

    def reloading(self) -> None:
        """``RELOADING=1`` with ``MONOTONIC_USEC=``; follow it with :meth:`ready` when done.

        systemd keeps the unit in the "reloading" state until ``READY=1`` comes, so
        send :meth:`ready` after every reload, whether the new config was taken or
        refused.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


def _watchdog_interval(usec: str | None, pid: str | None) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or ``None`` (unset, invalid, 0, other PID)."""
    if usec is None:
        return None
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2_000_000


def _describe(exc: OSError, address: str) -> str:
    """One line naming the error and the socket, e.g. ``sd_notify to /run/x failed: ENOENT ...``."""
    where = "@" + address[1:] if address.startswith("\0") else address
    if exc.errno is None:
        return f"sd_notify to {where} failed: {exc}"
    code = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"sd_notify to {where} failed: {code} ({os.strerror(exc.errno)})"
