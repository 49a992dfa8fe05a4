"""The Vivaldi client and config: exact update steps, rejections, resets, batch queries."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvms.errors import InputError
from dvms.vivaldi import (
    Coordinate,
    InvalidCoordinate,
    InvalidRtt,
    VivaldiClient,
    VivaldiConfig,
    VivaldiError,
)
from dvms.vivaldi.batch import distances, k_nearest, pack, pairwise_distances


def test_defaults_are_serfs() -> None:
    c = VivaldiConfig()
    assert (c.dimensionality, c.error_max, c.ce, c.cc) == (8, 1.5, 0.25, 0.25)
    assert (c.adjustment_window, c.height_min, c.latency_filter_size) == (20, 10e-6, 3)
    assert (c.gravity_rho, c.rtt_max, c.latency_filter_peers) == (150.0, 10.0, 64)
    assert VivaldiConfig(dimensionality=2).dimensionality == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dimensionality", 0),
        ("dimensionality", 2.5),
        ("error_max", 0.0),
        ("ce", 1.5),
        ("cc", 0.0),
        ("adjustment_window", -1),
        ("height_min", 0.0),
        ("latency_filter_size", 0),
        ("latency_filter_peers", 0),
        ("gravity_rho", -1.0),
        ("rtt_max", math.nan),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(InputError, match=rf"^VivaldiConfig\.{field} = {value!r}: must be "):
        VivaldiConfig(**{field: value})  # type: ignore[arg-type]


def test_a_fresh_client_sits_at_the_origin_with_maximum_error() -> None:
    client = VivaldiClient(VivaldiConfig(dimensionality=3), random.Random(1))
    assert client.coordinate == Coordinate((0.0, 0.0, 0.0), 10e-6, 1.5, 0.0)


def test_one_update_follows_serfs_formulas_exactly() -> None:
    """Client at the origin, peer at (0.010, 0) with height 10 µs; RTT 30 ms, no adjustment,
    no gravity to speak of: every quantity below is computed by hand."""
    config = VivaldiConfig(dimensionality=2, adjustment_window=0, gravity_rho=1e12)
    client = VivaldiClient(config, random.Random(1))
    client.set_coordinate(Coordinate((0.0, 0.0), 10e-6, 1.0, 0.0))
    peer = Coordinate((0.010, 0.0), 10e-6, 0.5, 0.0)
    new = client.update("p", peer, 0.030)
    dist = 0.010 + 20e-6
    w = 1.0 / 1.5
    error = 0.25 * w * abs(dist - 0.030) / 0.030 + 1.0 * (1 - 0.25 * w)
    force = 0.25 * w * (0.030 - dist)
    assert new.error == pytest.approx(error)
    assert new.vec[0] == pytest.approx(-force)  # pushed away from the peer along x
    assert new.vec[1] == 0.0
    # Dabek's height step: force · (h_i + h_j) / (‖Δx‖ + h_i + h_j)
    assert new.height == pytest.approx(10e-6 + force * 20e-6 / (0.010 + 20e-6))
    assert client.stats.updates == 1


def test_coincident_points_move_in_a_random_unit_direction() -> None:
    config = VivaldiConfig(dimensionality=3, adjustment_window=0, gravity_rho=1e12)
    a = VivaldiClient(config, random.Random(5))
    b = VivaldiClient(config, random.Random(5))
    peer = Coordinate.origin(config)
    ca, cb = a.update("p", peer, 0.02), b.update("p", peer, 0.02)
    assert ca == cb  # same rng, same direction
    assert math.hypot(*ca.vec) == pytest.approx(0.25 * 0.5 * (0.02 - 20e-6))
    assert ca.height == config.height_min  # height moves only when the points differ


@pytest.mark.parametrize("rtt", [-0.001, 10.5, math.nan, math.inf])
def test_bad_rtts_are_rejected_and_change_nothing(rtt: float) -> None:
    client = VivaldiClient(VivaldiConfig(dimensionality=2), random.Random(1))
    before = client.coordinate
    with pytest.raises(InvalidRtt, match=r"round-trip time .* is invalid; must be a number in"):
        client.update("p", Coordinate.origin(client.config), rtt)
    assert isinstance(InvalidRtt(1.0, 10.0), ValueError)
    assert client.coordinate == before and client.stats.updates == 0


def test_zero_rtt_is_accepted_clamped_and_counted() -> None:
    client = VivaldiClient(VivaldiConfig(dimensionality=2), random.Random(1))
    client.update("p", Coordinate((0.001, 0.0), 1e-5, 1.0, 0.0), 0.0)
    assert client.stats.zero_rtts == 1 and client.coordinate.is_valid()


def test_incompatible_or_invalid_peer_coordinates_are_rejected() -> None:
    client = VivaldiClient(VivaldiConfig(dimensionality=2), random.Random(1))
    with pytest.raises(InvalidCoordinate, match="3 dimensions, this client 2"):
        client.update("p", Coordinate((0.0, 0.0, 0.0), 1e-5, 1.0), 0.01)
    with pytest.raises(VivaldiError, match="not finite"):
        client.update("p", Coordinate((math.nan, 0.0), 1e-5, 1.0), 0.01)


def test_numeric_blow_up_resets_to_the_origin_and_is_counted() -> None:
    config = VivaldiConfig(dimensionality=2)
    client = VivaldiClient(config, random.Random(1))
    client.set_coordinate(Coordinate((1e308, 0.0), 1e-5, 1.0, 0.0))
    peer = Coordinate((-1e308, 0.0), 1e-5, 1.0, 0.0)  # the distance overflows to inf
    assert client.update("p", peer, 0.01) == Coordinate.origin(config)
    assert client.stats.resets == 1


def test_latency_filter_uses_the_moving_median_per_peer() -> None:
    config = VivaldiConfig(dimensionality=2, adjustment_window=0, gravity_rho=1e12)
    seen: list[float] = []

    class Spy(VivaldiClient):
        def _filter(self, peer_id: str, rtt: float) -> float:
            filtered = super()._filter(peer_id, rtt)
            seen.append(filtered)
            return filtered

    spy = Spy(config, random.Random(1))
    peer = Coordinate.origin(config)
    for rtt in (0.010, 0.500, 0.012, 0.011, 0.900, 0.900):
        spy.update("p", peer, rtt)
    spy.update("q", peer, 0.300)  # another peer has its own window
    spy.forget("p")
    spy.update("p", peer, 0.020)  # forgotten: starts afresh
    assert seen == [0.010, 0.500, 0.012, 0.012, 0.012, 0.900, 0.300, 0.020]


def test_latency_filters_are_kept_for_the_most_recent_peers_only() -> None:
    config = VivaldiConfig(dimensionality=2, latency_filter_peers=2)
    seen: list[float] = []

    class Spy(VivaldiClient):
        def _filter(self, peer_id: str, rtt: float) -> float:
            filtered = super()._filter(peer_id, rtt)
            seen.append(filtered)
            return filtered

    spy = Spy(config, random.Random(1))
    peer = Coordinate.origin(config)
    spy.update("p", peer, 0.010)
    spy.update("q", peer, 0.100)
    spy.update("p", peer, 0.030)  # p is now the most recent
    spy.update("r", peer, 0.200)  # drops q's samples, not p's
    spy.update("p", peer, 0.020)
    spy.update("q", peer, 0.300)  # q starts afresh
    assert seen == [0.010, 0.100, 0.030, 0.200, 0.020, 0.300]


def test_adjustment_is_the_halved_mean_of_the_window() -> None:
    config = VivaldiConfig(dimensionality=2, adjustment_window=4, gravity_rho=1e12, cc=1e-9)
    client = VivaldiClient(config, random.Random(1))
    peer = Coordinate((0.010, 0.0), 10e-6, 1.5, 0.0)
    c = client.update("p", peer, 0.030)
    raw = client.coordinate.raw_distance_to(peer)
    assert c.adjustment == pytest.approx((0.030 - raw) / (2 * 4), rel=1e-6)


def test_gravity_pulls_a_far_coordinate_towards_the_origin() -> None:
    config = VivaldiConfig(dimensionality=2, adjustment_window=0, gravity_rho=1.0, cc=1e-9)
    client = VivaldiClient(config, random.Random(1))
    client.set_coordinate(Coordinate((0.5, 0.0), 10e-6, 1.0, 0.0))
    peer = Coordinate((0.4, 0.0), 10e-6, 1.0, 0.0)
    new = client.update("p", peer, client.distance_to(peer))  # no Vivaldi force
    pull = ((0.5 + 20e-6) / 1.0) ** 2
    assert new.vec[0] == pytest.approx(0.5 - pull, rel=1e-6)


def test_distance_applies_adjustments_only_while_positive() -> None:
    a = Coordinate((0.0, 0.0), 1e-5, 1.0, 0.002)
    b = Coordinate((0.003, 0.004), 1e-5, 1.0, -0.001)
    assert a.distance_to(b) == pytest.approx(0.005 + 2e-5 + 0.001)
    c = Coordinate((0.003, 0.004), 1e-5, 1.0, -0.010)
    assert a.distance_to(c) == pytest.approx(0.005 + 2e-5)  # adjusted would be negative


# -- batch queries against a ten-line naive reference --------------------------------------


def naive_distance(a: Coordinate, b: Coordinate) -> float:
    """Serf's Coordinate.DistanceTo, written out plainly."""
    total = 0.0
    for x, y in zip(a.vec, b.vec, strict=True):
        total += (x - y) * (x - y)
    raw = math.sqrt(total) + a.height + b.height
    adjusted = raw + a.adjustment + b.adjustment
    if adjusted > 0.0:
        return adjusted
    return raw


finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
coordinates = st.builds(
    lambda vec, h, a: Coordinate(tuple(vec), h, 0.5, a),
    st.lists(finite, min_size=3, max_size=3),
    st.floats(min_value=1e-5, max_value=0.1),
    st.floats(min_value=-0.2, max_value=0.2),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(coordinates, min_size=1, max_size=12), coordinates)
def test_batch_distances_agree_with_the_naive_reference(
    coords: list[Coordinate], origin: Coordinate
) -> None:
    packed = pack(coords)
    got = distances(origin, packed)
    want = [naive_distance(origin, c) for c in coords]
    assert got.tolist() == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert [origin.distance_to(c) for c in coords] == pytest.approx(want, rel=1e-12, abs=1e-12)
    matrix = pairwise_distances(packed)
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            expected = 0.0 if i == j else naive_distance(a, b)
            assert matrix[i, j] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    k = min(3, len(coords))
    nearest = k_nearest(origin, packed, k).tolist()
    ranked = sorted(range(len(coords)), key=lambda i: (want[i], i))
    assert nearest == ranked[:k]


def test_k_nearest_excludes_masked_entries_and_breaks_ties_by_index() -> None:
    coords = [Coordinate((float(x), 0.0), 1e-5, 1.0) for x in (3, 1, 1, 2, 5)]
    origin = Coordinate((0.0, 0.0), 1e-5, 1.0)
    packed = pack(coords)
    assert k_nearest(origin, packed, 3).tolist() == [1, 2, 3]
    mask = np.array([False, True, False, False, False])
    assert k_nearest(origin, packed, 2, exclude=mask).tolist() == [2, 3]
    assert k_nearest(origin, packed, 0).tolist() == []
    assert k_nearest(origin, pack([], 2), 4).tolist() == []


# -- property: coordinates stay finite -------------------------------------------------------

observations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4),
        st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=2, max_size=2),
        st.floats(min_value=0.0, max_value=1e6),
        st.floats(min_value=0.0, max_value=10.0),
        st.floats(min_value=-1e6, max_value=1e6),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(observations)
def test_coordinates_stay_finite_whatever_is_observed(obs: list) -> None:  # type: ignore[type-arg]
    config = VivaldiConfig(dimensionality=2)
    client = VivaldiClient(config, random.Random(3))
    for peer, vec, height, rtt, adjustment in obs:
        other = Coordinate(tuple(vec), max(height, 1e-9), 0.5, adjustment)
        coordinate = client.update(f"p{peer}", other, rtt)
        assert coordinate.is_valid()
        assert coordinate.height >= config.height_min
        assert 0.0 <= coordinate.error <= config.error_max
        assert math.isfinite(client.distance_to(other))
