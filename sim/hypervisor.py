"""``SimHypervisor``: the node-side Hypervisor interface over the simulated model.

Node code (monitor, DVMS) sees a simulated host exactly as it would see libvirt:
capacity, the VMs running there with their CPU demand, ``migrate`` with a
``MigrationResult`` sent back later. ``watch(address)`` returns True: the world pushes
``HypervisorChanged`` to the watcher on every change of the host's demand while it is
overloaded and on the change back within capacity (no polling; ``World.changed``).
"""

from __future__ import annotations

from collections.abc import Sequence

from dvms.hypervisor import HostCapacity, VMSample
from peeractor import Address, NodeId
from sim.infrastructure import SimHost
from sim.migration import MigrationEngine

__all__ = ["SimHypervisor"]


class SimHypervisor:
    """One simulated host's hypervisor."""

    def __init__(self, host: SimHost, migrations: MigrationEngine) -> None:
        self.host = host
        self.node: NodeId = host.id
        self._migrations = migrations
        self._capacity = HostCapacity(host.cpu_capacity, host.memory_mib)

    def capacity(self) -> HostCapacity:
        return self._capacity

    def vms(self) -> Sequence[VMSample]:
        """The VMs running here (one being migrated away is listed until it has left).

        Each VM's sample is kept until its demand, host or migration state changes."""
        out: list[VMSample] = []
        append = out.append
        for vm in self.host.vms.values():
            sample = vm.sample
            if sample is None:
                sample = vm.sample = VMSample(
                    vm.id, vm.vcpus, vm.memory_mib, vm.demand, vm.migrating is not None
                )
            append(sample)
        return out

    def demand_totals(self) -> tuple[float, int]:
        """(CPU demand, memory MiB) of the VMs running here, kept incrementally: O(1)."""
        return self.host.cpu_demand, self.host.mem_resident

    def usage(self, vm: str) -> float:
        """CPU the VM actually gets (demand scaled down when the host is overloaded)."""
        return self.host.usage(self.host.vms[vm])

    def migrating(self) -> bool:
        return self.host.migrations > 0

    def migrate(self, vm: str, destination: NodeId, reply_to: Address) -> None:
        self._migrations.start(vm, self.node, destination, reply_to)

    def watch(self, address: Address) -> bool:
        if address not in self.host.watchers:
            self.host.watchers.append(address)
        return True
