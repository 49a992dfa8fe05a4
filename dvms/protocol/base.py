"""State and shared steps of a node's DVMS service (membership, leaving, timeouts).

The protocol is split by concern: this module (a node's membership: joining, leaving,
deadlines, trace events, the message dispatch), ``routing`` (start, routing, transmission,
acknowledgements), ``claims`` (versions claimed from initiators: joining, blocking,
dissolving), ``merge`` (blocked partitions absorbing each other) and ``apply`` (the leader:
planning, solving, migration orders). ``service.DvmsService`` assembles them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from dvms import events
from dvms.events import emit_event
from dvms.hypervisor import Hypervisor
from dvms.overlay.base import Overlay, WireCoordinate
from dvms.protocol.config import DvmsConfig
from dvms.protocol.messages import (
    CanIMergePartitionWithYou,
    DeadlineCheck,
    DissolvePartition,
    IsThisVersionOfThePartitionStillValid,
    MergeProposal,
    MigrationReport,
    Recheck,
    SetCurrentPartition,
    TransmissionOfAnISP,
)
from dvms.protocol.partition import Leadership, Membership
from dvms.scheduler.model import Planner, is_overloaded
from dvms.services.monitor import host_demand
from peeractor import Address, Behaviour, NodeId, Timer

__all__ = ["RELEASED", "SERVICE", "ClaimKind", "Handlers", "ProtocolBase"]

SERVICE = "dvms"
"""The service name of the protocol on every node."""
ORDER_CACHE_SIZE = 1024
"""Migration orders a source remembers (for idempotency) before forgetting the oldest."""
RELEASED = "released"
"""Why a member its partition's plan does not involve leaves when the plan is applied."""
BOOKED_CACHE_SIZE = 256
"""Nodes a node remembers as booked (for routing growing partitions around them)."""

ClaimKind = Literal["join", "block", "dissolve", "survivor", "absorbed"]
"""What a claimant will do with the version it claims: ``join`` the partition, ``block`` it
(it came back growing), ``dissolve`` it (it came back blocked), or, for a merge, consume its
own partition's version (``survivor``) then the absorbed one's (``absorbed``)."""

Handlers = dict[type[Any], Callable[[Any], None]]
"""Message type → the method handling it."""


@dataclass(slots=True)
class PendingAck:
    """A partition sent out and not acknowledged yet."""

    token: TransmissionOfAnISP
    target: NodeId
    back: bool
    """Sent back to its own partition (not retried elsewhere)."""
    timer: Timer


@dataclass(slots=True)
class PendingClaim:
    """A version claimed from an initiator, waiting for its answer."""

    kind: ClaimKind
    token: TransmissionOfAnISP
    initiator: NodeId
    message: IsThisVersionOfThePartitionStillValid | CanIMergePartitionWithYou
    """The claim as sent (re-sent on timeout)."""
    timer: Timer
    tries: int = 0
    cancelled: bool = False


class ProtocolBase(Behaviour):
    """What every part of the protocol shares: the node's state and its basic steps.

    Each part adds the messages it handles to ``handlers()`` (calling ``super()``); the
    table is built once, at construction.
    """

    name = SERVICE

    def __init__(
        self,
        hypervisor: Hypervisor,
        overlay: Overlay,
        planner: Planner,
        config: DvmsConfig | None = None,
        site: str = "",
    ) -> None:
        self.hv = hypervisor
        self.site = site
        """This host's site, carried in its snapshots ("" unknown)."""
        self.overlay = overlay
        self.planner = planner
        self.config = config if config is not None else DvmsConfig()
        self.part: Membership | None = None
        """The partition this node belongs to (None: free)."""
        self.lead: Leadership | None = None
        """Set while this node leads ``part``."""
        self.own_isp: tuple[str, float] | None = None
        """(id, start time) of the ISP this node initiated and that has not ended yet."""
        self.counter = 0
        self._seq = 0
        self.retry_at = 0.0
        self.failures = 0
        """ISPs in a row that ended without fixing this node (sets the back-off)."""
        self.acks: dict[int, PendingAck] = {}
        self.claims: dict[int, PendingClaim] = {}
        self.inflight: dict[str, tuple[str, NodeId, NodeId]] = {}
        """Source side: vm → (partition, leader, destination) of migrations it started."""
        self.order_cache: OrderedDict[tuple[str, str], MigrationReport | None] = OrderedDict()
        """Source side: (partition, vm) → report, None while the migration runs."""
        self.booked: OrderedDict[NodeId, float] = OrderedDict()
        """Nodes recently seen booked in other partitions → when that news gets stale."""
        self._deadline: Timer | None = None
        self._recheck: Timer | None = None
        self._handlers = self.handlers()

    # ----- messages --------------------------------------------------------------------
    def handlers(self) -> Handlers:
        """The messages this part of the protocol handles (extended by each part)."""
        return {DeadlineCheck: self.on_deadline, Recheck: self.on_recheck}

    def on_receive(self, message: object) -> None:
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(message)

    @property
    def joining(self) -> bool:
        """A join claim is pending: the node is reserved and passes other partitions on."""
        return any(pending.kind == "join" for pending in self.claims.values())

    # ----- small helpers ---------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def to(self, node: NodeId) -> Address:
        return (node, SERVICE)

    def violated(self) -> bool:
        """Whether the host's VMs want more CPU or memory than it has, now."""
        capacity = self.hv.capacity()
        cpu, mem = host_demand(self.hv)
        return is_overloaded(cpu, mem, capacity.cpu, capacity.memory_mib)

    def own_coordinate(self) -> WireCoordinate | None:
        """This node's coordinate for the wire, if its overlay knows it."""
        coordinate = self.overlay.coordinate_of(self.node)
        return None if coordinate is None else WireCoordinate.of(coordinate)

    def observe_initiator(self, token: TransmissionOfAnISP) -> None:
        """Tell the overlay the initiator's coordinate (LBO measures closeness from it)."""
        if token.coordinate is not None and token.view.initiator != self.node:
            self.overlay.observe(token.view.initiator, token.coordinate)

    # ----- nodes known to be booked ----------------------------------------------------
    def note_booked(self, nodes: Iterable[NodeId]) -> None:
        """Remember ``nodes`` as booked for ``partition_timeout_s`` (they are in some
        partition now; a growing partition is not sent to them meanwhile)."""
        until = self.now() + self.config.partition_timeout_s
        booked = self.booked
        for node in nodes:
            if node != self.node:
                booked[node] = until
                booked.move_to_end(node)
        while len(booked) > BOOKED_CACHE_SIZE:
            booked.popitem(last=False)

    def note_free(self, nodes: Iterable[NodeId]) -> None:
        for node in nodes:
            self.booked.pop(node, None)

    def known_booked(self) -> list[NodeId]:
        """Nodes believed booked now (expired entries are dropped)."""
        now = self.now()
        booked = self.booked
        while booked:
            node, until = next(iter(booked.items()))
            if until > now:
                break
            del booked[node]
        return [node for node, until in booked.items() if until > now]

    # ----- membership --------------------------------------------------------------------
    def enter(self, part: Membership) -> None:
        """Become a member of ``part``."""
        assert self.part is None, f"{self.node} joins {part.id} while in {self.part}"
        self.part = part
        emit_event(
            self.emit,
            events.partition_join(self.now(), self.node, partition=part.id, leader=part.leader),
        )
        self.arm_deadline()

    def touch(self) -> None:
        """Heard from the partition: push its timeout back."""
        if self.part is not None:
            self.part.last_update = self.now()

    def notify(self, absorbed: str = "") -> None:
        """Send the partition's current version to every other member."""
        part = self.part
        assert part is not None
        self.send_members(part.members, SetCurrentPartition(part.view, absorbed=absorbed))

    def send_members(self, members: Iterable[NodeId], message: object) -> None:
        """Send ``message`` to each of ``members`` but this node, in their order."""
        me, send = self.node, self.send
        for member in members:
            if member != me:
                send((member, SERVICE), message)

    def dissolve(self, reason: str, solved: bool) -> None:
        """End the partition for every member (this node included)."""
        part = self.part
        assert part is not None
        message = DissolvePartition(partition=part.id, reason=reason, solved=solved)
        lead = self.lead
        self.send_members(part.members if lead is None else lead.bound(part.members), message)
        self.leave(reason, solved)

    def drop_lead(self) -> None:
        """Stop leading: the leader's timers are cancelled."""
        if self.lead is not None:
            self.lead.cancel()
            self.lead = None

    def drop_membership(self, reason: str) -> Membership:
        """Stop being a member of ``part`` (``partition.leave``) without ending anything
        else: the lead, if any, stays (a merge hands it over). Returns the membership."""
        part = self.part
        assert part is not None
        emit_event(
            self.emit,
            events.partition_leave(self.now(), self.node, partition=part.id, reason=reason),
        )
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.part = None
        return part

    def leave(self, reason: str, solved: bool) -> None:
        """Stop being a member; the initiator ends its ISP (``partition.dissolve``)."""
        now = self.now()
        part = self.drop_membership(reason)
        if (
            part.initiator == self.node
            and part.claimed_by
            and part.claimed_by != self.node
            and part.claimed_by not in part.members
        ):
            # a join granted just now may still be on its way: cancel it
            cancel = DissolvePartition(partition=part.id, reason=reason, solved=solved)
            self.send(self.to(part.claimed_by), cancel)
        if self.own_isp is not None:
            isp, started = self.own_isp
            self.own_isp = None
            emit_event(
                self.emit,
                events.partition_dissolve(
                    self.now(),
                    self.node,
                    partition=isp,
                    size=part.size,
                    reason=reason,
                    lifetime_s=now - started,
                    solved=solved,
                ),
            )
        self.drop_lead()
        self.note_free(part.members)
        # a released member failed nothing: violated now, it starts at once
        self.after_leave(solved or reason == RELEASED)

    def after_leave(self, solved: bool) -> None:
        """A node still violated starts again: at once after a success, else after a back-off
        doubling with each failure in a row (``retry_delay_s`` … ``retry_delay_max_s``)."""
        if solved:
            self.failures = 0
            self.maybe_start()
            return
        if not self.violated():
            self.failures = 0
            return
        self.failures += 1
        base = min(
            self.config.retry_delay_s * 2 ** min(self.failures - 1, 30),
            self.config.retry_delay_max_s,
        )
        delay = base * (0.5 + self.rng.random())
        self.retry_at = self.now() + delay
        if self._recheck is not None:
            self._recheck.cancel()
        self._recheck = self.schedule(delay, Recheck())

    # ----- timeouts ----------------------------------------------------------------------
    def arm_deadline(self) -> None:
        part = self.part
        if part is None or self._deadline is not None:
            return
        remaining = part.last_update + self.config.partition_timeout_s - self.now()
        self._deadline = self.schedule(
            max(remaining, self.config.timeout_check_period_s), DeadlineCheck()
        )

    def on_deadline(self, message: DeadlineCheck) -> None:
        self._deadline = None
        part = self.part
        if part is None:
            return
        if self.now() - part.last_update >= self.config.partition_timeout_s - 1e-9:
            self.leave("timeout", False)
        else:
            self.arm_deadline()

    def on_recheck(self, message: Recheck) -> None:
        self._recheck = None
        self.maybe_start()

    # ----- steps the other parts provide -------------------------------------------------
    def maybe_start(self) -> None:
        """``routing``: start an ISP if this node should."""
        raise NotImplementedError

    def grow(self) -> None:
        """``routing``: send the led partition to its next node."""
        raise NotImplementedError

    def pass_on(self, token: TransmissionOfAnISP) -> None:
        """``routing``: forward a partition this node cannot take."""
        raise NotImplementedError

    def claim(self, kind: ClaimKind, token: TransmissionOfAnISP, *, into: str = "") -> None:
        """``claims``: ask ``token``'s initiator for its version."""
        raise NotImplementedError

    def led_from(
        self, token: TransmissionOfAnISP, members: tuple[NodeId, ...], now: float
    ) -> Membership:
        """``claims``: this node's membership as the new leader of ``token``'s partition."""
        raise NotImplementedError

    def on_merge_proposal(self, message: MergeProposal) -> None:
        """``merge``: absorb the blocked partition a member met."""
        raise NotImplementedError

    def merge_claimed(self, kind: ClaimKind, token: TransmissionOfAnISP, granted: bool) -> None:
        """``merge``: the answer to one of the two merge claims."""
        raise NotImplementedError

    def plan_or_grow(self) -> None:
        """``apply``: plan if the partition is large enough, else grow it."""
        raise NotImplementedError
