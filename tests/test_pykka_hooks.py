"""The private parts of pykka (pinned 4.5.0) that peeractor relies on.

If a pykka upgrade changes any of them, these tests say which, before the runtimes break.
"""

from __future__ import annotations

import inspect
import queue
import threading
from types import TracebackType
from typing import Any

import pykka
import pytest
from pykka._envelope import Envelope
from pykka.messages import ProxyCall, ProxyGetAttr, _ActorStop

from peeractor import Behaviour
from peeractor.peer import Deliver
from peeractor.sim import SimPeer, SimRuntime
from peeractor.threaded import ThreadPeer


def test_pykka_is_the_pinned_version() -> None:
    from importlib.metadata import version

    assert version("pykka") == "4.5.0"


def test_the_three_hooks_exist_with_their_signatures() -> None:
    assert isinstance(inspect.getattr_static(pykka.Actor, "_create_actor_inbox"), staticmethod)
    assert isinstance(inspect.getattr_static(pykka.Actor, "_create_future"), staticmethod)
    assert list(inspect.signature(pykka.Actor._create_actor_inbox).parameters) == []
    assert list(inspect.signature(pykka.Actor._create_future).parameters) == []
    assert list(inspect.signature(pykka.Actor._start_actor_loop).parameters) == ["self"]
    assert pykka.Actor.__abstractmethods__ == {
        "_create_actor_inbox", "_create_future", "_start_actor_loop",
    }  # fmt: skip


def test_loop_parts_exist() -> None:
    parts = ("_actor_loop", "_actor_loop_setup", "_actor_loop_running", "_actor_loop_teardown",
             "_handle_receive", "_handle_failure", "_stop")  # fmt: skip
    for name in parts:
        assert callable(getattr(pykka.Actor, name)), name
    params = list(inspect.signature(pykka.Actor._handle_failure).parameters)
    assert params == ["self", "exception_type", "exception_value", "traceback"]


class Bare(pykka.Actor):
    """The smallest actor: a queue inbox, no loop (we drive it by hand)."""

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.Queue()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        pass

    def __init__(self) -> None:
        super().__init__()
        self.log: list[object] = []

    def on_start(self) -> None:
        self.log.append("start")

    def on_stop(self) -> None:
        self.log.append("stop")

    def on_receive(self, message: Any) -> Any:
        self.log.append(message)
        if message == "boom":
            raise ValueError("boom")
        return f"re:{message}"

    def double(self, x: int) -> int:
        return 2 * x


class Recording(Bare):
    """Records failures instead of logging them, and stops (as pykka's default does)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[BaseException | None] = []

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.failures.append(exception_value)
        self.actor_stopped.set()


def test_init_sets_urn_inbox_stopped_flag_and_a_ref_sharing_them() -> None:
    actor = Bare()
    assert actor.actor_urn.startswith("urn:uuid:")
    assert isinstance(actor.actor_inbox, queue.Queue)
    assert isinstance(actor.actor_stopped, threading.Event)
    ref = actor.actor_ref
    # ActorRef copies the inbox and the flag when made (SimPeer re-makes its ref).
    assert ref.actor_inbox is actor.actor_inbox and ref.actor_stopped is actor.actor_stopped
    assert ref.actor_class is Bare


def test_envelope_has_message_and_reply_to_slots() -> None:
    assert Envelope.__slots__ == ["message", "reply_to"]
    env = Envelope("m")
    assert (env.message, env.reply_to) == ("m", None)
    assert not hasattr(env, "__dict__")


def test_tell_puts_an_envelope_in_the_inbox_and_ask_makes_a_future_of_the_class() -> None:
    actor = Bare()
    actor.actor_ref.tell("hi")
    env = actor.actor_inbox.get_nowait()  # type: ignore[attr-defined]
    assert isinstance(env, Envelope) and env.message == "hi" and env.reply_to is None
    future = actor.actor_ref.ask("q", block=False)
    env = actor.actor_inbox.get_nowait()  # type: ignore[attr-defined]
    assert isinstance(future, pykka.ThreadingFuture) and env.reply_to is future
    actor.actor_stopped.set()
    with pytest.raises(pykka.ActorDeadError):
        actor.actor_ref.tell("late")


def test_handle_receive_dispatches_stop_proxy_calls_and_plain_messages() -> None:
    actor = Bare()
    assert actor._handle_receive("x") == "re:x"
    assert actor._handle_receive(ProxyCall(attr_path=("double",), args=(21,), kwargs={})) == 42
    assert actor._handle_receive(_ActorStop()) is None
    assert actor.actor_stopped.is_set()
    assert actor.log == ["x", "stop"]


def test_loop_setup_runs_on_start_and_routes_failures_to_handle_failure() -> None:
    actor = Bare()
    actor._actor_loop_setup()
    assert actor.log == ["start"]

    class Failing(Recording):
        def on_start(self) -> None:
            raise KeyError("no")

    failing = Failing()
    failing._actor_loop_setup()
    assert [type(f) for f in failing.failures] == [KeyError]


def test_running_loop_reports_failures_of_tells_and_replies_to_asks() -> None:
    actor = Recording()
    asked = actor.actor_ref.ask("boom", block=False)
    actor.actor_ref.tell("ok")
    actor.actor_ref.tell("boom")
    actor._actor_loop_running()  # ends when _handle_failure sets the flag
    with pytest.raises(ValueError, match="boom"):
        asked.get(timeout=1)
    assert [type(f) for f in actor.failures] == [ValueError]
    assert actor.log == ["boom", "ok", "boom"]


def test_teardown_drains_the_inbox_with_empty_and_get() -> None:
    actor = Bare()
    future = actor.actor_ref.ask("late", block=False)
    actor.actor_stopped.set()
    actor._actor_loop_teardown()
    assert actor.actor_inbox.empty()
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=1)


def test_threading_actor_runs_its_loop_on_a_daemon_thread_when_asked() -> None:
    assert ThreadPeer.use_daemon_thread is True
    assert inspect.getattr_static(pykka.ThreadingActor, "use_daemon_thread") is False


class Echo(Behaviour):
    name = "echo"

    def on_receive(self, message: object) -> None:
        self.emit("echo", message=repr(message))


def test_sim_peers_stay_out_of_the_registry_and_answer_pykka_messages() -> None:
    before = len(pykka.ActorRegistry.get_all())
    trace: list[dict[str, Any]] = []
    rt = SimRuntime(seed=1, trace=trace.append)
    for i in range(50):
        rt.add_node(f"n{i}", [Echo()])
    assert len(pykka.ActorRegistry.get_all()) == before
    peer = rt.peer("n3")
    assert isinstance(peer, SimPeer) and isinstance(peer, pykka.Actor)
    assert peer.actor_ref.actor_stopped is peer.actor_stopped  # re-made ref, same flag
    node = peer.actor_ref.ask(ProxyGetAttr(attr_path=("node",)), block=False)
    bad = peer.actor_ref.ask(ProxyCall(attr_path=("node",), args=(), kwargs={}), block=False)
    peer.actor_ref.tell(Deliver("echo", "via tell"))
    with pytest.raises(pykka.Timeout):
        node.get()  # nothing ran yet: a simulated future cannot wait
    rt.run(1.0)
    assert node.get() == "n3"
    with pytest.raises(TypeError, match="not callable"):
        bad.get()
    assert trace == [{"t": 0.0, "type": "echo", "node": "n3", "message": "'via tell'"}]
    assert rt.stats.delivered == 1
    rt.stop()
    with pytest.raises(pykka.ActorDeadError):
        peer.actor_ref.tell(Deliver("echo", "late"))
