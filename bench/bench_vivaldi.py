"""Vivaldi service at scale: N nodes on Grid'5000's sites, SimRuntime + GeoNetwork.

Every node runs ``VivaldiService`` (default ``VivaldiServiceConfig``: 1 s rounds for 6 s,
then 2 s; one ping per round) with an ``LboOverlay``; bootstrap: 8 random peers each.
Figures: wall time and peak RSS of the run (measured in a fresh child process so earlier
benchmarks do not count), messages, and the accuracy reached at the end:

- ``median_error``: median relative RTT error, each node against 16 random others, truth
  from ``GeoNetwork.rtt`` (``*_intra_site`` / ``*_inter_site``: the pairs of one kind);
- ``lbo_*``: partitions grown through LBO from 200 random initiators, 6 steps each (see
  ``lbo_accuracy``).

``python -m bench.run vivaldi`` (10,000 nodes, 600 virtual s), ``--quick``: 1,000 nodes.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from dvms.geo import GRID5000_SITES, assign_blocks
from dvms.overlay import LboOverlay
from dvms.services.vivaldi import VivaldiService, VivaldiServiceConfig
from peeractor.sim import SimRuntime
from sim.network import GeoNetwork

BOOTSTRAP = 8
ERROR_SAMPLE = 16


@dataclass
class VivaldiWorld:
    """A runnable world: nodes, network, runtime, services and overlays."""

    nodes: list[str]
    network: GeoNetwork
    runtime: SimRuntime
    services: dict[str, VivaldiService]
    overlays: dict[str, LboOverlay]


def build_world(
    n: int, seed: int = 1, config: VivaldiServiceConfig | None = None, jitter: float = 0.05
) -> VivaldiWorld:
    """``n`` hosts in contiguous blocks over Grid'5000's nine sites, each with a service."""
    nodes = [f"h{i:05d}" for i in range(n)]
    network = GeoNetwork(assign_blocks(nodes, GRID5000_SITES), jitter=jitter)
    runtime = SimRuntime(seed=seed, network=network)
    rng = random.Random(seed)
    services: dict[str, VivaldiService] = {}
    overlays: dict[str, LboOverlay] = {}
    for i, node in enumerate(nodes):
        overlay = overlays[node] = LboOverlay(node)
        picks = rng.sample(range(n - 1), min(BOOTSTRAP, n - 1))
        bootstrap = [nodes[j if j < i else j + 1] for j in picks]
        services[node] = VivaldiService(overlay, bootstrap, config)
        runtime.add_node(node, [services[node]])
    return VivaldiWorld(nodes, network, runtime, services, overlays)


def rtt_errors(world: VivaldiWorld, seed: int = 2) -> dict[str, float]:
    """Median relative RTT error over sampled pairs (all, intra-site, inter-site)."""
    rng = random.Random(seed)
    net, nodes = world.network, world.nodes
    intra: list[float] = []
    inter: list[float] = []
    for node in nodes:
        mine = world.services[node].coordinate
        for _ in range(ERROR_SAMPLE):
            peer = nodes[rng.randrange(len(nodes))]
            if peer == node:
                continue
            truth = net.rtt(node, peer)
            error = abs(mine.distance_to(world.services[peer].coordinate) - truth) / truth
            (intra if net.same_site(node, peer) else inter).append(error)
    return {
        "median_error": statistics.median(intra + inter),
        "median_error_intra_site": statistics.median(intra),
        "median_error_inter_site": statistics.median(inter),
    }


def lbo_accuracy(
    world: VivaldiWorld, initiators: int = 200, steps: int = 6, seed: int = 3
) -> dict[str, float]:
    """Grow partitions through LBO as DVMS does and score every ``next_outside`` call.

    From a random live initiator, the last member asks its overlay for the next node
    (after ``observe(initiator, coordinate)``, as the DVMS protocol does), which joins; six
    steps per partition. Each answer is compared with the *true closest*: the live node
    outside the partition with the smallest true RTT (``GeoNetwork.rtt``) to the initiator.

    - ``lbo_exact``: the answer is that very node;
    - ``lbo_same_site``: the answer is on the true closest node's site;
    - ``lbo_crashed``: the answer is a crashed node (counted wrong in every figure);
    - ``lbo_within_tolerance``: its true RTT exceeds the best by at most
      ``tolerance_s = jitter × median RTT`` — the noise of one probe of typical length,
      below which RTT-based coordinates cannot rank two nodes. Within a site, hosts differ
      only by their access delays (a 50 µs spread), which is well below it.
    """
    rng = random.Random(seed)
    net, nodes = world.network, world.nodes
    alive = [n for n in nodes if world.runtime.is_alive(n)]
    sample = [net.rtt(a, b) for a, b in (rng.sample(alive, 2) for _ in range(2000))]
    tolerance = net.jitter * statistics.median(sample)
    exact = same = close = calls = dead = 0
    for _ in range(initiators):
        initiator = rng.choice(alive)
        members = [initiator]
        ranked = sorted((net.rtt(initiator, n), n) for n in alive if n != initiator)
        for _ in range(steps):
            current = world.overlays[members[-1]]
            current.observe(initiator, world.services[initiator].coordinate)
            got = current.next_outside(members, initiator)
            inside = set(members)
            best = next(n for _, n in ranked if n not in inside)
            calls += 1
            if got is None:
                break
            if not world.runtime.is_alive(got):  # a crashed node: a wrong answer
                dead += 1
                members.append(got)
                continue
            exact += got == best
            same += net.same_site(got, best)
            close += net.rtt(initiator, got) <= net.rtt(initiator, best) + tolerance
            members.append(got)
    return {
        "lbo_calls": calls,
        "lbo_exact": exact / calls,
        "lbo_same_site": same / calls,
        "lbo_within_tolerance": close / calls,
        "lbo_crashed": dead / calls,
        "lbo_tolerance_s": tolerance,
    }


def measure(n: int, duration: float, seed: int = 1, lbo: bool = True) -> dict[str, Any]:
    """Build and run the world in this process; figures as a dict."""
    started = time.perf_counter()
    world = build_world(n, seed)
    built = time.perf_counter()
    world.runtime.run(duration)
    ran = time.perf_counter()
    stats = world.runtime.stats
    figures: dict[str, Any] = {
        "nodes": n,
        "virtual_s": duration,
        "setup_wall_s": round(built - started, 2),
        "run_wall_s": round(ran - built, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "messages": stats.sent,
        "messages_per_wall_s": round(stats.sent / max(ran - built, 1e-9)),
        "messages_per_node_s": round(stats.sent / n / duration, 3),
    }
    figures.update({k: round(v, 4) for k, v in rtt_errors(world).items()})
    if lbo:
        figures.update({k: round(v, 6) for k, v in lbo_accuracy(world).items()})
    return figures


def main(quick: bool) -> dict[str, Any]:
    """Run ``measure`` in a child process (a clean peak RSS); return its figures."""
    n = 1000 if quick else 10_000
    code = (
        "import json, bench.bench_vivaldi as b; "
        f"print(json.dumps(b.measure({n}, 600.0)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv), indent=2))
