"""The body bytes, its headers, the signature, and the receiver's verify function (contract §3)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from pulsed._body import FIELDS as BODY_FIELDS
from pulsed._body import Heartbeat, ShopFacts, decode, encode, heartbeat, signed
from pulsed._timefmt import rfc3339
from pulsed.verify import FIELDS, VerificationError, signature, verify_heartbeat

SECRET = "s3cret-heartbeat-key"
BEAT = Heartbeat(
    domain="shop.example.com",
    bot_username="acme_shop_bot",
    facts=ShopFacts(
        php_version="8.2.7",
        module_version="1.4.0",
        ecommerce_version="3.0.3.8",
        ecommerce_core_version=None,
    ),
    timestamp="2026-11-29T05:42:28Z",
)
NO_FACTS = ShopFacts(None, None, None, None)
# Published in docs/protocol.md; a change here is a change of the wire format.
VECTOR_BODY = (
    b'{"domain":"shop.example.com","bot_username":"acme_shop_bot","php_version":"8.2.7",'
    b'"module_version":"1.4.0","ecommerce_version":"3.0.3.8","ecommerce_core_version":null,'
    b'"timestamp":"2026-11-29T05:42:28Z"}'
)
VECTOR_SIGNATURE = "sha256=af5954c23df1336bf1c04d4dfc17707c7deca019d1c89f79254824fbf4a5f9ed"
AT = datetime(2026, 11, 29, 5, 42, 30, tzinfo=timezone.utc)


def test_body_is_compact_json_with_exactly_the_seven_keys_in_order() -> None:
    body = encode(BEAT)
    assert body == VECTOR_BODY
    assert list(json.loads(body)) == list(FIELDS)


def test_signature_is_hmac_sha256_hex_over_the_exact_bytes() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), VECTOR_BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, VECTOR_BODY) == f"sha256={expected}"
    assert expected == expected.lower()


def test_published_vector() -> None:
    assert signature(SECRET, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_fields_are_the_ones_receivers_verify() -> None:
    # verify.py stands alone for receivers to copy: its list must be the body's.
    assert BODY_FIELDS == FIELDS


def test_headers() -> None:
    request = signed(BEAT, SECRET, 1_795_930_948.0)
    assert request.body == VECTOR_BODY
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-MEGAPAY-VERSION"] == "1.4.0"
    # The published vector, not signature(): a header signed by a broken signer must not
    # be checked against that same signer.
    assert headers["X-Pulse-Signature"] == VECTOR_SIGNATURE
    assert headers["User-Agent"].startswith("pulsed/")


def test_version_header_left_out_when_module_version_is_null() -> None:
    request = signed(
        Heartbeat("shop.example.com", None, NO_FACTS, "2026-11-29T05:42:28Z"), SECRET, 0.0
    )
    assert "X-MEGAPAY-VERSION" not in request.headers
    assert json.loads(request.body)["module_version"] is None


def test_non_ascii_is_utf8_and_signed_as_sent() -> None:
    beat = Heartbeat("xn--80ak6aa92e.com", "бот", NO_FACTS, "2026-11-29T05:42:28Z")
    body = encode(beat)
    assert "бот".encode() in body
    assert verify_heartbeat(SECRET, body, signature(SECRET, body), now=AT)["bot_username"] == "бот"


def test_rfc3339_is_utc_whole_seconds_with_z() -> None:
    assert rfc3339(1_795_930_948.9) == "2026-11-29T05:42:28Z"


def test_verify_accepts_and_returns_payload() -> None:
    payload = verify_heartbeat(SECRET, VECTOR_BODY, signature(SECRET, VECTOR_BODY), now=AT)
    assert payload["domain"] == "shop.example.com"


@pytest.mark.parametrize(
    ("body", "sig", "reason"),
    [
        (VECTOR_BODY, None, "unsigned"),
        (VECTOR_BODY, "sha256=" + "0" * 64, "bad_signature"),
        (VECTOR_BODY.replace(b"1.4.0", b"1.4.1"), "orig", "bad_signature"),
        (VECTOR_BODY, signature("other", VECTOR_BODY), "bad_signature"),
        (b"not json", "self", "malformed"),
        (b'{"domain":"x"}', "self", "malformed"),
    ],
)
def test_verify_rejects(body: bytes, sig: str | None, reason: str) -> None:
    if sig == "orig":
        sig = signature(SECRET, VECTOR_BODY)
    elif sig == "self":
        sig = signature(SECRET, body)
    with pytest.raises(VerificationError) as info:
        verify_heartbeat(SECRET, body, sig, now=AT)
    assert info.value.reason == reason


@pytest.mark.parametrize("offset", [301, -301, 86400])
def test_verify_rejects_timestamps_more_than_300_s_off(offset: int) -> None:
    with pytest.raises(VerificationError) as info:
        verify_heartbeat(
            SECRET,
            VECTOR_BODY,
            signature(SECRET, VECTOR_BODY),
            now=datetime(2026, 11, 29, 5, 42, 28, tzinfo=timezone.utc) + timedelta(seconds=offset),
        )
    assert info.value.reason == "stale"


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_verify_accepts_within_300_s(offset: int) -> None:
    now = datetime(2026, 11, 29, 5, 42, 28, tzinfo=timezone.utc) + timedelta(seconds=offset)
    assert verify_heartbeat(SECRET, VECTOR_BODY, signature(SECRET, VECTOR_BODY), now=now)


def test_rfc3339_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert rfc3339(1_795_930_948.9) == "2026-11-29T05:42:28Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_body_decodes_to_the_heartbeat_it_was_made_from() -> None:
    assert decode(VECTOR_BODY) == BEAT


@pytest.mark.parametrize(
    "body",
    [
        b'{"domain":"shop.example.com"}',
        b"not json",
        b"\xff",
        b"[" * 100_000,
        VECTOR_BODY.replace(b'"1.4.0"', b"140"),
        VECTOR_BODY.replace(b'"shop.example.com"', b"null"),
        VECTOR_BODY.replace(b'"2026-11-29T05:42:28Z"', b"null"),
        # The same keys in another order is not a body pulsed made.
        VECTOR_BODY.replace(
            b'"domain":"shop.example.com","bot_username":"acme_shop_bot"',
            b'"bot_username":"acme_shop_bot","domain":"shop.example.com"',
        ),
    ],
)
def test_what_pulsed_could_not_have_made_is_not_decoded(body: bytes) -> None:
    assert decode(body) is None


def test_a_secret_as_bytes_signs_as_its_utf8_string() -> None:
    assert signature("ключ".encode(), VECTOR_BODY) == signature("ключ", VECTOR_BODY)


def test_verify_without_now_uses_the_receivers_clock() -> None:
    beat = Heartbeat("shop.example.com", None, NO_FACTS, rfc3339(time.time()))
    body = encode(beat)
    assert verify_heartbeat(SECRET, body, signature(SECRET, body))["timestamp"] == beat.timestamp


def _signed(stamp: object) -> bytes:
    doc = json.loads(VECTOR_BODY)
    doc["timestamp"] = stamp
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("body", "sig", "message"),
    [
        (VECTOR_BODY, None, "unsigned: no X-Pulse-Signature header"),
        (VECTOR_BODY, "sha256=" + "0" * 64, "bad_signature: HMAC does not match the body"),
        (b"\xff", "self", "malformed: body is not UTF-8 JSON ("),
        (b'{"domain":"x"}', "self", f"malformed: body must hold exactly the keys {FIELDS}"),
        (_signed(5), "self", "malformed: timestamp must be RFC 3339 UTC ending in Z"),
        (_signed("2026-11-29T05:42:28+00:00"), "self", "malformed: timestamp must be RFC 3339"),
        (_signed("2026-11-29 05:42:28Z"), "self", "malformed: timestamp '2026-11-29 05:42:28Z'"),
        (_signed("2026-11-29T05:52:28Z"), "self", "stale: timestamp is 598 s from the receiver's"),
    ],
)
def test_each_rejection_says_why(body: bytes, sig: str | None, message: str) -> None:
    if sig == "self":
        sig = signature(SECRET, body)
    with pytest.raises(VerificationError) as info:
        verify_heartbeat(SECRET, body, sig, now=AT)
    assert str(info.value).startswith(message)


def test_a_rejection_without_detail_is_its_reason_alone() -> None:
    assert str(VerificationError("stale")) == "stale"


def test_a_heartbeat_speaks_for_its_moment_in_whole_seconds() -> None:
    beat = heartbeat("shop.example.com", "acme_shop_bot", BEAT.facts, 1_795_930_948.9)
    assert beat == BEAT


def test_a_signed_request_keeps_the_moment_its_timestamp_names() -> None:
    assert signed(BEAT, SECRET, 1_795_930_948.0).at == 1_795_930_948.0
