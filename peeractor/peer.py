"""The peer: one pykka actor per node, hosting that node's services and routing by name.

Services of a node share the actor (one message at a time), so they may share plain
objects without locks. Runtimes subclass ``Peer`` and fill pykka's three hooks
(``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``), exactly as
``pykka.ThreadingActor`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pykka

from peeractor.behaviour import Behaviour, NodeId
from peeractor.errors import PeerActorError
from peeractor.stats import RuntimeStats

__all__ = ["Deliver", "Peer", "check_services"]


class Deliver(NamedTuple):
    """The actor-level message: hand ``message`` to the node's service ``service``.

    ``remote``: it came from another process (a transport); a behaviour raising on it is
    the sender's doing, so the runtime drops and counts it instead of stopping the node.
    """

    service: str
    message: object
    remote: bool = False


def check_services(node: NodeId, services: Sequence[Behaviour]) -> dict[str, Behaviour]:
    """Services by name, in the given order; rejects missing and duplicate names."""
    if not isinstance(node, str) or not node:
        raise PeerActorError(f"node id must be a non-empty str, got {node!r}")
    by_name: dict[str, Behaviour] = {}
    for service in services:
        if not isinstance(service, Behaviour):
            raise PeerActorError(f"node {node!r}: {service!r} is not a Behaviour")
        name = service.name
        if not name:
            raise PeerActorError(f"node {node!r}: {type(service).__qualname__} has no name")
        if name in by_name:
            raise PeerActorError(f"node {node!r}: two services named {name!r}")
        by_name[name] = service
    return by_name


class Peer(pykka.Actor):
    """A node: its services by name, its liveness, and the routing of ``Deliver`` messages.

    ``alive`` is False once the node crashed or stopped; a dead peer handles nothing.
    Messages for a service the node does not host are dropped and counted ("no-service").
    """

    def __init__(self, node: NodeId, services: dict[str, Behaviour], stats: RuntimeStats) -> None:
        super().__init__()
        self.node = node
        self.services = services
        self.stats = stats
        self.alive = True
        self.crashed = False

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.node})"

    def route(self, service: str, message: object) -> None:
        """Hand ``message`` to ``service`` (counted as delivered) or drop it (counted)."""
        behaviour = self.services.get(service)
        if behaviour is None:
            self.stats.dropped["no-service"] += 1
            return
        self.stats.delivered += 1
        behaviour.on_receive(message)

    def on_start(self) -> None:
        for service in self.services.values():
            service.on_start()

    def on_stop(self) -> None:
        self.alive = False
        for service in self.services.values():
            service.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            if self.alive:
                self.route(message.service, message.message)
            else:
                self.stats.dropped["crashed" if self.crashed else "stopped"] += 1
            return None
        raise PeerActorError(f"{self}: expected a Deliver, got {message!r}")

    def crash(self) -> None:
        """Die at once: no ``on_stop``, nothing handled any more (the runtime drops the rest)."""
        self.alive = False
        self.crashed = True
        self.actor_stopped.set()
