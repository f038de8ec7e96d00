"""The demo heartbeat receiver: verifies what pulsed sends, as a real receiver must.

This module owns the receiving side that ``make run`` starts and tests may use:
``POST /heartbeat`` is checked with :func:`pulsed.verify.verify_heartbeat` over
the raw body bytes and answered 200 ``{"ok":true}``, 401 (unsigned or bad
signature), 400 (malformed or stale) or 404 (any other path). Accepted
heartbeats are kept, and duplicates (same ``domain`` and ``timestamp``, as a
retry produces) are dropped from :attr:`Receiver.unique_accepted`.
With ``keep=False`` only counts are kept (:meth:`Receiver.tally`), for a run of
a million heartbeats.

As a script it serves until SIGINT/SIGTERM and prints one line per heartbeat::

    python devtools/receiver.py --port 8765 --secret-file PATH [--port-file PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

if __package__ in (None, ""):
    # Run as `python devtools/receiver.py`: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.faultserver import FaultServer, Reply, Request, delayed, status
from pulsed.verify import (
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    VerificationError,
    verify_heartbeat,
)

__all__ = ["Receiver", "Tally", "main"]

HEARTBEAT_PATH = "/heartbeat"
_STATUS_FOR_REASON = {"unsigned": 401, "bad_signature": 401, "malformed": 400, "stale": 400}


def _json_reply(code: int, payload: dict[str, Any]) -> Reply:
    return status(code, {"Content-Type": "application/json"}, json.dumps(payload).encode("utf-8"))


@dataclass(frozen=True)
class Tally:
    """What a receiver has seen so far, in counts (kept with or without the heartbeats)."""

    requests: int  # every request read, on any path, answered by a plan or not
    accepted: int  # verified heartbeats, duplicates included
    duplicates: int  # accepted again with their domain's latest timestamp: a lost answer's retry
    rejected: dict[str, int]  # by reason, as :attr:`Receiver.rejected` words it

    @property
    def planned(self) -> int:
        """Requests the server answered from its plan (a 503 phase), never verified."""
        return self.requests - self.accepted - sum(self.rejected.values())


def describe(beat: dict[str, Any], *, duplicate: bool = False) -> str:
    """The one human-readable line printed for an accepted heartbeat."""

    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    bot = beat.get("bot_username")
    line = (
        f"accepted {beat.get('domain')} bot={'@' + bot if bot else '-'}"
        f" php={show(beat.get('php_version'))} module={show(beat.get('module_version'))}"
        f" oc={show(beat.get('ecommerce_version'))}"
    )
    if beat.get("ecommerce_core_version") is not None:
        line += f" core={beat['ecommerce_core_version']}"
    line += f" at {beat.get('timestamp')} sig ok"
    if duplicate:
        line += " (duplicate of an earlier attempt, dropped)"
    return line


class Receiver:
    """A heartbeat receiver on a :class:`FaultServer`.

    ``out``, when given, gets one line per request to ``/heartbeat`` (flushed).
    ``now`` stands in for the receiver's clock, for tests of clock skew.
    ``keep=False`` keeps no heartbeat and no request, only :meth:`tally`: a soak
    sends a million, and keeping each would cost gigabytes and make the run about
    the receiver's memory.
    """

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        out: TextIO | None = None,
        now: Callable[[], datetime] | None = None,
        max_skew: float = MAX_SKEW_SECONDS,
        secrets: Mapping[str, str] | None = None,
        hold: Mapping[str, float] | None = None,
        keep: bool = True,
    ) -> None:
        self.secret = secret
        # A receiver of many shops keys each by its domain; ``secret`` serves the rest.
        self.secrets = dict(secrets or {})
        # Seconds to wait before answering a domain's heartbeat (accepted first), so a
        # test can act while that delivery is in flight.
        self.hold = dict(hold or {})
        self._out = out
        self._now = now
        self._max_skew = max_skew
        self._cond = threading.Condition()
        # None when not kept (keep=False): only the counts below are.
        self._accepted: list[dict[str, Any]] | None = [] if keep else None
        self._rejected: list[tuple[str, Request]] | None = [] if keep else None
        self._accepted_count = 0
        self._duplicates = 0
        self._rejected_counts: Counter[str] = Counter()
        # A retry repeats its shop's latest body (one delivery at a time per shop), so
        # the latest timestamp per domain finds every duplicate in bounded memory.
        self._latest: dict[str, Any] = {}
        self.server = FaultServer(
            ssl_context=ssl_context, handler=self._handle, host=host, port=port, record=keep
        )

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """The ``api_host`` to configure; heartbeats go to ``url + "/heartbeat"``."""
        return self.server.url

    @staticmethod
    def _kept(kept: list[Any] | None) -> list[Any]:
        if kept is None:
            raise RuntimeError("this receiver keeps counts only (keep=False): read tally()")
        return kept

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Every verified heartbeat, duplicates included, in arrival order."""
        with self._cond:
            return list(self._kept(self._accepted))

    @property
    def unique_accepted(self) -> list[dict[str, Any]]:
        """The first of each (``domain``, ``timestamp``): what a receiver would store."""
        with self._cond:
            return self._unique(self._kept(self._accepted))

    @property
    def rejected(self) -> list[tuple[str, Request]]:
        """(reason, request) for every refused request; reasons are verify's words or
        ``not_found`` / ``method_not_allowed``."""
        with self._cond:
            return list(self._kept(self._rejected))

    def tally(self) -> Tally:
        """The counts so far; all a receiver with ``keep=False`` offers."""
        with self._cond:
            return self._tally()

    def _tally(self) -> Tally:
        return Tally(
            self.server.request_count,
            self._accepted_count,
            self._duplicates,
            dict(self._rejected_counts),
        )

    def wait_for_accepted(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``n`` heartbeats (duplicates included) were accepted; return them."""
        self._kept(self._accepted)
        self.wait_for_count(n, timeout)
        with self._cond:
            return list(self._kept(self._accepted))

    def wait_for_count(self, n: int, timeout: float = 10.0) -> Tally:
        """Block until ``n`` heartbeats (duplicates included) were accepted; the counts then."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._accepted_count >= n, timeout):
                raise TimeoutError(
                    f"expected {n} accepted heartbeat(s) on {self.url} within {timeout} s, "
                    f"got {self._accepted_count}; rejected: {dict(self._rejected_counts)}"
                )
            return self._tally()

    @staticmethod
    def _unique(accepted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[tuple[Any, Any]] = set()
        unique = []
        for beat in accepted:
            key = (beat["domain"], beat["timestamp"])
            if key not in seen:
                seen.add(key)
                unique.append(beat)
        return unique

    def _emit(self, line: str) -> None:
        if self._out is not None:
            print(line, file=self._out, flush=True)

    def _reject(self, reason: str, request: Request, code: int, detail: str) -> Reply:
        with self._cond:
            self._rejected_counts[reason] += 1
            if self._rejected is not None:
                self._rejected.append((reason, request))
            self._cond.notify_all()
        if request.path.split("?", 1)[0] == HEARTBEAT_PATH:
            self._emit(f"rejected: {reason} {request.method} {request.path} ({detail})")
        return _json_reply(code, {"ok": False, "error": reason, "detail": detail})

    def _handle(self, request: Request) -> Reply:
        if request.path.split("?", 1)[0] != HEARTBEAT_PATH:
            return self._reject("not_found", request, 404, f"no such path {request.path}")
        if request.method != "POST":
            return self._reject("method_not_allowed", request, 405, "POST only")
        try:
            beat = verify_heartbeat(
                self.secrets.get(_claimed_domain(request.body), self.secret),
                request.body,
                request.headers.get(SIGNATURE_HEADER.lower()),
                now=self._now() if self._now is not None else None,
                max_skew=self._max_skew,
            )
        except VerificationError as exc:
            detail = str(exc).partition(": ")[2] or exc.reason
            return self._reject(
                exc.reason, request, _STATUS_FOR_REASON.get(exc.reason, 400), detail
            )
        with self._cond:
            duplicate = self._latest.get(beat["domain"]) == beat["timestamp"]
            self._latest[beat["domain"]] = beat["timestamp"]
            self._accepted_count += 1
            self._duplicates += duplicate
            if self._accepted is not None:
                self._accepted.append(beat)
            self._cond.notify_all()
        self._emit(describe(beat, duplicate=duplicate))
        # A duplicate is a retry whose first answer was lost: it must still look delivered.
        answer = _json_reply(200, {"ok": True})
        held = self.hold.get(str(beat["domain"]))
        return delayed(held, answer) if held else answer


def _claimed_domain(body: bytes) -> str:
    """The domain a body claims, to pick the secret it must verify with; "" if none."""
    try:
        claimed = json.loads(body).get("domain")
    except (ValueError, AttributeError):
        return ""
    return claimed if isinstance(claimed, str) else ""


def _write_port_file(path: Path, port: int) -> None:
    # Written whole and renamed, so a parent waiting for it never reads half a number.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="ascii")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo heartbeat receiver for pulsed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--secret-file", type=Path, required=True, help="the heartbeat secret")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument(
        "--shop-secret",
        action="append",
        default=[],
        metavar="DOMAIN=FILE",
        help="a shop's own secret, by its domain (repeatable); others use --secret-file",
    )
    args = parser.parse_args(argv)

    try:
        secret = args.secret_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        parser.error(f"cannot read --secret-file: {exc.strerror}")
    if not secret:
        parser.error(f"--secret-file {args.secret_file} is empty")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    secrets: dict[str, str] = {}
    for item in args.shop_secret:
        domain, sep, file = item.partition("=")
        if not sep:
            parser.error(f"--shop-secret {item!r}: expected DOMAIN=FILE")
        secrets[domain] = Path(file).read_text(encoding="utf-8").strip()
    receiver = Receiver(secret, host=args.host, port=args.port, out=sys.stdout, secrets=secrets)
    try:
        receiver.start()
    except OSError as exc:
        print(f"receiver: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        if args.port_file is not None:
            _write_port_file(args.port_file, receiver.port)
        print(f"receiver listening on {receiver.url}{HEARTBEAT_PATH}", flush=True)
        stop.wait()
    finally:
        receiver.stop()
    print("receiver stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
