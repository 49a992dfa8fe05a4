"""``DvmsService``: the DVMS protocol as a behaviour (service ``"dvms"``) on every node.

It reacts to the monitor's ``HostOverloaded``/``HostNormal`` by starting (or ending) an
Iterative Scheduling Procedure, and to the protocol's messages (``dvms.*``); see
``docs/protocol.md`` for states, messages, timers and trace events. Runtime-agnostic: it
acts only through its context, and is deterministic given its rng and message order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dvms.hypervisor import Hypervisor, MigrationResult
from dvms.overlay.base import Overlay
from dvms.protocol.apply import Applying
from dvms.protocol.config import DvmsConfig
from dvms.protocol.growth import Growth
from dvms.protocol.messages import (
    AckTimeout,
    ApplyTimeout,
    CanIMergePartitionWithYou,
    ClaimReply,
    ClaimTimeout,
    DeadlineCheck,
    DissolvePartition,
    IsThisVersionOfThePartitionStillValid,
    KeepAlive,
    KeepAliveTick,
    MergeProposal,
    MigrateOrder,
    MigrationReport,
    OrderAck,
    OrderTimer,
    Recheck,
    SetCurrentPartition,
    SolveDone,
    TransmissionAck,
    TransmissionOfAnISP,
)
from dvms.protocol.partition import BLOCKED, GROWING, Membership
from dvms.scheduler.model import Planner
from dvms.services.monitor import HostNormal, HostOverloaded

__all__ = ["DvmsService"]


class DvmsService(Growth, Applying):
    """One node's share of DVMS: ``DvmsService(hypervisor, overlay, planner, config, site)``."""

    def __init__(
        self,
        hypervisor: Hypervisor,
        overlay: Overlay,
        planner: Planner,
        config: DvmsConfig | None = None,
        site: str = "",
    ) -> None:
        super().__init__(hypervisor, overlay, planner, config, site)
        handlers: dict[type[Any], Callable[[Any], None]] = {
            TransmissionOfAnISP: self.on_transmission,
            TransmissionAck: self.on_ack,
            AckTimeout: self.on_ack_timeout,
            IsThisVersionOfThePartitionStillValid: self.on_claim,
            CanIMergePartitionWithYou: self.on_claim,
            ClaimReply: self.on_claim_reply,
            ClaimTimeout: self.on_claim_timeout,
            SetCurrentPartition: self.on_set_current_partition,
            KeepAlive: self.on_keepalive,
            DissolvePartition: self.on_dissolve,
            MergeProposal: self.on_merge_proposal,
            MigrateOrder: self.on_migrate_order,
            OrderAck: self.on_order_ack,
            MigrationReport: self.on_report,
            MigrationResult: self.on_migration_result,
            HostOverloaded: self.on_overloaded,
            HostNormal: self.on_normal,
            DeadlineCheck: lambda _m: self.on_deadline(),
            KeepAliveTick: self.on_keepalive_tick,
            SolveDone: self.on_solve_done,
            OrderTimer: self.on_order_timer,
            ApplyTimeout: self.on_apply_timeout,
            Recheck: lambda _m: self.on_recheck(),
        }
        self._handlers = handlers

    def on_receive(self, message: object) -> None:
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(message)

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

    def on_recheck(self) -> None:
        self._recheck = None
        self.maybe_start()

    # ----- partition updates -----------------------------------------------------------
    def on_set_current_partition(self, message: SetCurrentPartition) -> None:
        part = self.part
        if part is None:
            return
        if part.id == message.partition:
            if message.version <= part.version:
                return
            if self.node not in message.members:
                self.leave("removed", False)
                return
            if self.lead is not None and message.leader != self.node:
                self.lead.cancel()
                self.lead = None
            part.leader = message.leader
            part.version = message.version
            part.state = message.state
            part.members = message.members
            part.last_update = self.now()
        elif message.absorbed and message.absorbed == part.id and self.node in message.members:
            # merged: this node's partition now belongs to the one that absorbed it
            self.emit("partition.leave", partition=part.id, reason="merged")
            if self.lead is not None:
                self.lead.cancel()
                self.lead = None
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self.part = None
            now = self.now()
            self.enter(
                Membership(
                    message.partition,
                    message.initiator,
                    message.leader,
                    message.version,
                    message.state,
                    message.members,
                    message.started_at,
                    now,
                )
            )

    def on_dissolve(self, message: DissolvePartition) -> None:
        part = self.part
        if part is not None and part.id == message.partition:
            self.leave(message.reason, message.solved)
        else:
            self.cancel_claims(message.partition)
