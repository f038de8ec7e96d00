"""One delivery against a real local server in every fault mode (contract §4).

The 2.0 s budget is part of the contract, so each fault case checks it on the
client's own clock and on the server's record of when the last connection
closed. The bound checked here carries a little slack for a loaded CI machine;
``make bench`` measures the figure itself.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from devtools import faultserver as fs
from devtools.faultserver import FaultServer
from pulsed._delivery import MAX_RESPONSE_BYTES, Sender
from pulsed._errors import DeliveryError
from pulsed._signing import headers_for

pytestmark = pytest.mark.anyio

SECRET = "delivery-secret"
BODY = (
    b'{"domain":"shop.example","bot_username":null,"php_version":"8.2.7","module_version":"1.4.0",'
    b'"ecommerce_version":"4.0.2.3","ecommerce_core_version":null,"timestamp":"2026-11-29T05:42:28Z"}'
)
LIMIT = 2.0 + 0.15


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
    assert req.headers["user-agent"].startswith("pulsed/")


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
    assert err is not None and err.status == code and attempts == 1
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
