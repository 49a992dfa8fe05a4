"""ZeroMQ transport between processes: msgpack frames, CURVE-authenticated, never blocking.

Each process binds one PULL socket (CURVE server; a ZAP authenticator accepts only the
run's client key) and opens one PUSH socket (CURVE client) per remote endpoint. A message
is the multipart frame ``[dst_node, dst_service, payload]`` (utf-8, utf-8, ``codec``).
Sends use NOBLOCK with a bounded high-water mark: when the queue to a peer is full (a
dead or slow peer) the message is dropped and counted ("queue-full"), the sender never
waits. A receive thread hands messages to the runtime (``ThreadRuntime.deliver_remote``).

What arrives is judged before it reaches a node (docs/transport.md): a payload longer than
``limits.max_frame_bytes`` is dropped unread ("oversize"); one the codec refuses (not
msgpack, too deep, unknown tag, ill-typed field...) is dropped ("malformed"); a multipart
message that is not ``[node, service, payload]`` likewise. Each is also counted in
``runtime.stats.rejected`` by (service, message type, cause). A frame larger than
``max_socket_bytes`` is refused by ZeroMQ itself, which closes that connection without
buffering it (counted "disconnected", like any closed connection). Handshakes that fail
authentication are counted ("unauthorised").

Fault injection (tests, benchmarks): ``inject_loss`` drops that fraction of the messages
sent, counted "lost" like the simulator's network losses; when not given it is read from
the environment variable ``PEERACTOR_INJECT_LOSS`` (default 0), so a whole cluster of
unmodified agents can be run lossy.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import TYPE_CHECKING

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from peeractor import codec
from peeractor._seed import stable_seed
from peeractor.behaviour import NodeId
from peeractor.codec import DEFAULT_LIMITS, CodecLimits
from peeractor.errors import CodecError, PeerActorError
from peeractor.keys import RunKeys

if TYPE_CHECKING:
    from peeractor.threaded import ThreadRuntime

__all__ = ["ZmqTransport"]

logger = logging.getLogger(__name__)

_AUTH_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
_WATCHED = _AUTH_FAILURES | zmq.EVENT_DISCONNECTED


class _Route:
    """A PUSH socket to one endpoint; sends are serialised (sockets are not thread-safe)."""

    __slots__ = ("lock", "socket")

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.lock = threading.Lock()


class ZmqTransport:
    """CURVE-authenticated ZeroMQ transport for ``ThreadRuntime`` (see the module doc).

    ``bind``: where to receive (``tcp://127.0.0.1:*`` picks a free port; ``endpoint`` tells
    which after ``start``). ``hwm``: messages queued per peer before dropping (and the
    receive socket's high-water mark). ``limits``: the codec's frame-size and depth limits,
    applied to what is sent and received. ``max_socket_bytes``: ZeroMQ's own cap on one
    frame (default 16 × ``limits.max_frame_bytes``).
    """

    def __init__(
        self,
        keys: RunKeys,
        *,
        bind: str = "tcp://127.0.0.1:*",
        hwm: int = 1000,
        limits: CodecLimits = DEFAULT_LIMITS,
        max_socket_bytes: int | None = None,
        inject_loss: float | None = None,
    ) -> None:
        if hwm < 1:
            raise ValueError(f"hwm must be >= 1, got {hwm}")
        cap = 16 * limits.max_frame_bytes if max_socket_bytes is None else max_socket_bytes
        if cap < limits.max_frame_bytes:
            raise ValueError(
                f"max_socket_bytes ({cap}) must be >= max_frame_bytes ({limits.max_frame_bytes})"
            )
        if inject_loss is None:
            inject_loss = _env_loss()
        if not 0.0 <= inject_loss < 1.0:
            raise ValueError(f"inject_loss must be in [0, 1), got {inject_loss}")
        self.inject_loss = inject_loss
        self._loss_rng = random.Random(stable_seed("peeractor.inject-loss", bind, os.getpid()))
        self.keys = keys
        self.bind = bind
        self.hwm = hwm
        self.limits = limits
        self.max_socket_bytes = cap
        self.endpoint = ""
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._auth: ThreadAuthenticator | None = None
        self._pull: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._runtime: ThreadRuntime | None = None
        self._routes: dict[NodeId, str] = {}
        self._sockets: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, runtime: ThreadRuntime) -> None:
        """Bind, start the authenticator and the receive thread."""
        if self._runtime is not None:
            raise PeerActorError("transport already started")
        self._runtime = runtime
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._context = ctx
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.keys.allowed_dir))
        self._auth = auth
        pull = ctx.socket(zmq.PULL)
        pull.curve_server = True
        pull.curve_publickey = self.keys.server_public
        pull.curve_secretkey = self.keys.server_secret
        pull.setsockopt(zmq.RCVHWM, self.hwm)
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.MAXMSGSIZE, self.max_socket_bytes)
        self._monitor = pull.get_monitor_socket(_WATCHED)
        self._pull = pull
        try:
            pull.bind(self.bind)
        except zmq.ZMQError as exc:
            # The authenticator's thread would keep the process alive: undo everything.
            self.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise PeerActorError(f"cannot listen on {self.bind}: {reason}") from exc
        self.endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self._thread = threading.Thread(
            target=self._receive_loop, name="peeractor-zmq", daemon=True
        )
        self._thread.start()

    def add_route(self, node: NodeId, endpoint: str) -> None:
        with self._lock:
            self._routes[node] = endpoint

    def has_route(self, node: NodeId) -> bool:
        return node in self._routes

    def _route(self, endpoint: str) -> _Route:
        with self._lock:
            route = self._sockets.get(endpoint)
            if route is None:
                if self._context is None or self._closing.is_set():
                    raise PeerActorError("transport not started or closed")
                push = self._context.socket(zmq.PUSH)
                push.curve_serverkey = self.keys.server_public
                push.curve_publickey = self.keys.client_public
                push.curve_secretkey = self.keys.client_secret
                push.setsockopt(zmq.SNDHWM, self.hwm)
                push.setsockopt(zmq.LINGER, 0)
                push.connect(endpoint)
                route = self._sockets[endpoint] = _Route(push)
            return route

    def send(self, src: NodeId, dst: NodeId, service: str, message: object) -> None:
        """Queue ``message`` for ``(dst, service)``; drop and count if the queue is full."""
        payload = codec.encode(message, self.limits)  # cannot travel: the sender's bug
        endpoint = self._routes.get(dst)
        runtime = self._runtime
        if endpoint is None or runtime is None or self._closing.is_set():
            if runtime is not None:
                runtime.count_drop("unknown-node" if endpoint is None else "stopped")
            return
        if self.inject_loss and self._loss_rng.random() < self.inject_loss:
            runtime.count_drop("lost")
            return
        route = self._route(endpoint)
        try:
            with route.lock:
                route.socket.send_multipart(
                    [dst.encode(), service.encode(), payload], flags=zmq.NOBLOCK
                )
        except zmq.Again:
            runtime.count_drop("queue-full")

    def send_raw(self, endpoint: str, frames: list[bytes]) -> bool:
        """Send arbitrary frames (tests and tools); False if the queue was full."""
        route = self._route(endpoint)
        try:
            with route.lock:
                route.socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _receive_loop(self) -> None:
        assert self._pull is not None and self._monitor is not None
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while not self._closing.is_set():
            try:
                ready = dict(poller.poll(100))
            except zmq.ZMQError:
                break  # context terminated
            if self._monitor in ready:
                self._drain_monitor()
            if self._pull in ready:
                self._drain_pull()

    def _drain_monitor(self) -> None:
        assert self._monitor is not None and self._runtime is not None
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event.get("event", 0) if isinstance(event, dict) else 0
            if kind & _AUTH_FAILURES:
                self._runtime.count_drop("unauthorised")
            elif kind & zmq.EVENT_DISCONNECTED:
                self._runtime.count_drop("disconnected")

    def _drain_pull(self) -> None:
        assert self._pull is not None and self._runtime is not None
        runtime = self._runtime
        for _ in range(1000):  # then let the monitor and the close flag be seen
            try:
                frames = self._pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            message = self._judge(frames)
            if message is None:
                continue
            dst, service = frames[0].decode(), frames[1].decode()
            try:
                runtime.deliver_remote(dst, service, message)
            except Exception:  # never let one message kill the receiver
                logger.exception("delivering a message from the network failed")

    def _judge(self, frames: list[bytes]) -> object | None:
        """The message of a received multipart frame, or None (dropped and counted)."""
        assert self._runtime is not None
        runtime = self._runtime
        try:
            if len(frames) != 3:
                raise CodecError(f"expected 3 frames, got {len(frames)}", cause="frame")
            dst, service = frames[0].decode(), frames[1].decode()
        except (CodecError, UnicodeDecodeError) as exc:
            logger.debug("dropped a malformed frame: %s", exc)
            runtime.count_drop("malformed")
            runtime.reject("?", "?", "?", "frame")
            return None
        try:
            return codec.decode(frames[2], self.limits)
        except CodecError as exc:
            logger.debug("dropped a frame for %s/%s: %s", dst, service, exc)
            runtime.count_drop("oversize" if exc.cause == "oversize" else "malformed")
            runtime.reject(dst, service, exc.tag or "?", exc.cause, exc)
            return None

    def close(self) -> None:
        """Stop receiving, close every socket (linger 0) and the authenticator."""
        if self._closing.is_set():
            return
        self._closing.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        with self._lock:
            for route in self._sockets.values():
                with route.lock:
                    route.socket.close(linger=0)
            self._sockets.clear()
        if self._pull is not None:
            self._pull.disable_monitor()
            self._pull.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._context is not None:
            self._context.term()


def _env_loss() -> float:
    text = os.environ.get("PEERACTOR_INJECT_LOSS", "").strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"PEERACTOR_INJECT_LOSS={text!r}: must be a number in [0, 1)") from None
