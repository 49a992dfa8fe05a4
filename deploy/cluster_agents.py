"""Agents of the local cluster: one ``dvms agent`` process per host namespace.

``start_agents`` writes the run's CURVE keys and one TOML config per host into the
cluster's work directory, starts each agent inside its host's network namespace (``nsenter
--net``: the agent's ZeroMQ endpoint is the host's address), and records the pids in the
cluster state so ``down`` can stop them. ``stop_agents`` SIGTERMs them (they flush their
trace and summary) and waits. ``merge_traces`` puts the agents' traces on one time line.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from deploy.agent_config import AgentConfig, AgentTuning, PeerConfig, render_agent_config
from deploy.cluster import LOADS, ClusterState, locate, stop_agents
from dvms.errors import DvmsError, InputError
from dvms.events import load as load_event
from dvms.hypervisor import HostCapacity
from dvms.node import NodeTables, parse_node_tables
from dvms.provenance import trace_header
from dvms.summary import build_summary, write_summary
from dvms.trace import TraceWriter, read_events, read_header

__all__ = [
    "AGENT_PORT",
    "CLUSTER_TABLES",
    "agent_configs",
    "cluster_summary",
    "cluster_tables",
    "collect",
    "load_events",
    "merge_traces",
    "start_agents",
    "stop_agents",
]

AGENT_PORT = 7100


CLUSTER_TABLES: dict[str, dict[str, object]] = {
    "scheduler": {"name": "dvms", "cost": "measured"},
    "dvms": {"min_partition_size": 2, "partition_timeout_s": 10.0},
    "vivaldi": {"fast_period_s": 0.5, "fast_rounds": 6, "period_s": 1.0, "trace_period_s": 5.0},
    "monitor": {"mode": "poll", "period_s": 1.0},
}
"""The local cluster's node tables: a few hosts sharing one machine, real migrations of
seconds (partitions of 2, a 10 s timeout), Vivaldi fast enough to see in a minute."""


def cluster_tables(overrides: dict[str, dict[str, object]] | None = None) -> NodeTables:
    """``CLUSTER_TABLES`` with ``overrides`` (tables of the same schema) applied."""
    data = {name: dict(table) for name, table in CLUSTER_TABLES.items()}
    for name, table in (overrides or {}).items():
        data.setdefault(name, {}).update(table)
    return parse_node_tables(data)


def agent_configs(state: ClusterState, *, capacity: HostCapacity | None,
                  tables: NodeTables | None = None, tuning: AgentTuning | None = None,
                  seed: int = 1, sites: dict[str, str] | None = None) -> list[AgentConfig]:
    """One config per host: every other host is a peer; node tables as given (default
    ``cluster_tables()``)."""
    sites = sites or {}
    configs = []
    for host in state.hosts:
        peers = tuple(
            PeerConfig(node=o.name, site=sites.get(o.name, "local"),
                       address=f"tcp://{o.ip}:{AGENT_PORT}", libvirt_uri=o.tcp_uri)
            for o in state.hosts if o.name != host.name)
        configs.append(AgentConfig(
            node=host.name, site=sites.get(host.name, "local"),
            listen=f"tcp://{host.ip}:{AGENT_PORT}", libvirt_uri=host.uri,
            key_dir=state.workdir / "keys", output_dir=state.workdir / "agents" / host.name,
            seed=seed, capacity=capacity, peers=peers, agent=tuning or AgentTuning(),
            tables=tables if tables is not None else cluster_tables()))
    return configs


def start_agents(state: ClusterState, configs: list[AgentConfig]) -> dict[str, int]:
    """Generate the run's keys (once) and start one agent per config; returns pids."""
    from peeractor.keys import generate_run_keys

    key_dir = state.workdir / "keys"
    if not key_dir.exists():
        generate_run_keys(key_dir)
    for cfg in configs:
        host = state.host(cfg.node)
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        path = state.workdir / "agents" / f"{cfg.node}.toml"
        path.write_text(render_agent_config(cfg))
        with open(cfg.output_dir / "agent.log", "ab") as out:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{host.netns}", sys.executable, "-m",
                 "dvms", "agent", str(path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        state.agents[cfg.node] = proc.pid
        state.save()
    return dict(state.agents)


def _t0(agent_dir: Path) -> float | None:
    """The wall time of an agent's ``t = 0``: its trace header, else its ``agent.json``."""
    path = agent_dir / "events.jsonl.gz"
    with contextlib.suppress(InputError, OSError):
        header = read_header(path)
        if header is not None and "t0_unix" in header:
            return float(header["t0_unix"])
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return float(json.loads((agent_dir / "agent.json").read_text())["t0_unix"])
    return None


def _events(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The events of a trace, and whether it was cut short (a killed agent's is)."""
    events: list[dict[str, Any]] = []
    try:
        for event in read_events(path):
            events.append(event)
    except InputError:
        return events, True
    return events, False


def load_events(loads: Path, origin: float) -> list[dict[str, Any]]:
    """``load`` events from the cluster's load log, on the time line starting at ``origin``
    (only those made after it: earlier ones set the initial state)."""
    events: list[dict[str, Any]] = []
    if not loads.exists():
        return events
    for line in loads.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            rec = json.loads(line)
            t = float(rec["t_unix"]) - origin
            if t >= 0:
                events.append(load_event(round(t, 6), rec["host"], vm=rec["vm"],
                                         host=rec["host"], load=float(rec["load"])))
    return events


def merge_traces(agent_dirs: list[Path], out: Path, loads: Path | None = None,
                 extra: list[dict[str, Any]] | None = None) -> int:
    """Merge the agents' ``events.jsonl.gz`` onto the earliest agent's clock.

    Each agent's ``t = 0`` is at wall time ``t0_unix`` (trace header, or ``agent.json``
    for an agent killed before its trace was flushed); events are shifted by the
    difference and sorted by time (stable); ``loads`` (the cluster's load log) adds
    ``load`` events; ``extra`` events carry ``t_unix`` instead of ``t`` (those before the
    first agent's start are dropped). Cut-short traces contribute what they hold
    and are listed in the merged header (``truncated``). Returns the events written.
    """
    traces: list[tuple[float, Path]] = []
    for d in agent_dirs:
        t0 = _t0(d)
        if t0 is None:
            raise DvmsError(f"{d}: no trace header with t0_unix (nor agent.json)")
        traces.append((t0, d))
    if not traces:
        raise DvmsError("no agent traces to merge")
    origin = min(t0 for t0, _ in traces)
    events: list[dict[str, Any]] = []
    truncated: list[str] = []
    for t0, d in traces:
        got, cut = _events(d / "events.jsonl.gz") if (d / "events.jsonl.gz").exists() else (
            [], True)
        if cut:
            truncated.append(d.name)
        events += [{**e, "t": round(e["t"] + t0 - origin, 6)} for e in got]
    if loads is not None:
        events += load_events(loads, origin)
    for e in extra or []:
        t = float(e["t_unix"]) - origin
        if t >= 0:
            events.append({"t": round(t, 6), **{k: v for k, v in e.items() if k != "t_unix"}})
    events.sort(key=lambda e: e["t"])
    merged_header = trace_header({"t0_unix": origin, "agents": [d.name for d in agent_dirs],
                                  "truncated": truncated, "source": "dvms agents (merged)"})
    with TraceWriter(out, header=merged_header) as writer:
        for event in events:
            writer.write(event)
    return len(events)


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a (gzipped) events file, header included."""
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def cluster_summary(
    spec: dict[str, Any],
    hosts: int,
    vms: int,
    events: list[dict[str, Any]],
    agents: dict[str, dict[str, Any]],
    *,
    vms_lost: int,
    truncated: list[str],
    kind: str = "cluster",
) -> dict[str, Any]:
    """The cluster run's ``summary.json`` (``dvms.summary.build_summary``): counts from the
    merged ``events``, messages summed over the agents' summaries (``agents``, by name);
    ``spec`` goes under ``scenario[kind]`` (``g5k`` for a Grid'5000 run).

    Keys a real cluster cannot know (``energy_kwh``, ...) are null. The status is
    ``interrupted`` when an agent's trace was cut short or its summary is missing.
    """
    from dvms.metrics import MetricsCollector

    metrics = MetricsCollector.from_events(events).metrics()
    messages: dict[str, int] = {}
    for s in agents.values():
        for k, v in (s.get("messages") or {}).items():
            messages[k] = messages.get(k, 0) + int(v)
    sites = {s["scenario"].get("site") for s in agents.values()
             if isinstance(s.get("scenario"), dict)}
    peaks = [s["peak_rss_mib"] for s in agents.values()
             if isinstance(s.get("peak_rss_mib"), int | float)]
    incomplete = sorted(set(truncated) | {a for a, s in agents.items() if not s})
    fields: dict[str, Any] = {
        "seed": spec.get("seed", 1),
        "scenario": {kind: spec},
        "hosts": hosts,
        "vms": vms,
        "sites": len(sites - {None}) or 1,
        "duration_s": max((e["t"] for e in events), default=0.0),
        "scheduler": next((s.get("scheduler") for s in agents.values() if s), "dvms"),
        "overlay": next((s.get("overlay") for s in agents.values() if s), None),
        **metrics,
        "messages": dict(sorted(messages.items())),
        "vms_lost": vms_lost,
        "peak_rss_mib": max(peaks, default=None),
        "agents": sorted(agents),
        "agents_incomplete": incomplete,
    }
    return build_summary(fields, status="interrupted" if incomplete else "complete")


def collect(state: ClusterState, out: Path | None = None) -> Path:
    """Merge the agents' traces into ``out`` (default ``WORKDIR/run``) with a summary
    (:func:`cluster_summary`).

    ``vms_lost``: guests of the cluster running on no host now (asked to the daemons).
    """
    out = out or state.workdir / "run"
    out.mkdir(parents=True, exist_ok=True)
    dirs = sorted(p for p in (state.workdir / "agents").iterdir() if p.is_dir())
    merge_traces(dirs, out / "events.jsonl.gz", state.workdir / LOADS)
    header = read_header(out / "events.jsonl.gz") or {}
    events = list(read_events(out / "events.jsonl.gz"))
    agents: dict[str, dict[str, Any]] = {}
    for d in dirs:
        path = d / "summary.json"
        try:
            agents[d.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            agents[d.name] = {}  # killed before it wrote one
    summary = cluster_summary(
        state.spec, len(state.hosts), len(state.vms), events, agents,
        vms_lost=len(set(state.vms) - set(locate(state))),
        truncated=list(header.get("truncated", [])),
    )
    write_summary(out / "summary.json", summary)
    return out
