"""Shared fixtures: real local servers on 127.0.0.1, and the asyncio backend for anyio tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.fake_telegram import FakeTelegram
from devtools.faultserver import FaultServer


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
