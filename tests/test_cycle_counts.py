"""What a cycle's delivery leaves in the state's counters and history (contract §11)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from pulsed import _state as st
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._errors import DeliveryError
from tests.support.loop import fixed_facts, loop_config

pytestmark = pytest.mark.anyio
NOW = 1_800_000_000.0


class OneAnswer:
    def __init__(self, answer: Delivered | DeliveryError) -> None:
        self.answer = answer

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        if isinstance(self.answer, DeliveryError):
            raise self.answer
        return self.answer


def a_cycle(tmp_path: Path) -> Cycle:
    return Cycle(
        loop_config(tmp_path),
        st.StateStore(tmp_path),
        st.State(),
        writable=True,
        environ={},
        wall=lambda: NOW,
        collect=fixed_facts,
    )


async def test_a_sent_heartbeat_is_counted_with_its_attempts_and_time(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    assert await cycle.deliver(await cycle.prepare(), OneAnswer(Delivered(202, 2, 0.4567)))
    saved = st.StateStore(tmp_path).read()
    assert saved is not None and saved == cycle.state
    assert saved.counters == st.Counters(
        heartbeats_sent=1, deliveries_failed=0, delivery_attempts=2
    )
    assert list(saved.history) == [st.Delivery(NOW, "sent", 202, 2, 457)]


async def test_a_failed_delivery_is_counted_with_its_reason_not_its_text(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    failure = DeliveryError(
        "status", "HTTP 503 from the receiver", status=503, attempts=3, elapsed=1.9
    )
    assert not await cycle.deliver(await cycle.prepare(), OneAnswer(failure))
    saved = st.StateStore(tmp_path).read()
    assert saved is not None
    assert saved.counters == st.Counters(
        heartbeats_sent=0, deliveries_failed=1, delivery_attempts=3
    )
    assert list(saved.history) == [st.Delivery(NOW, "failed", 503, 3, 1900, "status")]
    assert saved.consecutive_failures == 1


async def test_a_crashed_cycle_counts_as_a_failed_delivery_without_attempts(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    await cycle.crashed(RuntimeError("boom"))
    assert cycle.state.counters == st.Counters(0, 1, 0)
    assert list(cycle.state.history) == [st.Delivery(NOW, "failed", None, 0, 0, "internal")]
