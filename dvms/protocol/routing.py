"""The travelling partition: starting an ISP, routing, transmission and acknowledgements.

A node receiving a partition (``TransmissionOfAnISP``) acknowledges it, then:

- **free** (and neither migrating nor already joining): claims the partition's version from
  its initiator to join it (``claims``);
- **member of that partition** (it came back): claims it to block it (growing) or to
  dissolve it (blocked: it went round twice); versions older than the member knows are
  stale and dropped;
- **member of another blocked partition** while this one is blocked: proposes a merge to
  its leader (``merge``);
- otherwise passes it on: to the overlay's next node outside its members and the booked
  nodes it already crossed; after ``max_forward_hops`` booked nodes, or when the overlay
  knows nobody else, back to its leader.
"""

from __future__ import annotations

import dataclasses

from dvms import events
from dvms.events import emit_event
from dvms.protocol.base import Handlers, PendingAck, ProtocolBase
from dvms.protocol.messages import (
    AckTimeout,
    MergeProposal,
    PartitionState,
    PartitionView,
    TransmissionAck,
    TransmissionOfAnISP,
)
from dvms.protocol.partition import BLOCKED, COMPUTING, GROWING, Leadership, Membership, snapshot
from peeractor import NodeId

__all__ = ["Routing"]


class Routing(ProtocolBase):
    """How partitions start and travel."""

    def handlers(self) -> Handlers:
        return {
            **super().handlers(),
            TransmissionOfAnISP: self.on_transmission,
            TransmissionAck: self.on_ack,
            AckTimeout: self.on_ack_timeout,
        }

    # ----- start ---------------------------------------------------------------------
    def maybe_start(self) -> None:
        """Start an ISP if this node is free, violated, not migrating and not backing off."""
        if self.part is not None or self.joining or self.now() < self.retry_at:
            return
        if not self.violated() or self.hv.migrating():
            return
        self.counter += 1
        now = self.now()
        pid = f"{self.node}:{self.counter}"
        self.own_isp = (pid, now)
        emit_event(
            self.emit, events.isp_start(self.now(), self.node, partition=pid, initiator=self.node)
        )
        view = PartitionView(
            id=pid,
            initiator=self.node,
            leader=self.node,
            version=0,
            state=GROWING,
            members=(self.node,),
            started_at=now,
        )
        self.enter(Membership(view, last_update=now))
        self.lead = Leadership({self.node: snapshot(self.node, self.hv, now, self.site)})
        self.grow()

    def token(self, state: PartitionState) -> TransmissionOfAnISP:
        """The leader's partition, ready to travel."""
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        snaps = tuple(lead.snapshots[m] for m in part.members if m in lead.snapshots)
        coordinate = self.own_coordinate() if part.initiator == self.node else None
        return TransmissionOfAnISP(
            view=dataclasses.replace(part.view, leader=self.node, state=state),
            snapshots=snaps,
            coordinate=coordinate if coordinate is not None else part.coordinate,
            sender=self.node,
        )

    def grow(self) -> None:
        """Leader: send the partition to the next node, unless it reached its maximum size."""
        part = self.part
        assert part is not None
        limit = self.config.max_partition_size
        if limit and part.size >= limit:
            emit_event(
                self.emit,
                events.partition_fail(
                    self.now(), self.node, partition=part.id, size=part.size, reason="max-size"
                ),
            )
            self.dissolve("max-size", False)
            return
        self.route(self.token(part.state))

    # ----- routing ---------------------------------------------------------------------
    def route(self, token: TransmissionOfAnISP) -> None:
        """Send ``token`` to the next node outside its members and visited nodes, and, while
        it grows, outside the nodes this node knows to be booked (they would pass it on;
        a blocked partition is meant to meet booked ones)."""
        if token.hops > self.config.max_forward_hops:
            self.send_back(token)
            return
        view = token.view
        excluded = set(view.members)
        excluded.update(token.visited)
        nxt = None
        booked = self.known_booked() if view.state == GROWING else []
        if booked:
            nxt = self.overlay.next_outside(excluded.union(booked), view.initiator)
        if nxt is None:
            nxt = self.overlay.next_outside(excluded, view.initiator)
        if nxt is not None:
            self.transmit(token, nxt, back=False)
            return
        part = self.part
        if part is not None and part.id == view.id and part.version == view.version:
            # the overlay knows nobody outside: the partition cannot grow (failed)
            emit_event(
                self.emit,
                events.partition_fail(
                    self.now(), self.node, partition=part.id, size=part.size, reason="no-next-node"
                ),
            )
            self.dissolve("no-next-node", False)
        else:
            self.send_back(token)

    def send_back(self, token: TransmissionOfAnISP) -> None:
        """The partition found no free node: it returns to its own partition."""
        part = self.part
        if part is not None and part.id == token.view.id:
            self.own_back(token)
        elif token.view.leader != self.node:
            self.transmit(token, token.view.leader, back=True)

    def transmit(self, token: TransmissionOfAnISP, target: NodeId, *, back: bool) -> None:
        seq = self.next_seq()
        sent = dataclasses.replace(token, sender=self.node, seq=seq)
        self.send(self.to(target), sent)
        timer = self.schedule(self.config.request_timeout_s, AckTimeout(seq))
        self.acks[seq] = PendingAck(token=sent, target=target, back=back, timer=timer)

    def on_ack(self, message: TransmissionAck) -> None:
        pending = self.acks.pop(message.seq, None)
        if pending is not None:
            pending.timer.cancel()

    def on_ack_timeout(self, message: AckTimeout) -> None:
        pending = self.acks.pop(message.seq, None)
        if pending is None or pending.back:
            return
        # lost or crashed: try elsewhere (a duplicate is harmless: versions are claimed)
        token = pending.token
        visited = (*token.visited, pending.target)
        self.route(dataclasses.replace(token, visited=visited, hops=token.hops + 1))

    def pass_on(self, token: TransmissionOfAnISP) -> None:
        """A booked (or busy) node forwards a partition it cannot take; its own partition's
        members are booked too, so the partition skips them all at once."""
        skip = dict.fromkeys(token.visited)
        skip[self.node] = None
        part = self.part
        if part is not None and part.id != token.view.id:
            skip.update(dict.fromkeys(part.members))
        self.route(dataclasses.replace(token, visited=tuple(skip), hops=token.hops + 1))

    # ----- reception -------------------------------------------------------------------
    def on_transmission(self, token: TransmissionOfAnISP) -> None:
        if token.sender != self.node:
            self.send(self.to(token.sender), TransmissionAck(token.seq))
        self.observe_initiator(token)
        if token.visited:
            self.note_booked(token.visited)
        part, view = self.part, token.view
        if part is not None and part.id == view.id:
            self.own_back(token)
        elif view.initiator == self.node or self.node in view.members:
            return  # a partition this node has left: a stale copy
        elif part is None:
            if not self.joining and not self.hv.migrating():
                self.claim("join", token)
            else:
                self.pass_on(token)
        elif part.state == BLOCKED and view.state == BLOCKED:
            proposal = MergeProposal(token=token, via=self.node)
            if part.leader == self.node:
                self.on_merge_proposal(proposal)
            else:
                self.send(self.to(part.leader), proposal)
        else:
            self.pass_on(token)

    def own_back(self, token: TransmissionOfAnISP) -> None:
        """The partition came back to one of its members."""
        part = self.part
        assert part is not None
        if token.view.version < part.version or part.state == COMPUTING:
            return  # stale
        self.claim("block" if token.view.state == GROWING else "dissolve", token)
