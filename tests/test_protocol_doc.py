"""docs/protocol.md is for another team: its vectors must be what the code does."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pulsed._body import USER_AGENT
from pulsed._version import __version__
from pulsed.verify import VerificationError, signature, verify_heartbeat

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
VECTORS = re.findall(
    r"- secret: `([^`]+)`\n- body[^\n]*\n  `([^`]+)`\n- `X-Pulse-Signature`: `([^`]+)`"
    r"|- secret: `([^`]+)`\n- body: `([^`]+)`\n- `X-Pulse-Signature`: `([^`]+)`",
    DOC,
)


def test_the_page_has_two_vectors() -> None:
    assert len(VECTORS) == 2


@pytest.mark.parametrize("groups", VECTORS)
def test_vector_signatures(groups: tuple[str, ...]) -> None:
    secret, body, sig = [g for g in groups if g]
    assert signature(secret, body.encode()) == sig


def test_vector_one_length_and_clock_rule() -> None:
    secret, body, sig = [g for g in VECTORS[0] if g]
    raw = body.encode()
    assert f"{len(raw)} of them" in DOC
    ok = datetime(2026, 11, 29, 5, 42, 30, tzinfo=timezone.utc)
    assert verify_heartbeat(secret, raw, sig, now=ok)["domain"] == "shop.example.com"
    late = datetime(2026, 11, 29, 5, 47, 29, tzinfo=timezone.utc)
    with pytest.raises(VerificationError, match="stale"):
        verify_heartbeat(secret, raw, sig, now=late)


def test_the_example_request_is_vector_one() -> None:
    _, body, sig = [g for g in VECTORS[0] if g]
    assert f"X-Pulse-Signature: {sig}" in DOC
    assert f"\n{body}\n```" in DOC


def test_the_user_agent_the_page_tells_receivers_to_look_for_is_the_one_sent() -> None:
    assert f"pulsed/{__version__}" == USER_AGENT
    assert f"User-Agent: {USER_AGENT}\n" in DOC  # the request shown
    assert "`User-Agent: pulsed/<version>`" in DOC  # how to tell the two senders apart
