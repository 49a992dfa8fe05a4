"""The travelling partition: start, routing, claims, joins, blocking and merging.

A node receiving a partition (``TransmissionOfAnISP``) acknowledges it, then:

- **free** (and neither migrating nor already joining): claims the partition's version from
  its initiator (``IsThisVersionOfThePartitionStillValid``); granted, it joins as the new
  leader, bumps the version, tells the members (``SetCurrentPartition``) and plans;
- **member of that partition** (it came back): growing → blocked (this node takes over as
  leader and sends it out again); blocked → dissolved (it went round twice); older versions
  than the member knows are stale and dropped;
- **member of another blocked partition** while this one is blocked: proposes a merge to
  its leader, which claims its own partition's version then the other's (a refusal never
  loses either) and leads the union; by a total order on the initiators' ids, the
  partition with the smaller initiator survives and absorbs the other;
- otherwise passes it on: to the overlay's next node outside its members and the booked
  nodes it already crossed; after ``max_forward_hops`` booked nodes, or when the overlay
  knows nobody else, back to its leader.
"""

from __future__ import annotations

import dataclasses

from dvms.protocol.base import PendingAck, PendingClaim, ProtocolBase
from dvms.protocol.messages import (
    AckTimeout,
    CanIMergePartitionWithYou,
    ClaimReply,
    ClaimTimeout,
    DissolvePartition,
    IsThisVersionOfThePartitionStillValid,
    MergeProposal,
    TransmissionAck,
    TransmissionOfAnISP,
)
from dvms.protocol.partition import (
    BLOCKED,
    COMPUTING,
    GROWING,
    Leadership,
    Membership,
    snapshot,
)
from peeractor import NodeId

__all__ = ["Growth"]


class Growth(ProtocolBase):
    """How partitions start, travel and grow."""

    # ----- start ---------------------------------------------------------------------
    def maybe_start(self) -> None:
        """Start an ISP if this node is free, violated, not migrating and not backing off."""
        if self.part is not None or self.joining is not None or self.now() < self.retry_at:
            return
        if not self.violated() or self.hv.migrating():
            return
        self.counter += 1
        now = self.now()
        pid = f"{self.node}:{self.counter}"
        self.own_isp = (pid, now)
        self.emit("isp.start", partition=pid, initiator=self.node)
        self.enter(Membership(pid, self.node, self.node, 0, GROWING, (self.node,), now, now))
        self.lead = Leadership({self.node: snapshot(self.node, self.hv, now, self.site)})
        self.grow()

    def token(self, state: str) -> TransmissionOfAnISP:
        """The leader's partition, ready to travel."""
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        snaps = tuple(lead.snapshots[m] for m in part.members if m in lead.snapshots)
        coordinate = self.own_coordinate() if part.initiator == self.node else None
        return TransmissionOfAnISP(
            part.id,
            part.initiator,
            self.node,
            part.version,
            state,
            part.members,
            snaps,
            part.started_at,
            (),
            0,
            coordinate if coordinate is not None else part.coordinate,
            self.node,
            0,
        )

    def grow(self) -> None:
        """Leader: send the partition to the next node, unless it reached its maximum size."""
        part = self.part
        assert part is not None
        limit = self.config.max_partition_size
        if limit and part.size >= limit:
            self.emit("partition.fail", partition=part.id, size=part.size, reason="max-size")
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
        excluded = set(token.members)
        excluded.update(token.visited)
        nxt = None
        booked = self.known_booked() if token.state == GROWING else []
        if booked:
            nxt = self.overlay.next_outside(excluded.union(booked), token.initiator)
        if nxt is None:
            nxt = self.overlay.next_outside(excluded, token.initiator)
        if nxt is not None:
            self.transmit(token, nxt, back=False)
            return
        part = self.part
        if part is not None and part.id == token.partition and part.version == token.version:
            # the overlay knows nobody outside: the partition cannot grow (failed)
            self.emit("partition.fail", partition=part.id, size=part.size, reason="no-next-node")
            self.dissolve("no-next-node", False)
        else:
            self.send_back(token)

    def send_back(self, token: TransmissionOfAnISP) -> None:
        """The partition found no free node: it returns to its own partition."""
        part = self.part
        if part is not None and part.id == token.partition:
            self.own_back(token)
        elif token.leader != self.node:
            self.transmit(token, token.leader, back=True)

    def transmit(self, token: TransmissionOfAnISP, target: NodeId, *, back: bool) -> None:
        seq = self.next_seq()
        sent = dataclasses.replace(token, sender=self.node, seq=seq)
        self.send(self.to(target), sent)
        timer = self.schedule(self.config.request_timeout_s, AckTimeout(seq))
        self.acks[seq] = PendingAck(sent, target, back, timer)

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
        if part is not None and part.id != token.partition:
            skip.update(dict.fromkeys(part.members))
        self.route(dataclasses.replace(token, visited=tuple(skip), hops=token.hops + 1))

    # ----- reception -------------------------------------------------------------------
    def on_transmission(self, token: TransmissionOfAnISP) -> None:
        if token.sender != self.node:
            self.send(self.to(token.sender), TransmissionAck(token.seq))
        self.observe_initiator(token)
        if token.visited:
            self.note_booked(token.visited)
        part = self.part
        if part is not None and part.id == token.partition:
            self.own_back(token)
        elif token.initiator == self.node or self.node in token.members:
            return  # a partition this node has left: a stale copy
        elif part is None:
            if self.joining is None and not self.hv.migrating():
                self.claim("join", token)
            else:
                self.pass_on(token)
        elif part.state == BLOCKED and token.state == BLOCKED:
            if part.leader == self.node:
                self.on_merge_proposal(MergeProposal(token, self.node))
            else:
                self.send(self.to(part.leader), MergeProposal(token, self.node))
        else:
            self.pass_on(token)

    def own_back(self, token: TransmissionOfAnISP) -> None:
        """The partition came back to one of its members."""
        part = self.part
        assert part is not None
        if token.version < part.version or part.state == COMPUTING:
            return  # stale
        self.claim("block" if token.state == GROWING else "dissolve", token)

    # ----- claims ----------------------------------------------------------------------
    def grant(self, partition: str, version: int, claimant: NodeId) -> bool:
        """Initiator: may ``claimant`` consume ``partition`` at ``version``? Once per version."""
        part = self.part
        if part is None or part.id != partition or part.initiator != self.node:
            return False
        if part.state == COMPUTING or version < part.version or version < part.claimed:
            return False
        if version == part.claimed:
            return part.claimed_by == claimant
        part.claimed = version
        part.claimed_by = claimant
        part.last_update = self.now()
        return True

    def claim(self, kind: str, token: TransmissionOfAnISP, *, into: str = "") -> None:
        """Ask ``token``'s initiator for its version (locally when this node is it)."""
        if kind == "survivor":
            part = self.part
            assert part is not None
            partition, version, initiator = part.id, part.version, part.initiator
        else:
            partition, version, initiator = token.partition, token.version, token.initiator
        if initiator == self.node:
            granted = self.grant(partition, version, self.node)
            self.claimed(kind, token, granted)
            return
        seq = self.next_seq()
        message: object
        if kind == "absorbed":
            message = CanIMergePartitionWithYou(partition, version, into, self.node, seq)
        else:
            message = IsThisVersionOfThePartitionStillValid(partition, version, self.node, seq)
        self.send(self.to(initiator), message)
        timer = self.schedule(self.config.request_timeout_s, ClaimTimeout(seq))
        self.claims[seq] = PendingClaim(kind, token, initiator, message, timer)
        if kind == "join":
            self.joining = seq

    def on_claim(
        self, message: IsThisVersionOfThePartitionStillValid | CanIMergePartitionWithYou
    ) -> None:
        granted = self.grant(message.partition, message.version, message.claimant)
        reply = ClaimReply(message.partition, message.version, granted, message.seq)
        self.send(self.to(message.claimant), reply)

    def on_claim_reply(self, message: ClaimReply) -> None:
        pending = self.claims.pop(message.seq, None)
        if pending is None:
            return
        pending.timer.cancel()
        if pending.kind == "join":
            self.joining = None
        self.claimed(pending.kind, pending.token, message.granted and not pending.cancelled)

    def on_claim_timeout(self, message: ClaimTimeout) -> None:
        pending = self.claims.get(message.seq)
        if pending is None:
            return
        if pending.tries < self.config.request_retries and not pending.cancelled:
            pending.tries += 1
            self.send(self.to(pending.initiator), pending.message)
            pending.timer = self.schedule(self.config.request_timeout_s, ClaimTimeout(message.seq))
            return
        del self.claims[message.seq]
        if pending.kind == "join":
            self.joining = None
        if pending.cancelled:
            self.claimed(pending.kind, pending.token, False)
        else:
            self.initiator_lost(pending.kind, pending.token)

    def cancel_claims(self, partition: str) -> None:
        """The partition was dissolved: a grant still on its way must not be used."""
        for pending in self.claims.values():
            if pending.token.partition == partition and pending.kind == "join":
                pending.cancelled = True

    def claimed(self, kind: str, token: TransmissionOfAnISP, granted: bool) -> None:
        part = self.part
        if kind == "join":
            if granted and part is None:
                self.join(token)
            else:
                self.maybe_start()
        elif kind in ("block", "dissolve"):
            if not granted or part is None or part.id != token.partition:
                return
            if kind == "block":
                self.block(token)
            else:
                self.dissolve("went-round-twice", False)
        else:
            self.merge_claimed(kind, token, granted)

    def initiator_lost(self, kind: str, token: TransmissionOfAnISP) -> None:
        """No answer from the initiator: the partition is dissolved."""
        if kind in ("join", "absorbed"):
            gone = DissolvePartition(token.partition, "initiator-lost", False)
            for member in token.members:
                self.send(self.to(member), gone)
            if kind == "join":
                self.maybe_start()
            else:
                self.merge_claimed(kind, token, False)
        elif kind == "survivor":
            if self.lead is not None:
                self.lead.merging = False
                self.lead.merge_token = None
                self.lead.merge_granted = []
            if self.part is not None:
                self.dissolve("initiator-lost", False)
        elif self.part is not None and self.part.id == token.partition:
            self.dissolve("initiator-lost", False)

    # ----- joining and blocking --------------------------------------------------------
    def led_from(
        self, token: TransmissionOfAnISP, members: tuple[NodeId, ...], now: float
    ) -> Membership:
        """This node's membership as the new leader of the partition ``token`` carries."""
        return Membership(
            token.partition,
            token.initiator,
            self.node,
            token.version + 1,
            GROWING,
            members,
            token.started_at,
            now,
            coordinate=token.coordinate,
        )

    def join(self, token: TransmissionOfAnISP) -> None:
        """A free node consumed the partition: it is the new leader."""
        now = self.now()
        members = (*token.members, self.node)
        self.enter(self.led_from(token, members, now))
        snaps = {s.node: s for s in token.snapshots}
        snaps[self.node] = snapshot(self.node, self.hv, now, self.site)
        self.lead = Leadership(snaps)
        self.emit(
            "partition.grow",
            partition=token.partition,
            leader=self.node,
            size=len(members),
            members=list(members),
        )
        self.notify()
        self.plan_or_grow()

    def block(self, token: TransmissionOfAnISP) -> None:
        """The partition came back growing: this member marks it blocked and sends it on."""
        part = self.part
        assert part is not None
        if self.lead is not None:
            self.lead.cancel()
        part.leader = self.node
        part.version = token.version + 1
        part.state = BLOCKED
        part.members = token.members
        part.last_update = self.now()
        self.lead = Leadership({s.node: s for s in token.snapshots})
        part.coordinate = token.coordinate
        self.emit("partition.block", partition=part.id, size=part.size)
        self.notify()
        self.grow()

    # ----- merging ---------------------------------------------------------------------
    def on_merge_proposal(self, message: MergeProposal) -> None:
        """Leader of a blocked partition: absorb the blocked partition another member met."""
        token, part, lead = message.token, self.part, self.lead
        if (
            part is None
            or lead is None
            or part.leader != self.node
            or part.state != BLOCKED
            or lead.merging
            or part.id == token.partition
        ):
            self.pass_on(token)
            return
        lead.merging = True
        lead.merge_token = token
        # claim our own outstanding version first, then theirs: a refusal of either leaves
        # the other partition able to go on (ours re-sent, theirs passed on), never lost
        self.claim("survivor", token, into=part.id)

    def merge_claimed(self, kind: str, token: TransmissionOfAnISP, granted: bool) -> None:
        part, lead = self.part, self.lead
        if part is None or lead is None or not lead.merging or lead.merge_token is not token:
            return
        if granted:
            lead.merge_granted.append(kind)
            if len(lead.merge_granted) == 1:
                other = "absorbed" if kind == "survivor" else "survivor"
                self.claim(other, token, into=part.id)
                return
        done = lead.merge_granted
        lead.merging = False
        lead.merge_token = None
        lead.merge_granted = []
        if granted:
            self.merge(token)
        elif kind == "absorbed" and "survivor" in done:
            # our own partition's copy is consumed: send a fresh blocked version out
            part.version += 1
            part.last_update = self.now()
            self.notify()
            self.grow()
        elif kind == "survivor" and "absorbed" not in done:
            self.pass_on(token)

    def merge(self, token: TransmissionOfAnISP) -> None:
        """Both versions claimed: one partition absorbs the other. By a total order on the
        initiators, the partition whose initiator's id is smaller survives (keeps its id,
        initiator and start); this leader leads the union either way."""
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        for snap in token.snapshots:
            lead.snapshots.setdefault(snap.node, snap)
        now = self.now()
        if part.initiator < token.initiator:
            absorbed = token.partition
            part.members += tuple(m for m in token.members if m not in part.members)
            part.version += 1
            part.state = GROWING
            part.last_update = now
        else:
            absorbed = part.id
            members = token.members + tuple(m for m in part.members if m not in token.members)
            self.emit("partition.leave", partition=part.id, reason="merged")
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self.part = None
            self.enter(self.led_from(token, members, now))
        survivor = self.part
        assert survivor is not None
        self.emit(
            "partition.merge",
            partition=survivor.id,
            absorbed=absorbed,
            size=survivor.size,
            members=list(survivor.members),
        )
        self.notify(absorbed=absorbed)
        self.plan_or_grow()
