"""DVMS: the Iterative Scheduling Procedure, as a behaviour on every node.

``DvmsService(hypervisor, overlay, planner, config)`` (service ``"dvms"``) with a frozen
``DvmsConfig``. See ``docs/protocol.md`` for states, messages, timers and trace events.
"""

from dvms.protocol.config import DvmsConfig
from dvms.protocol.messages import PartitionState, PartitionView
from dvms.protocol.partition import BLOCKED, COMPUTING, GROWING, Membership
from dvms.protocol.service import DvmsService

__all__ = [
    "BLOCKED",
    "COMPUTING",
    "GROWING",
    "DvmsConfig",
    "DvmsService",
    "Membership",
    "PartitionState",
    "PartitionView",
]
