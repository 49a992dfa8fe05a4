"""The ``collect`` step: the agents' outputs, one run directory, the hosts' power.

``collect_run`` (after ``agents.stop_agents``, so every agent has flushed):

1. fetches each agent's ``events.jsonl.gz``, ``summary.json``, ``agent.json`` and
   ``agent.log`` (one scp per host, execo's ``Get``) into ``WORKDIR/agents/NODE``; a host
   that gives nothing is named in one line and left out;
2. merges the traces onto one time line (``cluster_agents.merge_traces``) into
   ``OUT/events.jsonl.gz``, with the load events ``load`` applied (``WORKDIR/loads.jsonl``,
   each on the host its VM ran on then) and the hosts' power (``power`` events: the watts
   of step 5 summed per second, which ``dvms report`` plots);
3. writes ``OUT/summary.json`` (``cluster_agents.cluster_summary``: the one contract,
   ``status`` ``interrupted`` when an agent's trace was cut short, its summary missing, or a
   host gave nothing); ``vms_lost`` is computed: VMs the ``vms`` step left OK that no host
   runs now (``virsh list --name`` on every OK host; an unreachable host's VMs count);
4. copies ``vms.list`` and ``final_topo.xml`` of the ``vms`` step;
5. writes ``OUT/power.csv`` (``host,timestamp,watts``) from the API's metrics endpoint
   (Kwapi: ``sites/S/metrics/power/timeseries?only=…&from=T0&to=T1``, execo's
   ``get_hosts_metric``) for the run's window; hosts without a series are named.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.cluster_agents import cluster_summary, merge_traces
from deploy.g5k import session
from deploy.g5k.agents import load_agents
from deploy.g5k.state import ExperimentState
from deploy.g5k.topology import TOPOLOGY, VMS_LIST
from deploy.g5k.vmdeploy import Hypervisor, VmsRun
from dvms.errors import DvmsError
from dvms.events import load as load_event
from dvms.events import power as power_event
from dvms.summary import validate_summary, write_summary
from dvms.trace import read_events, read_header

__all__ = ["AGENT_FILES", "LOADS", "POWER", "collect_run", "fetch_outputs", "fetch_power",
           "load_events_of", "locate_vms", "power_events", "write_power"]

AGENT_FILES = ("events.jsonl.gz", "summary.json", "agent.json", "agent.log")
LOADS = "loads.jsonl"
"""The load events ``load`` applied: ``{"t_unix", "host", "vm", "load"}`` per line."""
POWER = "power.csv"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fetch_outputs(state: ExperimentState, *, timeout_s: float = 300.0) -> dict[str, Path]:
    """Copy every agent's outputs to ``WORKDIR/agents/NODE``; node → local dir, for the
    agents that gave at least their ``agent.json`` or trace."""
    from execo import Get, Host

    records = load_agents(state.workdir)
    gets = {}
    for node, rec in records.items():
        local = state.workdir / "agents" / node
        local.mkdir(parents=True, exist_ok=True)
        for name in AGENT_FILES:  # nothing stale from an earlier collect
            (local / name).unlink(missing_ok=True)
        get = Get([Host(rec.host)], [f"{rec.dir}/{name}" for name in AGENT_FILES], str(local))
        for p in get.processes:  # a missing file is ours to report, not execo's to log
            p.nolog_exit_code = p.nolog_error = p.nolog_timeout = True
            p.timeout = timeout_s
        gets[node] = get.start()
    out = {}
    for node, get in gets.items():
        get.wait()
        local = state.workdir / "agents" / node
        if (local / "agent.json").exists() or (local / "events.jsonl.gz").exists():
            out[node] = local
    return out


def locate_vms(hosts: Sequence[str], hv: Hypervisor, *,
               timeout_s: float = 120.0) -> tuple[dict[str, str], list[str]]:
    """(VM → host running it now, hosts that did not answer)."""
    cmd = " ".join(shlex.quote(w) for w in [hv.virsh, "-q", *(["-c", hv.uri] if hv.uri else []),
                                            "list", "--name"])
    where: dict[str, str] = {}
    unreachable = []
    for r in session.run(hosts, cmd, timeout_s=timeout_s):
        if r.status != 0:
            unreachable.append(r.host)
            continue
        for name in r.output.split():
            where[name] = r.host
    return where, unreachable


def fetch_power(hosts: Sequence[str], t0: float, t1: float) -> dict[str, list[tuple[int, float]]]:
    """Host → [(timestamp, watts)] from the API's ``power`` metric over [t0, t1] (a site
    that fails gives no series: the caller names its hosts)."""
    import execo_g5k.api_utils as api

    if not hosts:
        return {}
    try:
        got = api.get_hosts_metric(list(hosts), "power", from_ts=int(t0), to_ts=int(t1) + 1)
    except Exception:  # execo's per-site threads fail alone; this is the whole call failing
        return {}
    out: dict[str, list[tuple[int, float]]] = {}
    for host, entry in got.items():
        values = [(int(ts), float(v)) for ts, v in entry.get("values", []) if v is not None]
        out[host] = values
    return out


def write_power(path: Path, series: Mapping[str, Sequence[tuple[int, float]]]) -> int:
    """``host,timestamp,watts`` rows (hosts and times in order); returns the rows."""
    rows = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["host", "timestamp", "watts"])
        for host in sorted(series):
            for ts, watts in sorted(series[host]):
                w.writerow([host, ts, f"{watts:.3f}"])
                rows += 1
    return rows


def load_events_of(loads: Path, agent_events: Sequence[Mapping[str, Any]], origin: float,
                   rs: VmsRun | None) -> list[dict[str, Any]]:
    """The ``load`` events ``load`` applied (``t_unix``), each on the host its VM ran on
    then: its host at the ``vms`` step, moved by the agents' ``migration.end`` events."""
    moves = sorted((origin + float(e["t"]), str(e["vm"]), str(e["dst"]))
                   for e in agent_events if e.get("type") == "migration.end")
    if not loads.exists():
        return []
    out = []
    for line in loads.read_text().splitlines():
        try:
            rec = json.loads(line)
            t, vm, value = float(rec["t_unix"]), str(rec["vm"]), float(rec["load"])
        except (ValueError, KeyError, TypeError):
            continue
        host = rs.vms[vm].host.split(".")[0] if rs and vm in rs.vms else str(rec.get("host"))
        for when, moved, dst in moves:
            if moved == vm and when <= t:
                host = dst
        event = load_event(0.0, host, vm=vm, host=host, load=value)
        del event["t"]
        out.append({"t_unix": t, **event})
    return out


def power_events(series: Mapping[str, Sequence[tuple[int, float]]]) -> list[dict[str, Any]]:
    """``power`` events (``t_unix``): the hosts' watts summed per second."""
    totals: dict[int, list[float]] = {}
    for values in series.values():
        for ts, watts in values:
            totals.setdefault(int(ts), []).append(watts)
    out = []
    for ts in sorted(totals):
        event = power_event(0.0, total_w=round(sum(totals[ts]), 3), hosts_on=len(totals[ts]))
        del event["t"]
        out.append({"t_unix": float(ts), **event})
    return out


def _window(state: ExperimentState, agent_dirs: Mapping[str, Path]) -> tuple[float, float]:
    """The run's window: the agents' earliest ``t0_unix`` (else the ``start`` step) to the
    end of their traces (else now)."""
    import time

    starts, ends = [], []
    for d in agent_dirs.values():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            starts.append(float(json.loads((d / "agent.json").read_text())["t0_unix"]))
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            s = json.loads((d / "summary.json").read_text())
            ends.append(float(s["t0_unix"]) + float(s["duration_s"]))
    step = state.steps.get("start", {})
    t0 = min(starts) if starts else float(step.get("started") or time.time())
    return t0, max(ends) if ends else time.time()


def collect_run(state: ExperimentState, out: Path, *, hv: Hypervisor | None = None,
                spec: Mapping[str, Any] | None = None,
                progress: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Build the run directory ``out``; returns its summary (see the module's docstring)."""
    records = load_agents(state.workdir)
    if not records:
        raise DvmsError(f"{state.workdir}: no agent recorded (run the start step first)")
    got = fetch_outputs(state)
    missing = [records[n].host for n in records if n not in got]
    if missing:
        progress(f"collect: no output from {', '.join(missing)} (left out of the run)")
    if not got:
        raise DvmsError(f"host {', '.join(missing)}: no agent output to collect")
    out.mkdir(parents=True, exist_ok=True)
    dirs = [got[n] for n in sorted(got)]
    trace = out / "events.jsonl.gz"
    merge_traces(dirs, trace)  # the agents alone first: where the VMs went, and when
    origin = float((read_header(trace) or {}).get("t0_unix", 0.0))
    rs = VmsRun.load(state.workdir)
    t0, t1 = _window(state, got)
    hosts = [records[n].host for n in records]
    series = fetch_power(hosts, t0, t1)
    extra = load_events_of(state.workdir / LOADS, list(read_events(trace)), origin, rs)
    merge_traces(dirs, trace, extra=extra + power_events(series))
    header = read_header(trace) or {}
    truncated = list(header.get("truncated", []))
    if truncated:
        progress(f"collect: trace cut short for {', '.join(truncated)} (its events so far "
                 "are merged)")
    events = list(read_events(trace))
    agents: dict[str, dict[str, Any]] = {}
    for node in records:
        try:
            agents[node] = json.loads((got[node] / "summary.json").read_text())
        except (KeyError, OSError, ValueError):
            agents[node] = {}  # killed, or nothing fetched
    unfinished = [n for n in got if not agents[n]]
    if unfinished:
        progress(f"collect: agent {', '.join(unfinished)} ended without a summary (killed?); "
                 "its trace so far is merged")
    ok_vms = [vm for vm, r in rs.vms.items() if r.state == "OK"] if rs else []
    lost: list[str] = []
    if ok_vms:
        where, unreachable = locate_vms(state.ok_hosts(), hv or Hypervisor())
        if unreachable:
            progress(f"collect: cannot list the VMs of {', '.join(unreachable)}")
        lost = [vm for vm in ok_vms if vm not in where]
        if lost:
            progress(f"collect: {len(lost)} VMs run on no host: {', '.join(lost[:5])}")
    summary = cluster_summary(
        dict(spec or {"name": state.name}), len(records), len(ok_vms), events, agents,
        vms_lost=len(lost), truncated=truncated + [n for n in records if n not in got],
        kind="g5k")
    problems = validate_summary(summary)
    if problems:
        raise DvmsError(f"{out}/summary.json: {'; '.join(problems)}")
    write_summary(out / "summary.json", summary)
    for name in (VMS_LIST, TOPOLOGY):
        if (state.workdir / name).exists():
            shutil.copyfile(state.workdir / name, out / name)
    write_power(out / POWER, series)
    silent = [h for h in hosts if not series.get(h)]
    if silent:
        progress(f"collect: no power series for {', '.join(silent)}")
    return summary
