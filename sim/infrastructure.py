"""The simulated infrastructure: hosts and VMs, their placement and incremental sums.

``Infrastructure.build(config, sites, rng)`` creates ``hosts`` hosts named ``h0000``…
(spread evenly over the sites in contiguous blocks), ``hosts × vms_per_host`` VMs named
``vm00000``… with intensities drawn uniformly in ``[vm_intensity_min, vm_intensity_max]``,
and places them (``round-robin``, ``fill``, ``balanced``).

Per host the model keeps, updated in O(1) on every change:

- ``cpu_demand``: sum of the CPU demand of the VMs running there, *including* VMs being
  migrated away (a VM's CPU counts on its source until its migration completes);
- ``mem_resident``: memory of the VMs running there;
- ``mem_reserved``: memory of VMs being migrated *to* it (memory counts on both hosts
  during a migration, so ``mem_resident + mem_reserved`` never exceeds ``memory_mib``).

CPU is shared proportionally when demand exceeds capacity: a VM's usage is
``demand × min(1, capacity / cpu_demand)``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from dvms.scheduler.model import CPU_TOLERANCE, is_overloaded
from sim.scenario_schema import InfrastructureConfig

__all__ = [
    "Infrastructure",
    "SimHost",
    "SimVM",
    "host_index",
    "host_name",
    "vm_name",
]

_HOST_RE = re.compile(r"h(\d{4,})")


def host_name(index: int) -> str:
    return f"h{index:04d}"


def host_index(name: str) -> int | None:
    m = _HOST_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def vm_name(index: int) -> str:
    return f"vm{index:05d}"


class SimVM:
    """A VM: fixed size, current CPU demand, where it runs, whether it is migrating."""

    __slots__ = (
        "demand",
        "host",
        "id",
        "index",
        "intensity",
        "memory_mib",
        "migrating",
        "model",
        "sample",
        "vcpus",
    )

    def __init__(
        self, index: int, vcpus: int, memory_mib: int, intensity: float, host: SimHost
    ) -> None:
        self.index = index
        self.id = vm_name(index)
        self.vcpus = vcpus
        self.memory_mib = memory_mib
        self.intensity = intensity
        self.demand = 0.0
        self.host = host
        self.migrating: SimHost | None = None
        """The destination while a migration is in flight."""
        self.model: Any = None
        """Cache of the planners' view of this VM (cleared when its demand or host changes)."""
        self.sample: Any = None
        """Cache of the hypervisor's ``VMSample`` (cleared when its demand, host or migration
        state changes)."""


class SimHost:
    """A host and its running sums (see the module docstring)."""

    __slots__ = (
        "alive",
        "cores",
        "cpu_capacity",
        "cpu_demand",
        "id",
        "index",
        "mem_reserved",
        "mem_resident",
        "memory_mib",
        "migrations",
        "nic_bps",
        "site",
        "violated_since",
        "vms",
        "watchers",
    )

    def __init__(
        self,
        index: int,
        site: str,
        cores: int,
        cpu_capacity: float,
        memory_mib: int,
        nic_bps: float,
    ) -> None:
        self.index = index
        self.id = host_name(index)
        self.site = site
        self.cores = cores
        self.cpu_capacity = cpu_capacity
        self.memory_mib = memory_mib
        self.nic_bps = nic_bps
        self.vms: dict[str, SimVM] = {}
        """VMs running here, in arrival order (deterministic)."""
        self.cpu_demand = 0.0
        self.mem_resident = 0
        self.mem_reserved = 0
        self.migrations = 0
        """Migrations in flight from or to this host."""
        self.alive = True
        self.violated_since: float | None = None
        self.watchers: list[tuple[str, str]] = []

    def overloaded(self) -> bool:
        return self.alive and is_overloaded(
            self.cpu_demand, self.mem_resident, self.cpu_capacity, self.memory_mib
        )

    def mem_free(self) -> int:
        return self.memory_mib - self.mem_resident - self.mem_reserved

    def utilisation(self) -> float:
        """Fraction of the CPU capacity in use (0 when crashed)."""
        if not self.alive:
            return 0.0
        return min(self.cpu_demand, self.cpu_capacity) / self.cpu_capacity

    def usage(self, vm: SimVM) -> float:
        """The CPU a VM here gets: its demand, scaled down when the host is overloaded."""
        if self.cpu_demand <= self.cpu_capacity:
            return vm.demand
        return vm.demand * self.cpu_capacity / self.cpu_demand

    def add(self, vm: SimVM) -> None:
        self.vms[vm.id] = vm
        vm.host = self
        vm.model = vm.sample = None
        self.cpu_demand += vm.demand
        self.mem_resident += vm.memory_mib

    def remove(self, vm: SimVM) -> None:
        del self.vms[vm.id]
        self.cpu_demand -= vm.demand
        self.mem_resident -= vm.memory_mib
        if not self.vms:
            self.cpu_demand = 0.0  # no float drift on an empty host


class Infrastructure:
    """Hosts and VMs of a run."""

    def __init__(self, hosts: Sequence[SimHost], vms: Sequence[SimVM]) -> None:
        self.hosts = list(hosts)
        self.vms = list(vms)
        self.host_by_id = {h.id: h for h in self.hosts}
        self.vm_by_id = {v.id: v for v in self.vms}

    @classmethod
    def build(
        cls,
        config: InfrastructureConfig,
        sites: Sequence[str],
        rng: random.Random,
        initial_loads: Sequence[float] | None = None,
    ) -> Infrastructure:
        """Hosts over ``sites``, VMs with drawn intensities and ``initial_loads``, placed."""
        n = config.hosts
        hosts = [
            SimHost(
                i,
                sites[i * len(sites) // n],
                config.host_cores,
                config.host_cpu_capacity,
                config.host_memory_mib,
                config.host_nic_bps,
            )
            for i in range(n)
        ]
        total = n * config.vms_per_host
        lo, hi = config.vm_intensity_min, config.vm_intensity_max
        intensities = [rng.uniform(lo, hi) for _ in range(total)]
        loads = list(initial_loads) if initial_loads is not None else [0.0] * total
        vms: list[SimVM] = []
        placement = config.placement
        per_host = config.host_memory_mib // config.vm_memory_mib
        if placement == "round-robin":
            targets = [i % n for i in range(total)]
        elif placement == "fill":
            targets = [i // per_host for i in range(total)]
        else:
            targets = _balanced(n, loads, per_host)
        for i in range(total):
            vm = SimVM(i, config.vm_vcpus, config.vm_memory_mib, intensities[i], hosts[targets[i]])
            vm.demand = loads[i]
            hosts[targets[i]].add(vm)
            vms.append(vm)
        return cls(hosts, vms)

    def set_demand(self, vm: SimVM, demand: float) -> SimHost:
        """Change a VM's CPU demand; returns the host whose sum changed."""
        host = vm.host
        host.cpu_demand += demand - vm.demand
        vm.demand = demand
        vm.model = vm.sample = None
        if host.cpu_demand < CPU_TOLERANCE and all(v.demand == 0 for v in host.vms.values()):
            host.cpu_demand = 0.0
        return host

    def lost_vms(self) -> int:
        """VMs on no host or listed on several (must be 0)."""
        count: dict[str, int] = {}
        for host in self.hosts:
            for vm_id in host.vms:
                count[vm_id] = count.get(vm_id, 0) + 1
        return sum(1 for vm in self.vms if count.get(vm.id, 0) != 1) + sum(
            1 for vm_id in count if vm_id not in self.vm_by_id
        )

    def check(self) -> list[str]:
        """Invariant pass: every VM on exactly one host, sums right, memory within capacity.

        Returns the problems found (empty when all holds).
        """
        problems: list[str] = []
        seen: dict[str, str] = {}
        for host in self.hosts:
            cpu = 0.0
            mem = 0
            for vm_id, vm in host.vms.items():
                if vm_id in seen:
                    problems.append(f"{vm_id} on {seen[vm_id]} and {host.id}")
                seen[vm_id] = host.id
                if vm.host is not host:
                    problems.append(f"{vm_id} listed on {host.id} but points to {vm.host.id}")
                cpu += vm.demand
                mem += vm.memory_mib
            if abs(cpu - host.cpu_demand) > 1e-3 or mem != host.mem_resident:
                problems.append(f"{host.id}: sums drifted ({host.cpu_demand} vs {cpu})")
            if host.mem_resident + host.mem_reserved > host.memory_mib:
                problems.append(f"{host.id}: memory over capacity")
        for vm in self.vms:
            if vm.id not in seen:
                problems.append(f"{vm.id} is on no host")
        return problems


def _balanced(n: int, loads: Sequence[float], per_host: int) -> list[int]:
    """Each VM (in order) on the host with the least CPU load so far that has memory left
    for it (at most ``per_host`` VMs), ties by index."""
    import heapq

    heap = [(0.0, i) for i in range(n)]
    count = [0] * n
    targets: list[int] = []
    for load in loads:
        cpu, i = heapq.heappop(heap)
        targets.append(i)
        count[i] += 1
        if count[i] < per_host:
            heapq.heappush(heap, (cpu + load, i))
    return targets
