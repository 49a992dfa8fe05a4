"""The simulated node actor: a pykka ``Actor`` whose inbox is simpy's event queue.

``SimPeer`` fills pykka's three hooks without a thread or a simpy process: ``put`` on its
inbox schedules the envelope's dispatch as a simpy event at the current time, and a
message in flight (``Letter``) is a pykka ``Envelope`` that is itself a simpy event, so
one heap entry carries it from sender to handler. Used by ``peeractor.sim``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import pykka
import simpy
from pykka._envelope import Envelope

from peeractor.behaviour import Behaviour, NodeId
from peeractor.errors import PeerActorError
from peeractor.peer import Peer
from peeractor.stats import RuntimeStats

if TYPE_CHECKING:
    from types import TracebackType

    from pykka._actor import ActorInbox

__all__ = ["NORMAL", "URGENT", "Call", "Letter", "SimPeer"]

NORMAL = simpy.events.NORMAL
URGENT = simpy.events.URGENT


class Letter(Envelope[object]):
    """A message in flight: a pykka envelope that is also a simpy event (slots only)."""

    __slots__ = ("callbacks", "service")
    _ok = True  # read by simpy after the callbacks ran: an event that succeeded

    def __init__(self, message: object, service: str, callbacks: tuple[Any, ...]) -> None:
        self.message = message
        self.reply_to = None
        self.service = service
        self.callbacks: tuple[Any, ...] | None = callbacks


class _StoppedFlag:
    """``actor_stopped`` of a simulated actor: a plain flag (one thread: nobody waits)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False


class Call:
    """A world-side callback (``call_later``) or a pykka envelope posted to a SimPeer."""

    __slots__ = ("callbacks", "payload")
    _ok = True

    def __init__(self, payload: Any, callback: Callable[[Any], None]) -> None:
        self.payload = payload
        self.callbacks: tuple[Any, ...] | None = (callback,)


class _SimInbox:
    """pykka's inbox protocol over simpy: ``put`` schedules a dispatch at the current time."""

    __slots__ = ("_env", "_peer")

    def __init__(self) -> None:
        self._env: simpy.Environment | None = None
        self._peer: SimPeer | None = None

    def bind(self, env: simpy.Environment, peer: SimPeer) -> None:
        self._env = env
        self._peer = peer

    def put(self, envelope: Envelope[Any], /) -> None:
        if self._env is None or self._peer is None:
            raise PeerActorError("SimPeer inbox used before the peer was started")
        schedule: Any = self._env.schedule
        schedule(Call(envelope, self._peer._dispatch_envelope), NORMAL, 0)

    def get(self) -> Envelope[Any]:
        raise PeerActorError("a SimPeer's inbox is simpy's event queue: nothing to get")

    def empty(self) -> bool:
        return True


class _SimFuture(pykka.Future[Any]):
    """A future set by a simulated actor; ``get()`` cannot wait (nothing runs meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self._done = False
        self._value: Any = None
        self._exc: BaseException | None = None

    def get(self, *, timeout: float | None = None) -> Any:
        try:
            return super().get(timeout=timeout)
        except NotImplementedError:
            pass
        if not self._done:
            raise pykka.Timeout("simulated future not set yet: advance the runtime first")
        if self._exc is not None:
            raise self._exc
        return self._value

    def set(self, value: Any | None = None) -> None:
        self._done, self._value = True, value

    def set_exception(self, exc_info: Any = None) -> None:
        info = exc_info if exc_info is not None else sys.exc_info()
        self._done, self._exc = True, info[1]


class SimPeer(Peer):
    """A node's pykka actor dispatched by simpy's event queue (fills pykka's three hooks)."""

    def __init__(self, node: NodeId, services: dict[str, Behaviour], stats: RuntimeStats) -> None:
        super().__init__(node, services, stats)
        # One thread, nobody waits: a plain flag instead of pykka's threading.Event
        # (saves ~1 KiB per node); the ref is re-made so it sees the same flag.
        self.actor_stopped = _StoppedFlag()  # type: ignore[assignment]
        self._actor_ref = pykka.ActorRef(self)
        self._receive_callbacks = (self._receive,)

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        return _SimInbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return _SimFuture()

    def _start_actor_loop(self) -> None:
        # No thread, no simpy process, no ActorRegistry: start = run on_start now.
        self._actor_loop_setup()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> NoReturn:
        # Simulation: a failure nobody handles stops the run (raised out of run()).
        assert exception_value is not None
        raise exception_value.with_traceback(traceback)

    def _receive(self, letter: Letter) -> None:
        """simpy callback of a message arriving at this node."""
        if not self.alive:
            self.stats.dropped["crashed" if self.crashed else "stopped"] += 1
            return
        behaviour = self.services.get(letter.service)
        if behaviour is None:
            self.stats.dropped["no-service"] += 1
            return
        self.stats.delivered += 1
        behaviour.on_receive(letter.message)

    def guard(self, reject: Callable[[SimPeer, str, object, Exception], None]) -> None:
        """Hand messages whose handler raises to ``reject`` instead of stopping the run."""

        def receive(letter: Letter) -> None:
            try:
                self._receive(letter)
            except Exception as exc:
                reject(self, letter.service, letter.message, exc)

        self._receive_callbacks = (receive,)

    def _dispatch_envelope(self, call: Call) -> None:
        """simpy callback of a pykka envelope (``tell``/``ask``/proxy): one loop iteration."""
        envelope: Envelope[Any] = call.payload
        if self.actor_stopped.is_set():
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(
                    (pykka.ActorDeadError, pykka.ActorDeadError(f"{self} stopped"), None)
                )
            return
        try:
            response = self._handle_receive(envelope.message)
        except Exception:
            if envelope.reply_to is None:
                raise
            envelope.reply_to.set_exception()
        else:
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
