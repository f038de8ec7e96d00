"""Tests of the local servers in ``devtools``: each fault is what it claims to be.

The rest of the suite trusts these servers to misbehave exactly as planned (a
silent server really says nothing, a reset really is an RST), so they are
checked here with plain sockets and ``http.client``, which hide nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from devtools.fake_telegram import FakeTelegram
from devtools.faultserver import (
    FaultServer,
    Reply,
    Request,
    dated,
    huge,
    ok,
    reset,
    silent,
    status,
    trickle,
)
from devtools.receiver import Receiver
from pulsed.verify import FIELDS, signature

REPO = Path(__file__).resolve().parent.parent
SECRET = "test-heartbeat-secret"
TOKEN = "123456:ABC-secret"
REQUEST = b"GET /probe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def fetch(
    port: int,
    method: str = "GET",
    path: str = "/",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.msg, resp.read()
    finally:
        conn.close()


def raw_request(port: int, data: bytes = REQUEST) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


# -- FaultServer -------------------------------------------------------------


def test_plan_is_used_in_order_then_the_fallback(server: FaultServer) -> None:
    server.plan(
        status(503, {"Retry-After": "1"}),
        status(301, {"Location": "http://127.0.0.2:1/x"}),
        then=status(204),
    )
    codes = [fetch(server.port)[0] for _ in range(4)]
    assert codes == [503, 301, 204, 204]

    server.plan(status(429))
    assert [fetch(server.port)[0] for _ in range(2)] == [429, 200]


def test_ordinary_reply_headers_and_request_record(server: FaultServer) -> None:
    before = time.time()
    code, headers, body = fetch(
        server.port, "POST", "/heartbeat", b'{"a":1}', {"X-Pulse-Signature": "sha256=00"}
    )
    assert (code, body) == (200, b'{"ok":true}')
    assert headers["Content-Length"] == str(len(body))
    assert headers["Connection"] == "close"
    date = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
    assert abs(date - before) < 5

    (request,) = server.wait_for_requests(1)
    assert (request.method, request.path, request.body) == ("POST", "/heartbeat", b'{"a":1}')
    assert request.headers["x-pulse-signature"] == "sha256=00"
    assert before <= request.received_at <= time.time()


def test_handler_decides_unless_a_plan_remains() -> None:
    def handler(request: Request) -> Reply:
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        return status(418, body=request.path.encode())

    with FaultServer(handler=handler) as srv:
        srv.plan(ok())
        assert fetch(srv.port, path="/a")[0] == 200
        assert fetch(srv.port, path="/b")[::2] == (418, b"/b")
        assert fetch(srv.port, path="/boom")[0] == 500


def test_silent_answers_nothing_and_sees_the_client_go(server: FaultServer) -> None:
    server.plan(silent())
    with raw_request(server.port) as sock:
        sock.settimeout(0.5)
        server.wait_for_requests(1)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert server.connections[0].closed_at is None
    (conn,) = server.wait_for_closed(1, timeout=2)
    assert conn.closed_at is not None


def test_trickle_sends_one_byte_at_a_time(server: FaultServer) -> None:
    server.plan(trickle(delay=0.05))
    start = time.monotonic()
    with raw_request(server.port) as sock:
        received = b""
        while len(received) < 4:
            received += sock.recv(4096)
        elapsed = time.monotonic() - start
    assert received.startswith(b"HTTP")
    # The 4th byte comes three delays after the 1st: a lower bound that holds
    # however slowly this test itself runs.
    assert elapsed >= 0.14
    server.wait_for_closed(1, timeout=2)
    assert fetch(server.port)[0] == 200


def test_reset_is_a_connection_reset(server: FaultServer) -> None:
    server.plan(reset())
    with raw_request(server.port) as sock, pytest.raises(ConnectionResetError):
        sock.recv(1)


def test_usable_from_a_test_running_its_own_event_loop(server: FaultServer) -> None:
    async def scenario() -> int:
        async with httpx.AsyncClient(timeout=2) as client:
            with pytest.raises(httpx.ReadError):
                await client.post(server.url + "/heartbeat", content=b"{}")
            return (await client.post(server.url + "/heartbeat", content=b"{}")).status_code

    server.plan(reset(), then=status(204))
    assert asyncio.run(scenario()) == 204


def test_huge_can_be_read_in_part_and_the_server_survives(server: FaultServer) -> None:
    server.plan(huge())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(50 * 2**20)
    assert len(resp.read(64 * 1024)) == 64 * 1024
    # The response holds its own reference to the socket: both must go to hang up.
    resp.close()
    conn.close()
    server.wait_for_closed(1, timeout=2)
    assert fetch(server.port)[0] == 200


def test_dated_shifts_the_date_header(server: FaultServer) -> None:
    server.plan(dated(-3600))
    _, headers, _ = fetch(server.port)
    date = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
    assert abs(date - (time.time() - 3600)) < 5


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with FaultServer(keep_alive=True) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for i in range(3):
            conn.request("POST", f"/r{i}", body=b"x" * i)
            resp = conn.getresponse()
            assert resp.read() == b'{"ok":true}'
            assert resp.headers["Connection"] == "keep-alive"
        conn.close()
        assert [r.body for r in srv.wait_for_requests(3)] == [b"", b"x", b"xx"]
        assert len(srv.connections) == 1


def test_connection_close_by_default_means_one_connection_per_request(
    server: FaultServer,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(2):
        conn.request("GET", "/")
        conn.getresponse().read()
    conn.close()
    assert len(server.wait_for_closed(2)) == 2


def test_tls_is_verified_against_the_test_ca() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    with FaultServer(ssl_context=server_ctx) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=trusting)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b'{"ok":true}'
        conn.close()

        default = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            default.request("GET", "/")
        default.close()
        # The refused handshake is still a connection, and it was closed.
        srv.wait_for_closed(2)
        assert len(srv.requests) == 1


def test_without_record_only_the_counts_are_kept() -> None:
    with FaultServer(record=False) as srv:
        assert [fetch(srv.port, path=f"/r{i}")[0] for i in range(3)] == [200, 200, 200]
        assert (srv.request_count, srv.connection_count) == (3, 3)
        assert (srv.requests, srv.connections) == ([], [])


def test_refusing_connections_closes_the_port_and_reopens_the_same_one(
    server: FaultServer,
) -> None:
    assert fetch(server.port)[0] == 200
    server.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    server.refuse_connections()  # already refusing: still refusing, no error
    server.refuse_connections(False)
    server.refuse_connections(False)  # already listening: nothing changes
    assert fetch(server.port)[0] == 200
    assert server.request_count == 2


@pytest.mark.parametrize("refusing", [False, True])
def test_stop_closes_the_port_whether_listening_or_refusing(refusing: bool) -> None:
    srv = FaultServer().start()
    srv.refuse_connections(refusing)
    srv.stop()
    assert not srv.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
    with pytest.raises(RuntimeError, match="not started"):
        srv.refuse_connections(False)


def test_waits_time_out_with_a_message(server: FaultServer) -> None:
    with pytest.raises(TimeoutError, match=r"expected 1 request\(s\) on http://127\.0\.0\.1:"):
        server.wait_for_requests(1, timeout=0.05)
    with pytest.raises(TimeoutError, match="closed connection"):
        server.wait_for_closed(1, timeout=0.05)


def test_stop_closes_a_silent_connection_promptly() -> None:
    srv = FaultServer().start()
    srv.plan(silent())
    with raw_request(srv.port) as sock:
        srv.wait_for_requests(1)
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.0
        assert not srv.running
        sock.settimeout(1)
        with contextlib.suppress(ConnectionResetError):  # also closed, just less politely
            assert sock.recv(1) == b""


# -- FakeTelegram ------------------------------------------------------------


async def get_me_username(url: str, token: str) -> str | None:
    # Imported here: aiogram takes seconds to import (pydantic models), and only
    # the two tests that really use it should pay for that.
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    try:
        return (await bot.get_me()).username
    finally:
        await bot.session.close()


def test_fake_telegram_answers_aiogram_get_me() -> None:
    with FakeTelegram(username="acme_shop_bot", valid_token=TOKEN) as fake:
        assert asyncio.run(get_me_username(fake.url, TOKEN)) == "acme_shop_bot"
        assert fake.wait_for_calls(1) == [TOKEN]


def test_fake_telegram_refuses_a_wrong_token_as_aiogram_expects() -> None:
    from aiogram.exceptions import TelegramUnauthorizedError

    with FakeTelegram(valid_token=TOKEN) as fake:
        with pytest.raises(TelegramUnauthorizedError):
            asyncio.run(get_me_username(fake.url, "654321:WRONG"))
        assert fake.calls == ["654321:WRONG"]


def test_fake_telegram_answers_each_of_several_bots_by_token() -> None:
    other = "777:OTHER-token"
    with FakeTelegram(valid_token=TOKEN, more_bots={other: "other_shop_bot"}) as fake:
        answers = {}
        for token in (TOKEN, other, "654321:WRONG"):
            code, _, body = fetch(fake.server.port, "POST", f"/bot{token}/getMe")
            answers[token] = (code, json.loads(body).get("result", {}).get("username"))
        assert answers == {
            TOKEN: (200, "acme_shop_bot"),
            other: (200, "other_shop_bot"),
            "654321:WRONG": (401, None),
        }
        assert fake.calls == [TOKEN, other, "654321:WRONG"]


def test_fake_telegram_failure_modes() -> None:
    path = f"/bot{TOKEN}/getMe"
    with FakeTelegram(valid_token=TOKEN) as fake:
        fake.set_mode("unauthorized")
        assert fetch(fake.server.port, "POST", path)[0] == 401
        fake.set_mode("server_error")
        code, _, body = fetch(fake.server.port, "POST", path)
        assert (code, json.loads(body)["error_code"]) == (500, 500)
        fake.set_mode("malformed")
        code, _, body = fetch(fake.server.port, "POST", path)
        assert code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
        fake.set_mode("hang")
        with raw_request(fake.server.port, f"POST {path} HTTP/1.1\r\n\r\n".encode()) as sock:
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        assert fake.wait_for_calls(4) == [TOKEN] * 4
        with pytest.raises(ValueError, match="unknown FakeTelegram mode"):
            fake.set_mode("bogus")  # type: ignore[arg-type]


# -- Receiver ----------------------------------------------------------------


def heartbeat(domain: str = "shop.example.com", at: datetime | None = None) -> bytes:
    stamp = (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    values: dict[str, Any] = {
        "domain": domain,
        "bot_username": "acme_shop_bot",
        "php_version": "8.2.7",
        "module_version": "1.4.0",
        "ecommerce_version": "4.0.2.3",
        "ecommerce_core_version": None,
        "timestamp": stamp,
    }
    return json.dumps({k: values[k] for k in FIELDS}, separators=(",", ":")).encode()


def post(port: int, body: bytes, sig: str | None, path: str = "/heartbeat") -> int:
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Pulse-Signature"] = sig
    return fetch(port, "POST", path, body, headers)[0]


def test_receiver_accepts_signed_and_rejects_tampered() -> None:
    with Receiver(SECRET) as rx:
        body = heartbeat()
        assert post(rx.port, body, signature(SECRET, body)) == 200
        assert rx.wait_for_accepted(1)[0]["domain"] == "shop.example.com"

        tampered = body.replace(b"shop.example.com", b"evil.example.com")
        assert post(rx.port, tampered, signature(SECRET, body)) == 401
        assert post(rx.port, body, None) == 401
        stale = heartbeat(at=datetime.now(timezone.utc) - timedelta(seconds=301))
        assert post(rx.port, stale, signature(SECRET, stale)) == 400
        assert post(rx.port, body, signature(SECRET, body), path="/other") == 404

        assert [reason for reason, _ in rx.rejected] == [
            "bad_signature",
            "unsigned",
            "stale",
            "not_found",
        ]
        assert rx.rejected[0][1].body == tampered
        assert len(rx.accepted) == 1


def test_receiver_drops_duplicates_by_domain_and_timestamp() -> None:
    with Receiver(SECRET) as rx:
        first, other = heartbeat("a.example"), heartbeat("b.example")
        for body in (first, first, other):
            assert post(rx.port, body, signature(SECRET, body)) == 200
        assert len(rx.wait_for_accepted(3)) == 3
        assert [b["domain"] for b in rx.unique_accepted] == ["a.example", "b.example"]


def test_receiver_that_keeps_nothing_still_counts_everything() -> None:
    with Receiver(SECRET, secrets={"own.example": "own-secret-0123456789"}, keep=False) as rx:
        first, other = heartbeat("a.example"), heartbeat("own.example")
        for body, secret in ((first, SECRET), (first, SECRET), (other, "own-secret-0123456789")):
            assert post(rx.port, body, signature(secret, body)) == 200
        assert post(rx.port, other, signature(SECRET, other)) == 401  # not its secret
        assert post(rx.port, first, None) == 401
        assert post(rx.port, first, signature(SECRET, first), path="/x") == 404
        rx.server.plan(then=status(503))
        assert post(rx.port, first, signature(SECRET, first)) == 503
        tally = rx.wait_for_count(3)
        assert (tally.requests, tally.accepted, tally.duplicates, tally.planned) == (7, 3, 1, 1)
        assert tally.rejected == {"bad_signature": 1, "unsigned": 1, "not_found": 1}
        assert rx.server.requests == []
        for kept in ("accepted", "unique_accepted", "rejected"):
            with pytest.raises(RuntimeError, match="keeps counts only"):
                getattr(rx, kept)
        with pytest.raises(RuntimeError, match="keeps counts only"):
            rx.wait_for_accepted(1)
        with pytest.raises(TimeoutError, match=r"got 3; rejected: \{'bad_signature': 1"):
            rx.wait_for_count(4, timeout=0.05)


def test_receiver_counts_a_retry_as_a_duplicate_of_its_domains_latest() -> None:
    with Receiver(SECRET) as rx:
        a1 = heartbeat("a.example", datetime.now(timezone.utc) - timedelta(seconds=5))
        a2, b = heartbeat("a.example"), heartbeat("b.example")
        # A retry repeats its shop's latest body; an older one again is not a retry, and
        # only unique_accepted, which keeps every key, drops it.
        for body in (a1, a1, a2, b, a2, a1):
            assert post(rx.port, body, signature(SECRET, body)) == 200
        assert rx.tally().duplicates == 2
        assert len(rx.accepted) == 6 and len(rx.unique_accepted) == 3


def test_receiver_script_prints_each_heartbeat_and_stops_on_sigint(tmp_path: Path) -> None:
    secret_file, port_file = tmp_path / "secret", tmp_path / "port"
    secret_file.write_text(SECRET + "\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "devtools" / "receiver.py"),
            "--port=0",
            f"--secret-file={secret_file}",
            f"--port-file={port_file}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("receiver listening on http://127.0.0.1:")
        port = int(port_file.read_text())
        body = heartbeat()
        assert post(port, body, signature(SECRET, body)) == 200
        line = proc.stdout.readline()
        assert line.startswith("accepted shop.example.com bot=@acme_shop_bot php=8.2.7")
        assert line.rstrip().endswith("Z sig ok")
        assert post(port, body, "sha256=" + "0" * 64) == 401
        assert proc.stdout.readline().startswith("rejected: bad_signature")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
