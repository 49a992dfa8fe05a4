"""The centralised baseline: one controller plans over the whole infrastructure.

Entropy-like, as in VMPlaceS: every ``period_s`` (default 30 s) the ``CentralScheduler``
(service ``"central"`` on a controller node) takes a global snapshot from its
:class:`GlobalView`, plans over all hosts with its planner, waits the solve time the
planner's cost model charges (``planner.cost_s(#hosts, #vms)``) on the clock, then applies
the plan: all migrations are ordered at once through ``GlobalView.migrate`` (a migration
whose VM moved meanwhile or whose destination lacks room fails and is traced by the
view), and it waits for every ``MigrationResult``. The next run starts at the next period
boundary (``start + period_s``), or at once when this run overshot it (back-to-back).

When the planner cannot fix every host (``plan`` returns None) and it offers
``plan_partial`` (the repair heuristic does), the hosts it can fix are fixed.

Emits ``scheduler.run`` {scheduler, hosts, vms, overloaded, migrations, compute_s, failed,
duration_s} when a run's migrations have all ended. Runtime-agnostic: it only uses its
context and the view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dvms.hypervisor import MigrationResult
from dvms.scheduler.model import VM, Host, Plan, Planner, is_overloaded
from peeractor import Address, Behaviour, NodeId, message

__all__ = ["CentralRun", "CentralScheduler", "GlobalView", "overloaded_count"]


class GlobalView(Protocol):
    """The whole infrastructure as a centralised scheduler sees it."""

    def snapshot(self) -> tuple[Sequence[Host], Sequence[VM]]:
        """Live hosts and their VMs now (a migrating VM is on its source)."""
        ...

    def migrate(self, vm: str, source: NodeId, destination: NodeId, reply_to: Address) -> None:
        """Start a migration; a ``MigrationResult`` is later sent to ``reply_to``."""
        ...

    # Optional: ``overloaded_count() -> int``, the hosts of the snapshot that are overloaded
    # now, when the view keeps it (the simulated world does, in O(1)); else it is computed.


@message("central.Run")
class CentralRun:
    """Self-message: start a scheduling run (``seq`` numbers runs)."""

    seq: int


@message("central.Apply")
class CentralApply:
    """Self-message: the charged solve time of run ``seq`` has elapsed; apply its plan."""

    seq: int


def overloaded_count(hosts: Sequence[Host], vms: Sequence[VM]) -> int:
    """Hosts whose VMs exceed their CPU capacity or memory."""
    cpu = {h.id: 0.0 for h in hosts}
    mem = dict.fromkeys(cpu, 0)
    for vm in vms:
        cpu[vm.host] += vm.cpu_demand
        mem[vm.host] += vm.memory_mib
    return sum(
        1 for h in hosts if is_overloaded(cpu[h.id], mem[h.id], h.cpu_capacity, h.memory_mib)
    )


class CentralScheduler(Behaviour):
    """Periodic global planning; see the module docstring."""

    name = "central"

    def __init__(
        self,
        view: GlobalView,
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

    def on_start(self) -> None:
        self.schedule(0.0, CentralRun(self._seq))

    def on_receive(self, message: object) -> None:
        if isinstance(message, MigrationResult):
            self._result(message)
        elif isinstance(message, CentralApply) and message.seq == self._seq:
            self._apply()
        elif isinstance(message, CentralRun) and message.seq == self._seq:
            self._run()

    def _run(self) -> None:
        self._started_at = self.now()
        hosts, vms = self.view.snapshot()
        counter = getattr(self.view, "overloaded_count", None)
        plan = self.planner.plan(hosts, vms)
        if plan is None:
            partial = getattr(self.planner, "plan_partial", None)
            plan = partial(hosts, vms)[0] if partial is not None else Plan(())
        compute_s = self.planner.cost_s(len(hosts), len(vms))
        self._plan = plan
        self._stats = {
            "hosts": len(hosts),
            "vms": len(vms),
            "overloaded": counter() if counter is not None else overloaded_count(hosts, vms),
            "migrations": len(plan),
            "compute_s": compute_s,
        }
        self.schedule(compute_s, CentralApply(self._seq))

    def _apply(self) -> None:
        plan = self._plan
        assert plan is not None
        self._pending = len(plan)
        self._failed = 0
        for migration in plan.migrations:
            self.view.migrate(migration.vm, migration.source, migration.destination, self.address)
        if self._pending == 0:
            self._finish()

    def _result(self, result: MigrationResult) -> None:
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
        self.emit(
            "scheduler.run",
            scheduler=self.label,
            hosts=self._stats["hosts"],
            vms=self._stats["vms"],
            overloaded=self._stats["overloaded"],
            migrations=self._stats["migrations"],
            compute_s=self._stats["compute_s"],
            failed=self._failed,
            duration_s=now - self._started_at,
        )
        self._plan = None
        self._seq += 1
        delay = max(0.0, self._started_at + self.period_s - now)
        self.schedule(delay, CentralRun(self._seq))
