"""The centralised baseline on real hosts: a coordinator role on one agent.

In simulation the ``CentralScheduler`` reads the world's global view. On real hosts there is
no such view: the ``CentralCoordinator`` (service ``"central"`` on one agent) asks every
host's ``CentralHost`` (service ``"central-host"``) for its monitor snapshot, waits at most
``gather_timeout_s`` (hosts that have not answered are left out of that run), plans over the
snapshots with the same planners (``planning_problem``, as DVMS leaders do), charges the
solve time, and orders each migration to its source's ``CentralHost``, which starts it on
its hypervisor; the ``MigrationResult`` comes back to the coordinator. Orders without a
result after ``apply_timeout_s`` count as failed. Everything else (periods, partial plans,
the ``scheduler.run`` event) is ``CentralScheduler``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from dvms.hypervisor import Hypervisor, MigrationResult
from dvms.protocol.messages import HostSnapshot
from dvms.protocol.partition import planning_problem, snapshot
from dvms.scheduler.model import Migration, Planner
from dvms.services.central import CentralScheduler
from peeractor import Behaviour, NodeId, message

__all__ = [
    "HOST_SERVICE",
    "CentralCoordinator",
    "CentralHost",
    "CentralOrder",
    "GatherTimeout",
    "HostReport",
    "OrdersTimeout",
    "SnapshotRequest",
]

HOST_SERVICE = "central-host"
"""Service name of a host's side of the centralised scheduler."""


@message("central.SnapshotRequest")
class SnapshotRequest:
    """Coordinator → host: send your snapshot for run ``seq``."""

    seq: int
    coordinator: NodeId


@message("central.HostReport")
class HostReport:
    """Host → coordinator: the host's snapshot for run ``seq``."""

    seq: int
    snapshot: HostSnapshot


@message("central.Order")
class CentralOrder:
    """Coordinator → source host: migrate ``vm`` to ``destination`` (run ``seq``)."""

    seq: int
    vm: str
    destination: NodeId
    coordinator: NodeId


@message("central.GatherTimeout")
class GatherTimeout:
    """Self-message: stop waiting for the snapshots of run ``seq``."""

    seq: int


@message("central.OrdersTimeout")
class OrdersTimeout:
    """Self-message: the orders of run ``seq`` still without a result count as failed."""

    seq: int


class CentralHost(Behaviour):
    """A host's side: answers snapshot requests, starts ordered migrations."""

    name = HOST_SERVICE

    def __init__(self, hypervisor: Hypervisor, site: str = "") -> None:
        self.hypervisor = hypervisor
        self.site = site
        self.orders = 0
        """Orders received."""

    def on_receive(self, message: object) -> None:
        if isinstance(message, SnapshotRequest):
            snap = snapshot(self.node, self.hypervisor, self.now(), self.site)
            self.send((message.coordinator, CentralScheduler.name), HostReport(message.seq, snap))
        elif isinstance(message, CentralOrder):
            self.orders += 1
            self._order(message)

    def _order(self, order: CentralOrder) -> None:
        reply_to = (order.coordinator, CentralScheduler.name)
        here = {vm.vm: vm for vm in self.hypervisor.vms()}
        sample = here.get(order.vm)
        if sample is None or sample.migrating:
            why = "not on the source" if sample is None else "already migrating"
            now = self.now()
            result = MigrationResult(order.vm, self.node, order.destination, False, why, now, 0.0)
            self.send(reply_to, result)
            return
        self.hypervisor.migrate(order.vm, order.destination, reply_to)


class CentralCoordinator(CentralScheduler):
    """``CentralScheduler`` gathering its snapshot from the hosts over the transport."""

    def __init__(
        self,
        hosts: Sequence[NodeId],
        planner: Planner,
        *,
        period_s: float = 30.0,
        gather_timeout_s: float = 2.0,
        apply_timeout_s: float = 300.0,
        label: str = "centralized",
    ) -> None:
        super().__init__(None, planner, period_s=period_s, label=label)
        if not gather_timeout_s > 0 or not apply_timeout_s > 0:
            raise ValueError("central: gather_timeout_s and apply_timeout_s must be > 0")
        self.hosts = tuple(dict.fromkeys(hosts))
        self.gather_timeout_s = gather_timeout_s
        self.apply_timeout_s = apply_timeout_s
        self._reports: dict[NodeId, HostSnapshot] = {}
        self._gathering = False
        self._orders_timer_armed = False
        self.missing = 0
        """Snapshots that did not arrive in time, over all runs."""

    def on_receive(self, message: object) -> None:
        if isinstance(message, HostReport):
            if self._gathering and message.seq == self._seq:
                self._reports[message.snapshot.node] = message.snapshot
                if len(self._reports) == len(self.hosts):
                    self._gathered()
        elif isinstance(message, GatherTimeout):
            if self._gathering and message.seq == self._seq:
                self.missing += len(self.hosts) - len(self._reports)
                self._gathered()
        elif isinstance(message, OrdersTimeout):
            if message.seq == self._seq and self._plan is not None:
                self._timed_out()
        else:
            super().on_receive(message)

    def gather(self) -> None:
        self._reports = {}
        self._gathering = True
        for host in self.hosts:
            self.send((host, CentralHost.name), SnapshotRequest(self._seq, self.node))
        self.schedule(self.gather_timeout_s, GatherTimeout(self._seq))

    def _gathered(self) -> None:
        self._gathering = False
        hosts, vms = planning_problem(self.hosts, self._reports)
        self.plan_over(hosts, vms, None)

    def order(self, migration: Migration) -> None:
        if not self._orders_timer_armed:
            self._orders_timer_armed = True
            self.schedule(self.apply_timeout_s, OrdersTimeout(self._seq))
        order = CentralOrder(self._seq, migration.vm, migration.destination, self.node)
        self.send((migration.source, CentralHost.name), order)

    def _timed_out(self) -> None:
        while self._pending > 0:
            self._pending -= 1
            self._failed += 1
        self._finish()

    def _finish(self) -> None:
        self._orders_timer_armed = False
        super()._finish()
