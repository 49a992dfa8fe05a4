"""The ``start`` step: one ``dvms agent`` per OK host, configured from the reservation.

- **Configs** (``agent_configs``, pure): node id = the host's short name, site = its
  Grid'5000 site, capacity = ``100 × cores`` % and the API's memory (or ``[agents]
  capacity_percent`` / ``capacity_memory_mib``), every other OK host a peer (its libvirt URI
  from ``[agents] peer_uri``), ``[agent] migration_storage`` / ``migration_timeout_s`` from
  ``[agents]``, the experiment's node tables verbatim (``scheduler = "centralized"`` deploys
  the centralised scheduler), the experiment's seed.
- **Probe** (``probe_hosts``, one ssh per host): the node's own address (``ip route get``'s
  source, else ``hostname -I``'s first) and its ``LIBVIRT_DEFAULT_URI``. Hosts sharing an
  address (the tier-L lab: every node is this machine) get ports ``port``, ``port + 1``, ...
- **Start** (``start_agents``): the run's CURVE keys are made once in ``WORKDIR/keys``; per
  host one ssh unpacks the config and keys into ``REMOTE_DIR/NODE``, runs ``[agents]
  install_command`` (if any; output in ``install.log``) and starts the agent
  detached (``setsid nohup``, pid in ``agent.pid``, output in ``agent.log``) unless one is
  already running there; then every agent must be alive and listening on its port within
  ``start_timeout_s``. An agent that dies or never listens is a ``DvmsError`` naming the
  host and its log's last line. ``WORKDIR/agents.json`` records hosts, pids, endpoints.
- **Stop** (``stop_agents``): SIGTERM (the agent flushes its trace and summary), SIGKILL
  after ``stop_timeout_s``; safe to repeat.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.agent_config import AgentConfig, AgentTuning, PeerConfig, render_agent_config
from deploy.g5k import session
from deploy.g5k.config import AgentsConfig, Experiment
from deploy.g5k.platform import Node
from deploy.g5k.state import ExperimentState
from dvms.errors import DvmsError
from dvms.hypervisor import HostCapacity
from dvms.node import parse_node_tables

__all__ = [
    "AGENTS_STATE",
    "AgentRecord",
    "HostProbe",
    "agent_command",
    "agent_configs",
    "agent_dir",
    "load_agents",
    "probe_hosts",
    "run_each",
    "running_agents",
    "start_agents",
    "stop_agents",
]

AGENTS_STATE = "agents.json"
G5K_URI = "qemu:///system"


@dataclass(frozen=True)
class HostProbe:
    address: str
    libvirt_uri: str
    """The node's ``LIBVIRT_DEFAULT_URI`` ("" when unset)."""


@dataclass
class AgentRecord:
    host: str
    """The host's FQDN (how ssh reaches it)."""
    node: str
    listen: str
    dir: str
    """The agent directory on the node."""
    command: str = ""
    """Its command line (``agent_command``): how a pid is recognised as this agent."""
    pid: int | None = None
    state: str = "configured"
    """configured → running → stopped."""


def agent_dir(cfg: AgentsConfig, node: str) -> str:
    return f"{cfg.remote_dir.rstrip('/')}/{node}"


def _short(host: str) -> str:
    return host.split(".", 1)[0]


_PROBE = ('a=$(ip -4 route get 1.0.0.0 2>/dev/null | sed -n "s/.* src \\([0-9.]*\\).*/\\1/p")'
          '; [ -n "$a" ] || a=$(hostname -I 2>/dev/null | cut -d" " -f1)'
          '; echo "DVMS address $a"; echo "DVMS uri ${LIBVIRT_DEFAULT_URI:-}"')


def probe_hosts(hosts: Sequence[str], *, timeout_s: float = 60.0) -> dict[str, HostProbe]:
    """Each host's own address and libvirt URI, read on it (``DvmsError`` naming a host
    that does not answer)."""
    out: dict[str, HostProbe] = {}
    for r in session.run(hosts, _PROBE, timeout_s=timeout_s):
        fields: dict[str, str] = {}
        for ln in r.output.splitlines():
            parts = ln.split(" ", 2)
            if parts[0] == "DVMS" and len(parts) >= 2:
                fields[parts[1]] = parts[2].strip() if len(parts) > 2 else ""
        if r.status != 0 or "address" not in fields:
            raise DvmsError(f"host {r.host}: probe failed (exit {r.status}): "
                            f"{_last_line(r.output)}")
        out[r.host] = HostProbe(fields.get("address", ""), fields.get("uri", ""))
    return out


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _endpoints(cfg: AgentsConfig, hosts: Sequence[str],
               probes: Mapping[str, HostProbe]) -> dict[str, tuple[str, int]]:
    """Host → (address, port): hosts sharing an address get consecutive ports."""
    used: dict[str, int] = {}
    out = {}
    for h in hosts:
        address = cfg.address if cfg.address != "auto" else probes[h].address
        if not address:
            raise DvmsError(f"host {h}: no address found (set agents.address)")
        port = cfg.port + used.get(address, 0)
        if port > 65535:
            raise DvmsError(f"host {h}: no port left above agents.port = {cfg.port}")
        used[address] = used.get(address, 0) + 1
        out[h] = (address, port)
    return out


def agent_configs(exp: Experiment, nodes: Sequence[Node], probes: Mapping[str, HostProbe],
                  key_dir: Path) -> list[AgentConfig]:
    """One agent config per node (the OK hosts, in order); see the module's docstring."""
    cfg = exp.agents
    hosts = [n.name for n in nodes]
    ends = _endpoints(cfg, hosts, probes)
    tables = parse_node_tables(exp.node_tables)
    tuning = AgentTuning(migration_timeout_s=cfg.migration_timeout_s,
                         migration_storage=cfg.migration_storage)

    def peer_uri(n: Node) -> str:
        return cfg.peer_uri.replace("{host}", n.name).replace("{address}", ends[n.name][0])

    out = []
    for n in nodes:
        address, port = ends[n.name]
        uri = cfg.libvirt_uri or probes[n.name].libvirt_uri or G5K_URI
        capacity = HostCapacity(cpu=cfg.capacity_percent or 100.0 * n.cores,
                                memory_mib=cfg.capacity_memory_mib or n.memory_mib)
        peers = tuple(PeerConfig(node=o.short, site=o.site,
                                 address=f"tcp://{ends[o.name][0]}:{ends[o.name][1]}",
                                 libvirt_uri=peer_uri(o)) for o in nodes if o.name != n.name)
        d = Path(agent_dir(cfg, n.short))
        out.append(AgentConfig(node=n.short, site=n.site, listen=f"tcp://{address}:{port}",
                               libvirt_uri=uri, key_dir=d / "keys", output_dir=d,
                               seed=exp.seed, capacity=capacity, peers=peers, agent=tuning,
                               tables=tables))
    return out


# -- state ---------------------------------------------------------------------------------

def load_agents(workdir: Path) -> dict[str, AgentRecord]:
    path = workdir / AGENTS_STATE
    if not path.exists():
        return {}
    return {k: AgentRecord(**v) for k, v in json.loads(path.read_text()).items()}


def _save(workdir: Path, records: Mapping[str, AgentRecord]) -> None:
    tmp = workdir / (AGENTS_STATE + ".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in records.items()}, indent=1))
    tmp.replace(workdir / AGENTS_STATE)


# -- remote scripts ------------------------------------------------------------------------

def _bundle(cfg: AgentConfig, key_dir: Path) -> str:
    """The agent's config and the run's keys as a base64 tar.gz (one ssh carries it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = render_agent_config(cfg).encode()
        info = tarfile.TarInfo("agent.toml")
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
        tar.add(key_dir, arcname="keys")
    return base64.b64encode(buf.getvalue()).decode()


def agent_command(python: str, d: str) -> str:
    """The agent's command line in directory ``d`` (its ``/proc/PID/cmdline``, NULs as
    spaces): the pid is the agent only once it reads exactly this (before the exec it is
    the starting shell's, whose script holds these words too)."""
    return f"{python} -m dvms agent {d}/agent.toml "


def _alive_test(command: str) -> str:
    """sh: true when ``$pid`` runs ``command`` (see ``agent_command``)."""
    return (f'[ -n "$pid" ] && [ "$(tr "\\000" " " < /proc/$pid/cmdline 2>/dev/null)" = '
            f'{shlex.quote(command)} ]')


def _start_script(cfg: AgentsConfig, agent: AgentConfig, key_dir: Path) -> str:
    d = str(agent.output_dir)
    q = shlex.quote(d)
    alive = _alive_test(agent_command(cfg.python, d))
    env = f"PYTHONPATH={shlex.quote(cfg.pythonpath)} " if cfg.pythonpath else ""
    return "\n".join([
        f"mkdir -p {q} && cd {q} || exit 1",
        f"pid=$(cat {q}/agent.pid 2>/dev/null)",
        f'if {alive}; then echo "DVMS agent running $pid"; exit 0; fi',
        f"rm -rf {q}/keys {q}/agent.json {q}/events.jsonl.gz {q}/summary.json",
        f"[ -f {q}/agent.log ] && mv -f {q}/agent.log {q}/agent.log.previous",
        f"echo {_bundle(agent, key_dir)} | base64 -d | tar xzf - -C {q} || exit 1",
        *([f"( {cfg.install_command} ) > {q}/install.log 2>&1 || "
           f'{{ echo "DVMS agent install-failed"; tail -n 3 {q}/install.log; exit 1; }}']
          if cfg.install_command else []),
        f"{env}setsid nohup {shlex.quote(cfg.python)} -m dvms agent {q}/agent.toml "
        f">> {q}/agent.log 2>&1 < /dev/null &",
        f"pid=$!; echo $pid > {q}/agent.pid; i=0",
        # the session's end hangs up its processes: wait until the agent runs detached
        f"until {alive} || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done",
        'echo "DVMS agent started $pid"',
    ])


def _check_script(command: str, agent: AgentConfig) -> str:
    d = str(agent.output_dir)
    q = shlex.quote(d)
    port = agent.listen.rsplit(":", 1)[1]
    return "\n".join([
        f"pid=$(cat {q}/agent.pid 2>/dev/null)",
        f"if ! {_alive_test(command)}; then echo \"DVMS agent dead\"; "
        f"tail -n 3 {q}/agent.log 2>/dev/null; exit 0; fi",
        # a start that raised may leave the process hanging on its threads: failed too
        f"if grep -q '^Traceback' {q}/agent.log 2>/dev/null; then kill -KILL \"$pid\"; "
        f"echo \"DVMS agent dead\"; tail -n 3 {q}/agent.log; exit 0; fi",
        # listening, and by this pid (not by whoever held the port before it)
        f'if ss -Hltnp "sport = :{port}" 2>/dev/null | grep -q "pid=$pid,"; then '
        'echo "DVMS agent up $pid";'
        f' else echo "DVMS agent starting $pid"; fi',
    ])


def _stop_script(d: str, command: str, timeout_s: float) -> str:
    q = shlex.quote(d)
    alive = _alive_test(command)
    ticks = max(1, int(timeout_s * 10))
    return "\n".join([
        f"pid=$(cat {q}/agent.pid 2>/dev/null)",
        f'if ! {alive}; then rm -f {q}/agent.pid; echo "DVMS agent absent"; exit 0; fi',
        'kill -TERM "$pid"; i=0',
        f'while {alive} && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done',
        f'if {alive}; then kill -KILL "$pid"; echo "DVMS agent killed $pid"; '
        'else echo "DVMS agent stopped $pid"; fi',
        # an exiting process loses its cmdline before it is gone: wait for that too
        "j=0; while [ $j -lt 100 ]; do st=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null "
        "| cut -c1); { [ -z \"$st\" ] || [ \"$st\" = Z ]; } && break; sleep 0.05; "
        "j=$((j+1)); done",
        f"rm -f {q}/agent.pid",
    ])


def _report(output: str) -> tuple[str, int | None, str]:
    """(word, pid, rest of the output) from a script's ``DVMS agent WORD [PID]`` line."""
    lines = output.splitlines()
    for i, ln in enumerate(lines):
        parts = ln.split()
        if parts[:2] == ["DVMS", "agent"] and len(parts) >= 3:
            pid = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
            return parts[2], pid, "\n".join(lines[i + 1:])
    return "", None, output


# -- steps ---------------------------------------------------------------------------------

def start_agents(exp: Experiment, state: ExperimentState, nodes: Sequence[Node], *,
                 timeout_s: float = 120.0) -> dict[str, AgentRecord]:
    """Configure, install and start the agents of ``nodes``; waits until each listens.

    A host whose agent already runs is left alone (idempotent)."""
    from peeractor.keys import generate_run_keys

    cfg = exp.agents
    key_dir = state.workdir / "keys"
    generate_run_keys(key_dir)
    hosts = [n.name for n in nodes]
    if cfg.address == "auto" or not cfg.libvirt_uri:
        probes = probe_hosts(hosts, timeout_s=timeout_s)
    else:  # nothing to read on the nodes
        probes = {h: HostProbe(cfg.address, cfg.libvirt_uri) for h in hosts}
    configs = agent_configs(exp, nodes, probes, key_dir)
    by_node = {n.short: n.name for n in nodes}
    records = {c.node: AgentRecord(by_node[c.node], c.node, c.listen, str(c.output_dir),
                                   agent_command(cfg.python, str(c.output_dir)))
               for c in configs}
    old = load_agents(state.workdir)
    for k, rec in old.items():
        if k in records and rec.pid is not None:
            records[k].pid = rec.pid
    _save(state.workdir, {**old, **records})
    local = state.workdir / "agents"
    local.mkdir(parents=True, exist_ok=True)
    for c in configs:  # a copy of what each node runs, for the user
        (local / f"{c.node}.toml").write_text(render_agent_config(c))
    scripts = {c.node: _start_script(cfg, c, key_dir) for c in configs}
    failures = []
    for c, r in zip(configs, run_each([by_node[c.node] for c in configs],
                                      [scripts[c.node] for c in configs], timeout_s),
                    strict=True):
        word, pid, _ = _report(r.output)
        if r.status != 0 or word not in ("started", "running"):
            records[c.node].state = "failed"
            failures.append(f"host {r.host}: agent not started (exit {r.status}): "
                            f"{_last_line(r.output)}")
        else:
            records[c.node].pid, records[c.node].state = pid, "starting"
    _save(state.workdir, {**old, **records})
    if failures:
        raise DvmsError(failures[0] + (f" (and {len(failures) - 1} more hosts)"
                                       if len(failures) > 1 else ""))
    try:
        _wait_listening(configs, records, by_node, cfg.start_timeout_s, timeout_s)
    finally:
        _save(state.workdir, {**old, **records})
    for rec in records.values():
        rec.state = "running"
    _save(state.workdir, {**old, **records})
    return records


def run_each(hosts: Sequence[str], scripts: Sequence[str],
             timeout_s: float) -> list[session.RunResult]:
    """One ssh per host, each with its own script, in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(hosts)))) as pool:
        futures = [pool.submit(session.run, [h], s, timeout_s=timeout_s)
                   for h, s in zip(hosts, scripts, strict=True)]
        return [f.result()[0] for f in futures]


def _wait_listening(configs: Sequence[AgentConfig], records: Mapping[str, AgentRecord],
                    by_node: Mapping[str, str], deadline_s: float, timeout_s: float) -> None:
    pending = {c.node: c for c in configs}
    deadline = time.monotonic() + deadline_s
    while pending:
        names = list(pending)
        results = run_each([by_node[n] for n in names],
                            [_check_script(records[n].command, pending[n]) for n in names],
                            timeout_s)
        for name, r in zip(names, results, strict=True):
            word, _, rest = _report(r.output)
            if word == "up":
                del pending[name]
            elif word == "dead" or r.status != 0:
                records[name].state = "failed"
                raise DvmsError(f"host {r.host}: agent failed to start: {_last_line(rest)} "
                                f"(log {records[name].dir}/agent.log)")
        if pending and time.monotonic() > deadline:
            hosts = ", ".join(by_node[n] for n in pending)
            raise DvmsError(f"host {hosts}: agent not listening after {deadline_s:g} s "
                            f"(log {records[next(iter(pending))].dir}/agent.log)")
        if pending:
            time.sleep(0.3)


def running_agents(state: ExperimentState, *, timeout_s: float = 60.0) -> dict[str, bool]:
    """Node → whether its agent process is alive now (asked on each host)."""
    records = load_agents(state.workdir)
    if not records:
        return {}
    names = list(records)
    scripts = [f"d={shlex.quote(records[n].dir)}\npid=$(cat \"$d/agent.pid\" 2>/dev/null)\n"
               f"if {_alive_test(records[n].command)}; then echo 'DVMS agent alive'; "
               f"else echo 'DVMS agent absent'; fi" for n in names]
    results = run_each([records[n].host for n in names], scripts, timeout_s)
    return {n: _report(r.output)[0] == "alive" for n, r in zip(names, results, strict=True)}


def stop_agents(exp: Experiment, state: ExperimentState, *, timeout_s: float = 120.0,
                only: Sequence[str] | None = None) -> list[str]:
    """SIGTERM every recorded agent (SIGKILL after ``[agents] stop_timeout_s``); returns the
    hosts that did not answer (their agents may still run). Safe to repeat."""
    records = load_agents(state.workdir)
    names = [n for n in records if only is None or n in only]
    if not names:
        return []
    results = run_each([records[n].host for n in names],
                        [_stop_script(records[n].dir, records[n].command,
                                      exp.agents.stop_timeout_s)
                         for n in names], timeout_s)
    unreachable = []
    for n, r in zip(names, results, strict=True):
        if r.status == 0 and _report(r.output)[0] in ("stopped", "killed", "absent"):
            records[n].state, records[n].pid = "stopped", None
        else:
            unreachable.append(records[n].host)
    _save(state.workdir, records)
    return unreachable
