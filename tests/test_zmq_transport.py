"""ZeroMQ transport: real OS processes on loopback, CURVE keys, malformed frames."""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from peeractor import Behaviour, PeerActorError
from peeractor.codec import encode
from peeractor.keys import RunKeys, generate_run_keys, load_run_keys
from peeractor.threaded import ThreadRuntime
from peeractor.zmq_transport import ZmqTransport
from tests.zmq_node import Hello

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 15.0


class Child:
    """A ``tests.zmq_node`` process driven over stdin/stdout with bounded waits."""

    def __init__(self, node: str, keys: Path, impostor: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "tests.zmq_node", "--node", node, "--keys", str(keys)]
        if impostor is not None:
            cmd += ["--impostor", str(impostor)]
        self.node = node
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.endpoint: str = self.read()["endpoint"]

    def read(self) -> Any:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=WAIT_S):
                raise TimeoutError(f"{self.node}: no answer within {WAIT_S} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.node} exited with {self.proc.wait(5)}")
        return json.loads(line)

    def tell(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def ask(self, command: dict[str, Any]) -> Any:
        self.tell(command)
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.tell({"exit": True})
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def run_keys(tmp_path: Path) -> Path:
    generate_run_keys(tmp_path / "run")
    generate_run_keys(tmp_path / "other")
    return tmp_path


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.close()


def wait_for(child: Child, check: Any) -> Any:
    """Ask ``child`` for reports until ``check(report)`` holds or WAIT_S passes."""
    deadline = time.monotonic() + WAIT_S
    while True:
        report = child.ask({"report": True})
        if check(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def settled(node: str) -> Any:
    """Has ``node`` received all it should (and counted the refusals and bad frames)?"""
    first = node == "n1"

    def check(report: dict[str, Any]) -> bool:
        dropped = report["stats"]["dropped"]
        return (
            sum(report["received"].values()) >= 20 + first
            and (not first or dropped.get("malformed", 0) >= 4)
            and dropped.get("unauthorised", 0) >= 1
        )

    return check


def test_processes_exchange_messages_and_refuse_wrong_keys_and_bad_frames(
    run_keys: Path, children: list[Child]
) -> None:
    keys = run_keys / "run"
    honest = [Child(f"n{i}", keys) for i in (1, 2, 3)]
    children.extend(honest)
    evil = Child("evil", keys, impostor=run_keys / "other")
    children.append(evil)
    routes = {c.node: c.endpoint for c in children}
    for child in children:
        assert child.ask({"routes": routes}) == {"ok": True}
    others = {c.node: [o.node for o in honest if o is not c] for c in honest}
    for child in honest:
        child.ask({"send": {"to": others[child.node], "count": 10}})
    evil.ask({"send": {"to": [c.node for c in honest], "count": 10}})

    # Malformed frames from a process holding the right keys: dropped, counted.
    raw = ZmqTransport(load_run_keys(keys))
    raw_runtime = ThreadRuntime(seed=0, transport=raw)
    try:
        n1 = honest[0].endpoint
        assert raw.send_raw(n1, [b"n1", b"greeter", b"\xc1 not msgpack"])
        assert raw.send_raw(n1, [b"n1", b"greeter"])  # missing payload
        assert raw.send_raw(n1, [b"n1", b"greeter", msgpack.packb(["no.such.Tag", {}])])
        assert raw.send_raw(n1, [b"\xff\xfe", b"greeter", encode(Hello("raw", 0))])
        # ...and a valid one afterwards: the receiver is still alive.
        assert raw.send_raw(n1, [b"n1", b"greeter", encode(Hello("raw", 1))])
        reports = {c.node: wait_for(c, settled(c.node)) for c in honest}
    finally:
        raw_runtime.stop()
    for child in honest:
        report = reports[child.node]
        expected = {o: 10 for o in others[child.node]}
        if child.node == "n1":
            expected["raw"] = 1
        assert report["received"] == expected, child.node  # nothing from evil
        assert report["stats"]["dropped"].get("unauthorised", 0) >= 1
        assert report["stats"]["sent"] == 20
    assert reports["n1"]["stats"]["dropped"]["malformed"] == 4
    evil_report = evil.ask({"report": True})
    assert evil_report["stats"]["sent"] == 30
    for child in children:
        child.close()
        assert child.proc.returncode == 0, child.node


class Sink(Behaviour):
    name = "sink"


def test_a_dead_peer_never_blocks_the_sender(tmp_path: Path) -> None:
    keys = generate_run_keys(tmp_path)
    transport = ZmqTransport(keys, hwm=10)
    rt = ThreadRuntime(seed=0, transport=transport)
    try:
        rt.add_node("a", [Sink()])
        rt.add_route("ghost", "tcp://127.0.0.1:9")  # nothing listens there
        started = time.monotonic()
        for i in range(200):
            rt._send("a", ("ghost", "sink"), Hello("a", i))
        assert time.monotonic() - started < 2.0
        assert rt.stats.sent == 200
        assert rt.stats.dropped["queue-full"] >= 150
    finally:
        rt.stop()


def test_keys_are_generated_once_and_reloaded(tmp_path: Path) -> None:
    first = generate_run_keys(tmp_path)
    assert generate_run_keys(tmp_path) == first
    assert load_run_keys(tmp_path) == first
    assert generate_run_keys(tmp_path, overwrite=True) != first
    assert isinstance(first, RunKeys) and len(first.server_public) == 40
    assert (tmp_path / "client.key_secret").stat().st_mode & 0o077 == 0
    with pytest.raises(PeerActorError, match="missing key file"):
        load_run_keys(tmp_path / "nowhere")
