"""Shared fixtures: real local servers on 127.0.0.1, and the asyncio backend for anyio tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fake_telegram import FakeTelegram
from devtools.faultserver import FaultServer
from devtools.receiver import Receiver
from tests.proc import SECRET, Shop


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The verifying receiver that ``make run`` uses, keyed with the process tests' secret."""
    with Receiver(SECRET) as rec:
        yield rec


@pytest.fixture
def shop(tmp_path: Path, receiver: Receiver) -> Shop:
    """A copied example shop, a stub php and a state folder, pointed at ``receiver``."""
    return Shop.create(tmp_path, receiver.url)
