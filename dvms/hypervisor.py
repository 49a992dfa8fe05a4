"""What node code needs from the host it runs on; ``sim`` and ``deploy`` implement it.

Units: CPU in percent of one core (100 = one fully busy core, as VMPlaceS), memory in MiB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from peeractor import Address, NodeId, message

__all__ = [
    "HostCapacity",
    "Hypervisor",
    "HypervisorChanged",
    "MigrationResult",
    "VMSample",
    "demand_of",
]


@dataclass(frozen=True, slots=True)
class HostCapacity:
    """What a host offers to VMs."""

    cpu: float
    """CPU available to VMs, percent of a core (VMPlaceS: 8 cores, one kept → 700)."""
    memory_mib: int
    """Memory available to VMs, MiB."""


@dataclass(frozen=True, slots=True)
class VMSample:
    """One VM as its host sees it now."""

    vm: str
    vcpus: int
    memory_mib: int
    cpu_demand: float
    """CPU the VM wants, percent of a core (≤ 100 × vcpus)."""
    migrating: bool = False


@message("hv.MigrationResult")
class MigrationResult:
    """Sent by a hypervisor to the ``reply_to`` given to ``migrate`` when a migration ends."""

    vm: str
    source: NodeId
    destination: NodeId
    ok: bool
    """True: the VM now runs at ``destination``. False: it still runs at ``source``."""
    reason: str
    """Empty on success; the cause on failure (timeout, destination down, ...)."""
    started_at: float
    duration_s: float


@message("hv.Changed")
class HypervisorChanged:
    """Pushed to watchers when the demand of the host's VMs changes while the host is
    overloaded, or changes it back within capacity (simulated hosts; see ``watch``)."""

    node: NodeId


class Hypervisor(Protocol):
    """A host's hypervisor as node code sees it."""

    node: NodeId

    def capacity(self) -> HostCapacity: ...

    def vms(self) -> Sequence[VMSample]:
        """The VMs running here now (a VM being migrated away is listed until it has left)."""
        ...

    def demand_totals(self) -> tuple[float, int]:
        """(CPU demand, memory MiB) summed over the VMs listed now (``demand_of(vms())``;
        the simulated host keeps the sums incrementally: O(1))."""
        ...

    def migrating(self) -> bool:
        """True while a migration from or to this host is in progress."""
        ...

    def migrate(self, vm: str, destination: NodeId, reply_to: Address) -> None:
        """Start a live migration; a ``MigrationResult`` is later sent to ``reply_to``.

        Never raises for runtime failures: they are reported in the result, and the VM
        keeps running at its source.
        """
        ...

    def watch(self, address: Address) -> bool:
        """Ask for ``HypervisorChanged`` at ``address`` on every demand change that an
        overload monitor must see: each change while the host is overloaded (VMs want more
        CPU or memory than it has) and the change that brings it back within capacity. A
        change from within capacity to within capacity may be left out.

        Returns False when the hypervisor cannot push changes (then poll).
        """
        ...


def demand_of(vms: Sequence[VMSample]) -> tuple[float, int]:
    """(CPU demand, memory MiB) summed over ``vms``."""
    cpu = 0.0
    mem = 0
    for vm in vms:
        cpu += vm.cpu_demand
        mem += vm.memory_mib
    return cpu, mem
