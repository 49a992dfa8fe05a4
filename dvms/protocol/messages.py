"""Messages of the DVMS protocol (tags ``dvms.*``), named after the DVMS prototype's.

Request/response pairs carry a ``seq`` (the requester's correlation number); the
requester arms a timer of ``request_timeout_s`` for each. A partition travels and is
announced as one value, ``PartitionView`` (``dvms.Partition``).
"""

from __future__ import annotations

from typing import Literal

from dvms.overlay.base import WireCoordinate
from peeractor import NodeId, message

__all__ = [
    "AckTimeout",
    "ApplyTimeout",
    "CanIMergePartitionWithYou",
    "ClaimReply",
    "ClaimTimeout",
    "DeadlineCheck",
    "DissolvePartition",
    "HostSnapshot",
    "IsThisVersionOfThePartitionStillValid",
    "KeepAlive",
    "KeepAliveTick",
    "MergeProposal",
    "MigrateOrder",
    "MigrationReport",
    "OrderAck",
    "OrderTimer",
    "PartitionState",
    "PartitionView",
    "Recheck",
    "SetCurrentPartition",
    "SolveDone",
    "TransmissionAck",
    "TransmissionOfAnISP",
]


@message("dvms.HostSnapshot")
class HostSnapshot:
    """A member's host as it was when the member joined (the leader plans on these)."""

    node: NodeId
    cpu_capacity: float
    """CPU available to VMs, percent of a core."""
    memory_mib: int
    vms: tuple[tuple[str, float, int], ...]
    """(vm, cpu_demand, memory_mib) of each VM running there."""
    taken_at: float
    site: str = ""
    """The host's site ("" unknown): planners prefer destinations on the source's site."""


PartitionState = Literal["growing", "blocked", "computing"]
"""``computing`` is the prototype's ComputingAndApplying: the leader solves, then applies."""


@message("dvms.Partition")
class PartitionView:
    """A partition as it travels and as its members agree on it, at one version."""

    id: str
    """``"<initiator>:<n>"``, deterministic."""
    initiator: NodeId
    """The partition's authority: grants each version once."""
    leader: NodeId
    """The member that leads this version (for a travelling partition: the member that sent
    it out last; it holds the members' snapshots)."""
    version: int
    """Bumped by each change; a node consuming a travelling partition claims its version."""
    state: PartitionState
    members: tuple[NodeId, ...]
    """In joining order: the initiator first."""
    started_at: float
    """When the initiator started the ISP."""

    @property
    def size(self) -> int:
        return len(self.members)


@message("dvms.TransmissionOfAnISP")
class TransmissionOfAnISP:
    """A partition travelling to its next node (the ISP "token"); acknowledged on receipt.

    ``view.state`` is ``"growing"`` or ``"blocked"``."""

    view: PartitionView
    snapshots: tuple[HostSnapshot, ...]
    visited: tuple[NodeId, ...] = ()
    """Nodes known booked (or silent) since the partition last grew: the booked nodes it
    crossed and their partitions' members; never proposed again."""
    hops: int = 0
    """Booked nodes crossed since the partition last grew."""
    coordinate: WireCoordinate | None = None
    """The initiator's network coordinate (for locality-based overlays), or None."""
    sender: NodeId = ""
    seq: int = 0


@message("dvms.TransmissionAck")
class TransmissionAck:
    """Receipt of a ``TransmissionOfAnISP``."""

    seq: int


@message("dvms.IsThisVersionOfThePartitionStillValid")
class IsThisVersionOfThePartitionStillValid:
    """Asked of the initiator before consuming a partition at ``version`` (join, block,
    dissolve): granted once per version, so two copies of a token never both act."""

    partition: str
    version: int
    claimant: NodeId
    seq: int


@message("dvms.CanIMergePartitionWithYou")
class CanIMergePartitionWithYou:
    """Asked of the initiator of a blocked partition that another wants to absorb."""

    partition: str
    version: int
    into: str
    """The surviving partition."""
    claimant: NodeId
    seq: int


@message("dvms.ClaimReply")
class ClaimReply:
    """The initiator's answer to a claim (``granted`` False: stale or unknown)."""

    partition: str
    version: int
    granted: bool
    seq: int


@message("dvms.SetCurrentPartition")
class SetCurrentPartition:
    """A new version of the partition, from its leader to every member (also tells them
    who the new leader is: the prototype's ``IAmTheNewLeader``)."""

    view: PartitionView
    absorbed: str = ""
    """Non-empty after a merge: members of that partition now belong to this one."""


@message("dvms.KeepAlive")
class KeepAlive:
    """The leader is still solving or applying (resets the members' timeout)."""

    partition: str
    version: int


@message("dvms.DissolvePartition")
class DissolvePartition:
    """The partition ends; members become free."""

    partition: str
    reason: str
    solved: bool
    """True when a plan was applied and every migration of it succeeded."""


@message("dvms.MergeProposal")
class MergeProposal:
    """A member of a blocked partition met another blocked partition: relayed to its
    leader, which absorbs it (the prototype's deadlock resolution)."""

    token: TransmissionOfAnISP
    via: NodeId


@message("dvms.MigrateOrder")
class MigrateOrder:
    """Leader → source host: migrate ``vm`` to ``destination``; idempotent per
    (partition, vm), so re-sending it never migrates twice."""

    partition: str
    vm: str
    source: NodeId
    destination: NodeId
    leader: NodeId


@message("dvms.OrderAck")
class OrderAck:
    """Source → leader: the migration of ``vm`` is running."""

    partition: str
    vm: str


@message("dvms.MigrationReport")
class MigrationReport:
    """Source → leader: the migration of ``vm`` ended (or was refused)."""

    partition: str
    vm: str
    source: NodeId
    destination: NodeId
    ok: bool
    reason: str


# ----- timers (self-messages) -------------------------------------------------------


@message("dvms.DeadlineCheck")
class DeadlineCheck:
    """Check whether the current partition timed out."""


@message("dvms.KeepAliveTick")
class KeepAliveTick:
    """Leader: send keepalives (while solving/applying ``partition``)."""

    partition: str


@message("dvms.SolveDone")
class SolveDone:
    """Leader: the charged solve time of ``partition`` at ``version`` has elapsed."""

    partition: str
    version: int
    found: bool


@message("dvms.AckTimeout")
class AckTimeout:
    """No ``TransmissionAck`` for ``seq``."""

    seq: int


@message("dvms.ClaimTimeout")
class ClaimTimeout:
    """No ``ClaimReply`` for ``seq``."""

    seq: int


@message("dvms.OrderTimer")
class OrderTimer:
    """Leader: time to check on the order of ``vm`` (round ``round``)."""

    partition: str
    vm: str
    round: int


@message("dvms.ApplyTimeout")
class ApplyTimeout:
    """Leader: the plan of ``partition`` took longer than ``apply_timeout_s``."""

    partition: str


@message("dvms.Recheck")
class Recheck:
    """Re-check the host's violation after a failed ISP's back-off."""
