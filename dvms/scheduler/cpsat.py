"""The exact planner: OR-Tools CP-SAT in repair mode, for small partitions.

Model (as Entropy's repair mode, with CPU and memory as separate bins):

- only VMs of overloaded hosts may move; a Boolean ``x[v, h]`` per movable VM ``v`` and
  host ``h`` among its source and the hosts that are not overloaded and could take it alone;
  ``sum_h x[v, h] = 1``;
- every non-overloaded host keeps all its VMs and receives the moved ones on top of them:
  ``load(h) + sum_v demand(v)·x[v, h] <= capacity(h)`` for CPU and memory. That is the
  "all at once" condition (VMs in flight count on both ends; a host that is a source is
  overloaded, so it can never be a destination), hence the plan is executable in any order;
- every overloaded host keeps only VMs within capacity: ``sum_v demand(v)·x[v, src] <= cap``;
- objective, lexicographic by weighting: minimise ``W·migrations + moved MiB`` with ``W``
  larger than all movable memory together.

CPU is scaled to integers conservatively (demands rounded up, capacities down), so the
solver never accepts a plan the float check would refuse.

Determinism: one worker, a fixed seed, and by default a *deterministic* time limit
(``max_deterministic_time``) so the result does not depend on the machine's speed; a wall
time limit ten times as long stays as a safety net. The repair heuristic's plan is the
solution hint and the fallback: the planner returns whichever of the two plans is better
(fewer migrations, then less moved memory; the heuristic's on ties, it keeps headroom), so it
never moves more VMs than the heuristic. Problems over the size cap get the heuristic plan.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from dvms.scheduler.cost import CostModel, SolveCostModel, vmplaces_time_limit_s
from dvms.scheduler.model import VM, Host, Migration, Plan, is_overloaded
from dvms.scheduler.repair import RepairPlanner

__all__ = ["CpSatConfig", "CpSatPlanner"]

CPU_SCALE = 1000
"""CPU units per percent of a core in the integer model."""
WALL_SAFETY = 10.0
"""With a deterministic limit, the wall-clock limit is this many times as long (safety net;
deterministic time runs up to ~3x slower than wall time on a loaded 2-core machine)."""


@dataclass(frozen=True, slots=True)
class CpSatConfig:
    """Settings of the CP-SAT planner."""

    time_limit_s: float | None = None
    """Solver time limit; None = VMPlaceS's ``min(30, hosts / 8)`` s (at least 0.1 s)."""
    deterministic: bool = True
    """Limit by deterministic time (machine-independent results) rather than wall time."""
    seed: int = 0
    """CP-SAT ``random_seed``."""
    max_hosts: int = 64
    """Problems with more hosts get the heuristic's plan (size cap)."""
    max_movable_vms: int = 500
    """Problems with more VMs on overloaded hosts get the heuristic's plan (size cap)."""

    def __post_init__(self) -> None:
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"cpsat: time_limit_s={self.time_limit_s!r} must be > 0")
        if self.max_hosts < 1 or self.max_movable_vms < 1:
            raise ValueError("cpsat: max_hosts and max_movable_vms must be >= 1")


def _better(a: Plan, b: Plan) -> bool:
    """True when ``a`` strictly beats ``b``: fewer migrations, then less moved memory."""
    return (len(a), a.moved_mib) < (len(b), b.moved_mib)


class CpSatPlanner:
    """Exact repair-mode planner (see the module docstring); name ``"cpsat"``."""

    name = "cpsat"

    def __init__(
        self,
        config: CpSatConfig | None = None,
        cost: CostModel | None = None,
        heuristic: RepairPlanner | None = None,
    ) -> None:
        self.config = config or CpSatConfig()
        self.cost: CostModel = cost if cost is not None else SolveCostModel()
        self.heuristic = heuristic or RepairPlanner()
        self.last_status = ""
        """Outcome of the last call: OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN, ... or
        ``empty`` (nothing overloaded) / ``size-cap`` (heuristic used without solving)."""

    def cost_s(self, hosts: int, vms: int) -> float:
        return self.cost.cost_s(hosts, vms)

    def time_limit_s(self, hosts: int) -> float:
        if self.config.time_limit_s is not None:
            return self.config.time_limit_s
        return max(0.1, vmplaces_time_limit_s(hosts))

    def plan(self, hosts: Sequence[Host], vms: Sequence[VM]) -> Plan | None:
        started = time.perf_counter()
        result = self._plan(hosts, vms)
        self.cost.record(len(hosts), len(vms), time.perf_counter() - started)
        return result

    def plan_partial(self, hosts: Sequence[Host], vms: Sequence[VM]) -> tuple[Plan, list[str]]:
        """Best effort: the exact plan if there is one, else the heuristic's partial plan."""
        plan = self.plan(hosts, vms)
        if plan is not None:
            return plan, []
        return self.heuristic.plan_partial(hosts, vms)

    def _plan(self, hosts: Sequence[Host], vms: Sequence[VM]) -> Plan | None:
        hint = self.heuristic.plan(hosts, vms)  # also validates the input
        ordered = sorted(hosts, key=lambda h: h.id)
        cpu = {h.id: 0.0 for h in ordered}
        mem = {h.id: 0 for h in ordered}
        for vm in vms:
            cpu[vm.host] += vm.cpu_demand
            mem[vm.host] += vm.memory_mib
        over = {
            h.id
            for h in ordered
            if is_overloaded(cpu[h.id], mem[h.id], h.cpu_capacity, h.memory_mib)
        }
        if not over:
            self.last_status = "empty"
            return Plan(())
        movable = sorted((vm for vm in vms if vm.host in over), key=lambda v: v.id)
        if len(ordered) > self.config.max_hosts or len(movable) > self.config.max_movable_vms:
            self.last_status = "size-cap"
            return hint
        solution = self._solve(ordered, vms, movable, over, hint)
        if solution is None:
            return hint
        if hint is None or _better(solution, hint):
            return solution
        return hint

    def _solve(
        self,
        hosts: list[Host],
        vms: Sequence[VM],
        movable: list[VM],
        over: set[str],
        hint: Plan | None,
    ) -> Plan | None:
        def demand(vm: VM) -> int:
            return math.ceil(vm.cpu_demand * CPU_SCALE - 1e-6)

        base_cpu = {h.id: 0 for h in hosts}
        base_mem = {h.id: 0 for h in hosts}
        for vm in vms:
            if vm.host not in over:
                base_cpu[vm.host] += demand(vm)
                base_mem[vm.host] += vm.memory_mib
        # Room left on each host by the VMs that cannot move (none on overloaded hosts).
        room_cpu = {
            h.id: math.floor(h.cpu_capacity * CPU_SCALE + 1e-6) - base_cpu[h.id] for h in hosts
        }
        room_mem = {h.id: h.memory_mib - base_mem[h.id] for h in hosts}
        targets = [h.id for h in hosts if h.id not in over]
        hinted = {m.vm: m.destination for m in hint.migrations} if hint else {}

        model = cp_model.CpModel()
        stay: dict[str, cp_model.IntVar] = {}
        moves: dict[str, list[tuple[str, cp_model.IntVar]]] = {}
        incoming: dict[str, list[tuple[int, int, cp_model.IntVar]]] = {h: [] for h in targets}
        staying: dict[str, list[tuple[int, int, cp_model.IntVar]]] = {
            h: [] for h in sorted(over)
        }
        weight = sum(vm.memory_mib for vm in movable) + 1
        objective = []
        for vm in movable:
            d = demand(vm)
            choices = [model.new_bool_var(f"s_{vm.id}")]
            stay[vm.id] = choices[0]
            staying[vm.host].append((d, vm.memory_mib, choices[0]))
            model.add_hint(choices[0], vm.id not in hinted)
            moves[vm.id] = []
            for h in targets:
                if d <= room_cpu[h] and vm.memory_mib <= room_mem[h]:
                    x = model.new_bool_var(f"x_{vm.id}_{h}")
                    choices.append(x)
                    incoming[h].append((d, vm.memory_mib, x))
                    moves[vm.id].append((h, x))
                    model.add_hint(x, hinted.get(vm.id) == h)
            model.add_exactly_one(choices)
            objective.append((weight + vm.memory_mib) * (1 - choices[0]))
        for h, items in incoming.items():
            if items:
                model.add(sum(d * x for d, _, x in items) <= room_cpu[h])
                model.add(sum(m * x for _, m, x in items) <= room_mem[h])
        for h, items in staying.items():
            model.add(sum(d * x for d, _, x in items) <= room_cpu[h])
            model.add(sum(m * x for _, m, x in items) <= room_mem[h])
        model.minimize(sum(objective))

        solver = cp_model.CpSolver()
        limit = self.time_limit_s(len(hosts))
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = self.config.seed
        if self.config.deterministic:
            solver.parameters.max_deterministic_time = limit
            solver.parameters.max_time_in_seconds = WALL_SAFETY * limit
        else:
            solver.parameters.max_time_in_seconds = limit
        status = solver.solve(model)
        self.last_status = solver.status_name(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        migrations: list[Migration] = []
        migrations = [
            Migration(vm.id, vm.host, h, vm.memory_mib)
            for vm in movable
            for h, x in moves[vm.id]
            if solver.boolean_value(x)
        ]
        return Plan(tuple(migrations))
