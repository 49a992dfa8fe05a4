"""Garbage-collector settings for long runs: the world's objects live the whole run.

A large simulation holds millions of long-lived objects (nodes, tables, VMs) and creates
few reference cycles, yet CPython's cyclic collector would rescan all of them at every
full collection. ``long_lived_heap()`` collects once, freezes what exists (``gc.freeze``:
never scanned again) and collects young objects less often; settings are restored after.
Results do not depend on it: it changes when memory of dead cycles is reclaimed, nothing
a behaviour can observe.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["long_lived_heap"]

YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython: 700)."""


@contextmanager
def long_lived_heap(young_threshold: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """Freeze the objects that exist now and collect young ones every ``young_threshold``
    allocations for the duration of the block."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
