"""``sim.heap.long_lived_heap``: freezes the set-up objects for the run, restores after."""

from __future__ import annotations

import gc
import weakref

import pytest

from sim.heap import long_lived_heap, paused_collector, settle


def test_objects_are_frozen_during_the_block_and_settings_restored_after() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(10)]
    with long_lived_heap(young_threshold=12_345):
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold()[0] == 12_345
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settings_are_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), long_lived_heap():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_settle_freezes_what_is_alive_and_young_cycles_are_still_reclaimed() -> None:
    with long_lived_heap():
        frozen = gc.get_freeze_count()
        kept = [_Node() for _ in range(100)]
        settle()
        assert gc.get_freeze_count() >= frozen + len(kept)
        dead = _cycle()  # garbage at once: a young cycle, for the young collections
        gc.collect(0)
        assert dead() is None
        late = _cycle()  # frozen while alive (its names), then dropped: kept until after
        alive = late()
        settle()
        del alive
        gc.collect()
        assert late() is not None  # frozen: not scanned during the run
    gc.collect()
    assert late() is None and gc.get_freeze_count() == 0


def test_the_collector_is_paused_during_set_up_and_restored() -> None:
    assert gc.isenabled()
    with paused_collector():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_collector():
            pass
        assert not gc.isenabled()  # was off before: stays off
    finally:
        gc.enable()
