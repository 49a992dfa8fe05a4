"""DVMS benchmark: scale, VMPlaceS's table, locality by overlay.

``main(quick)`` (run by ``make bench`` / ``python -m bench.run dvms``) measures:

- **scale**: 10,000 hosts / 100,000 VMs / 3,600 simulated s with DVMS + LBO + Vivaldi
  (quick: 1,000 hosts / 600 s), in a fresh subprocess: wall time, peak RSS, events per
  wall second, DVMS messages, violation figures. Targets: <= 300 s, <= 3 GiB;
- **table**: VMPlaceS's table (REFERENCE.md) — mean ± sd violation duration for 128, 256,
  512 and 1,024 hosts × {none, centralized, dvms} with its workload, 3,600 s
  (quick: 128 and 256 hosts, 600 s);
- **locality**: on the Grid'5000-like sites, the share of migrations that stay inside
  their site with DVMS over ``lbo``, ``ring`` and ``random``, Vivaldi probing as in the
  DVMS prototype (a round every 2 s) (512 hosts, 3,600 s; quick: 128 hosts, 600 s).

Every run is a fresh subprocess (``--child``) so figures do not pollute each other.
``python -m bench.bench_dvms table [--hosts 128,256] [--duration S] [--seed N]`` prints the
table in Markdown; ``... locality`` the locality shares.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["locality", "main", "run_fresh", "scale", "table"]

TABLE_HOSTS = (128, 256, 512, 1024)
SCHEDULERS = ("none", "centralized", "dvms")
OVERLAYS = ("lbo", "ring", "random")
MESSAGE_PREFIX = "dvms."


def run_fresh(overrides: dict[str, Any]) -> dict[str, Any]:
    """Simulate the embedded default scenario with ``overrides`` in a fresh subprocess.

    Returns its summary (trace left out), with ``child_peak_rss_mib`` (the child's own
    ru_maxrss), ``child_cpu_s`` (its user + system CPU time: the figure to trust when the
    machine is shared) and ``child_wall_s`` (process start to exit, imports included).
    """
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_dvms", "--child", json.dumps(overrides)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    summary["child_wall_s"] = round(time.perf_counter() - started, 2)
    return summary


def _child(overrides: dict[str, Any]) -> None:
    from sim.run import simulate
    from sim.scenario import load_scenario

    scenario = load_scenario(None, {"trace.compress": True, **overrides})
    with tempfile.TemporaryDirectory(prefix="bench-dvms-") as tmp:
        summary = simulate(scenario, tmp)
    summary.pop("scenario", None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary["child_peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
    summary["child_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    print(json.dumps(summary))


def _dvms_messages(summary: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in summary["messages"].items() if k.startswith(MESSAGE_PREFIX)}


def scale(hosts: int, duration: float, seed: int = 1) -> dict[str, Any]:
    """The scale run: DVMS + LBO + Vivaldi on ``hosts`` hosts (10 VMs each)."""
    s = run_fresh(
        {
            "run.seed": seed,
            "run.duration_s": duration,
            "infrastructure.hosts": hosts,
            "scheduler.name": "dvms",
            "overlay.name": "lbo",
            "vivaldi.enabled": True,
        }
    )
    dvms_messages = _dvms_messages(s)
    return {
        "hosts": s["hosts"],
        "vms": s["vms"],
        "duration_s": s["duration_s"],
        "wall_s": round(s["wall_s"], 1),
        "process_wall_s": s["child_wall_s"],
        "process_cpu_s": s["child_cpu_s"],
        "peak_rss_mib": s["child_peak_rss_mib"],
        "events_per_wall_s": round(s["events_per_wall_s"]),
        "events": s.get("events"),
        "violations": s["violations"],
        "violation_duration_mean_s": round(s["violation_duration_mean_s"], 2),
        "violation_duration_sd_s": round(s["violation_duration_sd_s"], 2),
        "isp_started": s["isp_started"],
        "isp_solved": s["isp_solved"],
        "isp_failed": s["isp_failed"],
        "partition_size_mean": round(s["partition_size_mean"], 2),
        "migrations": s["migrations"],
        "intra_site_share": round(_intra_share(s), 3),
        "vivaldi_median_error": s["vivaldi_median_error"],
        "vms_lost": s["vms_lost"],
        "dvms_messages": sum(dvms_messages.values()),
        "dvms_messages_per_isp": round(sum(dvms_messages.values()) / max(1, s["isp_started"]), 1),
        "messages_total": sum(s["messages"].values()),
        "messages_by_type": s["messages"],
        "targets_met": s["wall_s"] <= 300.0 and s["child_peak_rss_mib"] <= 3072.0,
    }


def table(hosts: tuple[int, ...], duration: float, seed: int = 1) -> dict[str, Any]:
    """Mean ± sd violation duration per (hosts, scheduler), and a Markdown rendering."""
    rows: dict[str, dict[str, Any]] = {}
    for n in hosts:
        row: dict[str, Any] = {}
        for scheduler in SCHEDULERS:
            s = run_fresh(
                {
                    "run.seed": seed,
                    "run.duration_s": duration,
                    "infrastructure.hosts": n,
                    "scheduler.name": scheduler,
                }
            )
            row[scheduler] = {
                "mean_s": round(s["violation_duration_mean_s"], 2),
                "sd_s": round(s["violation_duration_sd_s"], 2),
                "violations": s["violations"],
                "migrations": s["migrations"],
            }
        rows[str(n)] = row
    first, last = rows[str(hosts[0])]["dvms"]["mean_s"], rows[str(hosts[-1])]["dvms"]["mean_s"]
    central_last = rows[str(hosts[-1])]["centralized"]["mean_s"]
    return {
        "duration_s": duration,
        "rows": rows,
        "dvms_flat_within_20pct": abs(last - first) <= 0.2 * first,
        "dvms_below_half_centralized_at_max": last < 0.5 * central_last,
        "markdown": _markdown(rows),
    }


def _markdown(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| hosts | no scheduler | centralised | DVMS |",
        "|---|---|---|---|",
    ]
    for n, row in rows.items():
        cells = [f"{row[s]['mean_s']:.2f} ± {row[s]['sd_s']:.2f}" for s in SCHEDULERS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _intra_share(s: dict[str, Any]) -> float:
    done = s["migrations_intra_site"] + s["migrations_inter_site"]
    return s["migrations_intra_site"] / done if done else 0.0


LOCALITY_VIVALDI_PERIOD_S = 2.0
"""Vivaldi rounds of the DVMS prototype (the Euro-Par 2014 experiments): every 2 s."""


def locality(hosts: int, duration: float, seed: int = 1) -> dict[str, Any]:
    """Intra-site share of migrations with DVMS over each overlay (prototype's Vivaldi)."""
    out: dict[str, Any] = {
        "hosts": hosts,
        "duration_s": duration,
        "vivaldi_period_s": LOCALITY_VIVALDI_PERIOD_S,
    }
    for overlay in OVERLAYS:
        s = run_fresh(
            {
                "run.seed": seed,
                "run.duration_s": duration,
                "infrastructure.hosts": hosts,
                "scheduler.name": "dvms",
                "overlay.name": overlay,
                "vivaldi.period_s": LOCALITY_VIVALDI_PERIOD_S,
            }
        )
        out[overlay] = {
            "migrations": s["migrations"],
            "intra_site": s["migrations_intra_site"],
            "inter_site": s["migrations_inter_site"],
            "intra_site_share": round(_intra_share(s), 3),
            "violation_duration_mean_s": round(s["violation_duration_mean_s"], 2),
            "partition_size_mean": round(s["partition_size_mean"], 2),
            "vivaldi_median_error": s["vivaldi_median_error"],
        }
    ring_inter = out["ring"]["inter_site"]
    if ring_inter:
        out["lbo_inter_site_reduction_vs_ring"] = round(
            1 - out["lbo"]["inter_site"] / ring_inter, 3
        )
    return out


def main(quick: bool = False) -> dict[str, Any]:
    if quick:
        return {
            "scale": scale(1000, 600.0),
            "table": table((128, 256), 600.0),
            "locality": locality(128, 600.0),
        }
    return {
        "scale": scale(10_000, 3600.0),
        "table": table(TABLE_HOSTS, 3600.0),
        "locality": locality(512, 3600.0),
    }


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dvms")
    parser.add_argument("what", nargs="?", choices=("table", "locality", "scale"), default="table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hosts", default=",".join(map(str, TABLE_HOSTS)))
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(json.loads(args.child))
        return 0
    hosts = tuple(int(h) for h in args.hosts.split(","))
    if args.what == "table":
        result = table(hosts, args.duration, args.seed)
        print(result["markdown"])
        print(json.dumps({k: v for k, v in result.items() if k != "markdown"}, indent=2))
    elif args.what == "locality":
        print(json.dumps(locality(hosts[-1], args.duration, args.seed), indent=2))
    else:
        print(json.dumps(scale(hosts[-1], args.duration, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
