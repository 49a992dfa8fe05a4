"""Soak test of the real path: ≥ 16 ``dvms agent`` processes on loopback for ≥ 10 minutes.

    python -m bench.bench_soak --minutes 10 [--agents 16] [--seed 1]
    python -m bench.run soak            # the same, 10 minutes (``--quick``: 1 minute)

Each agent is a separate ``python -m dvms agent CONFIG.toml`` process over libvirt's test
driver (``test:///<file>.xml``: the node's domains, each busy at 100 % of a core, as the
test driver reports its CPU time), DVMS with the LBO overlay and Vivaldi over ZeroMQ/CURVE,
1 % of the messages each agent sends lost (``PEERACTOR_INJECT_LOSS=0.01``). During the run:

- **load changes**: every ``LOAD_PERIOD_S`` one random agent is restarted cleanly (SIGTERM)
  with a new number of domains (0..3 at 100 % each on a 250 % host: 3 is an overload), as the
  test driver cannot change a running domain's load from outside its process;
- **kills**: every ``KILL_PERIOD_S`` one random agent is SIGKILLed and restarted after
  ``DOWN_S`` (a crash: no summary, a truncated trace);
- every ``SAMPLE_S`` each agent's RSS is read from ``/proc`` (slopes over the second half of
  each agent's longest run).

Reported (``bench/results/soak.json``): messages/s (delivered, from every summary), the
partitions started (``isp.start``) and dissolved, stuck partitions (started, not dissolved,
while their agent kept running ``STUCK_S`` longer), VMs lost (the inventory against what the
last agents hold), the rejected and dropped counts, and each agent's RSS over time with its
slope over its longest run (flat: |slope| small). The test driver cannot migrate, so every
plan's migrations fail (``migration.fail``) and partitions dissolve on that; this soaks the
protocol, overlay, Vivaldi, transport and agent lifecycle, not libvirt migrations.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CAPACITY_CPU = 250.0
MAX_VMS = 3
LOAD_PERIOD_S = 20.0
KILL_PERIOD_S = 30.0
DOWN_S = 3.0
SAMPLE_S = 10.0
STUCK_S = 120.0
SETTLE_S = 20.0
LOSS = 0.01


def agent_config(node: str, nodes: dict[str, int], key_dir: Path, out_dir: Path,
                 libvirt_uri: str, seed: int) -> str:
    """One agent's TOML config (the one place that knows the agent format)."""
    from deploy.agent_config import AgentConfig, PeerConfig, render_agent_config
    from dvms.hypervisor import HostCapacity
    from dvms.node import parse_node_tables

    peers = tuple(PeerConfig(n, "lab", f"tcp://127.0.0.1:{port}", "test:///default")
                  for n, port in sorted(nodes.items()) if n != node)
    tables = parse_node_tables({
        "scheduler": {"name": "dvms", "cost": "measured"},
        "dvms": {"min_partition_size": 2, "partition_timeout_s": 10.0},
        "vivaldi": {"period_s": 1.0, "fast_period_s": 0.5, "fast_rounds": 20},
        "monitor": {"mode": "poll", "period_s": 1.0},
    })
    cfg = AgentConfig(node=node, site="lab", listen=f"tcp://127.0.0.1:{nodes[node]}",
                      libvirt_uri=libvirt_uri, key_dir=key_dir, output_dir=out_dir, seed=seed,
                      capacity=HostCapacity(cpu=CAPACITY_CPU, memory_mib=8192), peers=peers,
                      tables=tables)
    return render_agent_config(cfg)


def node_xml(node: str, vms: int, generation: int) -> str:
    """A test-driver node with ``vms`` domains (names unique over the whole run)."""
    domains = "".join(
        f'<domain type="test"><name>{node}-g{generation}-vm{i}</name><memory>262144</memory>'
        f"<vcpu>1</vcpu><os><type>hvm</type></os></domain>" for i in range(vms))
    return (f"<node><cpu><mhz>2000</mhz><model>x86_64</model><active>4</active><nodes>1</nodes>"
            f"<sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>"
            f"<memory>8388608</memory>{domains}</node>\n")


@dataclass
class Run:
    """One incarnation of an agent."""

    node: str
    index: int
    out: Path
    vms: int
    proc: subprocess.Popen[bytes]
    started: float
    ended: float | None = None
    how: str = ""
    rss: list[tuple[float, float]] = field(default_factory=list)


class Soak:
    def __init__(self, agents: int, seed: int, work: Path) -> None:
        from peeractor.keys import generate_run_keys

        self.rng = random.Random(seed)
        self.seed = seed
        self.work = work
        self.keys = work / "keys"
        generate_run_keys(self.keys)
        self.nodes = {f"a{i:02d}": _free_port() for i in range(agents)}
        self.runs: list[Run] = []
        self.live: dict[str, Run] = {}
        self.t0 = time.monotonic()
        self.env = {**os.environ, "PEERACTOR_INJECT_LOSS": str(LOSS),
                    "PYTHONPATH": str(ROOT)}

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self, node: str) -> None:
        index = sum(1 for r in self.runs if r.node == node)
        vms = self.rng.randint(0, MAX_VMS)
        out = self.work / "agents" / node / f"run{index:02d}"
        out.mkdir(parents=True)
        xml = out / "node.xml"
        xml.write_text(node_xml(node, vms, index))
        config = out / "agent.toml"
        config.write_text(agent_config(node, self.nodes, self.keys, out,
                                       f"test://{xml}", self.seed + index))
        log = (out / "agent.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "dvms", "agent", str(config)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env=self.env)
        run = Run(node, index, out, vms, proc, self.now())
        self.runs.append(run)
        self.live[node] = run

    def stop(self, node: str, how: str) -> None:
        run = self.live.pop(node)
        if how == "kill":
            run.proc.kill()
        else:
            run.proc.send_signal(signal.SIGTERM)
        try:
            run.proc.wait(60)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait(10)
            how = f"{how}-timeout"
        run.ended, run.how = self.now(), how

    def sample(self) -> None:
        for run in self.live.values():
            rss = _rss_mib(run.proc.pid)
            if rss is not None:
                run.rss.append((round(self.now(), 1), rss))

    def soak(self, seconds: float) -> dict[str, Any]:
        for node in self.nodes:
            self.start(node)
        next_load, next_kill, next_sample = LOAD_PERIOD_S, KILL_PERIOD_S, 0.0
        down: list[tuple[float, str]] = []
        changes = Counter[str]()
        while self.now() < seconds:
            t = self.now()
            for when, node in [d for d in down if d[0] <= t]:
                down.remove((when, node))
                self.start(node)
            for node, run in list(self.live.items()):
                if run.proc.poll() is not None:  # died on its own: a finding
                    self.live.pop(node)
                    run.ended, run.how = t, f"exited-{run.proc.returncode}"
                    changes["unexpected-exit"] += 1
                    self.start(node)
            if t >= next_sample:
                self.sample()
                next_sample += SAMPLE_S
            if t >= next_load and self.live:
                node = self.rng.choice(sorted(self.live))
                self.stop(node, "load-change")
                self.start(node)
                changes["load-change"] += 1
                next_load += LOAD_PERIOD_S
            if t >= next_kill and self.live:
                node = self.rng.choice(sorted(self.live))
                self.stop(node, "kill")
                down.append((self.now() + DOWN_S, node))
                changes["kill"] += 1
                next_kill += KILL_PERIOD_S
            time.sleep(0.5)
        for _, node in down:
            self.start(node)
        time.sleep(2.0)
        self.sample()
        for node in list(self.live):
            self.stop(node, "end")
        return self.report(seconds, changes)

    def report(self, seconds: float, changes: Counter[str]) -> dict[str, Any]:
        delivered = sent = 0
        summary_s = 0.0
        dropped: Counter[str] = Counter()
        rejected: Counter[str] = Counter()
        per_run_rate = []
        held_vms = 0
        for run in self.runs:
            path = run.out / "summary.json"
            if not path.exists():
                continue
            s = json.loads(path.read_text())
            rt = s["runtime"]
            delivered += rt["delivered"]
            sent += rt["sent"]
            summary_s += s["duration_s"]
            dropped.update(rt["dropped"])
            for r in rt.get("rejected", []):
                rejected[f"{r['service']}/{r['type']}/{r['cause']}"] += r["n"]
            if s["duration_s"] > 30:
                per_run_rate.append(rt["delivered"] / s["duration_s"])
            if run.how == "end":
                held_vms += s["vms"]
        partitions = _partitions(self.runs)
        final = [r for r in self.runs if r.how == "end"]
        inventory = sum(r.vms for r in final)
        mean_rate = delivered / summary_s if summary_s else 0.0
        return {
            "agents": len(self.nodes),
            "minutes": round(seconds / 60, 2),
            "seed": self.seed,
            "loss_injected": LOSS,
            "capacity_cpu": CAPACITY_CPU,
            "incarnations": len(self.runs),
            "changes": dict(changes),
            "messages_delivered": delivered,
            "messages_sent": sent,
            "messages_per_s": round(mean_rate * len(self.nodes), 1),
            "messages_per_s_per_agent_min": round(min(per_run_rate), 1) if per_run_rate else None,
            "messages_per_s_per_agent_mean": round(mean_rate, 1),
            "dropped": dict(sorted(dropped.items())),
            "lost_fraction": round(dropped["lost"] / sent, 4) if sent else None,
            "rejected": dict(sorted(rejected.items())),
            **partitions,
            "vms_inventory": inventory,
            "vms_held_at_end": held_vms,
            "vms_lost": inventory - held_vms,
            "rss_mib": _rss_report(self.runs),
        }


def _partitions(runs: list[Run]) -> dict[str, Any]:
    started = dissolved = stuck = 0
    fails: Counter[str] = Counter()
    migrations: Counter[str] = Counter()
    for run in runs:
        events = _events(run.out / "events.jsonl.gz")
        end = events[-1]["t"] if events else 0.0
        open_isps: dict[str, float] = {}
        for e in events:
            kind = e.get("type")
            if kind == "isp.start":
                started += 1
                open_isps[str(e.get("partition"))] = e["t"]
            elif kind == "partition.dissolve":
                if open_isps.pop(str(e.get("partition")), None) is not None:
                    dissolved += 1
            elif kind == "partition.fail":
                fails[str(e.get("reason"))] += 1
            elif kind in ("migration.start", "migration.end", "migration.fail"):
                migrations[kind] += 1
        stuck += sum(1 for t in open_isps.values() if end - t > STUCK_S)
    return {"partitions_started": started, "partitions_dissolved": dissolved,
            "partitions_stuck": stuck, "partition_fail_reasons": dict(sorted(fails.items())),
            "migrations": dict(sorted(migrations.items()))}


def _events(path: Path) -> list[dict[str, Any]]:
    """The events of a trace, tolerating the truncated end of a killed agent's."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    break
                if obj.get("type") != "header" and isinstance(obj.get("t"), int | float):
                    out.append(obj)
    except (EOFError, OSError):
        pass
    return out


def _rss_report(runs: list[Run]) -> dict[str, Any]:
    """Per agent: its samples ``[t, MiB, run]`` (t from the soak's start) and, over the second
    half of its longest run (and past ``SETTLE_S``: imports, the planner's first solve),
    first/last/max RSS and the slope (MiB per minute)."""
    by_node: dict[str, list[Run]] = {}
    for run in runs:
        by_node.setdefault(run.node, []).append(run)
    out: dict[str, Any] = {}
    for node, node_runs in sorted(by_node.items()):
        longest = max(node_runs, key=lambda r: (r.ended or 0) - r.started)
        length = (longest.ended or 0) - longest.started
        settled = [(t, m) for t, m in longest.rss
                   if t - longest.started >= max(SETTLE_S, length / 2)]
        out[node] = {
            "samples": [[t, round(m, 1), r.index] for r in node_runs for t, m in r.rss],
            "longest_run_s": round((longest.ended or 0) - longest.started, 1),
            "settled_first_last_max_mib": [round(settled[0][1], 1), round(settled[-1][1], 1),
                                           round(max(m for _, m in settled), 1)]
            if settled else None,
            "slope_mib_per_min": _slope(settled),
        }
    slopes = [v["slope_mib_per_min"] for v in out.values() if v["slope_mib_per_min"] is not None]
    out["max_abs_slope_mib_per_min"] = max((abs(s) for s in slopes), default=None)
    return out


def _slope(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mm = sum(m for _, m in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return round(sum((t - mt) * (m - mm) for t, m in points) / var * 60.0, 3)


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _provenance(argv: list[str]) -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join([Path(sys.executable).name, *argv]),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "kernel": platform.release(),
                    "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]},
    }


def soak(minutes: float, agents: int = 16, seed: int = 1,
         argv: list[str] | None = None, keep: Path | None = None) -> dict[str, Any]:
    """Run the soak (see the module doc) and return its figures; ``keep``: leave the agents'
    configs, logs, traces and summaries there (else a temporary directory)."""
    started = time.time()
    provenance = _provenance(argv or ["-m", "bench.bench_soak", "--minutes", str(minutes)])
    with tempfile.TemporaryDirectory(prefix="dvms-soak-") as tmp:
        work = Path(tmp) if keep is None else keep
        figures = Soak(agents, seed, work).soak(minutes * 60.0)
    figures["wall_s"] = round(time.time() - started, 1)
    provenance["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures.update(provenance)
    return figures


def main(quick: bool = False) -> dict[str, Any]:
    """``bench.run`` entry: 10 minutes (``quick``: 1 minute), 16 agents."""
    return soak(1.0 if quick else 10.0, argv=["-m", "bench.run", "soak"]
                + (["--quick"] if quick else []))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_soak")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (default 10)")
    parser.add_argument("--agents", type=int, default=16, help="agent processes (default 16)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--keep", type=Path, help="keep the agents' files in this (new) directory")
    args = parser.parse_args()
    if args.agents < 2 or not args.minutes > 0:
        parser.error("--agents must be >= 2 and --minutes > 0")
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep}: already exists")
    result = soak(args.minutes, args.agents, args.seed, ["-m", "bench.bench_soak", *sys.argv[1:]],
                  args.keep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"}, indent=2))
