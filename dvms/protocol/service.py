"""``DvmsService``: the DVMS protocol as a behaviour (service ``"dvms"``) on every node.

It reacts to the monitor's ``HostOverloaded``/``HostNormal`` by starting (or ending) an
Iterative Scheduling Procedure, and to the protocol's messages (``dvms.*``); see
``docs/protocol.md`` for states, messages, timers and trace events. Runtime-agnostic: it
acts only through its context, and is deterministic given its rng and message order.
"""

from __future__ import annotations

from dvms.protocol.apply import Applying
from dvms.protocol.base import Handlers
from dvms.protocol.claims import Claims
from dvms.protocol.merge import Merging
from dvms.protocol.messages import DissolvePartition, SetCurrentPartition
from dvms.protocol.partition import BLOCKED, GROWING, Membership
from dvms.protocol.routing import Routing
from dvms.services.monitor import HostNormal, HostOverloaded

__all__ = ["DvmsService"]


class DvmsService(Routing, Claims, Merging, Applying):
    """One node's share of DVMS: ``DvmsService(hypervisor, overlay, planner, config, site)``."""

    def handlers(self) -> Handlers:
        return {
            **super().handlers(),
            SetCurrentPartition: self.on_set_current_partition,
            DissolvePartition: self.on_dissolve,
            HostOverloaded: self.on_overloaded,
            HostNormal: self.on_normal,
        }

    # ----- monitor ---------------------------------------------------------------------
    def on_overloaded(self, message: HostOverloaded) -> None:
        self.maybe_start()

    def on_normal(self, message: HostNormal) -> None:
        """The initiator's violation ended by itself: its growing ISP is pointless."""
        part = self.part
        if (
            part is not None
            and self.own_isp is not None
            and self.own_isp[0] == part.id
            and part.initiator == self.node
            and part.state in (GROWING, BLOCKED)
        ):
            self.dissolve("violation-ended", False)

    # ----- partition updates -----------------------------------------------------------
    def on_set_current_partition(self, message: SetCurrentPartition) -> None:
        part, view = self.part, message.view
        if part is None:
            return
        if part.id == view.id:
            if view.version <= part.version:
                return
            if self.node not in view.members:
                self.leave("removed", False)
                return
            if view.leader != self.node:
                self.drop_lead()
            part.view = view
            part.last_update = self.now()
        elif message.absorbed and message.absorbed == part.id and self.node in view.members:
            # merged: this node's partition now belongs to the one that absorbed it
            self.drop_membership("merged")
            self.drop_lead()
            self.enter(Membership(view, last_update=self.now()))

    def on_dissolve(self, message: DissolvePartition) -> None:
        part = self.part
        if part is not None and part.id == message.partition:
            self.leave(message.reason, message.solved)
        else:
            self.cancel_claims(message.partition)
