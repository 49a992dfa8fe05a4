"""Garbage-collector settings for long runs: the world's objects live the whole run.

A large simulation holds millions of long-lived objects (nodes, tables, VMs, the
coordinates and samples they keep) and creates few reference cycles (none in the default
scenario), yet CPython's cyclic collector would rescan them again and again: at 100,000
hosts it took 9 % of a run. So:

- ``paused_collector()``: no automatic collection while the world is built (millions of
  allocations, all of them kept);
- ``long_lived_heap()``: collects once, freezes what exists (``gc.freeze``: never scanned
  again), collects young objects less often; ``settle()``, called between two chunks of
  the run (a hundredth of it), freezes what is alive then (collecting it first would cost
  more than all the collections it saves). Settings are restored after, and the frozen
  objects unfrozen.

Results do not depend on it: it changes when memory of dead cycles is reclaimed, nothing a
behaviour can observe. A cycle that is still alive at the end of a chunk and dies later is
reclaimed only after the run (by the next collection).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["long_lived_heap", "paused_collector", "settle"]

YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython: 700)."""


@contextmanager
def paused_collector() -> Iterator[None]:
    """No automatic collection during the block (restored after, as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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


def settle() -> None:
    """Between two chunks of a run: freeze what is alive (the young collections reclaim
    the cycles that die before a chunk ends)."""
    gc.freeze()
