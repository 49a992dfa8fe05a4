"""``sim.heap.long_lived_heap``: freezes the set-up objects for the run, restores after."""

from __future__ import annotations

import gc

import pytest

from sim.heap import long_lived_heap


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
