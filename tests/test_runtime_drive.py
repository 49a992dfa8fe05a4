"""``SimRuntime.run`` on a plain ``simpy.Environment`` (``step`` inlined) against simpy's own
``Environment.run``: the same history, the same stop, the same failures."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from peeractor import Behaviour, message
from peeractor.sim import SimRuntime


class SteppedEnvironment(simpy.Environment):
    """simpy's own ``run``/``step`` (the runtime cannot inline an overridden ``step``)."""

    def step(self) -> None:
        super().step()


@message("test.drive.Hop")
class Hop:
    n: int


class Hopper(Behaviour):
    name = "hop"

    def __init__(self, nodes: list[str], log: list[tuple[float, str, int]]) -> None:
        self.nodes = nodes
        self.log = log

    def on_start(self) -> None:
        self.schedule(self.rng.random(), Hop(0))

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Hop)
        self.log.append((self.now(), self.node, message.n))
        if message.n < 0:  # a same-instant echo: ends there
            return
        target = self.nodes[int(self.rng.random() * len(self.nodes))]
        self.send((target, "hop"), Hop(message.n + 1))
        if self.rng.random() < 0.3:
            self.schedule(0.0, Hop(-1 - message.n))


def _history(env: simpy.Environment, stop_at: float | None = None) -> list[tuple[float, str, int]]:
    log: list[tuple[float, str, int]] = []
    rt = SimRuntime(seed=5, env=env)
    nodes = [f"n{i}" for i in range(20)]
    for node in nodes:
        rt.add_node(node, [Hopper(nodes, log)])
    if stop_at is not None:
        rt.call_later(stop_at, rt.stop)
    for until in (0.5, 1.0, 2.5, 4.0):
        rt.run(until=until)
    return log


def test_inlined_steps_give_simpys_history() -> None:
    assert SimRuntime(seed=1)._plain and not SimRuntime(seed=1, env=SteppedEnvironment())._plain
    expected = _history(SteppedEnvironment())
    assert len(expected) > 1000
    assert _history(simpy.Environment()) == expected
    stopped = _history(simpy.Environment(), stop_at=1.7)
    assert stopped == _history(SteppedEnvironment(), stop_at=1.7)
    assert 0 < len(stopped) < len(expected) and max(t for t, _, _ in stopped) <= 1.7


def _failing(env: simpy.Environment) -> Generator[simpy.Event, Any, None]:
    yield env.timeout(1.0)
    raise KeyError("boom")


@pytest.mark.parametrize("env_type", [simpy.Environment, SteppedEnvironment])
def test_a_failed_event_stops_the_run_with_its_exception(env_type: type) -> None:
    env = env_type()
    rt = SimRuntime(seed=1, env=env)
    env.process(_failing(env))
    with pytest.raises(KeyError, match="boom"):
        rt.run(until=5.0)
    assert env.now == 1.0
