"""The centralised baseline: one controller plans over the whole infrastructure.

Entropy-like, as in VMPlaceS: every ``period_s`` (default 30 s) the ``CentralScheduler``
(service ``"central"`` on a controller node) takes a global snapshot from its
:class:`GlobalView`, plans over all hosts with its planner, waits the solve time the
planner's cost model charges (``planner.cost_s(#hosts, #vms)``) on the clock, then applies
the plan: all migrations are ordered at once through ``GlobalView.migrate`` (a migration
whose VM moved meanwhile or whose destination lacks room fails and is traced by the
view), and it waits for every ``MigrationResult``. The next run starts at the next period
boundary (``start + period_s``), or at once when this run overshot it (back-to-back).

When the planner cannot fix every host (``plan`` returns None), ``plan_partial`` fixes the
hosts it can.

The view is the simulated world's (``GlobalView``, synchronous); on real hosts
``dvms.services.coordinator.CentralCoordinator`` gathers the same snapshot over the
transport and orders the same migrations through the hosts, by overriding ``gather`` and
``order``.

Emits ``scheduler.run`` {scheduler, hosts, vms, overloaded, migrations, compute_s, failed,
duration_s} when a run's migrations have all ended. Runtime-agnostic: it only uses its
context and the view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dvms import events
from dvms.events import emit_event
from dvms.hypervisor import MigrationResult
from dvms.scheduler.model import VM, Host, Migration, Plan, Planner, overloaded_hosts
from peeractor import Address, Behaviour, NodeId, message

__all__ = ["CentralRun", "CentralScheduler", "GlobalView"]


class GlobalView(Protocol):
    """The whole infrastructure as a centralised scheduler sees it."""

    def snapshot(self) -> tuple[Sequence[Host], Sequence[VM]]:
        """Live hosts and their VMs now (a migrating VM is on its source)."""
        ...

    def migrate(self, vm: str, source: NodeId, destination: NodeId, reply_to: Address) -> None:
        """Start a migration; a ``MigrationResult`` is later sent to ``reply_to``."""
        ...

    def overloaded_count(self) -> int:
        """Hosts of the snapshot overloaded now (the simulated world keeps it in O(1))."""
        ...


@message("central.Run")
class CentralRun:
    """Self-message: start a scheduling run (``seq`` numbers runs)."""

    seq: int


@message("central.Apply")
class CentralApply:
    """Self-message: the charged solve time of run ``seq`` has elapsed; apply its plan."""

    seq: int


class CentralScheduler(Behaviour):
    """Periodic global planning; see the module docstring."""

    name = "central"

    def __init__(
        self,
        view: GlobalView | None,
        planner: Planner,
        *,
        period_s: float = 30.0,
        label: str = "centralized",
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"central: period_s={period_s!r} must be > 0")
        self.view = view
        self.planner = planner
        self.period_s = period_s
        self.label = label
        self.runs = 0
        """Completed runs."""
        self._seq = 0
        self._started_at = 0.0
        self._plan: Plan | None = None
        self._pending = 0
        self._failed = 0
        self._stats: dict[str, float | int] = {}
        self.run_group: str | None = None
        """The group a run covers (the hierarchical scheduler's managers), traced with it."""
        """Extra fields of this scheduler's ``scheduler.run`` events (e.g. a group's name)."""

    def on_start(self) -> None:
        self.schedule(0.0, CentralRun(self._seq))

    def on_receive(self, message: object) -> None:
        if isinstance(message, MigrationResult):
            self.result(message)
        elif isinstance(message, CentralApply) and message.seq == self._seq:
            self._apply()
        elif isinstance(message, CentralRun) and message.seq == self._seq:
            self._run()

    def _run(self) -> None:
        self._started_at = self.now()
        self.gather()

    def gather(self) -> None:
        """Take the global snapshot and plan over it (the real coordinator gathers it)."""
        assert self.view is not None
        hosts, vms = self.view.snapshot()
        self.plan_over(hosts, vms, self.view.overloaded_count())

    def plan_over(self, hosts: Sequence[Host], vms: Sequence[VM], overloaded: int | None) -> None:
        """Plan over a snapshot; the plan is applied once its solve time has elapsed."""
        plan = self.planner.plan(hosts, vms)
        if plan is None:
            plan = self.planner.plan_partial(hosts, vms)[0]
        compute_s = self.planner.cost_s(len(hosts), len(vms))
        self._plan = plan
        self._stats = {
            "hosts": len(hosts),
            "vms": len(vms),
            "overloaded": len(overloaded_hosts(hosts, vms)) if overloaded is None else overloaded,
            "migrations": len(plan),
            "compute_s": compute_s,
        }
        self.schedule(compute_s, CentralApply(self._seq))

    def order(self, migration: Migration) -> None:
        """Start one migration of the plan; its ``MigrationResult`` comes back here."""
        assert self.view is not None
        self.view.migrate(migration.vm, migration.source, migration.destination, self.address)

    def _apply(self) -> None:
        plan = self._plan
        assert plan is not None
        self._pending = len(plan)
        self._failed = 0
        for migration in plan.migrations:
            self.order(migration)
        if self._pending == 0:
            self._finish()

    def result(self, result: MigrationResult) -> None:
        if self._pending <= 0:
            return
        self._pending -= 1
        if not result.ok:
            self._failed += 1
        if self._pending == 0:
            self._finish()

    def _finish(self) -> None:
        now = self.now()
        self.runs += 1
        emit_event(
            self.emit,
            events.scheduler_run(
                self.now(),
                self.node,
                scheduler=self.label,
                hosts=int(self._stats["hosts"]),
                vms=int(self._stats["vms"]),
                overloaded=int(self._stats["overloaded"]),
                migrations=int(self._stats["migrations"]),
                compute_s=self._stats["compute_s"],
                failed=self._failed,
                duration_s=now - self._started_at,
                group=self.run_group,
            ),
        )
        self._plan = None
        self._seq += 1
        delay = max(0.0, self._started_at + self.period_s - now)
        self.schedule(delay, CentralRun(self._seq))
