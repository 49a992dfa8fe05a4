"""Runtime fixtures: every behaviour test runs on each runtime (like pykka's own suite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import simpy.rt

from peeractor.network import NetworkModel
from peeractor.sim import SimRuntime
from peeractor.threaded import ThreadRuntime

RUNTIME_KINDS = ("sim", "sim-rt", "thread")
"""``sim``: SimRuntime on virtual time; ``sim-rt``: SimRuntime on simpy's
RealtimeEnvironment; ``thread``: ThreadRuntime on the wall clock."""

REALTIME_TOLERANCE_S = 0.05
"""How far a wall-clock runtime's event times may be from the virtual-time ones."""

MakeRuntime = Callable[..., Any]


def make_runtime(
    kind: str,
    *,
    seed: int = 1,
    network: NetworkModel | None = None,
    trace: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """A fresh runtime of ``kind`` ("sim", "sim-rt", "thread")."""
    if kind == "sim":
        return SimRuntime(seed=seed, network=network, trace=trace)
    if kind == "sim-rt":
        env = simpy.rt.RealtimeEnvironment(factor=1.0, strict=False)
        return SimRuntime(seed=seed, env=env, network=network, trace=trace)
    if kind == "thread":
        return ThreadRuntime(seed=seed, network=network, trace=trace)
    raise ValueError(f"unknown runtime kind {kind!r}")


@pytest.fixture(params=RUNTIME_KINDS)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def runtimes() -> Any:
    """``make(kind, **kw)``; every runtime made is stopped at teardown."""
    made: list[Any] = []

    def make(kind: str, **kw: Any) -> Any:
        rt = make_runtime(kind, **kw)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.stop()
