"""Every fixture more than one test file uses: local servers on 127.0.0.1, a shop to run
the daemon on, the reliability lab, and the asyncio backend for anyio tests.

A test file may still define a fixture of the same name for its own, different need
(``test_collect.py`` and ``test_config.py`` each have a bare ``shop`` folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/system boots containers as root (make systemtest); the unit suite never does.
collect_ignore = [] if os.environ.get("PULSED_SYSTEMTEST") else ["system"]

# Before the imports below: plain asserts inside the helpers report their operands too.
pytest.register_assert_rewrite("tests.support")

from devtools.fake_telegram import FakeTelegram  # noqa: E402
from devtools.faultserver import FaultServer  # noqa: E402
from devtools.receiver import Receiver  # noqa: E402
from tests.support.lab import Lab  # noqa: E402
from tests.support.process import SECRET, Shop  # noqa: E402


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
    """A verifying receiver that knows the process tests' secret."""
    with Receiver(SECRET) as rec:
        yield rec


@pytest.fixture
def shop(tmp_path: Path, receiver: Receiver) -> Shop:
    """A shop whose daemon sends to ``receiver``."""
    return Shop.create(tmp_path, receiver.url)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """One reliability scenario's servers and shops; a leaked secret fails the test."""
    with Lab(tmp_path) as the_lab:
        yield the_lab
