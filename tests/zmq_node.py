"""A node in its own OS process, for the multi-process ZeroMQ tests and benchmark.

    python -m tests.zmq_node --node n1 --keys DIR [--impostor OTHER_KEYS_DIR]

Prints ``{"endpoint": ...}`` once listening, then obeys JSON lines on stdin:
``{"routes": {node: endpoint}}``, ``{"send": {"to": [node...], "count": n}}``,
``{"report": true}`` (prints ``{"received": {origin: n}, "stats": {...}}``),
``{"exit": true}``. ``--impostor`` keeps the run's public server key (public knowledge)
but signs in with the client keys of another run: it must be refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace

from peeractor import Behaviour, message
from peeractor.keys import load_run_keys
from peeractor.threaded import ThreadRuntime
from peeractor.zmq_transport import ZmqTransport


@message("test.zmq.Hello")
class Hello:
    origin: str
    seq: int


@message("test.zmq.Go")
class Go:
    to: tuple[str, ...]
    count: int


class Greeter(Behaviour):
    """Sends ``count`` Hellos to each node of a Go; counts Hellos by origin."""

    name = "greeter"

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    def on_receive(self, message: object) -> None:
        if isinstance(message, Go):
            for seq in range(message.count):
                for node in message.to:
                    self.send((node, "greeter"), Hello(self.node, seq))
        elif isinstance(message, Hello):
            self.received[message.origin] += 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--keys", required=True)
    parser.add_argument("--impostor", help="another run's key directory (client keys)")
    args = parser.parse_args(argv)
    keys = load_run_keys(args.keys)
    if args.impostor:
        other = load_run_keys(args.impostor)
        keys = replace(keys, client_public=other.client_public, client_secret=other.client_secret)
    transport = ZmqTransport(keys)
    runtime = ThreadRuntime(seed=1, transport=transport)
    greeter = Greeter()
    runtime.add_node(args.node, [greeter])
    print(json.dumps({"endpoint": transport.endpoint}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "routes" in command:
            for node, endpoint in command["routes"].items():
                runtime.add_route(node, endpoint)
            print(json.dumps({"ok": True}), flush=True)
        elif "send" in command:
            go = Go(tuple(command["send"]["to"]), command["send"]["count"])
            runtime.inject((args.node, "greeter"), go)
            print(json.dumps({"ok": True}), flush=True)
        elif "report" in command:
            report = {"received": dict(greeter.received), "stats": runtime.stats.as_dict()}
            print(json.dumps(report), flush=True)
        elif "exit" in command:
            break
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
