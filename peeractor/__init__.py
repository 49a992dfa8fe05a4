"""PeerActor: node behaviours on pykka, run on simpy virtual time or real time."""

from peeractor.behaviour import Address, Behaviour, Context, NodeId, Timer
from peeractor.message import message, message_class, message_tag

__all__ = [
    "Address",
    "Behaviour",
    "Context",
    "NodeId",
    "Timer",
    "message",
    "message_class",
    "message_tag",
]
