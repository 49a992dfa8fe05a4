"""The Vivaldi service on the real runtimes: probing, gossip, dead peers, traces, determinism."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest

from dvms.errors import InputError
from dvms.overlay import LboOverlay, RandomOverlay, RingOverlay, build_ring
from dvms.overlay.base import Overlay
from dvms.services.vivaldi import (
    Ping,
    Pong,
    SampleEntry,
    VivaldiService,
    VivaldiServiceConfig,
    WireCoordinate,
)
from dvms.vivaldi import VivaldiConfig
from peeractor.codec import decode, encode
from peeractor.network import ConstantLatency
from peeractor.sim import SimRuntime

FAST = VivaldiServiceConfig(
    fast_period_s=0.05,
    fast_rounds=4,
    period_s=0.1,
    ping_timeout_s=0.08,
    trace_period_s=0.5,
    start_spread_s=0.05,
)


def test_config_defaults_and_validation() -> None:
    c = VivaldiServiceConfig()
    assert (c.fast_period_s, c.fast_rounds, c.period_s) == (1.0, 6, 2.0)
    assert (c.peers_per_round, c.sample_size, c.trace_period_s) == (1, 100, 300.0)
    with pytest.raises(InputError, match=r"^vivaldi\.period_s = 0: must be a number > 0$"):
        VivaldiServiceConfig(period_s=0)
    with pytest.raises(InputError, match=r"max_misses = 0: must be an integer >= 1"):
        VivaldiServiceConfig(max_misses=0)
    with pytest.raises(InputError, match=r"close_ping_probability = 1.5: must be a number in"):
        VivaldiServiceConfig(close_ping_probability=1.5)


def test_messages_round_trip_through_the_wire_codec() -> None:
    coord = WireCoordinate((0.001, -0.002), 1e-5, 0.4, 0.0001)
    ping = Ping("a", 7, 12.5, coord, ("b", "c"))
    pong = Pong("b", 7, 12.5, coord, ("a",), (SampleEntry("c", coord, 2.5),))
    assert decode(encode(ping)) == ping
    assert decode(encode(pong)) == pong
    assert type(decode(encode(ping)).coordinate) is WireCoordinate


def grid(names: list[str], kind: str = "lbo") -> dict[str, Overlay]:
    ring = build_ring(names, random.Random(3), successors=4)
    made: dict[str, Overlay] = {}
    for i, name in enumerate(names):
        if kind == "lbo":
            made[name] = LboOverlay(name)
        elif kind == "ring":
            made[name] = RingOverlay(name, ring[name])
        else:
            made[name] = RandomOverlay(name, random.Random(i), names)
    return made


def start(
    rt: Any, names: list[str], overlays: dict[str, Overlay], config: VivaldiServiceConfig
) -> dict[str, VivaldiService]:
    services: dict[str, VivaldiService] = {}
    for i, name in enumerate(names):
        bootstrap = [names[(i + 1) % len(names)]]  # a ring of bootstrap links only
        services[name] = VivaldiService(overlays[name], bootstrap, config)
        rt.add_node(name, [services[name]])
    return services


def test_service_converges_and_traces_on_every_runtime(runtime_kind: str, runtimes: Any) -> None:
    """Six nodes, every one-way delay 10 ms: all estimated RTTs approach 20 ms."""
    trace: list[dict[str, Any]] = []
    rt = runtimes(runtime_kind, network=ConstantLatency(0.010), trace=trace.append)
    names = [f"n{i}" for i in range(6)]
    overlays = grid(names)
    services = start(rt, names, overlays, FAST)
    rt.run(3.0)
    rt.stop()
    for name, service in services.items():
        assert service.stats.pongs >= 10, (name, service.stats)
        assert service.stats.rejected == 0
        assert len(service.sample) == 5  # gossip spread the whole membership
        assert service.coordinate.is_valid()
    errors = [
        abs(services[a].coordinate.distance_to(services[b].coordinate) - 0.020) / 0.020
        for a in names
        for b in names
        if a < b
    ]
    assert statistics.median(errors) < 0.25, errors
    coords = [e for e in trace if e["type"] == "vivaldi.coord"]
    assert {e["node"] for e in coords} == set(names)
    for event in coords:
        assert len(event["vec"]) == 8 and event["height"] > 0 and event["error"] >= 0
    # the overlay learnt its peers' coordinates and this node's own
    lbo = overlays["n0"]
    assert isinstance(lbo, LboOverlay)
    assert set(lbo.table()) == set(names) - {"n0"}
    assert lbo.own is not None


def run_once(seed: int) -> list[tuple[float, ...]]:
    rt = SimRuntime(seed=seed, network=ConstantLatency(0.005))
    names = [f"n{i}" for i in range(8)]
    services = start(rt, names, grid(names), FAST)
    rt.run(5.0)
    return [services[n].coordinate.vec for n in names]


def test_a_seed_gives_one_history() -> None:
    assert run_once(4) == run_once(4)
    assert run_once(4) != run_once(5)


@pytest.mark.parametrize("kind", ["lbo", "ring", "random"])
def test_crashed_peers_are_marked_dead_and_never_proposed(kind: str) -> None:
    """A crashed node stops answering; after ``max_misses`` missed pings each prober marks it
    dead in its overlay, which then never proposes it."""
    rt = SimRuntime(seed=2, network=ConstantLatency(0.005))
    names = [f"n{i}" for i in range(10)]
    overlays = grid(names, kind)
    services = start(rt, names, overlays, FAST)
    rt.run(2.0)
    rt.crash("n3")
    rt.run(30.0)
    probers = [n for n in names if n != "n3" and "n3" in overlays[n].dead]  # type: ignore[attr-defined]
    assert len(probers) >= 5
    for name in probers:
        assert "n3" not in services[name].sample
        for size in range(1, 9):
            members = [name, *[n for n in names if n not in ("n3", name)][: size - 1]]
            assert overlays[name].next_outside(members, name) != "n3"
    assert sum(s.stats.marked_dead for s in services.values()) == len(probers)
    assert rt.stats.dropped["crashed"] > 0


def test_rtts_out_of_range_are_counted_not_fatal() -> None:
    """A 12 s one-way delay gives 24 s RTTs: rejected by the client, counted."""

    class Slow:
        def latency(self, src: str, dst: str, rng: random.Random) -> float:
            return 12.0

    rt = SimRuntime(seed=1, network=Slow())
    config = VivaldiServiceConfig(ping_timeout_s=100.0, period_s=1.0)
    services = start(rt, ["a", "b"], grid(["a", "b"]), config)
    rt.run(60.0)
    assert services["a"].stats.rejected > 0
    assert services["a"].coordinate.vec == (0.0,) * 8
    assert math.isfinite(services["a"].coordinate.error)


def test_coordinate_before_start_is_the_origin() -> None:
    service = VivaldiService(LboOverlay("x"), vivaldi=VivaldiConfig(dimensionality=3))
    assert service.coordinate.vec == (0.0, 0.0, 0.0)


def test_only_close_nodes_heard_from_directly_and_recently_are_gossiped() -> None:
    rt = SimRuntime(seed=3, network=ConstantLatency(0.005))
    names = [f"n{i}" for i in range(4)]
    overlays = grid(names)
    services = start(rt, names, overlays, FAST)
    rt.run(2.0)
    lbo = overlays["n0"]
    assert isinstance(lbo, LboOverlay)
    own = services["n0"].coordinate
    lbo.observe("ghost", own)  # second-hand only, and right next to n0: the closest
    assert lbo.close_nodes(1) == ["ghost"]
    entries = [e for _ in range(50) for e in services["n0"]._close_gossip()]
    gossiped = {e.node for e in entries if e.coordinate is not None}
    assert gossiped and "ghost" not in gossiped
    assert gossiped <= set(names)
