"""``peeractor._loop.run_until`` processes events exactly as simpy's ``Environment.run``."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy
import simpy.rt

from peeractor._loop import run_until


def _world(env: simpy.Environment, log: list[tuple[float, str]]) -> None:
    """Processes, timeouts, shared events, interrupts and callbacks, all logged."""
    rng = random.Random(7)
    gate = env.event()

    def worker(name: str) -> Generator[simpy.Event, Any, None]:
        for i in range(20):
            yield env.timeout(rng.choice((0.0, 0.5, 1.0, 1.5)))
            log.append((env.now, f"{name}:{i}"))
            if i == 5 and name == "w0":
                gate.succeed("open")
        value = yield gate
        log.append((env.now, f"{name}:gate={value}"))

    def sleeper() -> Generator[simpy.Event, Any, None]:
        try:
            yield env.timeout(100)
        except simpy.Interrupt as exc:
            log.append((env.now, f"interrupted:{exc.cause}"))

    procs = [env.process(worker(f"w{k}")) for k in range(4)]
    victim = env.process(sleeper())

    def interrupter() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(3.25)
        victim.interrupt("now")
        yield simpy.AllOf(env, procs)
        log.append((env.now, "all done"))

    env.process(interrupter())
    timer = env.timeout(2.0)
    timer.callbacks.append(lambda e: log.append((env.now, "callback")))


def _trace(run: Callable[[simpy.Environment, float], None]) -> list[tuple[float, str]]:
    env = simpy.Environment()
    log: list[tuple[float, str]] = []
    _world(env, log)
    for until in (1.0, 2.0, 7.5, 40.0):
        run(env, until)
        log.append((env.now, "until"))
    return log


def test_same_history_as_simpy_run() -> None:
    expected = _trace(lambda env, until: env.run(until=until))
    assert len(expected) > 80
    assert _trace(run_until) == expected


def test_failed_event_crashes_the_run_as_simpy_does() -> None:
    def boom(env: simpy.Environment) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1)
        raise KeyError("lost")

    env = simpy.Environment()
    env.process(boom(env))
    with pytest.raises(KeyError, match="lost"):
        run_until(env, 5)
    assert env.now == 1


def test_stop_from_a_callback_keeps_the_remaining_callbacks() -> None:
    env = simpy.Environment()
    seen: list[str] = []
    event = env.timeout(1)

    def stop(_: simpy.Event) -> None:
        seen.append("stop")
        raise simpy.core.StopSimulation(None)

    event.callbacks.extend([stop, lambda _: seen.append("after")])
    run_until(env, 10)  # stopped at t=1 by the callback
    assert (env.now, seen) == (1, ["stop"])
    run_until(env, 10)
    assert (env.now, seen) == (10, ["stop", "after"])


def test_until_must_be_in_the_future() -> None:
    env = simpy.Environment(initial_time=5)
    with pytest.raises(ValueError, match="greater than the current"):
        run_until(env, 5)


def test_realtime_environment_keeps_its_own_run() -> None:
    env = simpy.rt.RealtimeEnvironment(factor=0.001, strict=False)
    log: list[float] = []
    env.timeout(1).callbacks.append(lambda _: log.append(env.now))
    run_until(env, 2)
    assert log == [1] and env.now == 2


class _OwnSchedule(simpy.Environment):
    def schedule(self, event: Any, priority: Any = simpy.events.NORMAL, delay: Any = 0) -> None:
        super().schedule(event, priority, delay)


def test_sim_runtime_refuses_an_environment_that_schedules_otherwise() -> None:
    from peeractor import PeerActorError
    from peeractor.sim import SimRuntime

    with pytest.raises(PeerActorError, match="overrides schedule"):
        SimRuntime(seed=1, env=_OwnSchedule())
    SimRuntime(seed=1, env=simpy.rt.RealtimeEnvironment(strict=False))  # simpy's own: fine


def test_sim_runtime_timers_and_plain_simpy_events_share_one_order() -> None:
    """Timers pushed by contexts and simpy's own timeouts at one instant run as scheduled."""
    from peeractor import Behaviour
    from peeractor.sim import SimRuntime

    env = simpy.Environment()
    log: list[tuple[float, str]] = []

    def world(event: simpy.Event) -> None:
        log.append((env.now, f"w{event.value}"))

    class Ticker(Behaviour):
        name = "tick"

        def on_start(self) -> None:
            for k in range(3):
                env.timeout(1.0, k).callbacks.append(world)
                self.schedule(1.0, k)

        def on_receive(self, message: object) -> None:
            log.append((env.now, f"t{message}"))

    rt = SimRuntime(seed=1, env=env)
    rt.add_node("n0", [Ticker()])
    rt.run(2.0)
    assert log == [(1.0, s) for s in ("w0", "t0", "w1", "t1", "w2", "t2")]
