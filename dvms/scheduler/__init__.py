"""Partition schedulers: one interface, ``plan(hosts, vms) -> Plan | None``; pure.

- ``RepairPlanner`` ("repair"): fast repair heuristic, the default.
- ``CpSatPlanner`` ("cpsat"): exact OR-Tools CP-SAT model for small partitions.
- Cost models charging solve time to the clock: ``SolveCostModel`` ("exact-model", deterministic,
  the default) and ``MeasuredCost`` ("measured", wall time).

``make_planner(name, cost=...)`` builds one by name (the CLI and scenarios use it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dvms.errors import InputError
from dvms.scheduler.cost import CostModel, MeasuredCost, SolveCostModel, vmplaces_time_limit_s
from dvms.scheduler.model import VM, Host, Migration, Plan, Planner
from dvms.scheduler.repair import RepairConfig, RepairPlanner, overloaded_hosts

if TYPE_CHECKING:  # imported lazily at run time (OR-Tools is slow to import)
    from dvms.scheduler.cpsat import CpSatConfig, CpSatPlanner

__all__ = [
    "COST_MODELS",
    "PLANNERS",
    "VM",
    "CostModel",
    "CpSatConfig",
    "CpSatPlanner",
    "Host",
    "MeasuredCost",
    "Migration",
    "Plan",
    "Planner",
    "RepairConfig",
    "RepairPlanner",
    "SolveCostModel",
    "make_cost_model",
    "make_planner",
    "overloaded_hosts",
    "vmplaces_time_limit_s",
]

PLANNERS = ("cpsat", "repair")
"""Names accepted by ``make_planner``."""
COST_MODELS = ("exact-model", "measured")
"""Names accepted by ``make_cost_model`` (a scenario's ``scheduler.cost``)."""


def make_cost_model(name: str = "exact-model") -> CostModel:
    """``"exact-model"``: ``SolveCostModel()``; ``"measured"``: ``MeasuredCost()``."""
    if name == "exact-model":
        return SolveCostModel()
    if name == "measured":
        return MeasuredCost()
    raise InputError(f"scheduler cost: unknown {name!r}; allowed: {', '.join(COST_MODELS)}")


def make_planner(
    name: str = "repair",
    *,
    cost: str | CostModel = "exact-model",
    time_limit_s: float | None = None,
    headroom: float | None = None,
    seed: int = 0,
) -> Planner:
    """A planner by name (``"repair"`` or ``"cpsat"``) with its cost model.

    ``time_limit_s`` (cpsat only; default VMPlaceS's ``min(30, hosts/8)``), ``headroom``
    (fraction of CPU capacity the heuristic keeps free on destinations, default 0.2 as in
    scenarios),
    ``seed`` (cpsat's solver seed). Unknown names or bad values raise ``InputError``.
    """
    model = make_cost_model(cost) if isinstance(cost, str) else cost
    try:
        repair_config = RepairConfig() if headroom is None else RepairConfig(headroom=headroom)
        if name == "repair":
            return RepairPlanner(repair_config, model)
        if name == "cpsat":
            from dvms.scheduler.cpsat import CpSatConfig, CpSatPlanner

            return CpSatPlanner(
                CpSatConfig(time_limit_s=time_limit_s, seed=seed),
                model,
                heuristic=RepairPlanner(repair_config),
            )
    except ValueError as err:
        raise InputError(f"scheduler planner {name}: {err}") from None
    raise InputError(f"scheduler planner: unknown {name!r}; allowed: {', '.join(PLANNERS)}")


def __getattr__(name: str) -> object:
    # CP-SAT (OR-Tools) is imported only when used: it is slow to import.
    if name in ("CpSatPlanner", "CpSatConfig"):
        from dvms.scheduler import cpsat

        return getattr(cpsat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
