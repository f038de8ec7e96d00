"""A minimal HTTP/1.1 server that answers, or misbehaves, exactly as a test plans.

This module owns the byte-level behaviour every other local server builds on: the
request parser, the planned replies (:func:`ok`, :func:`status`, :func:`silent`,
:func:`trickle`, :func:`reset`, :func:`huge`, :func:`dated`, :func:`delayed`) and
the record of what clients did (:attr:`FaultServer.requests`,
:attr:`FaultServer.connections`, or only their counts for a long run).

The server runs its own asyncio loop in a daemon thread, so a synchronous test and
a test that runs its own event loop can use it alike; the test thread blocks on a
:class:`threading.Condition` to wait for what the server saw. It is written on
asyncio streams rather than an HTTP library because a fault (a reset, one byte
every 200 ms, a 50 MiB body, no answer at all) has to be produced at the socket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import email.utils
import enum
import http
import logging
import socket
import ssl
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

__all__ = [
    "Connection",
    "Fault",
    "FaultServer",
    "Reply",
    "Request",
    "dated",
    "delayed",
    "huge",
    "ok",
    "reset",
    "silent",
    "status",
    "trickle",
]

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 2**20
_HUGE_CHUNK = b"x" * (64 * 1024)
_OK_BODY = b'{"ok":true}'
_JSON = "application/json"
# Long enough for any real client, short enough that a stalled TLS close never
# keeps a connection's close from being recorded for long.
_CLOSE_GRACE_SECONDS = 1.0
_TLS_HANDSHAKE_SECONDS = 10.0


@dataclass(frozen=True)
class Request:
    """One request as the server read it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time() once the whole body was read


@dataclass(frozen=True)
class Connection:
    """One accepted TCP connection; ``time.monotonic()`` values.

    ``closed_at`` is when the server closed it or saw the client go, ``None``
    while it is open.
    """

    opened_at: float
    closed_at: float | None


class Fault(enum.Enum):
    """How a :class:`Reply` departs from an ordinary answer."""

    NONE = "none"
    SILENT = "silent"
    TRICKLE = "trickle"
    RESET = "reset"
    HUGE = "huge"


@dataclass(frozen=True)
class Reply:
    """One planned answer.

    ``headers`` override the defaults (``Date``, ``Content-Length``,
    ``Connection``) by case-insensitive name; a value of ``None`` leaves that
    header out. A ``Connection: keep-alive`` header keeps the connection open
    for the client's next request.
    """

    status: int = 200
    headers: Mapping[str, str | None] = field(default_factory=dict)
    body: bytes = b""
    fault: Fault = Fault.NONE
    byte_delay: float = 0.0  # TRICKLE: seconds between bytes
    size: int = 0  # HUGE: the announced and streamed body length
    date_offset: float = 0.0  # seconds added to the Date header
    delay: float = 0.0  # seconds to wait before answering at all


def ok(body: bytes = _OK_BODY, headers: Mapping[str, str | None] | None = None) -> Reply:
    """200 with a JSON ``body``."""
    return Reply(200, {"Content-Type": _JSON, **(headers or {})}, body)


def status(code: int, headers: Mapping[str, str | None] | None = None, body: bytes = b"") -> Reply:
    """Any status, e.g. ``status(503, {"Retry-After": "1"})``."""
    return Reply(code, dict(headers or {}), body)


def silent() -> Reply:
    """Read the request and never answer; the socket stays open until the client goes."""
    return Reply(fault=Fault.SILENT)


def trickle(delay: float = 0.2, body: bytes = _OK_BODY) -> Reply:
    """A valid 200 response, status line and headers included, one byte every ``delay`` s."""
    return Reply(200, {"Content-Type": _JSON}, body, fault=Fault.TRICKLE, byte_delay=delay)


def reset() -> Reply:
    """Read the request, then close with a TCP RST (``SO_LINGER`` on, 0 s)."""
    return Reply(fault=Fault.RESET)


def huge(size: int = 50 * 2**20) -> Reply:
    """200 with ``Content-Length: size``, streamed in chunks until done or the client goes."""
    return Reply(200, {"Content-Type": "application/octet-stream"}, fault=Fault.HUGE, size=size)


def dated(offset: float) -> Reply:
    """200 whose ``Date`` header is ``offset`` seconds from now."""
    return Reply(200, {"Content-Type": _JSON}, _OK_BODY, date_offset=offset)


def delayed(seconds: float, reply: Reply | None = None) -> Reply:
    """``reply`` (default :func:`ok`), answered only ``seconds`` after the request was read."""
    return dataclasses.replace(reply if reply is not None else ok(), delay=seconds)


class _BadRequest(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


@dataclass
class _ConnRecord:
    opened_at: float
    closed_at: float | None = None


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def _client_wants_persistence(version: str, headers: Mapping[str, str]) -> bool:
    conn = _tokens(headers.get("connection"))
    if version == "HTTP/1.1":
        return "close" not in conn
    return "keep-alive" in conn


def _render_head(reply: Reply, content_length: int, connection: str) -> tuple[bytes, str | None]:
    """The status line and headers, and the ``Connection`` value actually sent."""
    merged: dict[str, tuple[str, str | None]] = {
        "date": ("Date", email.utils.formatdate(time.time() + reply.date_offset, usegmt=True)),
        "content-length": ("Content-Length", str(content_length)),
        "connection": ("Connection", connection),
    }
    for name, value in reply.headers.items():
        merged[name.lower()] = (name, value)
    lines = [f"HTTP/1.1 {reply.status} {_phrase(reply.status)}"]
    lines += [f"{name}: {value}" for name, value in merged.values() if value is not None]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head, merged["connection"][1]


async def _read_until_gone(reader: asyncio.StreamReader) -> None:
    """Return once the client has closed or reset its side."""
    with contextlib.suppress(OSError):  # ConnectionResetError and ssl.SSLError are OSErrors
        while await reader.read(65536):
            pass


class FaultServer:
    """An HTTP/1.1 (or HTTPS) server on 127.0.0.1 whose answers a test plans.

    Each request gets the next reply from :meth:`plan`; when none remain, the
    plan's ``then`` if one was given, else ``handler(request)`` if there is a
    handler, else :func:`ok`. ``keep_alive=True`` lets ordinary replies keep a
    persistent connection open when the client wants one; by default every
    reply says ``Connection: close``, so each client attempt is one connection.
    ``record=False`` keeps only the counts (:attr:`request_count`,
    :attr:`connection_count`): a soak's million requests would otherwise be kept
    whole in memory. :meth:`refuse_connections` closes the listener and opens it
    again on the same port, for a receiver that is down for a while.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handler: Callable[[Request], Reply] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_alive: bool = False,
        record: bool = True,
    ) -> None:
        self._ssl_context = ssl_context
        self._handler = handler
        self._host = host
        self._wanted_port = port
        self._keep_alive = keep_alive
        self._record = record
        self._request_count = 0
        self._connection_count = 0
        self._cond = threading.Condition()
        self._planned: deque[Reply] = deque()
        self._then: Reply | None = None
        self._requests: list[Request] = []
        self._connections: list[_ConnRecord] = []
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FaultServer:
        if self._thread is not None:
            raise RuntimeError("FaultServer already started")
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="FaultServer", daemon=True
        )
        self._thread.start()
        try:
            self._port = ready.result(timeout=10.0)
            self._thread.name = f"FaultServer:{self._port}"
        except BaseException:
            self._thread.join(timeout=5.0)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every connection, silent ones included, and end the thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            # The loop may already be gone if the thread died; then there is nothing to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout=10.0)
        if thread.is_alive():
            raise RuntimeError("FaultServer thread did not end within 10 s")
        self._thread = None
        self._loop = None
        self._stop_event = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a test reads and plans ---------------------------------------

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` has ended the server thread."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultServer not started")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    def plan(self, *replies: Reply, then: Reply | None = None) -> None:
        """Answer the next requests with ``replies`` in order, then with ``then``.

        Replaces any earlier plan. With ``then`` left out, requests after the plan
        go to the handler, or get :func:`ok` when there is none.
        """
        with self._cond:
            self._planned = deque(replies)
            self._then = then

    @property
    def requests(self) -> list[Request]:
        with self._cond:
            return list(self._requests)

    @property
    def connections(self) -> list[Connection]:
        with self._cond:
            return [Connection(c.opened_at, c.closed_at) for c in self._connections]

    @property
    def request_count(self) -> int:
        """Requests read so far, kept whether or not the requests themselves are."""
        with self._cond:
            return self._request_count

    @property
    def connection_count(self) -> int:
        """Connections accepted so far, kept whether or not they are recorded."""
        with self._cond:
            return self._connection_count

    def refuse_connections(self, refuse: bool = True) -> None:
        """Stop listening, so a connect is refused at once; ``False`` listens again.

        The port stays this server's: it is bound again, not picked anew. Connections
        already open are served to their end either way.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("FaultServer not started")
        asyncio.run_coroutine_threadsafe(self._listen(not refuse), loop).result(timeout=10.0)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[Request]:
        """Block until at least ``n`` requests have been read; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                seen = [f"{r.method} {r.path}" for r in self._requests]
                raise TimeoutError(
                    f"expected {n} request(s) on {self._describe()} within {timeout} s, "
                    f"got {len(seen)}: {seen}"
                )
            return list(self._requests)

    def wait_for_closed(self, n: int, timeout: float = 10.0) -> list[Connection]:
        """Block until at least ``n`` connections have closed; return the closed ones."""

        def closed() -> list[Connection]:
            return [
                Connection(c.opened_at, c.closed_at)
                for c in self._connections
                if c.closed_at is not None
            ]

        with self._cond:
            if not self._cond.wait_for(lambda: len(closed()) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} closed connection(s) on {self._describe()} within "
                    f"{timeout} s, got {len(closed())} closed of {len(self._connections)} opened"
                )
            return closed()

    def _describe(self) -> str:
        return self.url if self._port is not None else "FaultServer (not started)"

    # -- the server thread ---------------------------------------------------

    def _thread_main(self, ready: concurrent.futures.Future[int]) -> None:
        try:
            asyncio.run(self._serve_until_stopped(ready))
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.exception("FaultServer loop failed")

    async def _serve_until_stopped(self, ready: concurrent.futures.Future[int]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = self._listener = await asyncio.start_server(
            self._on_connection, self._host, self._wanted_port, limit=MAX_HEAD_BYTES
        )
        ready.set_result(server.sockets[0].getsockname()[1])
        try:
            await self._stop_event.wait()
        finally:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if listener is not None:
                await listener.wait_closed()

    async def _listen(self, on: bool) -> None:
        if on and self._listener is None:
            self._listener = await asyncio.start_server(
                self._on_connection, self._host, self.port, limit=MAX_HEAD_BYTES
            )
        elif not on and self._listener is not None:
            # Only the listening socket closes; not waited for, since open connections
            # keep a closed server waiting until they end.
            self._listener.close()
            self._listener = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        record = _ConnRecord(opened_at=time.monotonic())
        with self._cond:
            self._connection_count += 1
            if self._record:
                self._connections.append(record)
            self._cond.notify_all()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        graceful = False
        try:
            if self._ssl_context is not None:
                # TLS is started here rather than by start_server so that a failed
                # handshake is still a recorded (and closed) connection.
                writer = await _start_tls(reader, writer, self._ssl_context)
            while await self._exchange(reader, writer):
                pass
            graceful = True
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away or botched TLS; either way the connection is over
        except asyncio.CancelledError:
            # Only stop() cancels a connection. Ending normally matters: asyncio's
            # stream callback logs a cancelled connection task as an error.
            pass
        finally:
            self._tasks.discard(task)
            await self._close(writer, graceful=graceful)
            with self._cond:
                record.closed_at = time.monotonic()
                self._cond.notify_all()

    async def _close(self, writer: asyncio.StreamWriter, *, graceful: bool) -> None:
        if not graceful:
            writer.transport.abort()
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_GRACE_SECONDS)
        except (TimeoutError, asyncio.TimeoutError, OSError):  # the second: wait_for's before 3.11
            writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; True when the connection stays open."""
        try:
            parsed = await self._read_request(reader)
        except _BadRequest as bad:
            body = f"{bad}\n".encode()
            head, _ = _render_head(Reply(bad.code), len(body), "close")
            writer.write(head + body)
            await writer.drain()
            return False
        if parsed is None:
            return False
        request, version = parsed
        with self._cond:
            self._request_count += 1
            if self._record:
                self._requests.append(request)
            self._cond.notify_all()
        reply = self._choose(request)
        persistent = _client_wants_persistence(version, request.headers)
        return await self._answer(reply, request, persistent, reader, writer)

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[Request, str] | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # closed between requests, or mid-head: nothing to answer
        except asyncio.LimitOverrunError as exc:
            raise _BadRequest(431, "request head too large") from exc
        head = raw.lstrip(b"\r\n").decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, f"bad request line {request_line!r}")
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in header_lines:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, f"bad header line {line!r}")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequest(501, "chunked request bodies are not supported")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise _BadRequest(400, "bad Content-Length") from exc
        if not 0 <= length <= MAX_BODY_BYTES:
            raise _BadRequest(413 if length > 0 else 400, f"Content-Length {length} refused")
        body = await reader.readexactly(length) if length else b""
        return Request(method, path, headers, body, time.time()), version

    def _choose(self, request: Request) -> Reply:
        with self._cond:
            if self._planned:
                return self._planned.popleft()
            then = self._then
        if then is not None:
            return then
        if self._handler is None:
            return ok()
        try:
            return self._handler(request)
        except Exception as exc:
            log.exception("FaultServer handler failed on %s %s", request.method, request.path)
            return status(
                500, {"Content-Type": "text/plain"}, f"handler failed: {exc!r}\n".encode()
            )

    async def _answer(
        self,
        reply: Reply,
        request: Request,
        persistent: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if reply.fault is Fault.NONE and reply.delay <= 0:
            body = b"" if request.method == "HEAD" else reply.body
            default = "keep-alive" if self._keep_alive and persistent else "close"
            head, sent = _render_head(reply, len(reply.body), default)
            writer.write(head + body)
            await writer.drain()
            return persistent and "close" not in _tokens(sent)

        # Every other reply watches for the client leaving while it waits or
        # writes, and closes the connection afterwards.
        gone = asyncio.ensure_future(_read_until_gone(reader))
        try:
            if reply.delay > 0:
                await asyncio.wait({gone}, timeout=reply.delay)
                if gone.done():
                    return False
            if reply.fault is Fault.RESET:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            elif reply.fault is Fault.SILENT:
                await gone
            elif reply.fault is Fault.TRICKLE:
                head, _ = _render_head(reply, len(reply.body), "close")
                for i, byte in enumerate(head + reply.body):
                    if i:
                        await asyncio.wait({gone}, timeout=reply.byte_delay)
                    if gone.done():
                        break
                    writer.write(bytes((byte,)))
                    await writer.drain()
            elif reply.fault is Fault.HUGE:
                head, _ = _render_head(reply, reply.size, "close")
                writer.write(head)
                remaining = reply.size
                while remaining > 0 and not gone.done():
                    chunk = _HUGE_CHUNK[: min(remaining, len(_HUGE_CHUNK))]
                    writer.write(chunk)
                    await writer.drain()
                    remaining -= len(chunk)
            else:  # a plain reply that waited first
                body = b"" if request.method == "HEAD" else reply.body
                head, _ = _render_head(reply, len(reply.body), "close")
                writer.write(head + body)
                await writer.drain()
            return False
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone


async def _start_tls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
) -> asyncio.StreamWriter:
    """The server side of a TLS handshake on an accepted connection; the writer to use after."""
    if sys.version_info >= (3, 11):
        await writer.start_tls(context, ssl_handshake_timeout=_TLS_HANDSHAKE_SECONDS)
        return writer
    # Python 3.10's StreamWriter has no start_tls: the loop's, under the same protocol
    # (so the reader keeps receiving, now decrypted), and a writer on the new transport.
    loop = asyncio.get_running_loop()
    protocol = writer.transport.get_protocol()
    transport = await loop.start_tls(
        writer.transport,
        protocol,
        context,
        server_side=True,
        ssl_handshake_timeout=_TLS_HANDSHAKE_SECONDS,
    )
    if transport is None:  # only for a transport already closing
        raise ConnectionResetError("the connection closed during the TLS handshake")
    return asyncio.StreamWriter(transport, protocol, reader, loop)
