"""One delivery against a real local server in every fault mode (contract §4).

The 2.0 s budget is part of the contract, so each fault case checks it on the
client's own clock and on the server's record of when the last connection
closed. The bound checked here carries a little slack for a loaded CI machine;
``make bench`` measures the figure itself.
"""

from __future__ import annotations

import email.utils
import logging
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from tenacity import AsyncRetrying, RetryCallState

from devtools import faultserver as fs
from devtools.faultserver import FaultServer
from pulsed._body import headers
from pulsed._delivery import (
    MAX_RESPONSE_BYTES,
    MAX_RETRY_AFTER,
    MIN_ATTEMPT,
    Sender,
    _printable,
    _retry_after,
    _Retryable,
    _skew,
    _WithinBudget,
    map_transport_error,
)
from pulsed._errors import DeliveryError
from pulsed._version import __version__
from pulsed.verify import signature

pytestmark = pytest.mark.anyio

SECRET = "delivery-secret"
BODY = (
    b'{"domain":"shop.example","bot_username":null,"php_version":"8.2.7","module_version":"1.4.0",'
    b'"ecommerce_version":"4.0.2.3","ecommerce_core_version":null,"timestamp":"2026-11-29T05:42:28Z"}'
)
LIMIT = 2.0 + 0.15


def headers_for(body: bytes, secret: str) -> dict[str, str]:
    return headers(signature(secret, body), "1.4.0")


async def send(url: str, body: bytes = BODY) -> tuple[float, DeliveryError | None, int]:
    sender = Sender(url + "/heartbeat")
    start = time.monotonic()
    try:
        done = await sender.send(body, headers_for(body, SECRET))
    except DeliveryError as exc:
        return time.monotonic() - start, exc, exc.attempts
    finally:
        await sender.aclose()
    return time.monotonic() - start, None, done.attempts


async def test_success_sends_the_exact_signed_body(server: FaultServer) -> None:
    _, err, attempts = await send(server.url)
    assert err is None and attempts == 1
    (req,) = server.requests
    assert (req.method, req.path, req.body) == ("POST", "/heartbeat", BODY)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-megapay-version"] == "1.4.0"
    assert req.headers["x-pulse-signature"] == headers_for(BODY, SECRET)["X-Pulse-Signature"]
    # How a receiver tells pulsed's heartbeat from the module's own (docs/protocol.md).
    assert req.headers["user-agent"] == f"pulsed/{__version__}"


@pytest.mark.parametrize("code", [200, 201, 202, 204])
async def test_any_2xx_is_success(server: FaultServer, code: int) -> None:
    server.plan(fs.status(code))
    assert (await send(server.url))[1] is None


@pytest.mark.parametrize("first", [500, 502, 503, 504, 429])
async def test_retryable_status_is_retried_with_the_identical_body(
    server: FaultServer, first: int
) -> None:
    server.plan(fs.status(first), fs.status(first), then=fs.ok())
    _, err, attempts = await send(server.url)
    assert err is None and attempts == 3
    reqs = server.requests
    assert len({(r.body, r.headers["x-pulse-signature"]) for r in reqs}) == 1


async def test_at_most_three_attempts(server: FaultServer) -> None:
    server.plan(then=fs.status(500))
    elapsed, err, attempts = await send(server.url)
    assert err is not None and (err.reason, err.status, attempts) == ("status", 500, 3)
    assert len(server.requests) == 3
    assert elapsed < LIMIT


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 413, 422])
async def test_other_4xx_fail_at_once(server: FaultServer, code: int) -> None:
    server.plan(then=fs.status(code, body=b"bad signature"))
    _, err, attempts = await send(server.url)
    assert err is not None and (err.reason, err.status, attempts) == ("status", code, 1)
    assert "bad signature" in str(err)
    assert len(server.requests) == 1


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirects_are_never_followed(server: FaultServer, code: int) -> None:
    with FaultServer() as elsewhere:
        server.plan(then=fs.status(code, {"Location": elsewhere.url + "/steal"}))
        _, err, attempts = await send(server.url)
        assert err is not None and (err.reason, err.status, attempts) == ("redirect", code, 1)
        assert elsewhere.requests == []


async def test_retry_after_that_fits_is_honoured(server: FaultServer) -> None:
    server.plan(fs.status(503, {"Retry-After": "1"}), then=fs.ok())
    elapsed, err, attempts = await send(server.url)
    assert err is None and attempts == 2
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.95
    assert elapsed < LIMIT


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_longer_than_the_budget_stops_and_is_reported(
    server: FaultServer, code: int
) -> None:
    server.plan(then=fs.status(code, {"Retry-After": "120"}))
    elapsed, err, attempts = await send(server.url)
    assert err is not None and err.retry_after == 120 and attempts == 1
    assert elapsed < 0.5


async def test_retry_after_as_http_date(server: FaultServer) -> None:
    import email.utils

    later = email.utils.formatdate(time.time() + 600, usegmt=True)
    server.plan(then=fs.status(503, {"Retry-After": later}))
    _, err, _ = await send(server.url)
    assert err is not None and err.retry_after is not None and 590 <= err.retry_after <= 601


@pytest.mark.parametrize(
    "reply",
    [fs.silent(), fs.trickle(0.05), fs.delayed(5.0)],
    ids=["silent", "byte-by-byte", "slow"],
)
async def test_budget_holds_whatever_the_server_does(server: FaultServer, reply: fs.Reply) -> None:
    server.plan(then=reply)
    elapsed, err, attempts = await send(server.url)
    assert err is not None and err.reason == "timeout"
    assert elapsed < LIMIT
    conns = server.wait_for_closed(attempts, timeout=5)
    last_close = max(c.closed_at or 0.0 for c in conns)
    assert last_close - min(c.opened_at for c in conns) < LIMIT
    assert 1 <= attempts <= 3


async def test_reset_is_retried(server: FaultServer) -> None:
    server.plan(fs.reset(), fs.reset(), then=fs.ok())
    _, err, attempts = await send(server.url)
    assert err is None and attempts == 3


async def test_connection_refused_is_retried_then_fails(free_tcp_port: int) -> None:
    elapsed, err, attempts = await send(f"http://127.0.0.1:{free_tcp_port}")
    assert err is not None and err.reason == "connect" and attempts == 3
    assert elapsed < LIMIT


async def test_at_most_64_kib_of_a_huge_error_body_is_read(server: FaultServer) -> None:
    server.plan(then=fs.Reply(status=500, size=50 * 2**20, fault=fs.Fault.HUGE))
    elapsed, err, _ = await send(server.url)
    assert err is not None and err.status == 500
    assert elapsed < LIMIT
    assert len(err.detail) < MAX_RESPONSE_BYTES


async def test_an_error_body_longer_than_one_read_is_shown_from_its_start(
    server: FaultServer,
) -> None:
    server.plan(then=fs.status(400, body=b"bad signature " + b"." * 200_000))
    _, err, _ = await send(server.url)
    assert err is not None and err.detail.startswith("HTTP 400 bad signature ...")


async def test_huge_success_body_is_not_read(server: FaultServer) -> None:
    server.plan(fs.huge())
    elapsed, err, _ = await send(server.url)
    assert err is None and elapsed < LIMIT


@pytest.mark.parametrize("offset", [120, -3600])
async def test_clock_skew_is_warned(
    server: FaultServer, caplog: pytest.LogCaptureFixture, offset: float
) -> None:
    server.plan(fs.dated(offset))
    with caplog.at_level(logging.WARNING, logger="pulsed"):
        assert (await send(server.url))[1] is None
    (rec,) = [r for r in caplog.records if getattr(r, "event", "") == "clock.skew"]
    assert abs(rec.skew_s - offset) < 5  # type: ignore[attr-defined]


async def test_small_skew_is_not_warned(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.plan(fs.dated(30))
    await send(server.url)
    assert not [r for r in caplog.records if getattr(r, "event", "") == "clock.skew"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[FaultServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with FaultServer(ssl_context=ctx) as srv:
        yield srv


async def test_untrusted_certificate_is_refused_once(tls_server: FaultServer) -> None:
    _, err, attempts = await send(tls_server.url)
    assert err is not None and err.reason == "tls" and attempts == 1
    assert tls_server.requests == []


async def test_trusted_certificate_is_accepted(
    tls_server: FaultServer, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's way to trust a private CA; there is no way to switch checks off.
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    _, err, _ = await send(tls_server.url)
    assert err is None
    assert tls_server.requests[0].body == BODY


# --- the pieces of one delivery, each on its own ------------------------------------------


async def test_success_reports_the_status_and_the_time_taken(server: FaultServer) -> None:
    server.plan(fs.status(202))
    sender = Sender(server.url + "/heartbeat")
    try:
        done = await sender.send(BODY, headers_for(BODY, SECRET))
    finally:
        await sender.aclose()
    assert done.status == 202
    assert 0 < done.elapsed < LIMIT


async def test_every_attempt_opens_a_fresh_connection() -> None:
    # A receiver that would keep the connection, and an error body read to its end:
    # nothing forces a close, so a fresh connection is the sender's own choice.
    with FaultServer(keep_alive=True) as server:
        server.plan(fs.status(500, body=b"busy"), then=fs.status(204))
        _, err, attempts = await send(server.url)
        assert err is None and attempts == 2
        assert len(server.connections) == 2


async def test_300_is_neither_success_nor_retried_but_a_redirect(server: FaultServer) -> None:
    server.plan(then=fs.status(300, {"Location": "/elsewhere"}))
    _, err, attempts = await send(server.url)
    assert err is not None and (err.reason, err.status, attempts) == ("redirect", 300, 1)


async def test_a_refused_redirect_names_its_target(server: FaultServer) -> None:
    server.plan(then=fs.status(302, {"Location": "https://elsewhere.example/steal"}))
    _, err, _ = await send(server.url)
    assert (
        err is not None and err.detail == "HTTP 302 to https://elsewhere.example/steal not followed"
    )


async def test_a_redirect_without_a_location_says_so(server: FaultServer) -> None:
    server.plan(then=fs.status(302))
    _, err, _ = await send(server.url)
    assert err is not None and err.detail == "HTTP 302 to ? not followed"


async def test_retry_after_on_a_500_does_not_move_the_schedule(server: FaultServer) -> None:
    # only 429 and 503 mean "the receiver sheds load" (contract §4)
    server.plan(then=fs.status(500, {"Retry-After": "120"}))
    _, err, _ = await send(server.url)
    assert err is not None and err.status == 500 and err.retry_after is None


async def test_retry_after_of_exactly_the_budget_does_not_move_the_schedule(
    server: FaultServer,
) -> None:
    server.plan(then=fs.status(503, {"Retry-After": "2"}))
    _, err, _ = await send(server.url)
    assert err is not None and err.status == 503 and err.retry_after is None


async def test_a_failed_delivery_reports_the_time_it_took(server: FaultServer) -> None:
    server.plan(then=fs.status(500))
    elapsed, err, _ = await send(server.url)
    assert err is not None and 0 < err.elapsed <= elapsed


@pytest.mark.parametrize("reply", [fs.silent(), fs.trickle(0.05)], ids=["silent", "byte-by-byte"])
async def test_the_first_attempt_gets_half_the_budget_and_the_second_the_rest(
    server: FaultServer, reply: fs.Reply
) -> None:
    server.plan(then=reply)
    _, err, attempts = await send(server.url)
    assert err is not None and err.reason == "timeout" and attempts == 2
    first = min(server.wait_for_closed(2, timeout=5), key=lambda c: c.opened_at)
    assert first.closed_at is not None
    assert 0.8 < first.closed_at - first.opened_at < 1.2


async def test_the_budget_holds_even_when_the_attempt_clock_stands_still(
    server: FaultServer,
) -> None:
    # A clock that never moves makes every attempt think the whole budget is left;
    # the outer limit, timed on the real clock, still ends the delivery.
    server.plan(then=fs.silent())
    sender = Sender(server.url + "/heartbeat", clock=lambda: 1000.0, budget=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(DeliveryError) as info:
            await sender.send(BODY, headers_for(BODY, SECRET))
    finally:
        await sender.aclose()
    assert (info.value.reason, info.value.detail) == ("timeout", "budget spent")
    assert time.monotonic() - start < 0.5 + 0.15


async def test_a_delivery_ended_by_the_outer_limit_reports_time_on_the_senders_clock(
    server: FaultServer,
) -> None:
    server.plan(then=fs.silent())
    sender = Sender(server.url + "/heartbeat", clock=lambda: 1000.0, budget=0.5)
    try:
        with pytest.raises(DeliveryError) as info:
            await sender.send(BODY, headers_for(BODY, SECRET))
    finally:
        await sender.aclose()
    assert info.value.detail == "budget spent" and info.value.elapsed == 0.0


@pytest.mark.parametrize("offset", [120, -3600])
async def test_clock_skew_warning_names_the_difference(
    server: FaultServer, caplog: pytest.LogCaptureFixture, offset: float
) -> None:
    server.plan(fs.dated(offset))
    with caplog.at_level(logging.WARNING, logger="pulsed"):
        await send(server.url)
    (rec,) = [r for r in caplog.records if getattr(r, "event", "") == "clock.skew"]
    shown = re.search(r"differs from ours by ([+-]\d+) s", rec.getMessage())
    assert shown is not None and abs(int(shown[1]) - offset) < 5


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (TimeoutError(), "timeout"),
        (httpx.ConnectError("connection refused"), "connect"),
        (httpx.ReadError("connection reset"), "network"),
        (httpx.RemoteProtocolError("server disconnected"), "network"),
        (OSError("no route to host"), "network"),
    ],
)
def test_transport_failures_are_retried(error: Exception, reason: str) -> None:
    mapped = map_transport_error(error)
    assert isinstance(mapped, _Retryable) and mapped.reason == reason


def test_a_timeout_says_no_complete_answer_came_in_time() -> None:
    assert map_transport_error(httpx.ReadTimeout("")).detail == "no complete answer in time"


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.UnsupportedProtocol("no scheme"),
    ],
)
def test_a_transport_failure_keeps_its_message(error: Exception) -> None:
    assert map_transport_error(error).detail == str(error)


@pytest.mark.parametrize(
    "error", [httpx.ConnectError(""), httpx.ReadError(""), httpx.UnsupportedProtocol("")]
)
def test_a_transport_failure_without_a_message_is_named_by_its_type(error: Exception) -> None:
    assert map_transport_error(error).detail == type(error).__name__


def test_anything_else_is_a_final_protocol_failure() -> None:
    mapped = map_transport_error(httpx.UnsupportedProtocol("no scheme"))
    assert not isinstance(mapped, _Retryable) and mapped.reason == "protocol"


def test_a_certificate_failure_named_only_in_the_message_is_final() -> None:
    error = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    mapped = map_transport_error(error)
    assert not isinstance(mapped, _Retryable) and mapped.reason == "tls"
    assert mapped.detail == f"certificate refused ({error})"


def test_a_certificate_failure_deep_in_the_context_chain_is_final() -> None:
    # as httpx raises it: its ConnectError over httpcore's over the ssl module's
    middle = OSError("handshake failed")
    middle.__cause__ = ssl.SSLCertVerificationError(1, "certificate has expired")
    error = httpx.ConnectError("handshake failed")
    error.__context__ = middle
    assert map_transport_error(error).reason == "tls"


def test_an_error_body_is_cut_to_200_characters() -> None:
    assert _printable(b"x" * 300) == "x" * 200


def test_undecodable_bytes_in_an_error_body_are_replaced() -> None:
    assert _printable(b"bad \xff signature") == "bad \ufffd signature"


def test_control_characters_in_an_error_body_become_spaces() -> None:
    assert _printable(b"bad\nsignature\x1b[0m") == "bad signature [0m"


def test_retry_after_as_a_date_already_past_is_zero() -> None:
    now = time.time()
    assert _retry_after(email.utils.formatdate(now - 60, usegmt=True), now) == 0.0


def test_a_date_header_without_a_time_zone_gives_no_skew() -> None:
    # "-0000" is RFC 5322's "zone unknown"; parsedate_to_datetime returns a naive time
    assert _skew("Sun, 29 Nov 2026 05:42:28 -0000", time.time()) is None


@pytest.mark.parametrize("value", ["Sun, 29 Nov 2026 05:42:28 -0000", "soon", "  ", None])
def test_a_retry_after_that_is_no_zoned_date_or_number_is_ignored(value: str | None) -> None:
    assert _retry_after(value, time.time()) is None


def test_retry_after_in_seconds_may_be_padded() -> None:
    assert _retry_after(" 7 ", time.time()) == 7.0


def test_the_budget_stops_an_attempt_that_would_start_with_under_100_ms_left() -> None:
    retry_state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    retry_state.upcoming_sleep = 0.5
    assert _WithinBudget(deadline=0.55, clock=lambda: 0.0)(retry_state)


def test_the_budget_allows_an_attempt_with_exactly_100_ms_left() -> None:
    retry_state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    retry_state.upcoming_sleep = 0.25
    assert not _WithinBudget(deadline=0.25 + MIN_ATTEMPT, clock=lambda: 0.0)(retry_state)


# --- headers a bad peer wrote (issue 16, rows 4-6) -------------------------------


@pytest.mark.parametrize(
    "date",
    [
        "Sun, 29 Nov 99999999999999 05:42:28 GMT",
        "Sun, 29 Nov 2026 99999999999999:42:28 GMT",
        "Sun, 29 Nov 2026 05:42:28 +99999999999999",
    ],
)
async def test_a_date_that_overflows_is_ignored_and_the_2xx_stays_a_success(
    server: FaultServer, caplog: pytest.LogCaptureFixture, date: str
) -> None:
    server.plan(fs.ok(headers={"Date": date}))
    with caplog.at_level(logging.WARNING, logger="pulsed"):
        _, err, attempts = await send(server.url)
    assert err is None and attempts == 1
    assert not [r for r in caplog.records if getattr(r, "event", "") == "clock.skew"]


async def test_a_retry_after_in_superscript_digits_is_ignored_and_the_503_retried(
    server: FaultServer,
) -> None:
    server.plan(fs.status(503, {"Retry-After": "\u00b2"}), then=fs.ok())
    _, err, attempts = await send(server.url)
    assert err is None and attempts == 2


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b2"])
def test_retry_after_takes_ascii_digits_only(value: str) -> None:
    assert _retry_after(value, time.time()) is None


@pytest.mark.parametrize("digits", [13, 400, 5000])
def test_a_retry_after_of_many_digits_is_clamped_to_a_finite_number(digits: int) -> None:
    assert _retry_after("9" * digits, time.time()) == MAX_RETRY_AFTER


def test_a_retry_after_with_leading_zeros_is_read_as_its_number() -> None:
    assert _retry_after("0" * 30 + "7", time.time()) == 7.0


def test_a_retry_after_date_far_ahead_is_clamped() -> None:
    assert _retry_after("Fri, 31 Dec 9999 23:59:59 GMT", time.time()) == MAX_RETRY_AFTER


async def test_a_huge_retry_after_reaches_the_error_as_a_finite_number(
    server: FaultServer,
) -> None:
    server.plan(then=fs.status(503, {"Retry-After": "9" * 400}))
    _, err, _ = await send(server.url)
    assert err is not None and err.retry_after == MAX_RETRY_AFTER


async def test_a_long_location_is_cut_to_200_characters(server: FaultServer) -> None:
    server.plan(then=fs.status(302, {"Location": "https://elsewhere.example/" + "a" * 12000}))
    _, err, _ = await send(server.url)
    assert err is not None and err.reason == "redirect"
    assert len(err.detail) < 240
    assert err.detail.startswith("HTTP 302 to https://elsewhere.example/aaa")
