"""A small hand-made cluster to exercise the DVMS protocol without the full world.

Real components throughout (SimRuntime, and every node's services from the one node assembly,
``dvms.node.node_services``: Monitor, DvmsService, RepairPlanner); only the hosts are a
minimal model: a VM is on exactly one host, a migration takes
``migration_s``, reserves its memory on the destination while it runs, and fails (the VM
staying at its source) when the destination lacks memory or either end crashed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from dvms import events
from dvms.hypervisor import HostCapacity, HypervisorChanged, MigrationResult, VMSample, demand_of
from dvms.node import NodePlan, SchedulerConfig, node_services
from dvms.overlay import LboOverlay, RandomOverlay, RingOverlay, build_ring
from dvms.overlay.base import Overlay
from dvms.protocol import DvmsConfig, DvmsService
from dvms.vivaldi import Coordinate
from peeractor import Address, NodeId
from peeractor.network import UniformLatency
from peeractor.sim import SimRuntime

__all__ = ["ToyCluster"]


class ToyHypervisor:
    def __init__(self, cluster: ToyCluster, node: NodeId) -> None:
        self.cluster = cluster
        self.node = node

    def capacity(self) -> HostCapacity:
        return HostCapacity(self.cluster.capacity, self.cluster.memory_mib)

    def vms(self) -> Sequence[VMSample]:
        c = self.cluster
        with c.lock:
            return [
                VMSample(vm, 1, c.vm_mib, c.demand[vm], vm in c.moving)
                for vm in sorted(c.vms_on[self.node])
            ]

    def demand_totals(self) -> tuple[float, int]:
        return demand_of(self.vms())

    def migrating(self) -> bool:
        with self.cluster.lock:
            return any(self.node in ends for ends in self.cluster.moving.values())

    def migrate(self, vm: str, destination: NodeId, reply_to: Address) -> None:
        self.cluster.migrate(vm, self.node, destination, reply_to)

    def watch(self, address: Address) -> bool:
        self.cluster.watchers.setdefault(self.node, []).append(address)
        return True


class ToyCluster:
    """``hosts`` hosts named h000…, ``vms_per_host`` VMs each (v000-0…), all at load 0."""

    def __init__(
        self,
        hosts: int,
        *,
        seed: int = 1,
        vms_per_host: int = 4,
        capacity: float = 400.0,
        memory_mib: int = 8192,
        vm_mib: int = 1024,
        overlay: str = "ring",
        loss: float = 0.0,
        latency: tuple[float, float] = (0.001, 0.004),
        migration_s: float = 3.0,
        config: DvmsConfig | None = None,
        positions: dict[NodeId, tuple[float, float]] | None = None,
        runtime: str = "sim",
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        """Guards the model when the runtime is threaded (actors read, the clock writes)."""
        network = UniformLatency(*latency, loss=loss)
        self.rt: Any
        if runtime == "sim":
            self.rt = SimRuntime(seed=seed, network=network, trace=self.events.append)
        else:
            from peeractor.threaded import ThreadRuntime

            self.rt = ThreadRuntime(seed=seed, network=network, trace=self.events.append)
        self.capacity = capacity
        self.memory_mib = memory_mib
        self.vm_mib = vm_mib
        self.migration_s = migration_s
        self.nodes = [f"h{i:03d}" for i in range(hosts)]
        self.host_of: dict[str, NodeId] = {}
        self.demand: dict[str, float] = {}
        self.vms_on: dict[NodeId, set[str]] = {n: set() for n in self.nodes}
        self.moving: dict[str, tuple[NodeId, NodeId]] = {}
        self.crashed: set[NodeId] = set()
        self.watchers: dict[NodeId, list[Address]] = {}
        self.services: dict[NodeId, DvmsService] = {}
        for i, node in enumerate(self.nodes):
            for j in range(vms_per_host):
                vm = f"v{i:03d}-{j}"
                self.host_of[vm] = node
                self.demand[vm] = 0.0
                self.vms_on[node].add(vm)
        ring = build_ring(self.nodes, _rng(seed), successors=8)
        plan = NodePlan(
            seed=seed,
            scheduler=SchedulerConfig(name="dvms", headroom=0.1),
            overlay=overlay,
            dvms=config or DvmsConfig(),
            vivaldi=None,
        )
        for node in self.nodes:
            hv = ToyHypervisor(self, node)
            ov = self._overlay(overlay, node, ring, seed, positions)
            services = node_services(plan, node, "", hv, ov, ())
            dvms = next(s for s in services if isinstance(s, DvmsService))
            self.services[node] = dvms
            self.rt.add_node(node, services)

    def _overlay(
        self,
        name: str,
        node: NodeId,
        ring: dict[NodeId, list[NodeId]],
        seed: int,
        positions: dict[NodeId, tuple[float, float]] | None,
    ) -> Overlay:
        if name == "ring":
            return RingOverlay(node, ring[node])
        if name == "random":
            return RandomOverlay(node, _rng(seed, node), [n for n in self.nodes if n != node])
        assert name == "lbo" and positions is not None
        ov = LboOverlay(node)
        for other in self.nodes:
            x, y = positions[other]
            ov.observe(other, Coordinate((x, y), 1e-5, 0.1))
        return ov

    # ----- the world's side ------------------------------------------------------------
    def changed(self, node: NodeId) -> None:
        if node in self.crashed:
            return
        for address in self.watchers.get(node, []):
            self.rt.inject(address, HypervisorChanged(node))

    def later(self, at: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at time ``at`` on the runtime's clock, holding the model's lock."""

        def locked() -> None:
            with self.lock:
                fn()

        self.rt.call_later(max(0.0, at - self.rt.now()), locked)

    def set_load(self, vm: str, load: float, at: float | None = None) -> None:
        def apply() -> None:
            self.demand[vm] = load
            self.changed(self.host_of[vm])

        if at is None:
            apply()
        else:
            self.later(at, apply)

    def load_host(self, node: NodeId, loads: Sequence[float], at: float | None = None) -> None:
        for vm, load in zip(sorted(self.vms_on[node]), loads, strict=False):
            self.set_load(vm, load, at)

    def host_demand(self, node: NodeId) -> float:
        return sum(self.demand[vm] for vm in self.vms_on[node])

    def overloaded(self) -> list[NodeId]:
        return [
            n
            for n in self.nodes
            if n not in self.crashed and self.host_demand(n) > self.capacity + 1e-6
        ]

    def mem_used(self, node: NodeId) -> int:
        inbound = sum(1 for src, dst in self.moving.values() if dst == node)
        return (len(self.vms_on[node]) + inbound) * self.vm_mib

    def migrate(self, vm: str, src: NodeId, dst: NodeId, reply_to: Address) -> None:
        with self.lock:
            self._migrate(vm, src, dst, reply_to)

    def _migrate(self, vm: str, src: NodeId, dst: NodeId, reply_to: Address) -> None:
        start = self.rt.now()

        def fail(reason: str) -> None:
            self.events.append(
                events.migration_fail(start, src, vm=vm, src=src, dst=dst, reason=reason)
            )
            result = MigrationResult(vm, src, dst, False, reason, start, 0.0)
            self.rt.call_later(0.0, lambda: self._reply(reply_to, result))

        if self.host_of.get(vm) != src or vm in self.moving:
            fail("not-on-source")
        elif dst in self.crashed or src in self.crashed:
            fail("host-down")
        elif self.mem_used(dst) + self.vm_mib > self.memory_mib:
            fail("no-memory")
        else:
            self.moving[vm] = (src, dst)
            self.events.append(events.migration_start(
                start, src, vm=vm, src=src, dst=dst, src_site="", dst_site="",
                memory_mib=self.vm_mib))
            self.later(start + self.migration_s, lambda: self._complete(vm, reply_to, start))

    def _complete(self, vm: str, reply_to: Address, start: float) -> None:
        src, dst = self.moving.pop(vm)
        if src in self.crashed or dst in self.crashed:
            self.events.append(events.migration_fail(
                self.rt.now(), src, vm=vm, src=src, dst=dst, reason="host-down"))
            result = MigrationResult(vm, src, dst, False, "host-down", start, self.migration_s)
        else:
            self.vms_on[src].discard(vm)
            self.vms_on[dst].add(vm)
            self.host_of[vm] = dst
            self.events.append(events.migration_end(
                self.rt.now(), src, vm=vm, src=src, dst=dst, src_site="", dst_site="",
                duration_s=self.migration_s, memory_mib=self.vm_mib))
            result = MigrationResult(vm, src, dst, True, "", start, self.migration_s)
            self.changed(src)
            self.changed(dst)
        self._reply(reply_to, result)

    def _reply(self, address: Address, message: object) -> None:
        if address[0] not in self.crashed:
            self.rt.inject(address, message)

    def crash(self, node: NodeId, at: float) -> None:
        def apply() -> None:
            self.crashed.add(node)
            self.events.append(
                events.fault_crash(self.rt.now(), node, host=node, vms=sorted(self.vms_on[node]))
            )
            self.rt.crash(node)

        self.later(at, apply)

    def run(self, until: float) -> None:
        self.rt.run(until)

    # ----- checks ----------------------------------------------------------------------
    def vm_placement_errors(self) -> list[str]:
        """VMs lost or duplicated (each VM must be on exactly one host)."""
        errors = []
        count: dict[str, int] = dict.fromkeys(self.host_of, 0)
        for node, vms in self.vms_on.items():
            for vm in vms:
                count[vm] = count.get(vm, 0) + 1
                if self.host_of.get(vm) != node:
                    errors.append(f"{vm} listed on {node} but placed on {self.host_of.get(vm)}")
        errors += [f"{vm} on {n} hosts" for vm, n in sorted(count.items()) if n != 1]
        return errors

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]


def _rng(seed: int, salt: str = "") -> Any:
    import random
    import zlib

    return random.Random(zlib.crc32(f"{seed}:{salt}".encode()))
