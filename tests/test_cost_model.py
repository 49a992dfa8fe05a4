"""The solve cost models: formula, cap, fit, and the committed coefficients match the data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import dvms.scheduler.cost as cost
from dvms.scheduler import (
    MeasuredCost,
    RepairPlanner,
    SolveCostModel,
    make_planner,
    vmplaces_time_limit_s,
)
from dvms.scheduler.cost import fit_power_law, fit_solve_times

DATA = Path(cost.__file__).parent / "data" / "solve_times.csv"


def test_formula_and_vmplaces_cap() -> None:
    model = SolveCostModel(a=0.01, b=1.0, c=0.5)
    assert model.cost_s(8, 80) == pytest.approx(0.01 * 8 + 0.5)
    assert model.cost_s(8, 160) == pytest.approx(0.01 * 16 + 0.5)  # denser counts as larger
    assert model.cost_s(4, 40) == 0.5  # capped by min(30, 4 / 8)
    assert model.cost_s(10_000, 100_000) == 30.0
    assert model.cost_s(0, 0) == 0.0
    assert [vmplaces_time_limit_s(n) for n in (8, 80, 240, 1024)] == [1.0, 10.0, 30.0, 30.0]


def test_default_model_is_the_fitted_one() -> None:
    model = SolveCostModel()
    assert (model.a, model.b, model.c) == (cost.FITTED_A, cost.FITTED_B, cost.FITTED_C)
    expected = min(1.0, cost.FITTED_A * 8**cost.FITTED_B + cost.FITTED_C)
    assert model.cost_s(8, 80) == expected
    costs = [model.cost_s(n, 10 * n) for n in range(1, 2049)]
    assert costs == sorted(costs)  # never cheaper for a larger problem
    assert all(c <= vmplaces_time_limit_s(n) for n, c in enumerate(costs, start=1))
    assert 0 < model.cost_s(8, 80) < 0.1  # small partitions are cheap
    assert model.cost_s(1024, 10240) == 30.0  # the whole infrastructure hits the limit


def test_planners_charge_their_cost_model() -> None:
    model = SolveCostModel(a=0.02, b=1.0, c=0.0)
    assert RepairPlanner(cost=model).cost_s(8, 80) == pytest.approx(0.16)
    assert make_planner("cpsat", cost=model).cost_s(8, 80) == pytest.approx(0.16)
    assert make_planner("repair").cost_s(64, 640) == SolveCostModel().cost_s(64, 640)
    measured = MeasuredCost()
    measured.record(8, 80, 0.25)
    measured.record(8, 80, 0.5)
    assert (measured.cost_s(1, 1), measured.total_wall_s, measured.calls) == (0.5, 0.75, 2)


def test_bad_coefficients_are_refused() -> None:
    with pytest.raises(ValueError, match="a=-1"):
        SolveCostModel(a=-1)
    with pytest.raises(ValueError, match="vms_per_host=0"):
        SolveCostModel(vms_per_host=0)


SIZES = (4, 8, 16, 32, 64, 128, 256)


def test_fit_recovers_a_known_power_law() -> None:
    points = [(n, 0.0001 * n**2.5 + 0.01) for n in SIZES]
    assert fit_power_law(points) == pytest.approx((0.0001, 2.5, 0.01), rel=1e-3)
    # 128 and 256 run into the limit: with the caps, the fit still finds the law
    capped = [(n, min(n / 8, y)) for n, y in points]
    caps = [n / 8 for n in SIZES]
    assert capped[-2:] == [(128, 16.0), (256, 32.0)]
    assert fit_power_law(capped, caps) == pytest.approx((0.0001, 2.5, 0.01), rel=1e-3)
    # without them it bends to the capped points and misses the law
    assert fit_power_law(capped)[1] < 2.4
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_power_law([(4, 1.0)])


def test_committed_coefficients_are_the_fit_of_the_committed_data() -> None:
    with DATA.open(newline="") as f:
        rows = list(csv.DictReader(f))
    sizes = {int(row["hosts"]) for row in rows}
    assert min(sizes) <= 8 and max(sizes) >= 128 and len(rows) >= 3 * len(sizes)
    a, b, c = fit_solve_times((int(row["hosts"]), float(row["wall_s"])) for row in rows)
    assert pytest.approx((a, b, c), rel=1e-5) == (cost.FITTED_A, cost.FITTED_B, cost.FITTED_C)
