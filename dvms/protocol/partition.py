"""A node's view of its partition, the leader's working state, and host snapshots.

A partition has an id (``"<initiator>:<n>"``, deterministic), an initiator, a leader, an
ordered member list, a state and a version. The **initiator** is the partition's authority:
every node that wants to consume a travelling copy of it at some version (to join it, to
block it, to dissolve it, to merge it) claims that version from the initiator first, and a
version is granted once. Two copies of a token (after a lost acknowledgement and a resend)
can therefore never both act, and a partition its initiator has left is dead everywhere.

**Snapshots.** Each node joining attaches a snapshot of its host (capacity and VMs) to the
travelling partition, so the leader plans without extra round trips. The price is
staleness: a member's snapshot is as old as its membership (typically well under a second,
at most the partition's lifetime). The leader refreshes its own snapshot when it plans; the
hypervisor refuses a migration whose destination lacks memory *now*, and a destination
overloaded by a stale CPU figure is noticed by its monitor and starts its own ISP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from dvms.hypervisor import Hypervisor
from dvms.overlay.base import WireCoordinate
from dvms.protocol.messages import (
    HostSnapshot,
    PartitionState,
    PartitionView,
    TransmissionOfAnISP,
)
from dvms.scheduler.model import VM, Host, Plan
from peeractor import NodeId, Timer

__all__ = [
    "BLOCKED",
    "COMPUTING",
    "GROWING",
    "Leadership",
    "Membership",
    "Order",
    "planning_problem",
    "snapshot",
]

GROWING: Final[PartitionState] = "growing"
BLOCKED: Final[PartitionState] = "blocked"
COMPUTING: Final[PartitionState] = "computing"
"""ComputingAndApplying: the leader solves, then applies the plan."""


@dataclass(slots=True)
class Membership:
    """What a node knows of the partition it belongs to: the latest version it heard of
    (``view``, replaced as a whole on each change) and its own bookkeeping."""

    view: PartitionView
    last_update: float
    """Last time this node heard of the partition (update, keepalive, own activity)."""
    claimed: int = -1
    """Initiator only: highest version granted to a claimant."""
    claimed_by: NodeId = ""
    coordinate: WireCoordinate | None = None
    """The initiator's coordinate, carried by the travelling partition (LBO)."""

    @property
    def id(self) -> str:
        return self.view.id

    @property
    def initiator(self) -> NodeId:
        return self.view.initiator

    @property
    def leader(self) -> NodeId:
        return self.view.leader

    @property
    def version(self) -> int:
        return self.view.version

    @property
    def state(self) -> PartitionState:
        return self.view.state

    @property
    def members(self) -> tuple[NodeId, ...]:
        return self.view.members

    @property
    def size(self) -> int:
        return len(self.view.members)


@dataclass(slots=True)
class Order:
    """A migration the leader ordered and is waiting for."""

    source: NodeId
    destination: NodeId
    round: int = 0
    acked: bool = False
    tries: int = 0
    done: bool = False
    ok: bool = False
    reason: str = ""


@dataclass(slots=True)
class Leadership:
    """The leader's working state for its partition."""

    snapshots: dict[NodeId, HostSnapshot]
    plan: Plan | None = None
    orders: dict[str, Order] = field(default_factory=dict)
    merging: bool = False
    """A merge is being claimed (further proposals are passed on)."""
    merge_token: TransmissionOfAnISP | None = None
    """The blocked partition being absorbed."""
    merge_granted: list[str] = field(default_factory=list)
    """Claims of the merge granted so far (``survivor``, ``absorbed``)."""
    released: frozenset[NodeId] = frozenset()
    """Members the plan being applied does not involve, already free (no keepalive, no
    dissolve is sent to them)."""
    keepalive: Timer | None = None
    apply_deadline: Timer | None = None

    def bound(self, members: tuple[NodeId, ...]) -> tuple[NodeId, ...]:
        """``members`` still bound to the partition (the released ones left out)."""
        released = self.released
        return tuple(m for m in members if m not in released) if released else members

    def cancel(self) -> None:
        for timer in (self.keepalive, self.apply_deadline):
            if timer is not None:
                timer.cancel()
        self.keepalive = self.apply_deadline = None


def snapshot(node: NodeId, hypervisor: Hypervisor, now: float, site: str = "") -> HostSnapshot:
    """The host's capacity and its VMs now (VMs migrating away are left out)."""
    capacity = hypervisor.capacity()
    vms = tuple(
        [
            (vm.vm, float(vm.cpu_demand), int(vm.memory_mib))
            for vm in hypervisor.vms()
            if not vm.migrating
        ]
    )
    return HostSnapshot(
        node=node,
        cpu_capacity=float(capacity.cpu),
        memory_mib=int(capacity.memory_mib),
        vms=vms,
        taken_at=now,
        site=site,
    )


def planning_problem(
    members: tuple[NodeId, ...], snapshots: dict[NodeId, HostSnapshot]
) -> tuple[list[Host], list[VM]]:
    """The planner's input over the members whose snapshot is known, in member order.

    A VM listed by two snapshots (it migrated between two snapshot times) is kept on the
    host whose snapshot is newer, so the planner sees each VM once.
    """
    hosts: list[Host] = []
    known: list[tuple[NodeId, HostSnapshot]] = []
    listed: set[str] = set()
    count = 0
    for node in dict.fromkeys(members):
        snap = snapshots.get(node)
        if snap is None:
            continue
        hosts.append(Host(node, snap.cpu_capacity, snap.memory_mib, snap.site))
        known.append((node, snap))
        listed.update([entry[0] for entry in snap.vms])
        count += len(snap.vms)
    if len(listed) == count:  # the usual case: every VM listed once, on its own host
        return hosts, [VM(vm, node, cpu, mem) for node, snap in known for vm, cpu, mem in snap.vms]
    where: dict[str, tuple[float, NodeId]] = {}
    for node, snap in known:
        for vm, _cpu, _mem in snap.vms:
            seen = where.get(vm)
            if seen is None or seen[0] < snap.taken_at:
                where[vm] = (snap.taken_at, node)
    vms = [
        VM(vm, node, cpu, mem)
        for node, snap in known
        for vm, cpu, mem in snap.vms
        if where[vm][1] == node
    ]
    return hosts, vms
