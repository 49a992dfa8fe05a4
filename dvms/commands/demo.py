"""``dvms demo``: a small simulated run of the PeerActor runtime (temporary default job).

200 nodes on eight Grid'5000-like sites probe a random node every second for 60 virtual
seconds; a few nodes crash half-way. Prints what the runtime did (messages, drops, RTTs
within and between sites, cost) and writes ``summary.json`` and ``events.jsonl`` to --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from dvms.errors import InputError
from peeractor import Behaviour, message
from peeractor.network import GRID5000_SITES, SiteLatency
from peeractor.sim import SimRuntime

__all__ = ["register", "run"]


@message("demo.Probe")
class Probe:
    """A probe; the target answers with an Echo carrying ``sent_at`` back."""

    seq: int
    sent_at: float
    origin: str


@message("demo.Echo")
class Echo:
    seq: int
    sent_at: float
    target: str


@message("demo.Round")
class Round:
    """The prober's timer."""


class Prober(Behaviour):
    """Every second, probes a random other node and records the round-trip time."""

    name = "prober"

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = nodes
        self.seq = 0

    def on_start(self) -> None:
        self.schedule(self.rng.random(), Round())

    def on_receive(self, message: object) -> None:
        if isinstance(message, Round):
            target = self.rng.choice(self.nodes)
            while target == self.node:
                target = self.rng.choice(self.nodes)
            self.seq += 1
            self.send((target, "prober"), Probe(self.seq, self.now(), self.node))
            self.schedule(1.0, Round())
        elif isinstance(message, Probe):
            self.send((message.origin, "prober"), Echo(message.seq, message.sent_at, self.node))
        elif isinstance(message, Echo):
            self.emit("rtt", peer=message.target, rtt_s=self.now() - message.sent_at)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a small simulated run of the runtime (nodes probing each other)",
        description="Simulate N nodes on Grid'5000-like sites probing each other; "
        "print messages, drops, RTTs and cost; write summary.json and events.jsonl.",
    )
    parser.add_argument("--nodes", type=int, default=200, help="number of nodes (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="virtual seconds (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument("--crash", type=float, default=0.05,
                        help="fraction of nodes crashed half-way (default 0.05)")  # fmt: skip
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.nodes < 2:
        raise InputError(f"--nodes must be >= 2, got {args.nodes}")
    if not args.seconds > 0:
        raise InputError(f"--seconds must be > 0, got {args.seconds}")
    if not 0.0 <= args.crash < 1.0:
        raise InputError(f"--crash must be in [0, 1), got {args.crash}")


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    cuts = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    median = statistics.median(values) * 1e3
    return f"{median:.2f} (p10 {cuts[0] * 1e3:.2f}, p90 {cuts[8] * 1e3:.2f})"


def run(args: argparse.Namespace) -> int:
    _check(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sites = sorted(GRID5000_SITES)
    nodes = [f"h{i:04d}" for i in range(args.nodes)]
    site_of = {node: sites[i % len(sites)] for i, node in enumerate(nodes)}
    events: list[dict[str, Any]] = []
    rt = SimRuntime(seed=args.seed, network=SiteLatency.geographic(site_of), trace=events.append)
    for node in nodes:
        rt.add_node(node, [Prober(nodes)])
    crashed = nodes[:: max(1, round(1 / args.crash))] if args.crash else []

    def crash_some() -> None:
        for node in crashed:
            rt.crash(node)
            events.append({"t": rt.now(), "type": "crash", "node": node})

    rt.call_later(args.seconds / 2, crash_some)
    started = time.perf_counter()
    rt.run(args.seconds)
    wall = time.perf_counter() - started

    stats = rt.stats
    rtts = [e for e in events if e["type"] == "rtt"]
    intra = [e["rtt_s"] for e in rtts if site_of[e["node"]] == site_of[e["peer"]]]
    inter = [e["rtt_s"] for e in rtts if site_of[e["node"]] != site_of[e["peer"]]]
    summary = {
        "schema": "dvms.demo/1",
        "seed": args.seed,
        "nodes": args.nodes,
        "sites": sites,
        "duration_s": args.seconds,
        "crashed": len(crashed),
        "messages_sent": stats.sent,
        "messages_delivered": stats.delivered,
        "dropped": dict(sorted(stats.dropped.items())),
        "messages": dict(sorted(stats.by_type.items())),
        "rtt_samples": len(rtts),
        "rtt_intra_site_median_ms": round(statistics.median(intra) * 1e3, 3) if intra else None,
        "rtt_inter_site_median_ms": round(statistics.median(inter) * 1e3, 3) if inter else None,
        "wall_s": round(wall, 3),
        "messages_per_wall_s": round(stats.delivered / wall) if wall > 0 else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out / "events.jsonl").open("w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")

    print(f"dvms demo: {args.nodes} nodes on {len(sites)} Grid'5000-like sites, "
          f"{args.seconds:g} virtual s, seed {args.seed}")  # fmt: skip
    print(f"  messages: {stats.sent} sent, {stats.delivered} delivered, dropped "
          f"{dict(sorted(stats.dropped.items())) or 'none'}")  # fmt: skip
    print(f"  by type: {dict(sorted(stats.by_type.items()))}")
    print(f"  crashed {len(crashed)} node(s) at t={args.seconds / 2:g} s: "
          f"probes to them were dropped and counted")  # fmt: skip
    print(f"  RTT ms, intra-site: {_ms(intra)}  ({len(intra)} samples)")
    print(f"  RTT ms, inter-site: {_ms(inter)}  ({len(inter)} samples)")
    print(f"  cost: {wall:.2f} s wall, {summary['messages_per_wall_s']} messages per wall s, "
          f"peak RSS {summary['peak_rss_mib']} MiB")  # fmt: skip
    print(f"  wrote {out / 'summary.json'} and {out / 'events.jsonl'} ({len(events)} events)")
    return 0
