"""One behaviour suite, run on every runtime (virtual time, real time, threads).

Times are binary fractions (1/8, 1/16 s) so virtual-time traces compare exactly; on the
wall clock the same events must come in the same order (per node: nodes run
concurrently) and within ``REALTIME_TOLERANCE_S`` of the virtual times.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from peeractor import Behaviour, Timer, message
from peeractor.network import ConstantLatency
from tests.conftest import REALTIME_TOLERANCE_S

Event = dict[str, Any]


@message("test.runtime.Ping")
class Ping:
    n: int


@message("test.runtime.Tick")
class Tick:
    n: int


@message("test.runtime.Note")
class Note:
    text: str


def ev(t: float, type: str, node: str, **fields: Any) -> Event:
    return {"t": t, "type": type, "node": node, **fields}


def assert_trace(kind: str, got: list[Event], expected: list[Event]) -> None:
    """Exact on virtual time; same per-node order and times within tolerance otherwise."""
    if kind in ("sim", "sim-rt"):
        assert got == expected
        return
    nodes = sorted({e["node"] for e in expected} | {e["node"] for e in got})
    for node in nodes:
        mine = [e for e in got if e["node"] == node]
        want = [e for e in expected if e["node"] == node]
        assert [{k: v for k, v in e.items() if k != "t"} for e in mine] == [
            {k: v for k, v in e.items() if k != "t"} for e in want
        ], node
        for g, w in zip(mine, want, strict=True):
            assert g["t"] == pytest.approx(w["t"], abs=REALTIME_TOLERANCE_S), (g, w)


class PingPong(Behaviour):
    """Sends Ping(0) to ``peer`` on start; answers Ping(n) with Ping(n + 1) up to 3."""

    name = "pp"

    def __init__(self, peer: str | None = None) -> None:
        self.peer = peer

    def on_start(self) -> None:
        if self.peer is not None:
            self.send((self.peer, "pp"), Ping(0))

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Ping)
        self.emit("recv", n=message.n)
        if message.n < 3:
            other = "a" if self.node == "b" else "b"
            self.send((other, "pp"), Ping(message.n + 1))


def test_ping_pong_with_latency(runtime_kind: str, runtimes: Any) -> None:
    kind = runtime_kind
    trace: list[Event] = []
    rt = runtimes(kind, network=ConstantLatency(0.125), trace=trace.append)
    rt.add_node("b", [PingPong()])
    rt.add_node("a", [PingPong("b")])
    started = time.monotonic()
    rt.run(0.75)
    assert_trace(
        kind,
        trace,
        [ev(0.125, "recv", "b", n=0), ev(0.25, "recv", "a", n=1),
         ev(0.375, "recv", "b", n=2), ev(0.5, "recv", "a", n=3)],
    )  # fmt: skip
    assert (rt.stats.sent, rt.stats.delivered, sum(rt.stats.dropped.values())) == (4, 4, 0)
    assert rt.stats.by_type == {"test.runtime.Ping": 4}
    if kind != "sim":  # the wall clock followed the run
        assert time.monotonic() - started == pytest.approx(0.75, abs=0.2)


class Timers(Behaviour):
    """Timers at 1/8, 2/8, 3/8 s; cancels the 2nd at once and the 3rd when the 1st fires."""

    name = "timers"

    def on_start(self) -> None:
        self.first = self.schedule(0.125, Tick(1))
        second = self.schedule(0.25, Tick(2))
        self.third = self.schedule(0.375, Tick(3))
        second.cancel()
        second.cancel()  # twice is fine

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Tick)
        self.emit("tick", n=message.n)
        if message.n == 1:
            self.third.cancel()
            self.first.cancel()  # already fired: no effect
            self.schedule(0.125, Tick(4))


def test_timers_fire_once_and_cancelled_timers_never_fire(
    runtime_kind: str, runtimes: Any
) -> None:
    trace: list[Event] = []
    rt = runtimes(runtime_kind, trace=trace.append)
    rt.add_node("a", [Timers()])
    rt.run(0.625)
    assert_trace(runtime_kind, trace, [ev(0.125, "tick", "a", n=1), ev(0.25, "tick", "a", n=4)])
    assert rt.stats.sent == 0  # timers are not network messages


class Burst(Behaviour):
    """On start: three local notes, three notes to b, three timers, all at once."""

    name = "burst"

    def on_start(self) -> None:
        for i in (1, 2, 3):
            self.send(("a", "rec"), Note(f"local{i}"))
            self.send(("b", "rec"), Note(f"net{i}"))
            self.schedule(0.125, Note(f"timer{i}"))
        self.schedule(0.0, Note("timer0"))

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Note)
        self.emit("burst", text=message.text)


class Recorder(Behaviour):
    name = "rec"

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Note)
        self.emit("rec", text=message.text)


def test_same_time_events_run_in_scheduling_order(runtime_kind: str, runtimes: Any) -> None:
    trace: list[Event] = []
    rt = runtimes(runtime_kind, network=ConstantLatency(0.125), trace=trace.append)
    rt.add_node("b", [Recorder()])
    rt.add_node("a", [Recorder(), Burst()])
    rt.run(0.375)
    assert_trace(
        runtime_kind,
        trace,
        [ev(0.0, "rec", "a", text="local1"), ev(0.0, "rec", "a", text="local2"),
         ev(0.0, "rec", "a", text="local3"), ev(0.0, "burst", "a", text="timer0"),
         ev(0.125, "rec", "b", text="net1"), ev(0.125, "burst", "a", text="timer1"),
         ev(0.125, "rec", "b", text="net2"), ev(0.125, "burst", "a", text="timer2"),
         ev(0.125, "rec", "b", text="net3"), ev(0.125, "burst", "a", text="timer3")],
    )  # fmt: skip


class Pinger(Behaviour):
    """Every 1/4 s: Ping(k) to b."""

    name = "pinger"

    def on_start(self) -> None:
        self.k = 0
        self.schedule(0.25, Tick(0))

    def on_receive(self, message: object) -> None:
        self.k += 1
        self.send(("b", "echo"), Ping(self.k))
        self.schedule(0.25, Tick(0))


class Echo(Behaviour):
    """Records pings; its own timer every 1/4 s from 3/16 s."""

    name = "echo"

    def on_start(self) -> None:
        self.schedule(0.1875, Tick(0))

    def on_receive(self, message: object) -> None:
        if isinstance(message, Tick):
            self.emit("tick")
            self.schedule(0.25, Tick(0))
        else:
            assert isinstance(message, Ping)
            self.emit("recv", n=message.n)


def test_crashed_node_drops_messages_and_its_timers_die(runtime_kind: str, runtimes: Any) -> None:
    trace: list[Event] = []
    rt = runtimes(runtime_kind, network=ConstantLatency(0.125), trace=trace.append)
    rt.add_node("b", [Echo()])
    rt.add_node("a", [Pinger()])
    rt.call_later(0.8125, lambda: rt.crash("b"))
    rt.run(1.1875)
    assert_trace(
        runtime_kind,
        trace,
        [ev(0.1875, "tick", "b"), ev(0.375, "recv", "b", n=1), ev(0.4375, "tick", "b"),
         ev(0.625, "recv", "b", n=2), ev(0.6875, "tick", "b")],
    )  # fmt: skip
    assert not rt.is_alive("b") and rt.is_alive("a")
    # Ping 3 was in flight at the crash, ping 4 was sent to a dead node.
    assert rt.stats.sent == 4
    assert rt.stats.delivered == 2
    assert rt.stats.dropped == {"crashed": 2}


class Stoppable(Behaviour):
    name = "ticker"

    def on_start(self) -> None:
        self.schedule(0.25, Tick(1))

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Tick)
        self.emit("tick", n=message.n)
        self.schedule(0.25, Tick(message.n + 1))

    def on_stop(self) -> None:
        self.emit("stopped")


def test_stop_ends_the_run_and_stops_every_node(runtime_kind: str, runtimes: Any) -> None:
    trace: list[Event] = []
    rt = runtimes(runtime_kind, trace=trace.append)
    rt.add_node("a", [Stoppable()])
    rt.add_node("b", [Stoppable()])
    rt.call_later(0.625, rt.stop)
    started = time.monotonic()
    rt.run(5.0)
    assert time.monotonic() - started < 2.0
    expected = [ev(0.25, "tick", "a", n=1), ev(0.25, "tick", "b", n=1),
                ev(0.5, "tick", "a", n=2), ev(0.5, "tick", "b", n=2),
                ev(0.625, "stopped", "a"), ev(0.625, "stopped", "b")]  # fmt: skip
    assert_trace(runtime_kind, trace, expected)
    assert rt.now() == pytest.approx(0.625, abs=0 if runtime_kind == "sim" else 0.2)
    assert not rt.is_alive("a") and not rt.is_alive("b")
    rt.run(6.0)  # a stopped runtime does nothing more
    rt.stop()  # idempotent
    assert len(trace) == len(expected)


class Router(Behaviour):
    """Sends three notes at start and one to c at 1/8 s."""

    name = "router"

    def on_start(self) -> None:
        self.send(("b", "nope"), Note("x"))  # b has no such service
        self.send(("zz", "rec"), Note("y"))  # no such node
        self.send(("c", "rec"), Note("z"))  # link cut below
        self.schedule(0.125, Tick(0))

    def on_receive(self, message: object) -> None:
        self.send(("c", "rec"), Note("healed"))


def test_unknown_service_unknown_node_and_cut_link_are_dropped_and_counted(
    runtime_kind: str, runtimes: Any
) -> None:
    trace: list[Event] = []
    rt = runtimes(runtime_kind, network=ConstantLatency(0.0625), trace=trace.append)
    rt.add_node("b", [Recorder()])
    rt.add_node("c", [Recorder()])
    rt.cut_link("a", "c")  # a link is a pair of ids: a need not exist yet
    rt.add_node("a", [Router()])
    rt.call_later(0.0625, lambda: rt.heal_link("c", "a"))
    rt.run(0.375)
    assert_trace(runtime_kind, trace, [ev(0.1875, "rec", "c", text="healed")])
    assert rt.stats.dropped == {"no-service": 1, "unknown-node": 1, "cut": 1}
    assert (rt.stats.sent, rt.stats.delivered) == (4, 1)


class Failing(Behaviour):
    name = "failing"

    def on_start(self) -> None:
        self.schedule(0.125, Tick(1))

    def on_receive(self, message: object) -> None:
        raise RuntimeError(f"boom on {message}")


def test_an_unhandled_failure_stops_the_run(runtime_kind: str, runtimes: Any) -> None:
    rt = runtimes(runtime_kind)
    rt.add_node("a", [Failing()])
    with pytest.raises(RuntimeError, match=r"boom on Tick\(n=1\)"):
        rt.run(1.0)


def test_timer_is_a_cancellable_handle(runtime_kind: str, runtimes: Any) -> None:
    handles: list[Timer] = []

    class Holder(Behaviour):
        name = "holder"

        def on_start(self) -> None:
            handles.append(self.schedule(10.0, Tick(1)))

    rt = runtimes(runtime_kind)
    rt.add_node("a", [Holder()])
    assert callable(handles[0].cancel)
    handles[0].cancel()
