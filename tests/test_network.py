"""The geo network model: RTT from geography, jitter, loss, bandwidth, site sets."""

from __future__ import annotations

import random
import statistics

import pytest

from dvms.errors import InputError
from dvms.geo import (
    GRID5000_SITES,
    WORLD_SITES,
    RttModel,
    assign_blocks,
    assign_round_robin,
    great_circle_km,
    resolve_sites,
    site_rtt_s,
)
from sim.network import GeoNetwork

G5K = {s.name: s for s in GRID5000_SITES}


def test_great_circle_distances_of_known_city_pairs() -> None:
    # Reference distances (km) between the city centres, to 1 %.
    assert great_circle_km(G5K["rennes"], G5K["sophia"]) == pytest.approx(840, rel=0.01)
    assert great_circle_km(G5K["lyon"], G5K["grenoble"]) == pytest.approx(94, rel=0.02)
    w = {s.name: s for s in WORLD_SITES}
    assert great_circle_km(w["paris"], w["newyork"]) == pytest.approx(5837, rel=0.01)
    assert great_circle_km(G5K["nancy"], G5K["nancy"]) == 0.0


def test_site_rtt_is_fibre_propagation_with_route_factor_plus_lan() -> None:
    model = RttModel(fibre_km_s=200_000.0, route_factor=2.0)
    a, b = G5K["rennes"], G5K["sophia"]
    d = great_circle_km(a, b)
    assert site_rtt_s(a, b, model) == pytest.approx(2 * 2.0 * d / 200_000 + 200e-6)
    assert site_rtt_s(a, a, model) == a.lan_rtt_s
    # Grid'5000-like orders of magnitude: ~17 ms Rennes-Sophia, ~2 ms Lyon-Grenoble.
    assert 0.015 < site_rtt_s(a, b) < 0.020
    assert 0.001 < site_rtt_s(G5K["lyon"], G5K["grenoble"]) < 0.003


def network(jitter: float = 0.05, loss: float = 0.0) -> GeoNetwork:
    return GeoNetwork(
        {"r1": "rennes", "r2": "rennes", "s1": "sophia"},
        access={"r1": 10e-6, "r2": 30e-6, "s1": 50e-6},
        jitter=jitter,
        loss=loss,
    )


def test_rtt_adds_access_delays_and_is_symmetric() -> None:
    net = network()
    assert net.rtt("r1", "r2") == pytest.approx(200e-6 + 40e-6)
    wan = site_rtt_s(G5K["rennes"], G5K["sophia"])
    assert net.rtt("r1", "s1") == pytest.approx(wan + 60e-6)
    assert net.rtt("s1", "r1") == net.rtt("r1", "s1")
    assert net.rtt("r1", "r1") == 0.0
    assert net.site_of("s1") == "sophia"
    assert net.same_site("r1", "r2") and not net.same_site("r1", "s1")
    assert net.nodes == ["r1", "r2", "s1"]


def test_latency_jitter_is_symmetric_around_half_the_rtt() -> None:
    net = network(jitter=0.05)
    rng = random.Random(7)
    half = net.rtt("r1", "s1") / 2
    samples = [net.latency("r1", "s1", rng) for _ in range(4000)]
    values = [s for s in samples if s is not None]
    assert len(values) == 4000
    assert min(values) >= half * 0.95 and max(values) <= half * 1.05
    assert statistics.fmean(values) == pytest.approx(half, rel=0.003)
    assert net.latency("r1", "r1", rng) == 0.0
    assert network(jitter=0.0).latency("r1", "s1", rng) == half


def test_latency_is_deterministic_for_a_seed() -> None:
    net = network()
    a = [net.latency("r1", "s1", random.Random(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_loss_drops_about_the_given_fraction() -> None:
    net = network(loss=0.2)
    rng = random.Random(1)
    lost = sum(net.latency("r1", "s1", rng) is None for _ in range(5000))
    assert 900 < lost < 1100


def test_bandwidth_is_nic_inside_a_site_and_decreases_with_rtt_across() -> None:
    world = GeoNetwork(
        {"p": "paris", "l": "london", "t": "tokyo", "p2": "paris"}, WORLD_SITES, nic_bps=10e9
    )
    assert world.bandwidth_bps("p", "p2") == 10e9
    near, far = world.bandwidth_bps("p", "l"), world.bandwidth_bps("p", "t")
    assert far < near < 10e9
    assert far == pytest.approx(1460 * 8 * 1.22 / 1e-5**0.5 / world.rtt("p", "t"))
    assert network().bandwidth_bps("r1", "s1") < network().bandwidth_bps("r1", "r2") == 1e9


def test_default_access_delay_is_a_function_of_the_name_within_bounds() -> None:
    a = GeoNetwork({"h1": "lyon", "h2": "lyon"})
    b = GeoNetwork({"h2": "lyon", "h1": "lyon"})
    assert a.access_s("h1") == b.access_s("h1")
    assert a.access_s("h1") != a.access_s("h2")
    for node in ("h1", "h2"):
        assert 10e-6 <= a.access_s(node) <= 60e-6


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="unknown site 'paris'"):
        GeoNetwork({"h": "paris"})
    with pytest.raises(ValueError, match="jitter"):
        GeoNetwork({}, jitter=1.5)
    with pytest.raises(ValueError, match="unknown node 'zz'"):
        network().rtt("r1", "zz")
    with pytest.raises(ValueError, match="route_factor"):
        RttModel(route_factor=0.5)


def test_site_sets_and_assignment() -> None:
    assert [s.name for s in resolve_sites("grid5000")[:3]] == ["grenoble", "lille", "luxembourg"]
    assert len(resolve_sites("wide-area")) == 12 and resolve_sites("world") == WORLD_SITES
    with pytest.raises(InputError, match=r"infrastructure\.sites = .mars.: must be one of"):
        resolve_sites("mars")
    with pytest.raises(InputError, match="unknown site 'atlantis'"):
        resolve_sites(["lyon", "atlantis"])
    with pytest.raises(InputError, match="'lyon' listed twice"):
        resolve_sites(["lyon", "lyon"])
    sites = resolve_sites(["grenoble", "lille"])
    assert assign_round_robin(["a", "b", "c"], sites) == {
        "a": "grenoble",
        "b": "lille",
        "c": "grenoble",
    }
    assert assign_blocks(["a", "b", "c", "d"], sites) == {
        "a": "grenoble",
        "b": "grenoble",
        "c": "lille",
        "d": "lille",
    }
