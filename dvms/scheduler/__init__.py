"""Partition schedulers: one interface, ``plan(hosts, vms) -> Plan | None``; pure.

- ``RepairPlanner`` ("repair"): fast repair heuristic, the default.
- ``CpSatPlanner`` ("cpsat"): exact OR-Tools CP-SAT model for small partitions.
- Cost models charging solve time to the clock: ``SolveCostModel`` ("exact-model",
  deterministic, the default) and ``MeasuredCost`` ("measured", wall time).
- A user's planner by import path, ``"package.module:ClassName"``: the class (or factory) is
  imported once, called with no arguments for each node, and checked against ``Planner``
  (``PlannerBase`` gives defaults for ``cost_s`` and ``plan_partial``).

``make_planner(name, cost=...)`` builds one by name or path (scenarios, agents and the CLI
use it).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dvms.errors import InputError
from dvms.scheduler.cost import CostModel, MeasuredCost, SolveCostModel, vmplaces_time_limit_s
from dvms.scheduler.model import VM, Host, Migration, Plan, Planner, PlannerBase, overloaded_hosts
from dvms.scheduler.repair import RepairConfig, RepairPlanner

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
    "PlannerBase",
    "RepairConfig",
    "RepairPlanner",
    "SolveCostModel",
    "check_planner",
    "is_planner_path",
    "load_planner",
    "make_cost_model",
    "make_planner",
    "overloaded_hosts",
    "vmplaces_time_limit_s",
]

PLANNERS = ("cpsat", "repair")
"""Built-in names accepted by ``make_planner`` (besides ``package.module:ClassName``)."""
COST_MODELS = ("exact-model", "measured")
"""Names accepted by ``make_cost_model``."""
PLANNER_METHODS = ("plan", "cost_s", "plan_partial")
"""What a planner must provide (see ``Planner``)."""


def make_cost_model(name: str = "exact-model") -> CostModel:
    """``"exact-model"``: ``SolveCostModel()``; ``"measured"``: ``MeasuredCost()``."""
    if name == "exact-model":
        return SolveCostModel()
    if name == "measured":
        return MeasuredCost()
    raise InputError(f"scheduler cost: unknown {name!r}; allowed: {', '.join(COST_MODELS)}")


def is_planner_path(name: str) -> bool:
    """Whether ``name`` names a user planner (``package.module:ClassName``)."""
    return ":" in name


@functools.cache
def load_planner(path: str) -> Callable[[], Any]:
    """The class or factory at ``package.module:Name`` (imported once per process).

    Raises ``InputError`` with one line when the module or the name is missing.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InputError(f"planner {path!r}: expected package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"planner {path!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # the user's module failed while importing
        raise InputError(f"planner {path!r}: importing {module_name!r} failed: {exc!r}") from None
    obj = module.__dict__.get(attr)
    if obj is None or not callable(obj):
        raise InputError(f"planner {path!r}: {module_name!r} has no class or factory {attr!r}")
    factory: Callable[[], Any] = obj
    return factory


def check_planner(planner: object, where: str) -> Planner:
    """``planner`` if it has what ``Planner`` needs, else one ``InputError`` naming the gaps."""
    missing = [m for m in PLANNER_METHODS if not callable(getattr(planner, m, None))]
    if not isinstance(getattr(planner, "name", None), str):
        missing.append("name (a str attribute)")
    if missing:
        kind = type(planner).__name__
        raise InputError(f"planner {where!r}: {kind} lacks {', '.join(missing)} (see Planner)")
    return planner  # type: ignore[return-value]


def make_planner(
    name: str = "repair",
    *,
    cost: str | CostModel = "exact-model",
    time_limit_s: float | None = None,
    headroom: float | None = None,
    seed: int = 0,
) -> Planner:
    """A planner by name (``"repair"``, ``"cpsat"``, or ``package.module:ClassName``).

    ``time_limit_s`` (cpsat only; default VMPlaceS's ``min(30, hosts/8)``), ``headroom``
    (fraction of CPU capacity the heuristic keeps free on destinations, default 0.2 as in
    scenarios),
    ``seed`` (cpsat's solver seed). Unknown names or bad values raise ``InputError``.
    """
    if is_planner_path(name):
        factory = load_planner(name)
        try:
            made = factory()
        except Exception as exc:
            raise InputError(f"planner {name!r}: constructing it failed: {exc!r}") from None
        return check_planner(made, name)
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
