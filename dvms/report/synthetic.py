"""A small synthetic run directory, for tests, demos and dashboard load checks.

It follows the trace vocabulary (docs/trace.md): load changes, violations, DVMS-like
partitions resolving them with migrations (mostly intra-site), power samples and
sampled Vivaldi coordinates, plus a ``summary.json`` whose counts agree with the trace.
It is not a simulation of anything; use ``dvms simulate`` for that.
"""

from __future__ import annotations

import gzip
import heapq
import json
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvms.summary import build_summary, write_summary

__all__ = ["synthetic_events", "write_synthetic_run"]

CAPACITY, MEMORY, VM_MEM, IDLE_W, MAX_W = 700.0, 32768, 1024, 100.0, 200.0


def synthetic_events(
    *,
    hosts: int = 16,
    vms_per_host: int = 10,
    duration_s: float = 300.0,
    sites: Sequence[str] = ("rennes", "lyon", "nancy"),
    seed: int = 1,
    host_info: bool = True,
    load_period_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Events of a synthetic run, in time order."""
    rng = random.Random(seed)
    names = [f"h{i:03d}" for i in range(hosts)]
    site_of = {h: sites[i % len(sites)] for i, h in enumerate(names)}
    centre = {s: [rng.uniform(-0.05, 0.05) for _ in range(4)] for s in sites}
    vm_host: dict[str, str] = {}
    on_host: dict[str, dict[str, None]] = {h: {} for h in names}  # ordered VM sets
    load: dict[str, float] = {}
    busy: set[str] = set()  # hosts in a partition or migrating
    violated: dict[str, float] = {}
    out: list[dict[str, Any]] = []
    queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
    seq = 0

    def push(t: float, what: str, *args: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (t, seq, what, args))

    def emit(t: float, kind: str, node: str, **fields: Any) -> None:
        out.append({"t": round(t, 6), "type": kind, "node": node, **fields})

    def demand(h: str) -> float:
        return sum(load[v] for v in on_host[h])

    def check(t: float, h: str) -> None:
        d = demand(h)
        if d > CAPACITY and h not in violated:
            violated[h] = t
            emit(t, "violation.start", h, host=h, cpu_demand=d, cpu_capacity=CAPACITY,
                 mem_demand_mib=VM_MEM * len(on_host[h]),
                 memory_mib=MEMORY)
            if h not in busy:
                push(t + rng.uniform(0.5, 3.0), "isp", h)
        elif d <= CAPACITY and h in violated:
            start = violated.pop(h)
            emit(t, "violation.end", h, host=h, duration_s=round(t - start, 6))

    if host_info:
        for h in names:
            emit(0.0, "host.info", h, host=h, site=site_of[h], cpu_capacity=CAPACITY,
                 memory_mib=MEMORY)
    for i in range(hosts * vms_per_host):
        vm, h = f"vm{i:04d}", names[i % hosts]
        vm_host[vm] = h
        on_host[h][vm] = None
        load[vm] = float(min(100, max(0, round(rng.gauss(60, 20) / 10) * 10)))
        emit(0.0, "load", h, vm=vm, host=h, load=load[vm])
    for h in names:
        check(0.0, h)
    vms = sorted(vm_host)
    rate = len(vms) / load_period_s
    t = rng.expovariate(rate)
    while t < duration_s:
        push(t, "load", rng.choice(vms))
        t += rng.expovariate(rate)
    for k in range(int(duration_s // 10) + 1):
        push(k * 10.0, "power")
    for k in range(int(duration_s // 30) + 1):
        push(k * 30.0 + 0.001, "coords")
    isp = 0
    isp_started: dict[str, float] = {}
    while queue:
        t, _, what, args = heapq.heappop(queue)
        if t > duration_s:
            break
        if what == "load":
            vm = args[0]
            h = vm_host[vm]
            load[vm] = float(min(100, max(0, round(rng.gauss(60, 20) / 10) * 10)))
            emit(t, "load", h, vm=vm, host=h, load=load[vm])
            check(t, h)
        elif what == "power":
            total = sum(IDLE_W + (MAX_W - IDLE_W) * min(1.0, demand(h) / CAPACITY) for h in names)
            emit(t, "power", "world", total_w=round(total, 3), hosts_on=hosts)
        elif what == "coords":
            for h in names:
                vec = [c + rng.gauss(0, 0.004) for c in centre[site_of[h]]]
                emit(t, "vivaldi.coord", h, vec=[round(v, 6) for v in vec],
                     height=round(rng.uniform(1e-4, 1e-3), 6),
                     error=round(rng.uniform(0.05, 0.4), 4))
        elif what == "isp":
            h = args[0]
            if h in busy or h not in violated:
                continue
            isp += 1
            pid = f"p{isp:04d}"
            members = [h]
            emit(t, "isp.start", h, partition=pid, initiator=h)
            isp_started[pid] = round(t, 6)
            local = [x for x in names if x not in busy and x != h]
            grow = rng.randint(1, 3)
            picked = heapq.nsmallest(
                grow, local, key=lambda x: (site_of[x] != site_of[h] or rng.random() < 0.2, x)
            )
            for x in picked:
                t += rng.uniform(0.01, 0.2)
                members.append(x)
                emit(t, "partition.grow", x, partition=pid, leader=x, size=len(members),
                     members=list(members))
            busy.update(members)
            leader = members[-1]
            dst = min(members[1:], key=lambda x: (demand(x), x))
            vm = max(on_host[h], key=lambda v: (load[v], v))
            compute = round(rng.uniform(0.01, 0.2), 4)
            emit(t, "partition.solve", leader, partition=pid, size=len(members), migrations=1,
                 compute_s=compute)
            t += compute
            inter = site_of[h] != site_of[dst]
            emit(t, "migration.start", h, vm=vm, src=h, dst=dst, src_site=site_of[h],
                 dst_site=site_of[dst], memory_mib=VM_MEM)
            dur = VM_MEM * 1.048576 / 125 / max(0.2, 1 - 0.5 * load[vm] / 100) * (
                2.0 if inter else 1.0)
            push(t + dur, "migrated", vm, h, dst, pid, tuple(members), dur, inter)
        elif what == "migrated":
            vm, src, dst, pid, members, dur, inter = args
            vm_host[vm] = dst
            del on_host[src][vm]
            on_host[dst][vm] = None
            emit(t, "migration.end", src, vm=vm, src=src, dst=dst, src_site=site_of[src],
                 dst_site=site_of[dst], duration_s=round(dur, 6), memory_mib=VM_MEM,
                 inter_site=inter)
            check(t, src)
            check(t, dst)
            emit(t, "partition.dissolve", members[-1], partition=pid, size=len(members),
                 reason="solved", lifetime_s=round(t - isp_started[pid], 6), solved=True)
            busy.difference_update(members)
            for m in members:
                if m in violated:
                    push(t + rng.uniform(0.5, 2.0), "isp", m)
    return out


def _summary(events: list[dict[str, Any]], hosts: int, vms: int, sites: int,
             duration_s: float, seed: int) -> dict[str, Any]:
    durations = [e["duration_s"] for e in events if e["type"] == "violation.end"]
    migs = [e for e in events if e["type"] == "migration.end"]
    dissolved = [e for e in events if e["type"] == "partition.dissolve"]
    messages = {"dvms.partition": 3 * len(dissolved), "vivaldi.ping": 40 * hosts}
    return build_summary({
        "seed": seed,
        "scenario": {"run": {"seed": seed, "duration_s": duration_s}},
        "hosts": hosts,
        "vms": vms,
        "sites": sites,
        "duration_s": duration_s,
        "scheduler": "dvms",
        "overlay": "lbo",
        "violations": sum(1 for e in events if e["type"] == "violation.start"),
        "violation_time_s": sum(durations),
        "violation_duration_mean_s": statistics.fmean(durations) if durations else 0.0,
        "violation_duration_sd_s": statistics.pstdev(durations) if durations else 0.0,
        "migrations": len(migs),
        "migrations_intra_site": sum(1 for e in migs if not e["inter_site"]),
        "migrations_inter_site": sum(1 for e in migs if e["inter_site"]),
        "migrations_failed": 0,
        "migration_duration_mean_s": statistics.fmean(e["duration_s"] for e in migs)
        if migs else 0.0,
        "migrated_gib": sum(e["memory_mib"] for e in migs) / 1024,
        "isp_started": sum(1 for e in events if e["type"] == "isp.start"),
        "isp_solved": sum(1 for e in dissolved if e["solved"]),
        "isp_failed": sum(1 for e in dissolved if not e["solved"]),
        "partition_size_mean": statistics.fmean(e["size"] for e in dissolved)
        if dissolved else 0.0,
        "scheduler_compute_s": sum(e["compute_s"] for e in events
                                   if e["type"] == "partition.solve"),
        "energy_kwh": 0.123456789,
        "messages": messages,
        "vivaldi_median_error": 0.1875,
        "vms_lost": 0,
        "wall_s": 0.5,
        "events_per_wall_s": len(events) / 0.5,
        "peak_rss_mib": 100.0,
    })


def write_synthetic_run(
    out: str | Path,
    *,
    hosts: int = 16,
    vms_per_host: int = 10,
    duration_s: float = 300.0,
    sites: Sequence[str] = ("rennes", "lyon", "nancy"),
    seed: int = 1,
    host_info: bool = True,
    vivaldi: bool = True,
    load_period_s: float = 60.0,
) -> Path:
    """Write summary.json, events.jsonl.gz (with a header line) and scenario.toml into out."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    events = synthetic_events(hosts=hosts, vms_per_host=vms_per_host, duration_s=duration_s,
                              sites=sites, seed=seed, host_info=host_info,
                              load_period_s=load_period_s)
    if not vivaldi:
        events = [e for e in events if e["type"] != "vivaldi.coord"]
    header = {"schema": "dvms.events/1", "generator": "dvms.report.synthetic"}
    text = "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in (header, *events))
    (path / "events.jsonl.gz").write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    summary = _summary(events, hosts, hosts * vms_per_host, len(sites), duration_s, seed)
    write_summary(path / "summary.json", summary)
    (path / "scenario.toml").write_text(
        f"[run]\nseed = {seed}\nduration_s = {duration_s}\n", encoding="utf-8"
    )
    return path
