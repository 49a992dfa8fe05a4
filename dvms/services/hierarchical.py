"""The hierarchical baseline (Snooze-like): group managers under a group leader.

As in VMPlaceS's Snooze column: hosts are split into groups, one ``GroupManager`` per group
plans periodically over its group only (the centralised loop of
:class:`~dvms.services.central.CentralScheduler`, same planners, same ``scheduler.run``
events with ``scheduler = "hierarchical"`` and the manager's ``group``), and one
``GroupLeader`` assigns hosts to groups:

- groups are the sites (``[scheduler] group_size = 0``) or consecutive slices of
  ``group_size`` hosts in host order;
- the leader sends each manager its hosts (``hier.Assign``) at start; a manager begins its
  periodic runs at its first assignment;
- managers send ``hier.Heartbeat`` to the leader every ``heartbeat_s``; a manager silent for
  ``heartbeat_timeout_s`` is declared failed (``hier.manager_failed``) and its hosts are
  re-assigned, one by one, to the live manager holding the fewest hosts (``hier.assign``
  traces every assignment);
- a manager sees the world through a :class:`GroupView`: the global view restricted to the
  hosts it was assigned (hosts that crashed are absent, as in the global view).

In simulation the leader and the managers are services of the coordinator's node, each with
its own service name (``hier.leader``, ``hier.gm.<group>``); ``GroupManager.fail()`` crashes
one manager (it stops heartbeating, planning and answering) without touching the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from dvms import events
from dvms.events import emit_event
from dvms.scheduler.model import VM, Host, Planner, overloaded_hosts
from dvms.services.central import CentralScheduler, GlobalView
from peeractor import Address, Behaviour, NodeId, message

__all__ = [
    "LEADER",
    "GroupLeader",
    "GroupManager",
    "GroupView",
    "HierarchyConfig",
    "group_hosts",
    "hierarchy",
]

LEADER = "hier.leader"
"""The group leader's service name."""


class GroupView:
    """A ``GlobalView`` restricted to the hosts of one group (re-assignable)."""

    def __init__(self, view: GlobalView, hosts: Iterable[NodeId] = ()) -> None:
        self.view = view
        self.hosts: frozenset[NodeId] = frozenset(hosts)

    def snapshot(self) -> tuple[Sequence[Host], Sequence[VM]]:
        hosts, vms = self.view.snapshot()
        mine = self.hosts
        return [h for h in hosts if h.id in mine], [vm for vm in vms if vm.host in mine]

    def migrate(self, vm: str, source: NodeId, destination: NodeId, reply_to: Address) -> None:
        self.view.migrate(vm, source, destination, reply_to)

    def overloaded_count(self) -> int:
        """The group's overloaded hosts now (from a snapshot: O(group))."""
        return len(overloaded_hosts(*self.snapshot()))


@message("hier.Assign")
class Assign:
    """Leader → manager: the hosts of your group from now on."""

    hosts: tuple[NodeId, ...]


@message("hier.Heartbeat")
class Heartbeat:
    """Manager → leader: I am alive (``seq`` numbers a manager's heartbeats)."""

    manager: str
    seq: int


@message("hier.Beat")
class Beat:
    """Self-message of managers (send a heartbeat) and of the leader (check them)."""


@dataclass(frozen=True)
class HierarchyConfig:
    """The hierarchy's timing: heartbeat period and the silence that means failure (s)."""

    heartbeat_s: float = 5.0
    heartbeat_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.heartbeat_timeout_s:
            raise ValueError(
                f"hierarchical: need 0 < heartbeat_s ({self.heartbeat_s}) < "
                f"heartbeat_timeout_s ({self.heartbeat_timeout_s})"
            )


class GroupManager(CentralScheduler):
    """Periodic planning over one group (a ``CentralScheduler`` on a ``GroupView``)."""

    def __init__(
        self,
        group: str,
        view: GlobalView,
        planner: Planner,
        *,
        period_s: float = 30.0,
        timing: HierarchyConfig | None = None,
        leader: NodeId = "",
    ) -> None:
        self.group_view = GroupView(view)
        super().__init__(self.group_view, planner, period_s=period_s, label="hierarchical")
        self.name = f"hier.gm.{group}"  # type: ignore[misc]  # one service per group
        self.group = group
        self.run_group = group
        self.timing = timing or HierarchyConfig()
        self.leader_node = leader
        self.failed = False
        self._beats = 0
        self._running = False

    def on_start(self) -> None:
        self.leader_node = self.leader_node or self.node
        self.schedule(0.0, Beat())

    def fail(self) -> None:
        """Crash this manager: from now on it handles nothing (timers, results, orders)."""
        self.failed = True
        emit_event(self.emit, events.hier_manager_crash(self.now(), self.node, group=self.group))

    def on_receive(self, message: object) -> None:
        if self.failed:
            return
        if isinstance(message, Beat):
            self._beats += 1
            self.send((self.leader_node, LEADER), Heartbeat(self.name, self._beats))
            self.schedule(self.timing.heartbeat_s, Beat())
        elif isinstance(message, Assign):
            self.group_view.hosts = frozenset(message.hosts)
            if not self._running:
                self._running = True
                super().on_start()  # the first periodic run
        else:
            super().on_receive(message)

    def gather(self) -> None:
        hosts, vms = self.group_view.snapshot()  # one snapshot; overloads counted from it
        self.plan_over(hosts, vms, None)


class GroupLeader(Behaviour):
    """Assigns hosts to managers; re-assigns a silent manager's hosts (see module doc)."""

    name = LEADER

    def __init__(
        self,
        groups: dict[str, list[NodeId]],
        timing: HierarchyConfig | None = None,
    ) -> None:
        self.timing = timing or HierarchyConfig()
        self.assignment: dict[str, list[NodeId]] = {
            f"hier.gm.{g}": list(hosts) for g, hosts in groups.items()
        }
        """Manager service name → its hosts, in assignment order."""
        self.last_beat: dict[str, float] = {}
        self.failed: list[str] = []
        """Managers declared failed, in order."""

    def on_start(self) -> None:
        now = self.now()
        for manager in self.assignment:
            self.last_beat[manager] = now
            self._assign(manager, "start")
        self.schedule(self.timing.heartbeat_s, Beat())

    def on_receive(self, message: object) -> None:
        if isinstance(message, Heartbeat):
            if message.manager in self.last_beat:
                self.last_beat[message.manager] = self.now()
        elif isinstance(message, Beat):
            self._check()
            self.schedule(self.timing.heartbeat_s, Beat())

    def _assign(self, manager: str, reason: str) -> None:
        hosts = tuple(self.assignment[manager])
        self.send((self.node, manager), Assign(hosts))
        event = events.hier_assign(
            self.now(), self.node, manager=manager, hosts=len(hosts), reason=reason
        )
        emit_event(self.emit, event)

    def _check(self) -> None:
        now = self.now()
        silent = [m for m, t in self.last_beat.items() if now - t > self.timing.heartbeat_timeout_s]
        for manager in silent:
            del self.last_beat[manager]
            orphans = self.assignment.pop(manager)
            self.failed.append(manager)
            event = events.hier_manager_failed(now, self.node, manager=manager, hosts=len(orphans))
            emit_event(self.emit, event)
            if not self.assignment:
                continue  # no live manager left: the hosts stay unmanaged
            changed: list[str] = []
            for host in orphans:
                target = min(self.assignment, key=lambda m: (len(self.assignment[m]), m))
                self.assignment[target].append(host)
                if target not in changed:
                    changed.append(target)
            for target in changed:
                self._assign(target, f"{manager} failed")


def group_hosts(hosts: Sequence[Host], group_size: int) -> dict[str, list[NodeId]]:
    """Groups of hosts: per site (``group_size`` 0) or consecutive slices of ``group_size``."""
    groups: dict[str, list[NodeId]] = {}
    if group_size <= 0:
        for h in hosts:
            groups.setdefault(h.site or "all", []).append(h.id)
        return groups
    for i in range(0, len(hosts), group_size):
        groups[str(i // group_size)] = [h.id for h in hosts[i : i + group_size]]
    return groups


def hierarchy(
    view: GlobalView,
    make_planner: Callable[[], Planner],
    *,
    group_size: int = 0,
    period_s: float = 30.0,
    timing: HierarchyConfig | None = None,
) -> list[Behaviour]:
    """The leader and one manager per group over ``view`` (one node's services)."""
    timing = timing or HierarchyConfig()
    hosts, _vms = view.snapshot()
    groups = group_hosts(hosts, group_size)
    services: list[Behaviour] = [GroupLeader(groups, timing)]
    for group in groups:
        manager = GroupManager(group, view, make_planner(), period_s=period_s, timing=timing)
        services.append(manager)
    return services
