"""What ``pulsed run`` does to the process itself: what start and a reload build is
frozen out of the cyclic collector's sight, and no cyclic garbage is kept with it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pulsed._daemon import _long_lived


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the tests run with the collector as it was


def test_what_lives_is_frozen_and_young_cyclic_garbage_is_freed_first(unfrozen: None) -> None:
    kept = Node()
    dropped = weakref.ref(Node())  # unreachable already, but held up by its cycle
    _long_lived()
    assert dropped() is None  # freed before the freeze, not kept for good
    assert gc.get_freeze_count() >= len(gc.get_objects(generation=None)) // 2
    assert kept.me is kept
