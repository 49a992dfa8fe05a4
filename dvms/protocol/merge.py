"""Merging: a blocked partition absorbs another blocked one (the prototype's deadlock
resolution).

A member of a blocked partition that meets another blocked partition relays it to its
leader (``MergeProposal``). The leader claims its own partition's version (``survivor``),
then the other's (``absorbed``): a refusal of either leaves the other partition able to go
on (ours re-sent, theirs passed on), never lost. By a total order on the initiators' ids,
the partition with the smaller initiator survives (keeps its id, initiator and start) and
absorbs the other; this leader leads the union either way.
"""

from __future__ import annotations

import dataclasses

from dvms import events
from dvms.events import emit_event
from dvms.protocol.base import ClaimKind, Handlers, ProtocolBase
from dvms.protocol.messages import MergeProposal, TransmissionOfAnISP
from dvms.protocol.partition import BLOCKED, GROWING

__all__ = ["Merging"]


class Merging(ProtocolBase):
    """The leader's side of a merge."""

    def handlers(self) -> Handlers:
        return {**super().handlers(), MergeProposal: self.on_merge_proposal}

    def on_merge_proposal(self, message: MergeProposal) -> None:
        """Leader of a blocked partition: absorb the blocked partition another member met."""
        token, part, lead = message.token, self.part, self.lead
        if (
            part is None
            or lead is None
            or part.leader != self.node
            or part.state != BLOCKED
            or lead.merging
            or part.id == token.view.id
        ):
            self.pass_on(token)
            return
        lead.merging = True
        lead.merge_token = token
        # claim our own outstanding version first, then theirs
        self.claim("survivor", token, into=part.id)

    def merge_claimed(self, kind: ClaimKind, token: TransmissionOfAnISP, granted: bool) -> None:
        """The answer to one of the two merge claims (``survivor`` or ``absorbed``)."""
        part, lead = self.part, self.lead
        if part is None or lead is None or not lead.merging or lead.merge_token is not token:
            return
        if granted:
            lead.merge_granted.append(kind)
            if len(lead.merge_granted) == 1:
                other: ClaimKind = "absorbed" if kind == "survivor" else "survivor"
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
            part.view = dataclasses.replace(part.view, version=part.version + 1)
            part.last_update = self.now()
            self.notify()
            self.grow()
        elif kind == "survivor" and "absorbed" not in done:
            self.pass_on(token)

    def merge(self, token: TransmissionOfAnISP) -> None:
        """Both versions claimed: one partition absorbs the other."""
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        theirs = token.view
        for snap in token.snapshots:
            lead.snapshots.setdefault(snap.node, snap)
        now = self.now()
        if part.initiator < theirs.initiator:
            absorbed = theirs.id
            part.view = dataclasses.replace(
                part.view,
                members=part.members + tuple(m for m in theirs.members if m not in part.members),
                version=part.version + 1,
                state=GROWING,
            )
            part.last_update = now
        else:
            absorbed = part.id
            members = theirs.members + tuple(m for m in part.members if m not in theirs.members)
            self.drop_membership("merged")  # the lead stays: this node leads the union
            self.enter(self.led_from(token, members, now))
        survivor = self.part
        assert survivor is not None
        emit_event(
            self.emit,
            events.partition_merge(
                self.now(),
                self.node,
                partition=survivor.id,
                absorbed=absorbed,
                size=survivor.size,
                members=list(survivor.members),
            ),
        )
        self.notify(absorbed=absorbed)
        self.plan_or_grow()
