"""Simulation benchmark (issue 4, acceptance 5): the whole world at scale.

Cases (each in a fresh subprocess, so ``peak_rss_mib`` is its own ``ru_maxrss``): the
default scenario (Grid'5000-like sites, VMPlaceS workload, Vivaldi on, centralised
scheduler) for 3600 simulated seconds with

- 1,000 hosts / 10,000 VMs,
- 10,000 hosts / 100,000 VMs (targets on the 2-core machine: <= 300 s wall, <= 3 GiB).

Quick mode: 200 hosts and 1,000 hosts for 600 s. Figures: wall time (whole ``simulate``:
set-up, run, trace and summary writing), events per wall second (trace events plus
messages delivered to behaviours), peak RSS, the child's CPU time (user + system: what
the run costs when the machine is shared), and the run's headline metrics.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from typing import Any

__all__ = ["main"]

TARGET_WALL_S = 300.0
TARGET_RSS_MIB = 3 * 1024.0
KEYS = (
    "hosts",
    "vms",
    "duration_s",
    "wall_s",
    "events_per_wall_s",
    "peak_rss_mib",
    "events",
    "violations",
    "violation_duration_mean_s",
    "migrations",
    "scheduler_runs",
    "scheduler_compute_s",
    "vivaldi_median_error",
    "vms_lost",
)


def _child(hosts: int, duration: float) -> dict[str, Any]:
    from sim.run import simulate
    from sim.scenario import load_scenario

    scenario = load_scenario(
        overrides={
            "infrastructure.hosts": hosts,
            "run.duration_s": duration,
            "scheduler.name": "centralized",
            "vivaldi.enabled": True,
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as out:
        summary = simulate(scenario, out)
    figures = {k: summary[k] for k in KEYS}
    figures["messages"] = sum(summary["messages"].values())
    return figures


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_case(hosts: int, duration: float) -> dict[str, Any]:
    cpu_before = _children_cpu_s()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_sim", "--child", str(hosts), str(duration)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench_sim child {hosts} hosts failed:\n{proc.stderr}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["process_cpu_s"] = round(_children_cpu_s() - cpu_before, 2)
    return figures


def main(quick: bool = False) -> dict[str, Any]:
    cases = [(200, 600.0), (1000, 600.0)] if quick else [(1000, 3600.0), (10000, 3600.0)]
    out: dict[str, Any] = {"scheduler": "centralized", "vivaldi": True}
    for hosts, duration in cases:
        out[f"hosts_{hosts}"] = _run_case(hosts, duration)
    big = out[f"hosts_{cases[-1][0]}"]
    if not quick:
        out["target_wall_ok"] = big["wall_s"] <= TARGET_WALL_S
        out["target_rss_ok"] = big["peak_rss_mib"] <= TARGET_RSS_MIB
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("HOSTS", "DURATION"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(int(args.child[0]), float(args.child[1]))))
    else:
        print(json.dumps(main(args.quick), indent=2))
