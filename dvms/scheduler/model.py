"""The planners' view of a partition: hosts, VMs, migrations, plans. Pure data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CPU_TOLERANCE",
    "VM",
    "Host",
    "Migration",
    "Plan",
    "Planner",
    "PlannerBase",
    "is_overloaded",
    "overloaded_hosts",
]

CPU_TOLERANCE = 1e-6
"""CPU demand may exceed capacity by this much (percent of a core) before a host counts as
overloaded: float sums of VM demands must not flip a host that is exactly full."""


def is_overloaded(
    cpu: float, memory_mib: float, cpu_capacity: float, memory_capacity: float
) -> bool:
    """The one overload predicate: CPU demand past capacity (with tolerance) or memory past it."""
    return cpu > cpu_capacity + CPU_TOLERANCE or memory_mib > memory_capacity


@dataclass(frozen=True, slots=True)
class Host:
    id: str
    cpu_capacity: float
    """Percent of a core available to VMs."""
    memory_mib: int
    site: str = ""
    """The host's site ("" unknown); the repair planner prefers same-site destinations."""


@dataclass(frozen=True, slots=True)
class VM:
    id: str
    host: str
    cpu_demand: float
    """Percent of a core."""
    memory_mib: int


@dataclass(frozen=True, slots=True)
class Migration:
    vm: str
    source: str
    destination: str
    memory_mib: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Migrations that leave every host within capacity.

    Executable in order: when a migration starts, its destination has room for the VM
    (CPU and memory) on top of what it holds, counting VMs still migrating to or from it
    on both ends. Plans from our planners are also executable all at once.
    """

    migrations: tuple[Migration, ...]

    def __len__(self) -> int:
        return len(self.migrations)

    @property
    def moved_mib(self) -> int:
        return sum(m.memory_mib for m in self.migrations)


class Planner(Protocol):
    """A partition scheduler: ``plan`` is pure; ``cost_s`` is its deterministic solve time."""

    name: str

    def plan(self, hosts: Sequence[Host], vms: Sequence[VM]) -> Plan | None:
        """A plan fixing every overloaded host, an empty plan if none is, None if impossible."""
        ...

    def cost_s(self, hosts: int, vms: int) -> float:
        """Solve time charged to virtual time for a problem of this size (seconds)."""
        ...

    def plan_partial(self, hosts: Sequence[Host], vms: Sequence[VM]) -> tuple[Plan, list[str]]:
        """Best effort when ``plan`` finds none: a plan fixing the hosts it can, and the ids
        of those it cannot (the centralised scheduler applies it). ``PlannerBase`` gives a
        default that fixes nothing."""
        ...


class PlannerBase:
    """A base for user planners: ``name`` from the class, no solve time, and a
    ``plan_partial`` that applies ``plan`` when it succeeds and fixes nothing otherwise.
    Subclasses implement ``plan`` (and may override ``cost_s`` and ``plan_partial``)."""

    name = "user"

    def plan(self, hosts: Sequence[Host], vms: Sequence[VM]) -> Plan | None:
        raise NotImplementedError

    def cost_s(self, hosts: int, vms: int) -> float:
        return 0.0

    def plan_partial(self, hosts: Sequence[Host], vms: Sequence[VM]) -> tuple[Plan, list[str]]:
        plan = self.plan(hosts, vms)
        if plan is not None:
            return plan, []
        return Plan(()), overloaded_hosts(hosts, vms)


def overloaded_hosts(hosts: Sequence[Host], vms: Sequence[VM]) -> list[str]:
    """Ids (sorted) of the hosts whose VMs want more CPU or memory than they have."""
    cpu = {h.id: 0.0 for h in hosts}
    mem = dict.fromkeys(cpu, 0)
    for vm in vms:
        cpu[vm.host] += vm.cpu_demand
        mem[vm.host] += vm.memory_mib
    return sorted(
        h.id for h in hosts if is_overloaded(cpu[h.id], mem[h.id], h.cpu_capacity, h.memory_mib)
    )
