"""PeerActor: node behaviours on pykka, run on simpy virtual time or real time.

Runtimes live in their modules: ``peeractor.sim.SimRuntime`` (simpy, virtual or real
time) and ``peeractor.threaded.ThreadRuntime`` (threads, wall clock, ZeroMQ).
"""

from peeractor._seed import stable_seed
from peeractor.behaviour import Address, Behaviour, Context, NodeId, Timer
from peeractor.errors import CodecError, PeerActorError
from peeractor.message import message, message_class, message_tag
from peeractor.stats import RuntimeStats

__all__ = [
    "Address",
    "Behaviour",
    "CodecError",
    "Context",
    "NodeId",
    "PeerActorError",
    "RuntimeStats",
    "Timer",
    "message",
    "message_class",
    "message_tag",
    "stable_seed",
]
