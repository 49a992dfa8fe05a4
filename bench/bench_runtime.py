"""Runtime benchmark: SimRuntime against a hand-written simpy baseline; ZeroMQ round trip.

Workload (issue 2): N nodes x 3 services; every service sends one message per virtual
second to a random peer (random node, same service) through a Grid'5000-like latency
model (8 sites, jitter 10 %), for D virtual seconds. Full: 10,000 x 3 for 100 s;
quick: 1,000 x 3 for 20 s. Each phase runs in a fresh subprocess, so its peak RSS
(``ru_maxrss``) is its own; rates count delivered messages per wall second of the run
(set-up excluded, reported apart). A full run alternates ``PAIRS`` sim/baseline pairs and
quotes the median of the pairs' ratios (their runs' figures beside it). The plain-simpy
baseline is what one would write by hand: a ``Timeout`` with a callback per timer and per
message, same rngs, same latency model, same message objects. ZeroMQ round trip: two
processes on loopback, CURVE on, one ping at a time between two ``ThreadRuntime`` nodes
(actors and transport included).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import simpy

from dvms.geo import one_way_delays
from peeractor import Behaviour, message, stable_seed
from peeractor.network import SiteLatency

__all__ = ["main"]

SERVICES = ("s0", "s1", "s2")


@message("bench.runtime.Load")
class Load:
    """One benchmark message."""

    seq: int


@message("bench.runtime.Beat")
class Beat:
    """A service's once-a-second timer."""


BEAT = Beat()


def network(nodes: list[str]) -> SiteLatency:
    sites = ("grenoble", "lille", "luxembourg", "lyon", "nancy", "nantes", "rennes", "sophia")
    site_of = {n: sites[i % len(sites)] for i, n in enumerate(nodes)}
    return SiteLatency(site_of, one_way_delays(sites), jitter=0.1)


class Sender(Behaviour):
    """Every second: Load to (random node, same service); counts what it receives."""

    def __init__(self, name: str, nodes: list[str]) -> None:
        self.name = name  # type: ignore[misc]  # per-instance service name
        self.nodes = nodes
        self.received = 0
        self.seq = 0

    def on_start(self) -> None:
        self.schedule(self.rng.random(), BEAT)

    def on_receive(self, message: object) -> None:
        if message is BEAT:
            self.seq += 1
            nodes = self.nodes
            self.send((nodes[int(self.rng.random() * len(nodes))], self.name), Load(self.seq))
            self.schedule(1.0, BEAT)
        else:
            self.received += 1


def phase_sim(n_nodes: int, seconds: float, seed: int) -> dict[str, Any]:
    from peeractor.sim import SimRuntime

    started = time.perf_counter()
    nodes = [f"h{i:05d}" for i in range(n_nodes)]
    rt = SimRuntime(seed=seed, network=network(nodes))
    for node in nodes:
        rt.add_node(node, [Sender(s, nodes) for s in SERVICES])
    setup = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # the long-lived world: keep the collector off it during the run
    started, cpu = time.perf_counter(), time.process_time()
    rt.run(seconds)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"delivered": rt.stats.delivered, "wall_s": wall, "cpu_s": cpu, "setup_s": setup,
            "dropped": sum(rt.stats.dropped.values()),
            "events": next(rt.env._eid)}  # type: ignore[attr-defined]  # fmt: skip


def phase_baseline(n_nodes: int, seconds: float, seed: int) -> dict[str, Any]:
    """The same work with hand-written simpy callbacks (one Timeout per timer/message)."""
    started = time.perf_counter()
    nodes = [f"h{i:05d}" for i in range(n_nodes)]
    net = network(nodes)
    env = simpy.Environment()
    net_rng = random.Random(stable_seed(seed, "peeractor.network"))
    received: dict[tuple[str, str], int] = {}
    delivered = 0

    def service(node: str, name: str) -> None:
        rng = random.Random(stable_seed(seed, node, name))
        seq = 0
        key = (node, name)
        received[key] = 0

        def deliver(event: simpy.Event) -> None:
            nonlocal delivered
            delivered += 1
            dst: tuple[str, str] = event.value[0]  # type: ignore[index]
            received[dst] += 1

        def beat(_: simpy.Event) -> None:
            nonlocal seq
            seq += 1
            dst = nodes[int(rng.random() * len(nodes))]
            msg = Load(seq)
            delay = net.latency(node, dst, net_rng)
            if delay is not None:
                env.timeout(delay, ((dst, name), msg)).callbacks.append(deliver)
            env.timeout(1.0).callbacks.append(beat)

        env.timeout(rng.random()).callbacks.append(beat)

    for node in nodes:
        for name in SERVICES:
            service(node, name)
    setup = time.perf_counter() - started
    gc.collect()
    gc.freeze()
    started, cpu = time.perf_counter(), time.process_time()
    env.run(until=seconds)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    events = next(env._eid)  # type: ignore[attr-defined]  # events scheduled so far
    return {"delivered": delivered, "wall_s": wall, "cpu_s": cpu, "setup_s": setup,
            "events": events}  # fmt: skip


def run_phase(phase: str, n_nodes: int, seconds: float, seed: int) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its figures plus its own peak RSS."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_runtime", "--phase", phase, "--nodes", str(n_nodes),
         "--seconds", str(seconds), "--seed", str(seed)],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


PAIRS = 3
"""Sim/baseline pairs of a full run, alternated (sim first, then baseline first, ...): the
ratio quoted is the median of the pairs' ratios, so a burst of other load on the machine
moves one pair, not the figure."""


def _pair_ratio(sim: dict[str, Any], base: dict[str, Any], clock: str) -> float:
    return (sim["delivered"] / sim[clock]) / (base["delivered"] / base[clock])


def main(quick: bool = False) -> dict[str, Any]:
    n_nodes, seconds, seed = (1_000, 20.0, 1) if quick else (10_000, 100.0, 1)
    pairs = 1 if quick else PAIRS
    figures: dict[str, Any] = {"nodes": n_nodes, "services_per_node": len(SERVICES),
                               "virtual_s": seconds, "seed": seed, "pairs": pairs}  # fmt: skip
    sims: list[dict[str, Any]] = []
    bases: list[dict[str, Any]] = []
    for i in range(pairs):
        order = ("sim", "baseline") if i % 2 == 0 else ("baseline", "sim")
        done = {phase: run_phase(phase, n_nodes, seconds, seed) for phase in order}
        sims.append(done["sim"])
        bases.append(done["baseline"])
    wall_ratios = [_pair_ratio(a, b, "wall_s") for a, b in zip(sims, bases, strict=True)]
    cpu_ratios = [_pair_ratio(a, b, "cpu_s") for a, b in zip(sims, bases, strict=True)]
    middle = wall_ratios.index(statistics.median_low(wall_ratios))  # the median pair's runs
    sim, base = sims[middle], bases[middle]
    figures.update({
        "sim_delivered": sim["delivered"],
        "sim_msgs_per_wall_s": round(sim["delivered"] / sim["wall_s"]),
        "sim_run_wall_s": round(sim["wall_s"], 2),
        "sim_setup_wall_s": round(sim["setup_s"], 2),
        "sim_peak_rss_mib": round(max(r["peak_rss_mib"] for r in sims), 1),
        "baseline_delivered": base["delivered"],
        "baseline_msgs_per_wall_s": round(base["delivered"] / base["wall_s"]),
        "baseline_run_wall_s": round(base["wall_s"], 2),
        "baseline_peak_rss_mib": round(max(r["peak_rss_mib"] for r in bases), 1),
        "ratio_sim_to_baseline": round(statistics.median(wall_ratios), 3),
        # The same ratio by CPU time of each phase: less sensitive to other load on the host.
        "ratio_sim_to_baseline_cpu": round(statistics.median(cpu_ratios), 3),
        "pair_ratios_wall": [round(r, 3) for r in wall_ratios],
        "pair_ratios_cpu": [round(r, 3) for r in cpu_ratios],
        "sim_run_cpu_s": round(sim["cpu_s"], 2),
        "baseline_run_cpu_s": round(base["cpu_s"], 2),
        "targets": {"ratio_min": 0.6, "sim_peak_rss_mib_max": 150},
    })  # fmt: skip
    figures["targets_met"] = (
        figures["ratio_sim_to_baseline"] >= 0.6 and figures["sim_peak_rss_mib"] <= 150
    )
    figures.update(measure_zmq_rtt(samples=2_000 if quick else 20_000))
    return figures


# -- ZeroMQ round trip ---------------------------------------------------------------


@message("bench.runtime.Ping")
class Ping:
    seq: int
    sent_at: float
    reply_to: str


@message("bench.runtime.Pong")
class Pong:
    seq: int
    sent_at: float


class Echoer(Behaviour):
    name = "echo"

    def on_receive(self, message: object) -> None:
        assert isinstance(message, Ping)
        self.send((message.reply_to, "pinger"), Pong(message.seq, message.sent_at))


class Pinger(Behaviour):
    """One ping at a time; records round trips (runtime clock) and signals when done."""

    name = "pinger"

    def __init__(self, target: str, samples: int, done: threading.Event) -> None:
        self.target = target
        self.samples = samples
        self.done = done
        self.rtts: list[float] = []

    def ping(self, seq: int) -> None:
        self.send((self.target, "echo"), Ping(seq, self.now(), self.node))

    def on_receive(self, message: object) -> None:
        if isinstance(message, Pong):
            self.rtts.append(self.now() - message.sent_at)
            if len(self.rtts) >= self.samples:
                self.done.set()
                return
            self.ping(message.seq + 1)
        else:  # the start signal
            self.ping(0)


def phase_zmq_echo(keys_dir: str) -> None:
    """Child process: an echo node; prints its endpoint, reads the client's, serves."""
    from peeractor.keys import load_run_keys
    from peeractor.threaded import ThreadRuntime
    from peeractor.zmq_transport import ZmqTransport

    transport = ZmqTransport(load_run_keys(keys_dir))
    rt = ThreadRuntime(seed=0, transport=transport)
    rt.add_node("echo-node", [Echoer()])
    print(json.dumps({"endpoint": transport.endpoint}), flush=True)
    rt.add_route("ping-node", sys.stdin.readline().strip())
    sys.stdin.read()  # until the parent closes our stdin
    rt.stop()


def measure_zmq_rtt(samples: int, warmup: int = 200) -> dict[str, Any]:
    """Round trips between two processes on loopback, CURVE on, through ThreadRuntime."""
    import statistics
    import tempfile

    from peeractor.keys import generate_run_keys
    from peeractor.threaded import ThreadRuntime
    from peeractor.zmq_transport import ZmqTransport

    with tempfile.TemporaryDirectory() as keys_dir:
        keys = generate_run_keys(keys_dir)
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_runtime", "--phase", "zmq-echo",
             "--keys", keys_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        transport = ZmqTransport(keys)
        rt = ThreadRuntime(seed=0, transport=transport)
        try:
            echo_endpoint = json.loads(child.stdout.readline())["endpoint"]
            child.stdin.write(transport.endpoint + "\n")
            child.stdin.flush()
            rt.add_route("echo-node", echo_endpoint)
            done = threading.Event()
            pinger = Pinger("echo-node", samples + warmup, done)
            rt.add_node("ping-node", [pinger])
            rt.inject(("ping-node", "pinger"), BEAT)
            if not done.wait(timeout=120):
                raise RuntimeError(f"only {len(pinger.rtts)} round trips in 120 s")
        finally:
            rt.stop()
            child.stdin.close()
            child.wait(timeout=10)
    rtts = sorted(pinger.rtts[warmup:])
    q = statistics.quantiles(rtts, n=100)
    return {
        "zmq_rtt_samples": len(rtts),
        "zmq_rtt_p50_us": round(q[49] * 1e6, 1),
        "zmq_rtt_p99_us": round(q[98] * 1e6, 1),
        "zmq_rtt_mean_us": round(statistics.fmean(rtts) * 1e6, 1),
        "zmq_curve": True,
    }


def _phase_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=["sim", "baseline", "zmq-echo"], required=True)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keys", help="zmq-echo: the run's key directory")
    args = parser.parse_args(argv)
    if args.phase == "zmq-echo":
        phase_zmq_echo(args.keys)
        return
    fn = phase_sim if args.phase == "sim" else phase_baseline
    figures = fn(args.nodes, args.seconds, args.seed)
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


if __name__ == "__main__":
    _phase_main(sys.argv[1:])
