"""``PoissonLoad`` (chained callbacks) against the ten-line simpy-process reference, and the
seeding of the runtime's generators (whenever a service draws)."""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import simpy

from peeractor import Behaviour, stable_seed
from peeractor.sim import SimRuntime
from sim.load import LoadDistribution, PoissonLoad


def reference(env: simpy.Environment, vms: list[str], rate: float, rng: random.Random,
              dist: LoadDistribution, out: list[tuple[float, str, float]]
              ) -> Generator[simpy.Event, Any, None]:
    """The generator ``PoissonLoad`` replaces."""
    while True:
        yield env.timeout(rng.expovariate(rate))
        out.append((env.now, vms[int(rng.random() * len(vms))], dist.draw(rng)))


def test_poisson_load_gives_the_reference_times_vms_and_loads() -> None:
    vms = [f"vm{i}" for i in range(50)]
    dist = LoadDistribution(60.0, 20.0, 10.0, 100.0)
    ref_env, env = simpy.Environment(), simpy.Environment()
    expected: list[tuple[float, str, float]] = []
    got: list[tuple[float, str, float]] = []
    ref_env.process(reference(ref_env, vms, 2.0, random.Random(7), dist, expected))
    PoissonLoad(env, vms, 2.0, random.Random(7), dist,
                lambda vm, load: got.append((env.now, vm, load))).start()
    ref_env.run(until=300.0)
    env.run(until=300.0)
    assert len(got) > 500
    assert got == expected


def test_poisson_load_without_vms_schedules_nothing() -> None:
    env = simpy.Environment()
    PoissonLoad(env, [], 1.0, random.Random(1), LoadDistribution(), lambda vm, load: None).start()
    assert env.peek() == float("inf")


class Draws(Behaviour):
    def __init__(self, name: str, early: bool) -> None:
        self.name = name  # type: ignore[misc]
        self.early = early
        self.drawn: list[float] = []

    def on_start(self) -> None:
        if self.early:
            self.drawn.append(self.rng.random())
        self.schedule(5.0, "late")

    def on_receive(self, message: object) -> None:
        self.drawn.append(self.rng.random())


class Silent(Behaviour):
    name = "silent"


def test_a_service_generator_is_seeded_from_the_run_seed_and_its_address() -> None:
    rt = SimRuntime(seed=3)
    early, late, silent = Draws("early", True), Draws("late", False), Silent()
    rt.add_node("n1", [early, late, silent])
    rt.run(until=10.0)
    for service in (early, late):
        rng = random.Random(stable_seed(3, "n1", service.name))
        assert service.drawn == [rng.random() for _ in service.drawn]
    assert len(early.drawn) == 2 and len(late.drawn) == 1
    assert isinstance(silent.rng, random.Random)
