"""Hypothesis strategies for planner tests (needs the ``hypothesis`` test extra).

- ``hosts_and_vms()``: a small partition with VMPlaceS-like sizes (hosts of 700 % CPU and
  8–32 GiB, VMs of 1 vCPU with loads in slots of 10 %, 1–4 GiB); each host is "hot"
  (loads 30–100 %) or not (0–100 %), so some hosts are overloaded in CPU or memory and some
  problems cannot be fixed at all. Host ids deliberately do not sort numerically.
- ``partitions()``: a ``PartitionCase``: a small infrastructure and a partition inside it
  (member hosts, the first is the initiator, overloaded when any host is), with
  ``case.hosts`` / ``case.vms`` restricted to the members — what a partition's planner sees.

Example::

    from hypothesis import given
    from dvms.testing import check_plan
    from dvms.testing.strategies import hosts_and_vms

    @given(hosts_and_vms())
    def test_my_planner(problem):
        hosts, vms = problem
        plan = MyPlanner().plan(hosts, vms)
        if plan is not None:
            check_plan(hosts, vms, plan)
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from dvms.scheduler.model import VM, Host
from dvms.scheduler.repair import overloaded_hosts

__all__ = ["PartitionCase", "hosts_and_vms", "partitions"]

Problem = tuple[list[Host], list[VM]]


@st.composite
def _problem(
    draw: st.DrawFn,
    min_hosts: int,
    max_hosts: int,
    max_vms_per_host: int,
    cpu_capacity: float,
    fractional_loads: bool,
) -> Problem:
    hosts: list[Host] = []
    vms: list[VM] = []
    loads = st.integers(0, 10).map(lambda slot: 10.0 * slot)
    hot_loads = st.integers(3, 10).map(lambda slot: 10.0 * slot)
    if fractional_loads:
        odd = st.sampled_from([12.5, 33.3, 66.7, 0.1, 99.9])
        loads = st.one_of(loads, odd)
        hot_loads = st.one_of(hot_loads, odd)
    for i in range(draw(st.integers(min_hosts, max_hosts))):
        host = Host(
            id=f"h{i}",
            cpu_capacity=cpu_capacity,
            memory_mib=draw(st.sampled_from([32768, 16384, 8192])),
            site=f"site{i % 3}",
        )
        hosts.append(host)
        hot = draw(st.booleans())
        for j in range(draw(st.integers(0, max_vms_per_host))):
            vms.append(
                VM(
                    id=f"vm{i}.{j}",
                    host=host.id,
                    cpu_demand=draw(hot_loads if hot else loads),
                    memory_mib=draw(st.sampled_from([1024, 1024, 1024, 2048, 4096])),
                )
            )
    return hosts, vms


def hosts_and_vms(
    *,
    min_hosts: int = 1,
    max_hosts: int = 8,
    max_vms_per_host: int = 12,
    cpu_capacity: float = 700.0,
    fractional_loads: bool = True,
) -> st.SearchStrategy[Problem]:
    """``(hosts, vms)`` for one small partition (see the module docstring)."""
    if not 1 <= min_hosts <= max_hosts:
        raise ValueError(f"need 1 <= min_hosts <= max_hosts, got {min_hosts}, {max_hosts}")
    return _problem(min_hosts, max_hosts, max_vms_per_host, cpu_capacity, fractional_loads)


@dataclass(frozen=True, slots=True)
class PartitionCase:
    """A partition inside a small infrastructure."""

    all_hosts: list[Host]
    all_vms: list[VM]
    members: tuple[str, ...]
    """Member host ids; ``members[0]`` is the initiator."""

    @property
    def initiator(self) -> str:
        return self.members[0]

    @property
    def hosts(self) -> list[Host]:
        """The members' hosts (what the partition's planner sees)."""
        return [h for h in self.all_hosts if h.id in self.members]

    @property
    def vms(self) -> list[VM]:
        """The VMs on the members' hosts."""
        return [vm for vm in self.all_vms if vm.host in self.members]


@st.composite
def _partition(draw: st.DrawFn, min_size: int, max_size: int, max_hosts: int) -> PartitionCase:
    hosts, vms = draw(hosts_and_vms(min_hosts=max(min_size, 1), max_hosts=max_hosts))
    over = overloaded_hosts(hosts, vms)
    ids = [h.id for h in hosts]
    initiator = draw(st.sampled_from(over or ids))
    size = draw(st.integers(max(min_size, 1), min(max_size, len(ids))))
    others = draw(st.permutations([i for i in ids if i != initiator]))
    return PartitionCase(hosts, vms, (initiator, *others[: size - 1]))


def partitions(
    *, min_size: int = 1, max_size: int = 12, max_hosts: int = 16
) -> st.SearchStrategy[PartitionCase]:
    """A ``PartitionCase`` of ``min_size``–``max_size`` members in up to ``max_hosts`` hosts."""
    if not 1 <= min_size <= max_size or min_size > max_hosts:
        raise ValueError(
            f"need 1 <= min_size <= max_size and min_size <= max_hosts, "
            f"got {min_size}, {max_size}, {max_hosts}"
        )
    return _partition(min_size, max_size, max_hosts)
