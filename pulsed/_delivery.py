"""One delivery: POST the signed body, retried within 3 attempts and 2.0 s.

The httpx edge. Retries go through tenacity, stopped by the attempt count *and*
by the time left in the budget; only connection errors, timeouts, 429 and 5xx
are retried, each attempt sending the identical bytes. Redirects are never
followed and TLS is always verified. Every httpx and anyio error is mapped to a
:class:`~pulsed._errors.DeliveryError` here, so callers see one error type.
"""

from __future__ import annotations

import email.utils
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from pulsed._errors import DeliveryError
from pulsed._events import event

log = logging.getLogger("pulsed.delivery")

BUDGET = 2.0
MAX_ATTEMPTS = 3
MAX_RESPONSE_BYTES = 64 * 1024
SKEW_WARNING = 60.0
# Below this, another attempt cannot even finish a TCP handshake on a slow link.
MIN_ATTEMPT = 0.1
# Cancelling the last attempt and closing its connection takes a few milliseconds after
# the timer fires; the attempts' own deadline leaves that much room inside the budget.
TEARDOWN = 0.05
_BACKOFF = wait_random_exponential(multiplier=0.1, max=0.4)
# The longest Retry-After kept: the longest interval (10 years). A longer one, or 400
# digits of one, would only become an unreadable number in the state and the logs.
MAX_RETRY_AFTER = 10 * 366 * 86400.0
# ASCII digits only: str.isdigit() also takes "²" and other digits float() refuses.
_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)
# What is kept of a receiver's Location: as much as of its body (a peer's text).
MAX_LOCATION = 200


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int
    attempts: int
    elapsed: float


class _Retryable(DeliveryError):
    """A failure worth another attempt; never leaves this module."""


def _http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as POSIX seconds; ``None`` if absent or bad.

    A date without a zone is refused rather than guessed: HTTP dates are GMT, and
    one that says nothing is not one.
    """
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
        return None if moment.tzinfo is None else moment.timestamp()
    # A year or an hour of 14 digits overflows the C types under datetime: a peer's
    # header is data, and one that cannot be read is no date at all.
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds, at most :data:`MAX_RETRY_AFTER`: ASCII delta-seconds
    or an HTTP date; ``None`` if absent or bad."""
    if value and _DELTA_SECONDS.fullmatch(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        # Compared by length first: int() of thousands of digits is refused (or slow).
        return MAX_RETRY_AFTER if len(digits) > 12 else min(float(digits), MAX_RETRY_AFTER)
    moment = _http_date(value)
    return None if moment is None else min(max(0.0, moment - now), MAX_RETRY_AFTER)


def _skew(date_header: str | None, now: float) -> float | None:
    moment = _http_date(date_header)
    return None if moment is None else moment - now


def _printable(raw: bytes, limit: int = 200) -> str:
    text = raw[:limit].decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()


def _is_cert_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def map_transport_error(exc: Exception) -> DeliveryError:
    """An httpx/anyio/OS error as the :class:`DeliveryError` the caller sees."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return _Retryable("timeout", "no complete answer in time")
    if isinstance(exc, httpx.ConnectError) and _is_cert_failure(exc):
        # Deterministic: another attempt meets the same certificate.
        return DeliveryError("tls", f"certificate refused ({exc})")
    if isinstance(exc, httpx.ConnectError):
        return _Retryable("connect", str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | OSError):
        return _Retryable("network", str(exc) or type(exc).__name__)
    return DeliveryError("protocol", str(exc) or type(exc).__name__)


class _WithinBudget(stop_base):
    """Stop when the next attempt, after its wait, would start too late to finish."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        sleep = retry_state.upcoming_sleep
        return self.clock() + sleep + MIN_ATTEMPT > self.deadline


def _wait(retry_state: RetryCallState) -> float:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, DeliveryError) and exc.retry_after is not None:
        return exc.retry_after
    return float(_BACKOFF(retry_state))


class Sender:
    """Posts heartbeats to one URL. One client for the daemon's life, no idle connections."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        budget: float = BUDGET,
    ) -> None:
        self.url = url
        self.clock = clock
        self.wall = wall
        self.budget = budget
        # No kept-alive connections: an idle daemon holds no socket and gets no wakeups,
        # and every attempt starts on a fresh connection.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=budget,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        """Deliver ``body``; :class:`DeliveryError` when no attempt got a 2xx in budget."""
        start = self.clock()
        deadline = start + self.budget - TEARDOWN
        attempts = 0

        async def attempt() -> int:
            nonlocal attempts
            attempts += 1
            left = MAX_ATTEMPTS - attempts + 1
            remaining = deadline - self.clock()
            # The first attempt gets half the budget; later ones share what is left.
            timeout = remaining / max(left - 1, 1)
            try:
                with anyio.fail_after(timeout):
                    return await self._post_once(body, headers, timeout)
            except DeliveryError:
                raise
            except Exception as exc:  # mapped into the one error tree, here and only here
                raise map_transport_error(exc) from exc

        retrying = AsyncRetrying(
            stop=stop_after_attempt(MAX_ATTEMPTS) | _WithinBudget(deadline, self.clock),
            wait=_wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=anyio.sleep,
            reraise=True,
        )
        try:
            # A safety net over the per-attempt limits: nothing outlives the budget.
            with anyio.fail_after(max(deadline - self.clock(), 0.0)):
                status: int = await retrying(attempt)
        except DeliveryError as exc:
            raise self._final(exc, attempts, start) from exc
        except TimeoutError as exc:
            raise DeliveryError(
                "timeout", "budget spent", attempts=attempts, elapsed=self.clock() - start
            ) from exc
        return Delivered(status=status, attempts=attempts, elapsed=self.clock() - start)

    def _final(self, exc: DeliveryError, attempts: int, start: float) -> DeliveryError:
        # Only a 429 or 503 whose Retry-After is longer than the whole budget moves the
        # schedule (contract §4: the receiver sheds load); any other failure backs off.
        sheds = exc.status in (429, 503) and (exc.retry_after or 0.0) > self.budget
        retry_after = exc.retry_after if sheds else None
        return DeliveryError(
            exc.reason,
            exc.detail,
            status=exc.status,
            retry_after=retry_after,
            attempts=attempts,
            elapsed=self.clock() - start,
        )

    async def _post_once(self, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        request = self._client.build_request(
            "POST", self.url, content=body, headers=dict(headers), timeout=timeout
        )
        response = await self._client.send(request, stream=True)
        received = bytearray()
        try:
            self._check_skew(response.headers.get("date"))
            if not 200 <= response.status_code < 300:
                # Read only what an operator may need to see; a success needs no body.
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= MAX_RESPONSE_BYTES:
                        break
        finally:
            await response.aclose()
        status = response.status_code
        if 200 <= status < 300:
            return status
        snippet = _printable(bytes(received))
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers.get("retry-after"), self.wall())
            raise _Retryable(
                "status", f"HTTP {status} {snippet}".strip(), status=status, retry_after=retry_after
            )
        if 300 <= status < 400:
            target = _printable(response.headers.get("location", "?").encode(), MAX_LOCATION)
            raise DeliveryError(
                "redirect", f"HTTP {status} to {target} not followed", status=status
            )
        raise DeliveryError("status", f"HTTP {status} {snippet}".strip(), status=status)

    def _check_skew(self, date_header: str | None) -> None:
        skew = _skew(date_header, self.wall())
        if skew is not None and abs(skew) > SKEW_WARNING:
            log.warning(
                "receiver's clock differs from ours by %+.0f s; it rejects timestamps off by 300 s",
                skew,
                extra=event("clock.skew", skew_s=round(skew, 1)),
            )
