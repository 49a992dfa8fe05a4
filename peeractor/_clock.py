"""One timer thread for a ``ThreadRuntime``: a heap of deadlines and a condition."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["TimerThread"]


class TimerThread:
    """Calls ``fn(arg)`` at (monotonic) deadlines, in deadline then scheduling order.

    Callbacks run on the timer thread and must be quick (they hand work to actors).
    An exception from a callback goes to ``on_error`` and the thread carries on.
    """

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._on_error = on_error
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def at(self, deadline: float, fn: Callable[[Any], None], arg: Any) -> None:
        """Call ``fn(arg)`` when ``time.monotonic()`` reaches ``deadline``."""
        with self._cond:
            if self._closed:
                return
            entry = (deadline, next(self._seq), fn, arg)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()

    def after(self, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
        self.at(time.monotonic() + delay, fn, arg)

    def close(self) -> None:
        """Stop the thread; pending calls are forgotten. Joins unless called from the thread."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def _loop(self) -> None:
        heap = self._heap
        while True:
            with self._cond:
                while not self._closed:
                    if not heap:
                        self._cond.wait()
                        continue
                    remaining = heap[0][0] - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closed:
                    return
                now = time.monotonic()
                due = []
                while heap and heap[0][0] <= now:
                    _, _, fn, arg = heapq.heappop(heap)
                    due.append((fn, arg))
            for fn, arg in due:
                try:
                    fn(arg)
                except BaseException as exc:  # reported, never kills the clock
                    self._on_error(exc)
