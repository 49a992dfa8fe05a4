"""Long timers wait outside simpy's heap (``peeractor._far``) and still fire in heap order."""

from __future__ import annotations

import itertools
import math

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from peeractor import Behaviour, Timer
from peeractor._far import WIDTH_S
from peeractor.sim import SimRuntime

# around the bucket width and its multiples, the short path, the far path, never
DELAYS = (0.0, 0.1, WIDTH_S - 1e-9, WIDTH_S, WIDTH_S + 1e-9, 0.5, 0.75, 1.0, 1.3, 60.0,
          300.0, math.inf)  # fmt: skip


class _Oracle:
    """Every timer and timeout as scheduled: (due, scheduling order, label)."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, int, str]] = []
        self.fired: list[tuple[float, str]] = []
        self._order = itertools.count()

    def note(self, due: float, label: str) -> None:
        self.scheduled.append((due, next(self._order), label))

    def expected(self, until: float) -> list[tuple[float, str]]:
        """All NORMAL: they fire by time, then in scheduling order; none at ``until``."""
        return [(t, label) for t, _, label in sorted(self.scheduled) if t < until]


class _Chain(Behaviour):
    """Schedules timers from a script of delays; each firing schedules the next ones."""

    name = "chain"

    def __init__(self, oracle: _Oracle, env: simpy.Environment, script: list[int]) -> None:
        self.oracle, self.env, self.script = oracle, env, script
        self.count = 0

    def on_start(self) -> None:
        self._more(2)

    def _more(self, n: int) -> None:
        for _ in range(n):
            if self.count >= len(self.script):
                return
            pick = self.script[self.count]
            self.count += 1
            label = f"{self.node}.{self.count}"
            delay = DELAYS[pick % len(DELAYS)]
            self.oracle.note(self.env.now + delay, label)
            if pick % 3 == 0:  # a plain simpy timeout, interleaved with the timers
                self.env.timeout(delay, label).callbacks.append(self._timeout)
            else:
                self.schedule(delay, label)

    def _timeout(self, event: simpy.Event) -> None:
        self.on_receive(event.value)

    def on_receive(self, message: object) -> None:
        self.oracle.fired.append((self.env.now, str(message)))
        self._more(2)


def _run(scripts: list[list[int]], drive: str) -> _Oracle:
    env = simpy.Environment()
    oracle = _Oracle()
    rt = SimRuntime(seed=3, env=env)
    for i, script in enumerate(scripts):
        rt.add_node(f"n{i}", [_Chain(oracle, env, script)])
    for until in (0.25, 0.6, 1.0, 2.5, 400.0):
        if drive == "runtime":
            rt.run(until)
        else:
            env.run(until=until)  # simpy's own step(): the markers are plain events
    return oracle


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 10_000), max_size=40), min_size=1, max_size=5))
def test_timers_fire_by_time_then_scheduling_order(scripts: list[list[int]]) -> None:
    for drive in ("runtime", "simpy"):
        oracle = _run(scripts, drive)
        assert oracle.fired == oracle.expected(400.0)


class _Many(Behaviour):
    name = "many"

    def __init__(self) -> None:
        self.fired: list[float] = []
        self.cancel_me: list[Timer] = []

    def on_start(self) -> None:
        for k in range(200):
            timer = self.schedule(10.0 + k * 0.01, k)  # 200 long timers, 9 buckets
            if k % 2:
                self.cancel_me.append(timer)
        for timer in self.cancel_me:
            timer.cancel()

    def on_receive(self, message: object) -> None:
        self.fired.append(self.now())


def test_long_timers_leave_the_heap_small_and_cancel_as_before() -> None:
    env = simpy.Environment()
    rt = SimRuntime(seed=1, env=env)
    service = _Many()
    rt.add_node("n0", [service])
    assert rt._far.pending() == 200
    assert len(env._queue) == 8  # one marker per bucket of 0.25 s (10.0 .. 11.99)
    assert env.peek() == 10.0
    rt.run(20.0)
    assert rt._far.pending() == 0
    assert service.fired == [10.0 + k * 0.01 for k in range(0, 200, 2)]


def test_a_crashed_nodes_far_timers_never_fire() -> None:
    env = simpy.Environment()
    rt = SimRuntime(seed=1, env=env)
    service = _Many()
    rt.add_node("n0", [service])
    rt.run(5.0)
    rt.crash("n0")
    rt.run(20.0)
    assert service.fired == [] and rt._far.pending() == 0


def test_world_calls_and_injections_far_ahead_keep_their_order() -> None:
    """``call_later`` and ``inject`` take the same path as timers, in one order."""
    env = simpy.Environment()
    rt = SimRuntime(seed=1, env=env)
    log: list[tuple[float, str]] = []

    class Sink(Behaviour):
        name = "sink"

        def on_receive(self, message: object) -> None:
            log.append((self.now(), str(message)))

    rt.add_node("n0", [Sink()])
    for k, delay in enumerate((5.0, 0.1, 5.0, 300.0, 0.25, 5.0)):
        if k % 2:
            rt.inject(("n0", "sink"), f"m{k}", delay)
        else:
            rt.call_later(delay, lambda k=k: log.append((env.now, f"c{k}")))  # type: ignore[misc]
    assert rt._far.pending() == 5
    rt.run(400.0)
    assert log == [(0.1, "m1"), (0.25, "c4"), (5.0, "c0"), (5.0, "c2"), (5.0, "m5"),
                   (300.0, "m3")]  # fmt: skip
