"""Solve time charged to the clock when a planner runs.

Two cost models, one interface (``cost_s(hosts, vms)``):

- ``SolveCostModel`` (default, "exact-model"): deterministic. A power law
  ``a * n**b + c`` seconds fitted once to measured wall times of the CP-SAT planner
  (``scripts/fit_cost_model.py``, data in ``dvms/scheduler/data/solve_times.csv``) on
  VMPlaceS-like problems, capped by VMPlaceS's solver time limit ``min(30, hosts / 8)`` s.
  ``n`` is the problem size in hosts, ``max(hosts, vms / vms_per_host)`` so denser
  problems count as larger ones. The fit (``fit_solve_times``) is on the median time per
  size, in log space, with the cap included: where the solver runs into its limit the
  model reaches the limit too. The same "exact solver"
  charge applies to DVMS partitions and to the centralised baseline, whichever planner
  actually decides, so the comparison is fair and does not depend on the machine.
- ``MeasuredCost`` ("measured"): the wall time the planner's last ``plan`` call took.
  Machine-dependent, not reproducible; for experiments on solver speed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "FITTED_A",
    "FITTED_B",
    "FITTED_C",
    "CostModel",
    "MeasuredCost",
    "SolveCostModel",
    "fit_power_law",
    "fit_solve_times",
    "vmplaces_time_limit_s",
]

# Fitted by scripts/fit_cost_model.py on dvms/scheduler/data/solve_times.csv: 4–256 hosts,
# 5 problems per size, OR-Tools 9.15, one worker, on the project's shared 2-core machine.
# CP-SAT proves optimality in milliseconds up to ~32 hosts and runs into its limit from ~64,
# hence the steep exponent: 6 ms for 4–12 hosts, 0.14 s at 32, 1.4 s at 48, the cap above.
# Re-run the script to re-measure, or with --fit-only to re-fit and print them.
FITTED_A = 2.44765e-10
FITTED_B = 5.7975
FITTED_C = 0.00596348

MAX_TIME_LIMIT_S = 30.0
"""VMPlaceS's cap on the solver time limit (seconds)."""


def vmplaces_time_limit_s(hosts: int) -> float:
    """VMPlaceS's solver time limit for a problem over ``hosts`` hosts: ``min(30, hosts/8)`` s."""
    return min(MAX_TIME_LIMIT_S, max(hosts, 0) / 8.0)


class CostModel(Protocol):
    """How much solve time a planner charges to the clock."""

    @property
    def name(self) -> str:
        """``"exact-model"`` or ``"measured"``."""
        ...

    def cost_s(self, hosts: int, vms: int) -> float:
        """Seconds charged for one ``plan`` call over ``hosts`` hosts and ``vms`` VMs."""
        ...

    def record(self, hosts: int, vms: int, wall_s: float) -> None:
        """Told by the planner after each ``plan`` call how long it really took."""
        ...


@dataclass(frozen=True, slots=True)
class SolveCostModel:
    """Deterministic solve time: ``min(min(30, hosts/8), a * n**b + c)`` seconds."""

    a: float = FITTED_A
    """Scale of the power law (seconds)."""
    b: float = FITTED_B
    """Exponent of the power law."""
    c: float = FITTED_C
    """Fixed cost per call (seconds): model construction, solver start."""
    vms_per_host: float = 10.0
    """VMs per host of the fitted workload (VMPlaceS: 10); sets the size of denser problems."""
    name: str = "exact-model"

    def __post_init__(self) -> None:
        for field, value in (("a", self.a), ("b", self.b), ("c", self.c)):
            if not value >= 0:
                raise ValueError(f"cost model: {field}={value!r} must be >= 0")
        if not self.vms_per_host > 0:
            raise ValueError(f"cost model: vms_per_host={self.vms_per_host!r} must be > 0")

    def size(self, hosts: int, vms: int) -> float:
        """Problem size in host-equivalents."""
        return max(float(hosts), vms / self.vms_per_host)

    def cost_s(self, hosts: int, vms: int) -> float:
        if hosts <= 0:
            return 0.0
        raw = self.a * self.size(hosts, vms) ** self.b + self.c
        return min(vmplaces_time_limit_s(hosts), raw)

    def record(self, hosts: int, vms: int, wall_s: float) -> None:
        """Ignored: this model does not depend on the machine."""


class MeasuredCost:
    """Charges the wall time of the planner's last ``plan`` call (not reproducible)."""

    name = "measured"

    def __init__(self) -> None:
        self.last_wall_s = 0.0
        self.total_wall_s = 0.0
        self.calls = 0

    def cost_s(self, hosts: int, vms: int) -> float:
        return self.last_wall_s

    def record(self, hosts: int, vms: int, wall_s: float) -> None:
        self.last_wall_s = wall_s
        self.total_wall_s += wall_s
        self.calls += 1


def fit_power_law(
    points: Sequence[tuple[float, float]], caps: Sequence[float] | None = None
) -> tuple[float, float, float]:
    """Fit ``y ≈ min(cap, a * n**b + c)`` (a > 0, c >= 0) to ``(n, y)`` points.

    Minimises the squared error of logarithms (times span orders of magnitude, and an
    over- and an under-estimate by the same factor cost the same). ``caps`` (one per point,
    default none) is the time limit: a point at its cap says only "at least the limit".
    Deterministic grid search: b from 0.5 to 6 by 0.05, a and c (or c = 0) on log grids;
    then twice a finer grid around the best (b to 0.0001). What ``scripts/fit_cost_model.py`` uses.
    """
    data = [(float(n), float(y)) for n, y in points]
    if len(data) < 2 or any(n <= 0 or y <= 0 for n, y in data):
        raise ValueError(f"need at least 2 points with n > 0 and y > 0, got {points!r}")
    n = np.array([p[0] for p in data])
    log_y = np.log(np.array([p[1] for p in data]))
    cap = np.array(caps, dtype=float) if caps is not None else np.full(len(data), np.inf)

    def search(
        bs: np.ndarray, as_: np.ndarray, cs: np.ndarray
    ) -> tuple[float, float, float, float]:
        best = (math.inf, 0.0, 0.0, 0.0)
        for b in bs:
            pred = as_[:, None, None] * (n**b)[None, None, :] + cs[None, :, None]
            err = ((np.log(np.minimum(pred, cap)) - log_y) ** 2).sum(axis=2)
            i, k = np.unravel_index(int(np.argmin(err)), err.shape)
            if err[i, k] < best[0] - 1e-12:
                best = (float(err[i, k]), float(as_[i]), float(b), float(cs[k]))
        return best

    def around(value: float, decades: float, count: int) -> np.ndarray:
        if value == 0:
            return np.concatenate([[0.0], np.logspace(-7, -5, count)])
        return value * np.logspace(-decades, decades, count)

    with np.errstate(over="ignore"):
        _, a, b, c = search(
            np.round(np.arange(0.5, 6.0 + 1e-9, 0.05), 6),
            np.logspace(-16, 2, 181),
            np.concatenate([[0.0], np.logspace(-6, 1, 71)]),
        )
        for b_step, decades in ((0.002, 0.1), (0.0001, 0.005)):
            _, a, b, c = search(
                np.round(b + b_step * np.arange(-25, 26), 6),
                around(a, decades, 41),
                around(c, decades, 21),
            )
    return a, b, c


def fit_solve_times(samples: Iterable[tuple[int, float]]) -> tuple[float, float, float]:
    """The cost model's ``(a, b, c)`` from ``(hosts, wall_s)`` measurements.

    The median time per size, fitted by ``fit_power_law`` with VMPlaceS's time limits as
    caps (where the solver runs into its limit the model must reach the limit too).
    """
    by_size: dict[int, list[float]] = {}
    for hosts, wall_s in samples:
        by_size.setdefault(int(hosts), []).append(float(wall_s))
    points = [(n, statistics.median(times)) for n, times in sorted(by_size.items())]
    return fit_power_law(points, [vmplaces_time_limit_s(n) for n, _ in points])
