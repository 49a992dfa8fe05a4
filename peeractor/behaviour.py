"""Behaviours: the code that runs on a node, identical on every runtime.

A behaviour is a named service hosted by a node's peer. It acts only through
the context its runtime binds to it:

- ``self.send(address, message)``: asynchronous, fire-and-forget; a message to a
  crashed or unreachable node is dropped and counted by the runtime;
- ``self.schedule(delay_s, message) -> Timer``: deliver ``message`` to this
  service after ``delay_s`` seconds of the runtime's clock; ``timer.cancel()``;
- ``self.now()``: seconds on the runtime's clock (virtual or wall, never read directly);
- ``self.rng``: a ``random.Random`` seeded from the run seed and this address;
- ``self.emit(type, **fields)``: a trace event ``{"t", "type", "node", **fields}``.

A behaviour never blocks, sleeps, reads the wall clock, uses global randomness, or
waits on a future. Request/response is two messages with a correlation id and a
timer. Services of one node run in one actor, so they may share plain objects
(the overlay, the hypervisor binding) without locks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

__all__ = ["Address", "Behaviour", "Context", "NodeId", "Timer"]

NodeId = str
"""A node's identifier: a host name for real runs, ``"h0042"``-like in simulation."""

Address = tuple[NodeId, str]
"""Where a message goes: ``(node_id, service_name)``."""


class Timer(Protocol):
    """A scheduled self-message; cancelling it after it fired is a no-op."""

    def cancel(self) -> None: ...


class Context(Protocol):
    """What a runtime provides to a bound behaviour."""

    node: NodeId
    rng: random.Random

    def send(self, address: Address, message: object) -> None: ...

    def schedule(self, delay_s: float, message: object) -> Timer: ...

    def now(self) -> float: ...

    def emit(self, type: str, **fields: Any) -> None: ...


class Behaviour:
    """Base class of node services. Subclasses set ``name`` and override the hooks."""

    name: ClassVar[str] = ""
    """The service name this behaviour is addressed by on its node."""

    node: NodeId
    rng: random.Random
    send: Callable[[Address, object], None]
    schedule: Callable[[float, object], Timer]
    now: Callable[[], float]
    emit: Callable[..., None]

    def bind(self, ctx: Context) -> None:
        """Called once by the runtime before ``on_start``; copies the context's operations."""
        self.ctx = ctx
        self.node = ctx.node
        self.rng = ctx.rng
        self.send = ctx.send
        self.schedule = ctx.schedule
        self.now = ctx.now
        self.emit = ctx.emit

    @property
    def address(self) -> Address:
        return (self.node, self.name)

    def on_start(self) -> None:
        """Runs once when the node starts, before any message is received."""

    def on_receive(self, message: object) -> None:
        """Handles one message (from another service or a timer of this one)."""

    def on_stop(self) -> None:
        """Runs when the node stops cleanly (not when it crashes)."""
