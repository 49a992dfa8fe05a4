"""The node actor of ``ThreadRuntime``: a ``pykka.ThreadingActor`` hosting the services.

Messages from other processes (``Deliver.remote``) are guarded: a behaviour raising on
one has it rejected (counted, traced) and the node goes on; anything else that raises
stops the node and is raised by the runtime's ``run()``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pykka

from peeractor.behaviour import Behaviour, NodeId
from peeractor.peer import Deliver, Peer
from peeractor.stats import RuntimeStats, message_type

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ThreadPeer"]


class NodeHost(Protocol):
    """What a node's actor needs from its runtime (``ThreadRuntime`` is one)."""

    def count_drop(self, reason: str) -> None: ...

    def count_delivered(self) -> None: ...

    def reject(
        self, node: str, service: str, type_: str, cause: str, error: BaseException | None = None
    ) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class _ThreadTimer:
    """The handle ``schedule()`` returns; a cancelled timer is skipped by its actor."""

    __slots__ = ("cancelled", "message")

    def __init__(self, message: object) -> None:
        self.message = message
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Fire(NamedTuple):
    """Actor message: timer ``timer`` of service ``service`` is due."""

    service: str
    timer: _ThreadTimer


class _Started(NamedTuple):
    """Actor message answered once ``on_start`` has run."""


class ThreadPeer(Peer, pykka.ThreadingActor):
    """A node's actor on its own thread (pykka's ThreadingActor hooks)."""

    use_daemon_thread = True

    def __init__(
        self,
        node: NodeId,
        services: dict[str, Behaviour],
        stats: RuntimeStats,
        runtime: NodeHost,
    ) -> None:
        super().__init__(node, services, stats)
        self.runtime = runtime
        self.thread_ident: int | None = None

    def on_start(self) -> None:
        self.thread_ident = threading.get_ident()
        super().on_start()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            rt = self.runtime
            if not self.alive:
                rt.count_drop("crashed" if self.crashed else "stopped")
                return None
            behaviour = self.services.get(message.service)
            if behaviour is None:
                rt.count_drop("no-service")
                return None
            rt.count_delivered()
            if not message.remote:
                behaviour.on_receive(message.message)
                return None
            try:
                behaviour.on_receive(message.message)
            except Exception as exc:  # the sender's fault: drop it, count it, go on
                rt.reject(self.node, message.service, message_type(message.message),
                          "handler", exc)
        elif isinstance(message, _Fire):
            if self.alive and not message.timer.cancelled:
                self.services[message.service].on_receive(message.timer.message)
        elif not isinstance(message, _Started):
            super().on_receive(message)
        return None

    def on_stop(self) -> None:
        if not self.crashed:
            super().on_stop()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super()._handle_failure(exception_type, exception_value, traceback)
        self.alive = False
        self.crashed = True
        if exception_value is not None:
            self.runtime.fail(exception_value)

    def _actor_loop_teardown(self) -> None:
        # Messages still queued when the node died: dropped, and counted.
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            if isinstance(envelope.message, Deliver):
                self.runtime.count_drop("crashed" if self.crashed else "stopped")
            elif envelope.reply_to is not None:
                envelope.reply_to.set(None)
