"""``dvms cluster``: a local real cluster (namespaces + private libvirtd + TCG guests).

    dvms cluster up --hosts N --vms-per-host K [--delay-ms D] [--workdir DIR]
    dvms cluster load VM PERCENT
    dvms cluster status
    dvms cluster down

Needs root. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dvms.errors import InputError

__all__ = ["register", "run"]

DEFAULT_WORKDIR = "/var/tmp/dvms-cluster"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster", help="a local real cluster: libvirtd per network namespace, TCG guests",
        description="Build, drive and tear down a local real cluster (needs root).")
    parser.add_argument("--workdir", type=Path, default=Path(DEFAULT_WORKDIR),
                        help=f"state, daemon dirs, serial logs (default {DEFAULT_WORKDIR})")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_up = sub.add_parser("up", help="create hosts and guests")
    p_up.add_argument("--hosts", type=int, required=True)
    p_up.add_argument("--vms-per-host", type=int, required=True)
    p_up.add_argument("--delay-ms", type=float, default=0.0,
                      help="one-way delay between any two hosts (tc netem)")
    p_up.add_argument("--memory-mib", type=int, default=96)
    p_up.add_argument("--workload", default="spin", help="idle | spin | dirty (default spin)")
    p_up.add_argument("--load", type=float, default=20.0,
                      help="initial CPU cap of each guest, percent of a core (default 20)")
    p_up.add_argument("--subnet", default="10.213.0.0/24")
    p_up.add_argument("--agents", action="store_true",
                      help="start one dvms agent per host (ZeroMQ/CURVE, DVMS over libvirt)")
    p_up.add_argument("--host-cpu", type=float, default=50.0,
                      help="CPU capacity the agents declare per host, percent of a core "
                           "(all hosts share this machine; default 50)")
    p_up.add_argument("--host-memory-mib", type=int, default=1024,
                      help="memory capacity the agents declare per host (default 1024)")
    p_up.add_argument("--scheduler", default=None,
                      help="scheduler of the agents: dvms (default), centralized or none")
    p_up.add_argument("--planner", default=None,
                      help="repair (default), cpsat, or package.module:Class")
    p_up.add_argument("--overlay", default=None, help="lbo (default), ring or random")
    p_up.add_argument("--node-tables", type=Path, default=None, metavar="TOML",
                      help="a TOML file (e.g. a scenario) whose [scheduler], [overlay], "
                           "[dvms], [vivaldi] and [monitor] tables the agents use, on top of "
                           "the cluster's defaults")
    p_load = sub.add_parser("load", help="set a guest's CPU cap (percent of a core)")
    p_load.add_argument("vm")
    p_load.add_argument("percent", type=float)
    sub.add_parser("status", help="hosts and guests, as JSON")
    p_collect = sub.add_parser(
        "collect", help="stop the agents and merge their traces into one run directory")
    p_collect.add_argument("--out", type=Path, default=None,
                           help="run directory (default WORKDIR/run)")
    sub.add_parser("down", help="remove everything (safe to repeat)")
    for p in (p_up, p_load, p_collect):
        p.add_argument("--workdir", type=Path, default=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploy import cluster  # libvirt is imported only when the command runs

    cluster.require_root()
    workdir: Path = args.workdir
    if args.action == "up":
        spec = cluster.ClusterSpec(hosts=args.hosts, vms_per_host=args.vms_per_host,
                                   delay_ms=args.delay_ms, memory_mib=args.memory_mib,
                                   workload=args.workload, load=args.load, subnet=args.subnet)
        state = cluster.up(spec, workdir)
        print(f"cluster up in {state.workdir}: {len(state.hosts)} hosts, {len(state.vms)} guests")
        for host in state.hosts:
            print(f"  {host.name} {host.ip} {host.uri}")
        if args.agents:
            from deploy.cluster_agents import agent_configs, cluster_tables, start_agents
            from dvms.hypervisor import HostCapacity

            configs = agent_configs(
                state, capacity=HostCapacity(cpu=args.host_cpu,
                                             memory_mib=args.host_memory_mib),
                tables=cluster_tables(_table_overrides(args)))
            pids = start_agents(state, configs)
            print("agents: " + ", ".join(f"{n} (pid {p})" for n, p in sorted(pids.items())))
    elif args.action == "load":
        where = cluster.set_load(workdir, args.vm, args.percent)
        print(f"{args.vm} on {where}: capped at {args.percent:g}% of a core")
    elif args.action == "status":
        print(json.dumps(cluster.status(workdir), indent=1, sort_keys=True))
    elif args.action == "collect":
        from deploy.cluster_agents import collect, stop_agents

        loaded = cluster.ClusterState.load(workdir.resolve())
        if loaded is None:
            raise InputError(f"no cluster in {workdir} (run: dvms cluster up)")
        stop_agents(loaded)
        print(f"run collected in {collect(loaded, args.out)}")
    elif args.action == "down":
        removed = cluster.down(workdir)
        print("removed: " + (", ".join(removed) if removed else "nothing (no cluster)"))
    return 0


def _table_overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Node tables from ``--node-tables`` and the flags (flags win)."""
    import tomllib

    from dvms.node import NODE_SECTIONS

    out: dict[str, dict[str, object]] = {}
    if args.node_tables is not None:
        try:
            data = tomllib.loads(args.node_tables.read_text())
        except (OSError, ValueError) as exc:  # TOMLDecodeError is a ValueError
            raise InputError(f"--node-tables {str(args.node_tables)!r}: {exc}") from None
        out = {k: dict(v) for k, v in data.items() if k in NODE_SECTIONS and isinstance(v, dict)}
    for flag, table, key in (("scheduler", "scheduler", "name"), ("planner", "scheduler",
                             "planner"), ("overlay", "overlay", "name")):
        value = getattr(args, flag)
        if value is not None:
            out.setdefault(table, {})[key] = value
    return out
