"""Invariant checks for plans: use them to test your own planner.

``check_plan(hosts, vms, plan)`` raises ``PlanViolation`` (an ``AssertionError``, so pytest
shows it as a failure) with a precise message when the plan breaks an invariant:

- before: VM ids unique, every VM on exactly one host of the problem;
- every migration: its VM exists, is not moved twice, is at the migration's source when it
  starts, ``source != destination``, both hosts in the problem, ``memory_mib`` equal to the
  VM's, and the source is *movable* (repair mode: only hosts overloaded before the plan;
  ``movable_hosts`` overrides);
- executable in order: migrations run one after another; when one starts, its destination
  has room for the VM (CPU and memory) on top of what it holds (the VM in flight counts on
  both ends);
- after: every VM on exactly one host, every host within CPU and memory capacity.

``check_plan_parallel`` checks the same with all migrations started at once: each
destination must hold its current VMs plus all its incoming ones (VMs leaving it still count).

``vmplaces_problem(hosts, seed)`` builds a VMPlaceS-like problem to plan on (benchmarks,
cost-model fitting).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from dvms.scheduler.model import CPU_TOLERANCE as TOLERANCE
from dvms.scheduler.model import VM, Host, Migration, Plan

__all__ = ["PlanViolation", "check_plan", "check_plan_parallel", "vmplaces_problem"]


class PlanViolation(AssertionError):
    """A plan breaks an invariant; the message says which, where and by how much."""


class _State:
    """Hosts' loads and VMs' locations while a plan runs."""

    def __init__(self, hosts: Sequence[Host], vms: Sequence[VM]) -> None:
        self.hosts: dict[str, Host] = {}
        for host in hosts:
            if host.id in self.hosts:
                raise PlanViolation(f"host {host.id!r} appears twice")
            self.hosts[host.id] = host
        self.vms: dict[str, VM] = {}
        self.where: dict[str, str] = {}
        self.cpu = dict.fromkeys(self.hosts, 0.0)
        self.mem = dict.fromkeys(self.hosts, 0)
        for vm in vms:
            if vm.id in self.vms:
                raise PlanViolation(
                    f"VM {vm.id!r} appears twice (on {self.where[vm.id]!r} and {vm.host!r})"
                )
            if vm.host not in self.hosts:
                raise PlanViolation(f"VM {vm.id!r} is on unknown host {vm.host!r}")
            self.vms[vm.id] = vm
            self.where[vm.id] = vm.host
            self.cpu[vm.host] += vm.cpu_demand
            self.mem[vm.host] += vm.memory_mib

    def overloaded(self) -> list[str]:
        return [h for h in sorted(self.hosts) if self.excess(h)]

    def excess(self, host_id: str, cpu: float = 0.0, mem: int = 0) -> str:
        """Empty when ``host_id`` holds its load plus (cpu, mem); else what exceeds."""
        host = self.hosts[host_id]
        total_cpu, total_mem = self.cpu[host_id] + cpu, self.mem[host_id] + mem
        if total_cpu > host.cpu_capacity + TOLERANCE:
            return f"CPU {total_cpu:g} > capacity {host.cpu_capacity:g}"
        if total_mem > host.memory_mib:
            return f"memory {total_mem} MiB > capacity {host.memory_mib} MiB"
        return ""


def _check_migrations(
    state: _State, plan: Plan | None, movable_hosts: Collection[str] | None
) -> list[VM]:
    """Static checks of each migration (in order); returns the migrations' VMs."""
    if plan is None:
        raise PlanViolation("no plan (None) to check")
    movable = set(state.overloaded() if movable_hosts is None else movable_hosts)
    moved: set[str] = set()
    result: list[VM] = []
    for i, m in enumerate(plan.migrations):
        if not isinstance(m, Migration):
            raise PlanViolation(f"migration {i} is not a Migration: {m!r}")
        where = f"migration {i} ({m.vm!r}: {m.source!r} -> {m.destination!r})"
        vm = state.vms.get(m.vm)
        if vm is None:
            raise PlanViolation(f"{where}: unknown VM")
        if m.vm in moved:
            raise PlanViolation(f"{where}: VM moved twice")
        moved.add(m.vm)
        for role, host in (("source", m.source), ("destination", m.destination)):
            if host not in state.hosts:
                raise PlanViolation(f"{where}: {role} is not a host of the partition")
        if m.source == m.destination:
            raise PlanViolation(f"{where}: source and destination are the same host")
        if vm.host != m.source:
            raise PlanViolation(f"{where}: the VM is on {vm.host!r}, not at the source")
        if m.memory_mib != vm.memory_mib:
            raise PlanViolation(f"{where}: memory_mib {m.memory_mib} != the VM's {vm.memory_mib}")
        if m.source not in movable:
            raise PlanViolation(
                f"{where}: source may not give VMs away (movable hosts: {sorted(movable)})"
            )
        result.append(vm)
    return result


def _check_final(state: _State) -> None:
    for host_id in sorted(state.hosts):
        excess = state.excess(host_id)
        if excess:
            raise PlanViolation(f"after the plan, host {host_id!r} is over capacity: {excess}")


def check_plan(
    hosts: Sequence[Host],
    vms: Sequence[VM],
    plan: Plan | None,
    *,
    movable_hosts: Collection[str] | None = None,
) -> None:
    """Raise ``PlanViolation`` unless ``plan`` is valid and executable in order."""
    state = _State(hosts, vms)
    moving = _check_migrations(state, plan, movable_hosts)
    assert plan is not None
    for i, (m, vm) in enumerate(zip(plan.migrations, moving, strict=True)):
        excess = state.excess(m.destination, vm.cpu_demand, vm.memory_mib)
        if excess:
            raise PlanViolation(
                f"migration {i} ({m.vm!r}: {m.source!r} -> {m.destination!r}): destination "
                f"lacks room when it starts: {excess}"
            )
        state.cpu[m.source] -= vm.cpu_demand
        state.mem[m.source] -= vm.memory_mib
        state.cpu[m.destination] += vm.cpu_demand
        state.mem[m.destination] += vm.memory_mib
        state.where[vm.id] = m.destination
    _check_final(state)


def check_plan_parallel(
    hosts: Sequence[Host],
    vms: Sequence[VM],
    plan: Plan | None,
    *,
    movable_hosts: Collection[str] | None = None,
) -> None:
    """Raise ``PlanViolation`` unless ``plan`` is valid with all migrations started at once."""
    state = _State(hosts, vms)
    moving = _check_migrations(state, plan, movable_hosts)
    assert plan is not None
    for m, vm in zip(plan.migrations, moving, strict=True):  # all in flight: both ends count
        state.cpu[m.destination] += vm.cpu_demand
        state.mem[m.destination] += vm.memory_mib
    for host_id in sorted({m.destination for m in plan.migrations}):
        excess = state.excess(host_id)
        if excess:
            raise PlanViolation(
                f"host {host_id!r} lacks room with all migrations in flight: {excess}"
            )
    for m, vm in zip(plan.migrations, moving, strict=True):  # all done
        state.cpu[m.source] -= vm.cpu_demand
        state.mem[m.source] -= vm.memory_mib
        state.where[vm.id] = m.destination
    _check_final(state)


def vmplaces_problem(
    hosts: int, seed: int, *, vms_per_host: int = 10, overloaded_share: float = 0.1
) -> tuple[list[Host], list[VM]]:
    """A VMPlaceS-like problem: hosts of 700 % CPU / 32 GiB, VMs of 1 vCPU / 1 GiB.

    Loads are ``max(N(60, 20), 0)`` capped at 100 in slots of 10 (VMPlaceS's load injector);
    the first ``overloaded_share`` of the hosts (at least one) are redrawn with mean 80 until
    overloaded; the others are overloaded only by chance (about 6 %). Deterministic in seed.
    """
    rng = random.Random(seed)

    def load(mu: float) -> float:
        return float(min(100, max(0, round(rng.gauss(mu, 20) / 10) * 10)))

    hs = [Host(f"node{i}", 700.0, 32768) for i in range(hosts)]
    loads = [[load(60) for _ in range(vms_per_host)] for _ in hs]
    for i in range(min(hosts, max(1, int(hosts * overloaded_share)))):
        while sum(loads[i]) <= 700:
            loads[i] = [load(80) for _ in range(vms_per_host)]
    vms = [
        VM(f"vm{i}-{j}", h.id, loads[i][j], 1024)
        for i, h in enumerate(hs)
        for j in range(vms_per_host)
    ]
    return hs, vms
