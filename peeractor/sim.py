"""``SimRuntime``: behaviours on simpy's clock, one thread, no thread or process per actor.

Each node is a ``SimPeer``, a pykka ``Actor`` whose inbox is simpy's event queue: a
message in flight is a pykka ``Envelope`` that is also a simpy event (``Letter``),
scheduled at ``now + latency`` and dispatched by the event's callback. Local messages
(between services of one node) go through the queue with zero delay, FIFO. Events at the
same time run in scheduling order (simpy's sequence number), so a seed gives one history.
Actors are not registered in pykka's global ``ActorRegistry`` (its operations are O(n)).
Timers due a quarter of a second or more ahead wait outside simpy's heap until their
time is near (``peeractor._far``): same order, a smaller heap.

The same code runs on ``simpy.rt.RealtimeEnvironment(factor=..., strict=False)``.
An exception raised by a behaviour is not caught: it stops the run, out of ``run()``
(``handler_errors="stop"``, the default). With ``handler_errors="drop"`` a message whose
handler raises is dropped and counted as rejected (cause "handler", as ``ThreadRuntime``
does for messages from the network) and the run goes on; timers and ``on_start`` still stop it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from heapq import heappush
from typing import Any

import simpy
from pykka._envelope import Envelope
from simpy.core import StopSimulation
from simpy.events import EventPriority

from peeractor._far import WIDTH_S, FarTimers
from peeractor._loop import run_until
from peeractor._seed import stable_seed
from peeractor._simpeer import NORMAL, URGENT, Call, Letter, SimPeer
from peeractor.behaviour import Address, Behaviour, NodeId
from peeractor.errors import PeerActorError
from peeractor.network import ConstantLatency, NetworkModel
from peeractor.peer import check_services
from peeractor.stats import RuntimeStats, message_type, rejected_event

__all__ = ["DEFAULT_LATENCY_S", "SimPeer", "SimRuntime"]

DEFAULT_LATENCY_S = 0.001
"""One-way delay between two nodes when no network model is given."""

Trace = Callable[[dict[str, Any]], None]

_FAR_MAX_S = 1e9
"""Timers due later than this (or never: inf) stay on simpy's heap."""


class _Timer(Envelope[object]):
    """A scheduled self-message; ``cancel()`` empties its callbacks so it never fires."""

    __slots__ = ("callbacks", "context")
    _ok = True

    def __init__(self, message: object, context: _SimContext) -> None:
        self.message = message
        self.reply_to = None
        self.context = context
        self.callbacks: tuple[Any, ...] | None = _TIMER_CALLBACKS

    def cancel(self) -> None:
        if self.callbacks is not None:
            self.callbacks = ()

    @property
    def cancelled(self) -> bool:
        return self.callbacks == ()


def _fire_timer(timer: _Timer) -> None:
    """simpy callback of a timer: hand its message to its service if the node lives."""
    context = timer.context
    if context._peer.alive:
        context._behaviour.on_receive(timer.message)


_TIMER_CALLBACKS = (_fire_timer,)


class _SimContext:
    """What a behaviour on ``SimRuntime`` acts through; ``send`` is the hot path."""

    __slots__ = (
        "_behaviour",
        "_eid",
        "_env",
        "_far",
        "_peer",
        "_queue",
        "_rt",
        "emit",
        "node",
        "now",
        "rng",
        "service",
    )

    def __init__(self, rt: SimRuntime, peer: SimPeer, behaviour: Behaviour) -> None:
        node = peer.node
        self._rt = rt
        self._env = rt.env
        # pushed to as simpy's ``schedule`` does; our envelopes are event-like, not Events
        self._queue: list[Any] = rt.env._queue
        self._eid: Iterator[int] = rt.env._eid
        self._far = rt._far
        self._peer = peer
        self.node = node
        self.service = behaviour.name
        self.rng = random.Random(stable_seed(rt.seed, node, behaviour.name))
        self.now = rt._now_fn  # shared: one bound method for every context
        self.emit: Callable[..., None] = self._emit if rt.trace is not None else _no_emit
        self._behaviour = behaviour

    def send(self, address: Address, message: object) -> None:
        rt = self._rt
        stats = rt.stats
        stats.sent += 1
        by_class = stats._by_class
        cls = message.__class__
        by_class[cls] = by_class.get(cls, 0) + 1
        dst, service = address
        if not self._peer.alive:  # world code calling into a dead node's behaviour
            stats.dropped["crashed" if self._peer.crashed else "stopped"] += 1
            return
        peer = rt._peers.get(dst)
        if peer is None:
            stats.dropped["unknown-node"] += 1
            return
        if not peer.alive:
            stats.dropped["crashed" if peer.crashed else "stopped"] += 1
            return
        src = self.node
        if dst == src:
            delay = 0.0
        else:
            if rt._cuts and (src, dst) in rt._cuts:
                stats.dropped["cut"] += 1
                return
            latency = rt._latency(src, dst, rt._net_rng)
            if latency is None:
                stats.dropped["lost"] += 1
                return
            if latency < 0:
                raise ValueError(f"network model gave a negative delay {latency} for {src}->{dst}")
            delay = latency
        # ``env.schedule(letter, NORMAL, delay)`` inlined (SimRuntime checked it is simpy's)
        heappush(self._queue, (self._env._now + delay, NORMAL, next(self._eid),
                               Letter(message, service, peer._receive_callbacks)))

    def schedule(self, delay_s: float, message: object) -> _Timer:
        if not delay_s >= 0:
            raise ValueError(f"negative or NaN delay {delay_s}")
        timer = _Timer(message, self)
        entry = (self._env._now + delay_s, NORMAL, next(self._eid), timer)
        if WIDTH_S <= delay_s <= _FAR_MAX_S:
            self._far.add(entry)  # off the heap until its time is near (``_far``)
        else:
            heappush(self._queue, entry)
        return timer

    def _emit(self, type: str, **fields: Any) -> None:
        trace = self._rt.trace
        if trace is not None:
            trace({"t": self._rt.env._now, "type": type, "node": self.node, **fields})


def _no_emit(type: str, **fields: Any) -> None:
    """``emit`` when the runtime has no trace: nothing to do."""


class SimRuntime:
    """Runs behaviours on a simpy environment (virtual time, or ``RealtimeEnvironment``).

    ``seed`` fixes every behaviour's rng and the network's draws; ``network`` gives each
    message's one-way delay or loss (default: ``DEFAULT_LATENCY_S`` for every message);
    ``trace`` receives every emitted event as ``{"t", "type", "node", **fields}``.
    ``handler_errors``: "stop" (a raising handler stops the run) or "drop" (see module doc).
    """

    def __init__(
        self,
        *,
        seed: int,
        env: simpy.Environment | None = None,
        network: NetworkModel | None = None,
        trace: Trace | None = None,
        handler_errors: str = "stop",
    ) -> None:
        if handler_errors not in ("stop", "drop"):
            raise ValueError(f"handler_errors must be 'stop' or 'drop', got {handler_errors!r}")
        self.seed = seed
        self.handler_errors = handler_errors
        self.env = env if env is not None else simpy.Environment()
        if type(self.env).schedule is not simpy.Environment.schedule:
            # Contexts push to the event queue as simpy's ``schedule`` does (one call less
            # per message and timer): an environment that schedules otherwise is not supported.
            raise PeerActorError(f"{type(self.env).__name__} overrides schedule(): SimRuntime "
                                 "needs simpy's (Environment, RealtimeEnvironment)")
        self.network: NetworkModel = (
            network if network is not None else ConstantLatency(DEFAULT_LATENCY_S)
        )
        self.trace = trace
        self.stats = RuntimeStats()
        self._peers: dict[NodeId, SimPeer] = {}
        self._cuts: set[tuple[NodeId, NodeId]] = set()
        self._net_rng = random.Random(stable_seed(seed, "peeractor.network"))
        self._latency = self.network.latency
        self._far = FarTimers(self.env._queue, self.env._eid)
        self._now_fn = self.now
        self._schedule: Callable[[Any, EventPriority, float], None] = self.env.schedule
        self._running = False
        self._stopped = False

    # -- nodes -------------------------------------------------------------------------

    def add_node(self, node: NodeId, services: Sequence[Behaviour]) -> None:
        """Bind ``services`` to a new node and run their ``on_start`` now, in order."""
        if self._stopped:
            raise PeerActorError("runtime is stopped")
        by_name = check_services(node, services)
        if node in self._peers:
            raise PeerActorError(f"node {node!r} already added")
        peer = SimPeer(node, by_name, self.stats)
        for service in by_name.values():
            service.bind(_SimContext(self, peer, service))
        peer.actor_inbox.bind(self.env, peer)  # type: ignore[attr-defined]
        self._peers[node] = peer
        if self.handler_errors == "drop":
            peer.guard(self._reject)
        peer._start_actor_loop()

    def _reject(self, peer: SimPeer, service: str, message: object, exc: Exception) -> None:
        type_ = message_type(message)
        n = self.stats.count_rejected(service, type_, "handler")
        if self.trace is not None:
            event = rejected_event(peer.node, service, type_, "handler", n,
                                   f"{type(exc).__name__}: {exc}")
            if event is not None:
                self.trace({"t": self.env.now, **event})

    def nodes(self) -> Iterator[NodeId]:
        """Node ids in the order they were added."""
        return iter(self._peers)

    def peer(self, node: NodeId) -> SimPeer:
        """The node's actor (its ``actor_ref`` works for ``tell``/``ask`` from outside)."""
        try:
            return self._peers[node]
        except KeyError:
            raise PeerActorError(f"unknown node {node!r}") from None

    def is_alive(self, node: NodeId) -> bool:
        return self.peer(node).alive

    def crash(self, node: NodeId) -> None:
        """Crash ``node`` now: its timers die, messages to it are dropped ("crashed")."""
        self.peer(node).crash()

    def cut_link(self, a: NodeId, b: NodeId) -> None:
        """Drop ("cut") every message sent between ``a`` and ``b`` from now on, both ways."""
        self._cuts.update(((a, b), (b, a)))

    def heal_link(self, a: NodeId, b: NodeId) -> None:
        self._cuts.difference_update(((a, b), (b, a)))

    # -- the world ---------------------------------------------------------------------

    def inject(self, address: Address, message: object, delay: float = 0.0) -> None:
        """Deliver ``message`` to ``address`` after ``delay`` s, from outside any actor."""
        if not delay >= 0:
            raise ValueError(f"negative or NaN delay {delay}")
        node, service = address
        peer = self.peer(node)
        self.stats.injected += 1
        self._push(Letter(message, service, peer._receive_callbacks), delay)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after ``delay`` s on the runtime's clock (world-side code)."""
        if not delay >= 0:
            raise ValueError(f"negative or NaN delay {delay}")
        self._push(Call(fn, _call_payload), delay)

    def _push(self, event: Any, delay: float) -> None:
        """``env.schedule(event, NORMAL, delay)``, a long delay held by ``_far``."""
        entry = (self.env._now + delay, NORMAL, next(self.env._eid), event)
        if WIDTH_S <= delay <= _FAR_MAX_S:
            self._far.add(entry)
        else:
            heappush(self.env._queue, entry)

    # -- the clock ---------------------------------------------------------------------

    def now(self) -> float:
        return float(self.env._now)

    def run(self, until: float) -> None:
        """Process events until the clock reaches ``until`` (or ``stop()``)."""
        if until < self.env.now:
            raise ValueError(f"until={until} is before now={self.env.now}")
        if self._stopped or until == self.env.now:
            return
        self._running = True
        try:
            run_until(self.env, until)
        finally:
            self._running = False

    def stop(self) -> None:
        """Stop every live node cleanly (``on_stop``) and end the current ``run()``."""
        if self._stopped:
            return
        self._stopped = True
        for peer in self._peers.values():
            if peer.alive:
                peer._stop()
        if self._running:
            self._schedule(Call(None, _end_run), URGENT, 0)

    @property
    def stopped(self) -> bool:
        return self._stopped


def _call_payload(call: Call) -> None:
    call.payload()


def _end_run(call: Call) -> None:
    raise StopSimulation(None)
