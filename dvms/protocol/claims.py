"""Versions claimed from a partition's initiator before a travelling copy is consumed.

Before it acts on a travelling partition at some version, a node asks the initiator for
that version (``IsThisVersionOfThePartitionStillValid``; ``CanIMergePartitionWithYou`` for
the absorbed side of a merge). The initiator grants each version once, so two copies of a
token never both act. Granted, the claimant acts (``ClaimKind``): a free node **joins**
as the new leader, bumps the version, tells the members (``SetCurrentPartition``) and plans;
a member the partition came back to **blocks** it (growing → blocked, sent out again) or
**dissolves** it (blocked: it went round twice). An initiator that never answers is lost:
the partition is dissolved.
"""

from __future__ import annotations

import dataclasses
from typing import assert_never

from dvms import events
from dvms.events import emit_event
from dvms.protocol.base import ClaimKind, Handlers, PendingClaim, ProtocolBase
from dvms.protocol.messages import (
    CanIMergePartitionWithYou,
    ClaimReply,
    ClaimTimeout,
    DissolvePartition,
    IsThisVersionOfThePartitionStillValid,
    PartitionView,
    TransmissionOfAnISP,
)
from dvms.protocol.partition import BLOCKED, COMPUTING, GROWING, Leadership, Membership, snapshot
from peeractor import NodeId

__all__ = ["Claims"]


class Claims(ProtocolBase):
    """Claims (both sides), and what a granted claim does: join, block, dissolve."""

    def handlers(self) -> Handlers:
        return {
            **super().handlers(),
            IsThisVersionOfThePartitionStillValid: self.on_claim,
            CanIMergePartitionWithYou: self.on_claim,
            ClaimReply: self.on_claim_reply,
            ClaimTimeout: self.on_claim_timeout,
        }

    # ----- initiator side --------------------------------------------------------------
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

    def on_claim(
        self, message: IsThisVersionOfThePartitionStillValid | CanIMergePartitionWithYou
    ) -> None:
        granted = self.grant(message.partition, message.version, message.claimant)
        reply = ClaimReply(
            partition=message.partition, version=message.version, granted=granted, seq=message.seq
        )
        self.send(self.to(message.claimant), reply)

    # ----- claimant side ---------------------------------------------------------------
    def claim(self, kind: ClaimKind, token: TransmissionOfAnISP, *, into: str = "") -> None:
        """Ask ``token``'s initiator for its version (locally when this node is it); a
        ``survivor`` claim is for this node's own partition's version."""
        if kind == "survivor":
            part = self.part
            assert part is not None
            partition, version, initiator = part.id, part.version, part.initiator
        else:
            view = token.view
            partition, version, initiator = view.id, view.version, view.initiator
        if initiator == self.node:
            granted = self.grant(partition, version, self.node)
            self.claimed(kind, token, granted)
            return
        seq = self.next_seq()
        message: IsThisVersionOfThePartitionStillValid | CanIMergePartitionWithYou
        if kind == "absorbed":
            message = CanIMergePartitionWithYou(
                partition=partition, version=version, into=into, claimant=self.node, seq=seq
            )
        else:
            message = IsThisVersionOfThePartitionStillValid(
                partition=partition, version=version, claimant=self.node, seq=seq
            )
        self.send(self.to(initiator), message)
        timer = self.schedule(self.config.request_timeout_s, ClaimTimeout(seq))
        self.claims[seq] = PendingClaim(
            kind=kind, token=token, initiator=initiator, message=message, timer=timer
        )

    def on_claim_reply(self, message: ClaimReply) -> None:
        pending = self.claims.pop(message.seq, None)
        if pending is None:
            return
        pending.timer.cancel()
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
        if pending.cancelled:
            self.claimed(pending.kind, pending.token, False)
        else:
            self.initiator_lost(pending.kind, pending.token)

    def cancel_claims(self, partition: str) -> None:
        """The partition was dissolved: a grant still on its way must not be used."""
        for pending in self.claims.values():
            if pending.token.view.id == partition and pending.kind == "join":
                pending.cancelled = True

    def claimed(self, kind: ClaimKind, token: TransmissionOfAnISP, granted: bool) -> None:
        """The initiator answered (``granted`` False: refused, stale or cancelled)."""
        part = self.part
        match kind:
            case "join":
                if granted and part is None:
                    self.join(token)
                else:
                    self.maybe_start()
            case "block" | "dissolve":
                if not granted or part is None or part.id != token.view.id:
                    return
                if kind == "block":
                    self.block(token)
                else:
                    self.dissolve("went-round-twice", False)
            case "survivor" | "absorbed":
                self.merge_claimed(kind, token, granted)
            case _:
                assert_never(kind)

    def initiator_lost(self, kind: ClaimKind, token: TransmissionOfAnISP) -> None:
        """No answer from the initiator: the partition is dissolved."""
        match kind:
            case "join" | "absorbed":
                gone = DissolvePartition(
                    partition=token.view.id, reason="initiator-lost", solved=False
                )
                for member in token.view.members:
                    self.send(self.to(member), gone)
                if kind == "join":
                    self.maybe_start()
                else:
                    self.merge_claimed(kind, token, False)
            case "survivor":
                if self.lead is not None:
                    self.lead.merging = False
                    self.lead.merge_token = None
                    self.lead.merge_granted = []
                if self.part is not None:
                    self.dissolve("initiator-lost", False)
            case "block" | "dissolve":
                if self.part is not None and self.part.id == token.view.id:
                    self.dissolve("initiator-lost", False)
            case _:
                assert_never(kind)

    # ----- joining and blocking --------------------------------------------------------
    def led_from(
        self, token: TransmissionOfAnISP, members: tuple[NodeId, ...], now: float
    ) -> Membership:
        """This node's membership as the new leader of the partition ``token`` carries."""
        view = token.view
        return Membership(
            PartitionView(
                id=view.id,
                initiator=view.initiator,
                leader=self.node,
                version=view.version + 1,
                state=GROWING,
                members=members,
                started_at=view.started_at,
            ),
            last_update=now,
            coordinate=token.coordinate,
        )

    def join(self, token: TransmissionOfAnISP) -> None:
        """A free node consumed the partition: it is the new leader."""
        now = self.now()
        members = (*token.view.members, self.node)
        self.enter(self.led_from(token, members, now))
        snaps = {s.node: s for s in token.snapshots}
        snaps[self.node] = snapshot(self.node, self.hv, now, self.site)
        self.lead = Leadership(snaps)
        emit_event(
            self.emit,
            events.partition_grow(
                self.now(),
                self.node,
                partition=token.view.id,
                leader=self.node,
                size=len(members),
                members=list(members),
            ),
        )
        self.notify()
        self.plan_or_grow()

    def block(self, token: TransmissionOfAnISP) -> None:
        """The partition came back growing: this member marks it blocked and sends it on."""
        part = self.part
        assert part is not None
        self.drop_lead()
        part.view = dataclasses.replace(
            part.view,
            leader=self.node,
            version=token.view.version + 1,
            state=BLOCKED,
            members=token.view.members,
        )
        part.last_update = self.now()
        self.lead = Leadership({s.node: s for s in token.snapshots})
        part.coordinate = token.coordinate
        emit_event(
            self.emit,
            events.partition_block(self.now(), self.node, partition=part.id, size=part.size),
        )
        self.notify()
        self.grow()
