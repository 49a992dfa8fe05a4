"""Unit tests of the world's models against hand-computed values."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from sim.infrastructure import Infrastructure, SimHost, SimVM, host_index, host_name
from sim.load import LoadDistribution, poisson_arrivals, read_load_trace
from sim.migration import precopy
from sim.power import PowerMeter, host_power_w
from sim.scenario_schema import InfrastructureConfig

GIB = 1024**3

# ----- live migration ---------------------------------------------------------------------


def test_precopy_without_dirtying_is_one_full_copy() -> None:
    t = precopy(GIB, 125e6, 0.0)
    assert t.duration_s == pytest.approx(GIB / 125e6)  # 8.589934592 s
    assert t.duration_s == pytest.approx(8.589934592)
    assert (t.rounds, t.sent_bytes, t.downtime_s) == (0, GIB, 0.0)


def test_precopy_half_dirty_rate_by_hand() -> None:
    # 1 GiB at 125 MB/s, dirtying at 62.5 MB/s (ratio 1/2): the full copy, then rounds of
    # GIB/2, GIB/4, ..., GIB/2^8; GIB/2^9 = 2 MiB fits 30 ms × 125 MB/s = 3.75 MB, so it
    # is the stop-and-copy. Total sent = GIB × (2 − 2^-9).
    t = precopy(GIB, 125e6, 62.5e6, downtime_s=0.03)
    assert t.rounds == 8
    assert t.sent_bytes == pytest.approx(GIB * (2 - 2**-9))
    assert t.downtime_s == pytest.approx(2 * 1024 * 1024 / 125e6)  # 0.016777216 s
    assert t.duration_s == pytest.approx(8.589934592 * (2 - 2**-9))  # 17.163091968 s


def test_precopy_intensity_times_utilisation() -> None:
    # SimGrid's dirty rate: intensity 0.8 × utilisation 0.5 × 125 MB/s = 50 MB/s, ratio 0.4.
    # Rounds send GIB·0.4^k until GIB·0.4^k <= 3.75e6: 0.4^k <= 0.0034924 → k = 7 (0.0016384).
    t = precopy(GIB, 125e6, 0.8 * 0.5 * 125e6)
    assert t.rounds == 6
    expected_sent = GIB * sum(0.4**k for k in range(8))
    assert t.sent_bytes == pytest.approx(expected_sent)
    assert t.duration_s == pytest.approx(expected_sent / 125e6)
    # close to the closed form RAM/B / (1 - r)
    assert t.duration_s == pytest.approx(GIB / 125e6 / 0.6, rel=0.01)


def test_precopy_non_converging_stops_at_three_times_ram() -> None:
    # dirty rate > bandwidth: each round is capped at 0.9 × RAM; Xen's rule stops before
    # the bytes sent exceed 3 × RAM: full copy (1) + 0.9 + 0.9 = 2.8, the next would be 3.7.
    t = precopy(GIB, 50e6, 100e6, dirty_cap=0.9, max_sent_ratio=3.0)
    assert t.rounds == 2
    assert t.sent_bytes == pytest.approx(GIB * 3.7)
    assert t.downtime_s == pytest.approx(0.9 * GIB / 50e6)
    assert t.duration_s == pytest.approx(3.7 * GIB / 50e6)


def test_precopy_max_rounds_and_bad_bandwidth() -> None:
    t = precopy(GIB, 125e6, 62.5e6, max_rounds=2)
    assert t.rounds == 2
    assert t.sent_bytes == pytest.approx(GIB * 1.875)
    with pytest.raises(ValueError, match="bandwidth"):
        precopy(GIB, 0.0, 1.0)


# ----- power ---------------------------------------------------------------------------


def _host(i: int = 0, demand: float = 0.0) -> SimHost:
    host = SimHost(i, "lyon", 8, 700.0, 32768, 125e6)
    host.cpu_demand = demand
    return host


def test_power_linear_in_utilisation() -> None:
    assert host_power_w(_host(demand=0), 100, 200) == 100
    assert host_power_w(_host(demand=350), 100, 200) == 150
    assert host_power_w(_host(demand=900), 100, 200) == 200  # capped at capacity
    dead = _host(demand=350)
    dead.alive = False
    assert host_power_w(dead, 100, 200) == 0


def test_energy_integrated_exactly() -> None:
    a, b = _host(0, 0.0), _host(1, 700.0)
    meter = PowerMeter([a, b], 100.0, 200.0)
    assert meter.total_w == 300.0
    a.cpu_demand = 350.0
    meter.update(a, 3600.0)  # 1 h at 300 W
    b.alive = False
    meter.update(b, 5400.0)  # 0.5 h at 350 W
    meter.advance(7200.0)  # 0.5 h at 150 W
    assert meter.energy_kwh == pytest.approx(0.300 + 0.175 + 0.075)
    assert meter.hosts_on() == 1


# ----- load ----------------------------------------------------------------------------


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_load_distribution_moments_match_the_rounded_clamped_normal() -> None:
    dist = LoadDistribution(mean=60, sd=20, slot=10, cap=100)
    # exact law: slot k (0..10) gets the normal mass of [10k − 5, 10k + 5), ends open
    probs = []
    for k in range(11):
        lo = -math.inf if k == 0 else (10 * k - 5 - 60) / 20
        hi = math.inf if k == 10 else (10 * k + 5 - 60) / 20
        probs.append(_normal_cdf(hi) - _normal_cdf(lo))
    mean = sum(p * 10 * k for k, p in enumerate(probs))
    var = sum(p * (10 * k - mean) ** 2 for k, p in enumerate(probs))
    rng = random.Random(7)
    draws = [dist.draw(rng) for _ in range(200_000)]
    assert set(draws) <= {10.0 * k for k in range(11)}
    assert statistics.fmean(draws) == pytest.approx(mean, abs=0.15)  # mean ≈ 59.4
    assert statistics.pvariance(draws) == pytest.approx(var, rel=0.02)
    assert draws.count(100.0) / len(draws) == pytest.approx(probs[10], abs=0.003)
    assert draws.count(0.0) / len(draws) == pytest.approx(probs[0], abs=0.001)


def test_load_shape_rounds_halves_up_and_caps() -> None:
    dist = LoadDistribution(mean=60, sd=20, slot=10, cap=100)
    assert [dist.shape(x) for x in (-3, 4.99, 5, 64.9, 65, 104, 250)] == [
        0,
        0,
        10,
        60,
        70,
        100,
        100,
    ]
    assert LoadDistribution(slot=0, cap=100).shape(37.3) == 37.3


def test_uniform_distribution_has_the_same_moments() -> None:
    dist = LoadDistribution(mean=50, sd=10, slot=0, cap=1000, distribution="uniform")
    rng = random.Random(3)
    draws = [dist.draw(rng) for _ in range(100_000)]
    assert statistics.fmean(draws) == pytest.approx(50, abs=0.1)
    assert statistics.pstdev(draws) == pytest.approx(10, rel=0.01)


def test_poisson_rate() -> None:
    rate = 1000 / 300  # 1,000 VMs, one change every 300 s each
    rng = random.Random(11)
    gaps = poisson_arrivals(rng, rate)
    t, count = 0.0, 0
    horizon = 30_000.0
    while True:
        t += next(gaps)
        if t > horizon:
            break
        count += 1
    expected = rate * horizon  # 100,000
    assert abs(count - expected) < 4 * math.sqrt(expected)
    rng = random.Random(5)
    gaps = poisson_arrivals(rng, 2.0)
    sample = [next(gaps) for _ in range(50_000)]
    assert statistics.fmean(sample) == pytest.approx(0.5, rel=0.02)
    assert statistics.pstdev(sample) == pytest.approx(0.5, rel=0.03)  # exponential: sd = mean


def test_read_load_trace_csv_and_jsonl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "load.csv"
    csv.write_text("t,vm,load\n5,vm00001,30\n1.5,vm00000,70\n")
    assert [(e.t, e.vm, e.load) for e in read_load_trace(csv)] == [
        (1.5, "vm00000", 70.0),
        (5.0, "vm00001", 30.0),
    ]
    jsonl = tmp_path / "load.jsonl"
    jsonl.write_text('{"t": 2, "vm": "vm00003", "load": 40}\n')
    assert [(e.t, e.vm, e.load) for e in read_load_trace(jsonl)] == [(2.0, "vm00003", 40.0)]
    bad = tmp_path / "bad.csv"
    bad.write_text("t,vm,load\nx,vm00000,3\n")
    from dvms.errors import InputError

    with pytest.raises(InputError, match="line 2"):
        read_load_trace(bad)


# ----- infrastructure ----------------------------------------------------------------


def test_names() -> None:
    assert host_name(3) == "h0003"
    assert host_index("h0003") == 3
    assert host_index("h12345") == 12345
    assert host_index("x3") is None


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("round-robin", [[0, 3], [1, 4], [2, 5]]),
        ("fill", [[0, 1], [2, 3], [4, 5]]),
    ],
)
def test_placements(placement: str, expected: list[list[int]]) -> None:
    config = InfrastructureConfig(
        hosts=3, vms_per_host=2, placement=placement, host_memory_mib=2048, vm_memory_mib=1024
    )
    infra = Infrastructure.build(config, ["lyon", "nancy"], random.Random(1))
    assert [[v.index for v in h.vms.values()] for h in infra.hosts] == expected
    assert [h.site for h in infra.hosts] == ["lyon", "lyon", "nancy"]
    assert infra.check() == []
    assert infra.lost_vms() == 0


def test_balanced_placement_evens_cpu() -> None:
    config = InfrastructureConfig(hosts=2, vms_per_host=2, placement="balanced")
    loads = [90.0, 10.0, 10.0, 50.0]
    infra = Infrastructure.build(config, ["lyon"], random.Random(1), loads)
    # 90 → h0, 10 → h1, 10 → h1 (10 < 90), 50 → h1 (20 < 90)
    assert [[v.index for v in h.vms.values()] for h in infra.hosts] == [[0], [1, 2, 3]]
    assert [h.cpu_demand for h in infra.hosts] == [90.0, 70.0]


def test_usage_is_shared_proportionally() -> None:
    host = _host()
    vms = [SimVM(i, 1, 1024, 0.5, host) for i in range(8)]
    for vm in vms:
        vm.demand = 100.0
        host.add(vm)
    assert host.cpu_demand == 800
    assert host.overloaded()
    assert host.usage(vms[0]) == pytest.approx(100 * 700 / 800)
    host.remove(vms[0])
    assert not host.overloaded()
    assert host.usage(vms[1]) == 100.0


def test_invariant_check_finds_duplicates_and_lost() -> None:
    config = InfrastructureConfig(hosts=2, vms_per_host=1)
    infra = Infrastructure.build(config, ["lyon"], random.Random(1))
    vm = infra.vms[0]
    infra.hosts[1].vms[vm.id] = vm  # listed twice
    assert infra.lost_vms() == 1
    assert any("vm00000 on h0000 and h0001" in p for p in infra.check())
    del infra.hosts[0].vms[vm.id]
    del infra.hosts[1].vms[vm.id]
    assert infra.lost_vms() == 1
    assert "vm00000 is on no host" in infra.check()
