"""A real receiving node on loopback ZeroMQ survives hostile frames and keeps delivering.

The receiver is a ``ThreadRuntime`` node in its own process (``receiver`` below). An
attacker holding the run's keys sends it, on its own connection: an ill-typed frame for
every registered message type, nesting bombs, oversize frames (above the codec's limit,
and one above ZeroMQ's cap), a message whose handler raises, and a 10,000-frame burst.
Meanwhile a legitimate sender's messages must all be delivered; each bad frame is counted
under its cause; the receiver's RSS stays within ``RSS_BOUND_MIB`` of its start.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from peeractor import Behaviour, message
from peeractor.codec import DEFAULT_LIMITS, EXT_MESSAGE, encode
from peeractor.fieldtypes import field_types
from peeractor.keys import generate_run_keys, load_run_keys
from peeractor.message import registered_tags
from peeractor.threaded import ThreadRuntime
from peeractor.zmq_transport import ZmqTransport

ROOT = Path(__file__).resolve().parent.parent
RSS_BOUND_MIB = 32.0
"""Peak RSS of the receiver above its RSS before the attack (the oversize frames it
reads are 2 MiB each; the 40 MiB one is refused by ZeroMQ unread)."""
INBOX_LIMIT = 200
WAIT_S = 30.0


@message("test.hostile.Hello")
class Hello:
    origin: str
    seq: int


@message("test.hostile.Go")
class Go:
    count: int
    start: int


MESSAGE_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / "dvms").rglob("*.py") if "@message(" in path.read_text(encoding="utf-8"))
for _name in MESSAGE_MODULES:
    importlib.import_module(_name)
TAGS = sorted(tag for tag, cls in registered_tags().items()
              if cls.__module__ in {*MESSAGE_MODULES, __name__})
"""The message types of the project (and of this test), registered in both processes."""


class Sink(Behaviour):
    """Counts Hellos by origin; raises on a negative seq; seq -2 stalls the node 1 s."""

    name = "sink"

    def __init__(self) -> None:
        self.received: dict[str, int] = {}

    def on_receive(self, message: object) -> None:
        if isinstance(message, Hello):
            if message.seq == -2:
                time.sleep(1.0)  # a test-only stall, to fill the inbox
                return
            if message.seq < 0:
                raise ValueError(f"negative seq {message.seq}")
            self.received[message.origin] = self.received.get(message.origin, 0) + 1


class Sender(Behaviour):
    name = "sender"

    def on_receive(self, message: object) -> None:
        if isinstance(message, Go):
            for i in range(message.count):
                self.send(("rx", "sink"), Hello("tx", message.start + i))


def rss_mib() -> tuple[float, float]:
    """(current, peak) RSS of this process in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def receiver() -> None:
    """Child: node ``rx`` (service ``sink``); JSON commands on stdin, answers on stdout."""
    keys = load_run_keys(sys.argv[1])
    transport = ZmqTransport(keys)
    runtime = ThreadRuntime(seed=1, transport=transport, inbox_limit=INBOX_LIMIT)
    sink = Sink()
    runtime.add_node("rx", [sink])
    print(json.dumps({"endpoint": transport.endpoint}), flush=True)
    for line in sys.stdin:
        if json.loads(line).get("exit"):
            break
        rss, peak = rss_mib()
        print(json.dumps({"received": dict(sink.received), "stats": runtime.stats.as_dict(),
                          "alive": runtime.is_alive("rx"), "rss": rss, "peak": peak}),
              flush=True)
    runtime.stop()


class Receiver:
    def __init__(self, keys: Path) -> None:
        code = "import sys; from tests.test_transport_hostile import receiver; receiver()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(keys)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.endpoint: str = self._read()["endpoint"]

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=WAIT_S), "the receiver did not answer"
        line = self.proc.stdout.readline()
        assert line, f"the receiver died (exit {self.proc.wait(5)})"
        return json.loads(line)

    def report(self) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write('{"report": true}\n')
        self.proc.stdin.flush()
        return self._read()

    def wait_for(self, check: Any) -> Any:
        """The first report that passes ``check``, or the last one after 3 × ``WAIT_S``
        (a loaded machine: the burst and the oversize frames take a while to drain)."""
        deadline = time.monotonic() + 3 * WAIT_S
        while True:
            report = self.report()
            if check(report) or time.monotonic() > deadline:
                return report
            time.sleep(0.1)


@pytest.fixture
def rx(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    keys = tmp_path / "keys"
    generate_run_keys(keys)
    r = Receiver(keys)
    yield r, keys
    if r.proc.poll() is None:
        assert r.proc.stdin is not None
        r.proc.stdin.write('{"exit": true}\n')
        r.proc.stdin.close()
        r.proc.wait(15)


def ill_typed(tag: str) -> tuple[bytes, str]:
    """A frame of ``tag`` with one field of the wrong type (or an extra field), its cause."""
    fields: dict[str, Any] = {name: None for name, _ in field_types(registered_tags()[tag])}
    typed = [name for name, tp in field_types(registered_tags()[tag])
             if tp is not Any and "dict" not in str(tp) and "Any" not in str(tp)]
    if typed:
        valid = {"bool": True, "int": 1, "float": 1.0, "str": "s"}
        for name, tp in field_types(registered_tags()[tag]):
            fields[name] = valid.get(getattr(tp, "__name__", ""))
        fields[typed[0]] = {"bogus": [1]}  # a map where no typed field takes one
        return msgpack.packb([tag, fields]), "type"
    fields["bogus"] = 1
    return msgpack.packb([tag, fields]), "fields"


def bombs() -> list[bytes]:
    chain = msgpack.packb(None)
    for _ in range(400):
        chain = msgpack.packb(["test.hostile.Hello", {"origin": msgpack.ExtType(EXT_MESSAGE, chain),
                                                      "seq": 1}])
    deep = b"\x92\xb2test.hostile.Hello\x82\xa6origin" + b"\x91" * 100_000 + b"\xc0\xa3seq\x01"
    return [chain, deep]


class Attacker:
    """A transport holding the run's keys, sending raw frames on its own connection."""

    def __init__(self, keys: Path, endpoint: str) -> None:
        self.transport = ZmqTransport(load_run_keys(keys), hwm=100_000)
        self.runtime = ThreadRuntime(seed=2, transport=self.transport)
        self.endpoint = endpoint

    def send(self, payload: bytes, service: bytes = b"sink") -> None:
        deadline = time.monotonic() + WAIT_S
        while not self.transport.send_raw(self.endpoint, [b"rx", service, payload]):
            assert time.monotonic() < deadline, "attacker queue stayed full"
            time.sleep(0.001)

    def close(self) -> None:
        self.runtime.stop()


@pytest.mark.slow
def test_receiver_survives_hostile_frames_and_keeps_delivering(
    rx: tuple[Receiver, Path],
) -> None:
    receiver_proc, keys = rx
    before = receiver_proc.report()
    tx_rt = ThreadRuntime(seed=3, transport=ZmqTransport(load_run_keys(keys)))
    tx_rt.add_node("tx", [Sender()])
    tx_rt.add_route("rx", receiver_proc.endpoint)
    attacker = Attacker(keys, receiver_proc.endpoint)
    sent = 0

    def legit(n: int = 50) -> None:
        nonlocal sent
        tx_rt.inject(("tx", "sender"), Go(n, sent))
        sent += n

    expected: dict[tuple[str, str, str], int] = {}
    try:
        legit()
        for tag in TAGS:  # every registered message type
            frame, cause = ill_typed(tag)
            attacker.send(frame)
            expected[("sink", tag, cause)] = 1
        legit()
        for bomb in bombs():
            attacker.send(bomb)
        expected[("sink", "test.hostile.Hello", "depth")] = 2
        legit()
        big = msgpack.packb(["test.hostile.Hello", {"origin": "x" * (2 << 20), "seq": 1}])
        for _ in range(3):
            attacker.send(big)
        expected[("sink", "test.hostile.Hello", "oversize")] = 3
        legit()
        attacker.send(encode(Hello("attacker", -1)))  # its handler raises
        expected[("sink", "test.hostile.Hello", "handler")] = 1
        legit()
        rng = random.Random(14)
        for _ in range(10_000):  # the burst: random bytes, not one a valid frame
            attacker.send(b"\xc1" + rng.randbytes(rng.randint(0, 40)))
        legit()
        report = receiver_proc.wait_for(
            lambda r: r["received"].get("tx", 0) >= sent
            and r["stats"]["dropped"].get("malformed", 0) >= 10_000 + len(TAGS) + 2)
        huge = msgpack.packb(["test.hostile.Hello", {"origin": "x" * (40 << 20), "seq": 1}])
        attacker.send(huge)  # above ZeroMQ's cap: the connection is dropped, unread
        legit()
        after = receiver_proc.wait_for(
            lambda r: r["received"].get("tx", 0) >= sent
            and r["stats"]["dropped"].get("disconnected", 0) >= 1)
    finally:
        attacker.close()
        tx_rt.stop()
    assert report["alive"] and after["alive"]
    assert after["received"] == {"tx": sent}  # every legitimate message, nothing else
    rejected = {(r["service"], r["type"], r["cause"]): r["n"] for r in report["stats"]["rejected"]}
    burst = rejected.pop(("sink", "?", "malformed"))
    assert burst == 10_000
    assert rejected == expected
    dropped = report["stats"]["dropped"]
    assert dropped["malformed"] == 10_000 + len(TAGS) + 2
    assert dropped["oversize"] == 3
    assert after["stats"]["dropped"]["disconnected"] >= 1
    print(f"receiver RSS: before {before['rss']:.1f} MiB, peak {after['peak']:.1f} MiB, "
          f"after {after['rss']:.1f} MiB")
    assert after["peak"] - before["rss"] <= RSS_BOUND_MIB, (before, after)
    assert DEFAULT_LIMITS.max_frame_bytes < len(big) < 16 * DEFAULT_LIMITS.max_frame_bytes
    assert os.getpid() != receiver_proc.proc.pid


@pytest.mark.slow
def test_full_inbox_drops_the_newest_and_counts_them(rx: tuple[Receiver, Path]) -> None:
    receiver_proc, keys = rx
    attacker = Attacker(keys, receiver_proc.endpoint)
    try:
        attacker.send(encode(Hello("a", -2)))  # stalls the node for 1 s
        time.sleep(0.2)
        for i in range(2000):
            attacker.send(encode(Hello("a", i)))
        report = receiver_proc.wait_for(
            lambda r: r["received"].get("a", 0) + r["stats"]["dropped"].get("inbox-full", 0)
            >= 2000)
    finally:
        attacker.close()
    full = report["stats"]["dropped"]["inbox-full"]
    assert report["alive"] and full > 0
    assert report["received"]["a"] + full == 2000
    assert report["received"]["a"] >= INBOX_LIMIT - 1
    rejected = {(r["service"], r["type"], r["cause"]): r["n"] for r in report["stats"]["rejected"]}
    assert rejected == {("sink", "test.hostile.Hello", "inbox-full"): full}


def test_sim_runtime_stops_on_a_raising_handler_unless_asked_to_drop() -> None:
    from peeractor.sim import SimRuntime

    class Poke(Behaviour):
        name = "poke"

        def on_start(self) -> None:
            self.send(("rx", "sink"), Hello("p", -1))
            self.send(("rx", "sink"), Hello("p", 1))

    events: list[dict[str, Any]] = []
    stopping = SimRuntime(seed=1)
    stopping.add_node("rx", [Sink()])
    stopping.add_node("p", [Poke()])
    with pytest.raises(ValueError, match="negative seq -1"):
        stopping.run(until=1.0)
    dropping = SimRuntime(seed=1, trace=events.append, handler_errors="drop")
    sink = Sink()
    dropping.add_node("rx", [sink])
    dropping.add_node("p", [Poke()])
    dropping.run(until=1.0)
    assert sink.received == {"p": 1}
    assert dropping.stats.rejected == {("sink", "test.hostile.Hello", "handler"): 1}
    assert [e["type"] for e in events] == ["runtime.rejected"]
    assert events[0]["cause"] == "handler" and events[0]["node"] == "rx"
    assert "negative seq" in events[0]["error"]


def test_thread_runtime_traces_rejections_at_powers_of_two_and_stops_on_local_failures() -> None:
    events: list[dict[str, Any]] = []
    runtime = ThreadRuntime(seed=1, trace=events.append)
    sink = Sink()
    runtime.add_node("rx", [sink])
    try:
        for _ in range(5):
            runtime.deliver_remote("rx", "sink", Hello("net", -1))  # from the network
        runtime.deliver_remote("rx", "sink", Hello("net", 1))
        deadline = time.monotonic() + WAIT_S
        while sink.received.get("net", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runtime.is_alive("rx") and sink.received == {"net": 1}
        assert runtime.stats.rejected == {("sink", "test.hostile.Hello", "handler"): 5}
        rejected = [e for e in events if e["type"] == "runtime.rejected"]
        assert [e["n"] for e in rejected] == [1, 2, 4]
        assert rejected[0]["node"] == "rx" and "negative seq" in rejected[0]["error"]
        runtime.inject(("rx", "sink"), Hello("local", -1))  # a local message: a bug here
        with pytest.raises(ValueError, match="negative seq"):
            runtime.run(until=WAIT_S)
        assert not runtime.is_alive("rx")
    finally:
        runtime.stop()
