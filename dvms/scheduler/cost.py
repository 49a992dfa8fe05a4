"""Solve time charged to the clock when a planner runs.

Two cost models, one interface (``cost_s(hosts, vms)``):

- ``SolveCostModel`` (default, "model"): deterministic. A power law
  ``a * n**b + c`` seconds fitted once to measured wall times of the CP-SAT planner
  (``scripts/fit_cost_model.py``, data in ``dvms/scheduler/data/solve_times.csv``) on
  VMPlaceS-like problems, capped by VMPlaceS's solver time limit ``min(30, hosts / 8)`` s.
  ``n`` is the problem size in hosts, ``max(hosts, vms / vms_per_host)`` so denser
  problems count as larger ones. The same "exact solver" charge applies to DVMS partitions
  and to the centralised baseline, whichever planner actually decides, so the comparison is
  fair and does not depend on the machine.
- ``MeasuredCost`` ("measured"): the wall time the planner's last ``plan`` call took.
  Machine-dependent, not reproducible; for experiments on solver speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "FITTED_A",
    "FITTED_B",
    "FITTED_C",
    "CostModel",
    "MeasuredCost",
    "SolveCostModel",
    "vmplaces_time_limit_s",
]

# Fitted by scripts/fit_cost_model.py on dvms/scheduler/data/solve_times.csv (see that
# script's docstring for the sizes and the machine); re-run it to re-fit and print them.
FITTED_A = 0.0003
FITTED_B = 1.5
FITTED_C = 0.002

MAX_TIME_LIMIT_S = 30.0
"""VMPlaceS's cap on the solver time limit (seconds)."""


def vmplaces_time_limit_s(hosts: int) -> float:
    """VMPlaceS's solver time limit for a problem over ``hosts`` hosts: ``min(30, hosts/8)`` s."""
    return min(MAX_TIME_LIMIT_S, max(hosts, 0) / 8.0)


class CostModel(Protocol):
    """How much solve time a planner charges to the clock."""

    @property
    def name(self) -> str:
        """``"model"`` or ``"measured"``."""
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
    name: str = "model"

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
