"""``ThreadRuntime``: behaviours on the wall clock, one ``pykka.ThreadingActor`` per node.

One timer thread serves every ``schedule()`` and the latency emulation of in-process
messages (when a network model is given); ``now()`` is monotonic seconds since the
runtime started. Nodes of other processes are reached through a transport (see
``peeractor.zmq_transport``) once ``add_route(node, endpoint)`` says where they are.
A failure in a behaviour stops its node and is raised by ``run()`` -- except on a message
from another process: that message is dropped and counted as rejected (cause "handler",
``RuntimeStats.rejected``, a ``runtime.rejected`` trace event) and the node goes on. What
arrives from other processes waits in the node's actor inbox, bounded by ``inbox_limit``:
beyond it the newest message is dropped and counted ("inbox-full"); see docs/transport.md.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import pykka
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from peeractor._clock import TimerThread
from peeractor._seed import stable_seed
from peeractor._threadpeer import ThreadPeer, _Fire, _Started, _ThreadTimer
from peeractor.behaviour import Address, Behaviour, NodeId
from peeractor.errors import PeerActorError
from peeractor.network import NetworkModel
from peeractor.peer import Deliver, check_services
from peeractor.stats import RuntimeStats, message_type, rejected_event

__all__ = ["ThreadPeer", "ThreadRuntime", "Transport"]

logger = logging.getLogger(__name__)
Trace = Callable[[dict[str, Any]], None]


class Transport(Protocol):
    """Carries messages to nodes of other processes; never blocks the sender."""

    def start(self, runtime: ThreadRuntime) -> None:
        """Begin receiving; hand what arrives to ``runtime.deliver_remote``."""

    def add_route(self, node: NodeId, endpoint: str) -> None: ...

    def has_route(self, node: NodeId) -> bool: ...

    def send(self, src: NodeId, dst: NodeId, service: str, message: object) -> None:
        """Send or drop (counted in ``runtime.stats``); never blocks."""

    def close(self) -> None: ...


class _ThreadContext:
    """What a behaviour on ``ThreadRuntime`` acts through."""

    __slots__ = ("_peer", "_rt", "node", "now", "rng", "service")

    def __init__(self, rt: ThreadRuntime, node: NodeId, service: str) -> None:
        self._rt = rt
        self.node = node
        self.service = service
        self.rng = random.Random(stable_seed(rt.seed, node, service))
        self.now = rt.now
        self._peer: ThreadPeer | None = None

    def send(self, address: Address, message: object) -> None:
        self._rt._send(self.node, address, message)

    def schedule(self, delay_s: float, message: object) -> _ThreadTimer:
        if not delay_s >= 0:
            raise ValueError(f"negative or NaN delay {delay_s}")
        timer = _ThreadTimer(message)
        fire = _Fire(self.service, timer)
        if delay_s == 0:
            self._tell_self(fire)  # FIFO with what this handler sends next
        else:
            self._rt._clock.after(delay_s, self._tell_self, fire)
        return timer

    def _tell_self(self, fire: _Fire) -> None:
        peer = self._peer
        if peer is not None and peer.alive:
            with contextlib.suppress(pykka.ActorDeadError):  # a dead node's timers die
                peer.actor_ref.tell(fire)

    def emit(self, type: str, **fields: Any) -> None:
        self._rt._emit(self.node, type, fields)


class ThreadRuntime:
    """Runs behaviours on threads and the wall clock; see the module docstring.

    ``network`` (optional) emulates delay/loss of messages between nodes of this process;
    without it they are handed over at once. ``transport`` reaches other processes.
    ``inbox_limit``: messages from other processes queued per node before the newest
    are dropped ("inbox-full").
    """

    def __init__(
        self,
        *,
        seed: int,
        trace: Trace | None = None,
        network: NetworkModel | None = None,
        transport: Transport | None = None,
        inbox_limit: int = 10_000,
    ) -> None:
        if inbox_limit < 1:
            raise ValueError(f"inbox_limit must be >= 1, got {inbox_limit}")
        self.seed = seed
        self.inbox_limit = inbox_limit
        self.trace = trace
        self.network = network
        self.transport = transport
        self.stats = RuntimeStats()
        self._lock = threading.Lock()
        self._state = threading.Condition()
        self._peers: dict[NodeId, ThreadPeer] = {}
        self._cuts: set[tuple[NodeId, NodeId]] = set()
        self._net_rng = random.Random(stable_seed(seed, "peeractor.network"))
        self._failure: BaseException | None = None
        self._stopped = False
        self._started_at = time.monotonic()
        self._clock = TimerThread("peeractor-clock", self.fail)
        if transport is not None:
            try:
                transport.start(self)
            except BaseException:
                self._clock.close()
                raise

    # -- nodes -------------------------------------------------------------------------

    def add_node(self, node: NodeId, services: Sequence[Behaviour]) -> None:
        """Bind ``services`` to a new node, start its actor, return once ``on_start`` ran."""
        if self._stopped:
            raise PeerActorError("runtime is stopped")
        by_name = check_services(node, services)
        contexts = [_ThreadContext(self, node, name) for name in by_name]
        with self._lock:
            if node in self._peers:
                raise PeerActorError(f"node {node!r} already added")
            peer = ThreadPeer(node, by_name, self.stats, self)
            self._peers[node] = peer
        for service, ctx in zip(by_name.values(), contexts, strict=True):
            service.bind(ctx)
            ctx._peer = peer
        # What pykka's Actor.start() does, keeping the actor object: register, start loop.
        pykka.ActorRegistry.register(peer.actor_ref)
        peer._start_actor_loop()
        try:
            peer.actor_ref.ask(_Started(), timeout=10.0)
        except pykka.ActorDeadError:
            self._raise_failure()
            raise

    def add_route(self, node: NodeId, endpoint: str) -> None:
        """Reach ``node`` (of another process) at the transport's ``endpoint``."""
        if self.transport is None:
            raise PeerActorError(f"no transport to reach {node!r} at {endpoint!r}")
        self.transport.add_route(node, endpoint)

    def peer(self, node: NodeId) -> ThreadPeer:
        try:
            return self._peers[node]
        except KeyError:
            raise PeerActorError(f"unknown node {node!r}") from None

    def is_alive(self, node: NodeId) -> bool:
        return self.peer(node).alive

    def crash(self, node: NodeId) -> None:
        """Crash ``node`` now: no ``on_stop``, its timers die, messages to it are dropped."""
        peer = self.peer(node)
        if peer.crashed:
            return
        peer.crash()
        peer.actor_inbox.put(Envelope(_ActorStop()))  # wake and end the loop

    def cut_link(self, a: NodeId, b: NodeId) -> None:
        with self._lock:
            self._cuts.update(((a, b), (b, a)))

    def heal_link(self, a: NodeId, b: NodeId) -> None:
        with self._lock:
            self._cuts.difference_update(((a, b), (b, a)))

    # -- messages ----------------------------------------------------------------------

    def _send(self, src: NodeId, address: Address, message: object) -> None:
        dst, service = address
        with self._lock:
            self.stats.count_sent(message)
            if (src, dst) in self._cuts:
                self.stats.dropped["cut"] += 1
                return
        peer = self._peers.get(dst)
        if peer is None:
            if self.transport is not None and self.transport.has_route(dst):
                self.transport.send(src, dst, service, message)
            else:
                self.count_drop("unknown-node")
            return
        if not peer.alive:
            self.count_drop("crashed" if peer.crashed else "stopped")
            return
        delay: float | None = 0.0
        if dst != src and self.network is not None:
            with self._lock:
                delay = self.network.latency(src, dst, self._net_rng)
            if delay is None:
                self.count_drop("lost")
                return
        deliver = (peer, Deliver(service, message))
        if delay:
            self._clock.after(delay, self._hand_over, deliver)
        else:
            self._hand_over(deliver)

    def _hand_over(self, item: tuple[ThreadPeer, Deliver]) -> None:
        peer, deliver = item
        try:
            peer.actor_ref.tell(deliver)
        except pykka.ActorDeadError:
            self.count_drop("crashed" if peer.crashed else "stopped")

    def inject(self, address: Address, message: object, delay: float = 0.0) -> None:
        """Deliver ``message`` to a local ``address`` after ``delay`` s, from outside actors."""
        if not delay >= 0:
            raise ValueError(f"negative or NaN delay {delay}")
        node, service = address
        peer = self.peer(node)
        with self._lock:
            self.stats.injected += 1
        if delay:
            self._clock.after(delay, self._hand_over, (peer, Deliver(service, message)))
        else:
            self._hand_over((peer, Deliver(service, message)))

    def deliver_remote(self, dst: NodeId, service: str, message: object) -> None:
        """Called by the transport with a decoded message for a node of this process."""
        peer = self._peers.get(dst)
        if peer is None:
            self.count_drop("unknown-node")
        elif cast("queue.Queue[Any]", peer.actor_inbox).qsize() >= self.inbox_limit:
            self.count_drop("inbox-full")
            self.reject(dst, service, message_type(message), "inbox-full")
        else:
            self._hand_over((peer, Deliver(service, message, True)))

    def reject(
        self, node: str, service: str, type_: str, cause: str, error: BaseException | None = None
    ) -> None:
        """Count a message refused on its way in (bad frame, raising handler, full inbox)."""
        text = "" if error is None else f"{type(error).__name__}: {error}"
        peer = self._peers.get(node)  # names from the network: keep the keys bounded
        node = node if peer is not None else "?"
        service = service if peer is not None and service in peer.services else "?"
        with self._lock:
            n = self.stats.count_rejected(service, type_, cause)
            if self.trace is not None:
                event = rejected_event(node, service, type_, cause, n, text)
                if event is not None:
                    self.trace({"t": self.now(), **event})
        if n == 1:
            logger.warning("node %s: rejected a %s for %r (%s) %s",
                           node, type_, service, cause, text)

    def count_drop(self, reason: str) -> None:
        with self._lock:
            self.stats.dropped[reason] += 1

    def count_delivered(self) -> None:
        with self._lock:
            self.stats.delivered += 1

    def _emit(self, node: NodeId, type: str, fields: dict[str, Any]) -> None:
        if self.trace is not None:
            with self._lock:
                self.trace({"t": self.now(), "type": type, "node": node, **fields})

    # -- the clock ---------------------------------------------------------------------

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` on the timer thread after ``delay`` s (world-side code)."""
        if not delay >= 0:
            raise ValueError(f"negative or NaN delay {delay}")
        self._clock.after(delay, _call, fn)

    def now(self) -> float:
        """Seconds since the runtime was created (monotonic)."""
        return time.monotonic() - self._started_at

    def fail(self, exc: BaseException) -> None:
        """Record a failure nobody handled; ``run()`` raises it."""
        logger.debug("runtime failure: %r", exc)
        with self._state:
            if self._failure is None:
                self._failure = exc
            self._state.notify_all()

    def _raise_failure(self) -> None:
        with self._state:
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def run(self, until: float) -> None:
        """Wait until ``now()`` reaches ``until``, ``stop()`` or a failure (raised here)."""
        with self._state:
            while not self._stopped and self._failure is None:
                remaining = until - self.now()
                if remaining <= 0:
                    break
                self._state.wait(remaining)
        self._raise_failure()

    def stop(self) -> None:
        """Stop every live node cleanly (``on_stop``), the clock and the transport."""
        with self._state:
            if self._stopped:
                return
            self._stopped = True
        me = threading.get_ident()
        waits = []
        for peer in list(self._peers.values()):
            if peer.alive:
                peer.alive = False  # queued messages are dropped, not handled
                try:
                    future = peer.actor_ref.stop(block=False)
                except pykka.ActorDeadError:
                    continue
                if peer.thread_ident != me:
                    waits.append(future)
        for future in waits:
            try:
                future.get(timeout=5.0)
            except pykka.Timeout:
                logger.warning("a node did not stop within 5 s")
        self._clock.close()
        if self.transport is not None:
            self.transport.close()
        with self._state:
            self._state.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped


def _call(fn: Callable[[], None]) -> None:
    fn()
