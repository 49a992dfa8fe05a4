"""The ``start`` and ``collect`` steps on the tier-L lab: real ``dvms agent`` processes
started over real ssh (each lab node is an ``sshd -i`` session on this machine; agents use
libvirt's ``test:///default`` driver and share the loopback on distinct ports), their
outputs fetched by scp and merged, and the fake Kwapi's power series read through execo."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.g5k import agents, session
from deploy.g5k.collect import collect_run, fetch_power
from deploy.g5k.config import Experiment, load_experiment, parse_experiment
from deploy.g5k.lab import lab as lab_mod
from deploy.g5k.lab.power import IDLE_W
from deploy.g5k.lab.spec import LabSpec, default_spec
from deploy.g5k.live import AgentTail, serve_agents
from deploy.g5k.platform import Node, load_platform
from deploy.g5k.state import ExperimentState, HostRecord
from dvms.errors import DvmsError
from dvms.summary import validate_summary
from tests.g5k_lab import ROOT, Lab, needs_sshd

pytestmark = needs_sshd

HOSTS = ["fcla-1.fsite1.grid5000.fr", "fcla-2.fsite1.grid5000.fr", "fclb-1.fsite2.grid5000.fr"]
CGROUP_ROOT = Path("/sys/fs/cgroup/unified")
FAST_VIVALDI = "\n[vivaldi]\nfast_period_s = 0.3\nfast_rounds = 4\nperiod_s = 0.5\n"


def _free_port_base(n: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65536 and all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cgroup_usable() -> bool:
    return os.geteuid() == 0 and (CGROUP_ROOT / "cgroup.procs").exists()


class World:
    """A module's lab, an experiment against it, the OK hosts recorded as deployed."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cgroup = CGROUP_ROOT / f"dvms-g5k-test-{os.getpid()}"
        spec = default_spec(2, (2, 3))
        sites = list(spec.sites)
        first = sites[0].clusters[0]
        busy = replace(first.nodes[0], cgroup=str(self.cgroup))
        sites[0] = replace(sites[0], clusters=(replace(first, nodes=(busy, *first.nodes[1:])),
                                               *sites[0].clusters[1:]))
        spec = LabSpec(sites=tuple(sites), start_delay_s=1.0, kadeploy_s=0.2)
        self.lab = Lab(state=lab_mod.up(spec, tmp / "lab"), tmp=tmp)
        self.port = _free_port_base(len(HOSTS))
        self.remote = tmp / "remote"

    def experiment(self, extra: str = "", agents: str = "") -> Experiment:
        path = self.lab.experiment()
        path.write_text(path.read_text() + f"""
[agents]
python = "{sys.executable}"
pythonpath = "{ROOT}"
address = "127.0.0.1"
port = {self.port}
libvirt_uri = "test:///default"
remote_dir = "{self.remote}"
capacity_percent = 100
start_timeout_s = 40
stop_timeout_s = 10
{agents}{FAST_VIVALDI}{extra}""")
        exp = load_experiment(path)
        session.configure(exp, self.lab.workdir)
        return exp

    def state(self, exp: Experiment) -> tuple[ExperimentState, list[Node]]:
        platform = load_platform()
        nodes = [platform.node(h) for h in HOSTS]
        self.lab.workdir.mkdir(parents=True, exist_ok=True)
        state = ExperimentState.open(self.lab.workdir, exp.name)
        for n in nodes:
            state.hosts[n.name] = HostRecord(n.name, n.site, n.cluster, state="ready")
        state.save()
        return state, nodes

    def close(self) -> None:
        lab_mod.down(self.tmp / "lab")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("g5kagents"))
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(autouse=True)
def no_agent_left(world: World) -> Iterator[None]:
    """A failing test must not leave its agents to the next (ports, "already running")."""
    yield
    exp = world.experiment()
    state, _ = world.state(exp)
    agents.stop_agents(exp, state)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_configs_from_the_reservation() -> None:
    exp = parse_experiment({
        "name": "t", "scheduler": {"name": "centralized", "period_s": 7.5},
        "dvms": {"min_partition_size": 2}, "vivaldi": {"period_s": 0.5},
        "agents": {"capacity_memory_mib": 4096}})
    nodes = [Node("fcla-1.fsite1.grid5000.fr", "fsite1", "fcla", 8, 16384, 1e10, True),
             Node("fcla-2.fsite1.grid5000.fr", "fsite1", "fcla", 4, 8192, 1e10, True),
             Node("fclb-1.fsite2.grid5000.fr", "fsite2", "fclb", 2, 4096, 1e10, True)]
    probes = {"fcla-1.fsite1.grid5000.fr": agents.HostProbe("10.0.0.1", ""),
              "fcla-2.fsite1.grid5000.fr": agents.HostProbe("10.0.0.1", "qemu:///session"),
              "fclb-1.fsite2.grid5000.fr": agents.HostProbe("10.0.1.7", "")}
    configs = agents.agent_configs(exp, nodes, probes, Path("/keys"))
    a, b, c = configs
    assert [x.node for x in configs] == ["fcla-1", "fcla-2", "fclb-1"]
    assert [x.site for x in configs] == ["fsite1", "fsite1", "fsite2"]
    # capacity: 100 % per core from the API, memory overridden by [agents]
    assert [x.capacity.cpu for x in configs if x.capacity] == [800.0, 400.0, 200.0]
    assert {x.capacity.memory_mib for x in configs if x.capacity} == {4096}
    # two hosts on one address: distinct ports; the third its own address
    assert (a.listen, b.listen, c.listen) == ("tcp://10.0.0.1:7100", "tcp://10.0.0.1:7101",
                                              "tcp://10.0.1.7:7100")
    # libvirt: the node's LIBVIRT_DEFAULT_URI, else Grid'5000's system daemon
    assert (a.libvirt_uri, b.libvirt_uri) == ("qemu:///system", "qemu:///session")
    assert [(p.node, p.site, p.address, p.libvirt_uri) for p in a.peers] == [
        ("fcla-2", "fsite1", "tcp://10.0.0.1:7101", "qemu+tcp://fcla-2.fsite1.grid5000.fr/system"),
        ("fclb-1", "fsite2", "tcp://10.0.1.7:7100", "qemu+tcp://fclb-1.fsite2.grid5000.fr/system")]
    assert a.agent.migration_storage == "copy-inc"
    # node tables verbatim: the centralised scheduler is what the agents run
    for x in configs:
        assert x.tables.scheduler.name == "centralized" and x.tables.scheduler.period_s == 7.5
        assert x.tables.dvms.min_partition_size == 2
        assert x.tables.vivaldi.options["period_s"] == 0.5
        assert x.seed == exp.seed
    lab_exp = parse_experiment({"name": "t", "agents": {
        "address": "127.0.0.1", "port": 9100, "capacity_percent": 100,
        "libvirt_uri": "test:///default", "peer_uri": "qemu+tcp://{address}/system"}})
    a2 = agents.agent_configs(lab_exp, nodes, probes, Path("/keys"))[0]
    assert a2.capacity is not None and a2.capacity.cpu == 100.0
    assert a2.libvirt_uri == "test:///default"
    assert [p.address for p in a2.peers] == ["tcp://127.0.0.1:9101", "tcp://127.0.0.1:9102"]
    assert a2.peers[0].libvirt_uri == "qemu+tcp://127.0.0.1/system"


def test_agents_start_over_ssh_rerun_leaves_them_stop_leaves_nothing(world: World) -> None:
    exp = world.experiment('\n[scheduler]\nname = "dvms"\n')
    state, nodes = world.state(exp)
    t0 = time.monotonic()
    records = agents.start_agents(exp, state, nodes)
    started_s = time.monotonic() - t0
    pids = {n: r.pid for n, r in records.items()}
    assert all(p is not None and _alive(p) for p in pids.values()), pids
    ports = [int(r.listen.rsplit(":", 1)[1]) for r in records.values()]
    assert ports == [world.port, world.port + 1, world.port + 2]
    assert all(_listening(p) for p in ports)
    header = json.loads((world.remote / "fclb-1" / "agent.json").read_text())
    assert header["site"] == "fsite2" and header["scheduler"] == "dvms"
    again = agents.start_agents(exp, state, nodes)
    assert {n: r.pid for n, r in again.items()} == pids  # left alone
    _live_view_follows_the_agents(state)
    assert agents.running_agents(state) == dict.fromkeys(pids, True)
    assert agents.stop_agents(exp, state) == []
    assert not any(_alive(p) for p in pids.values() if p is not None)
    assert agents.running_agents(state) == dict.fromkeys(pids, False)
    summary = json.loads((world.remote / "fcla-1" / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert agents.stop_agents(exp, state) == []  # twice: a no-op
    assert started_s < 30


def _live_view_follows_the_agents(state: ExperimentState) -> None:
    """The dashboard on a free port, fed by the running agents' traces over ssh."""
    port = _free_port_base(1)
    lines: list[str] = []
    stop = serve_agents(state, port, period_s=0.5, progress=lines.append)
    try:
        assert lines == [f"dashboard: http://127.0.0.1:{port}/ (live, from the agents' traces)"]
        deadline, status = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status",
                                            timeout=5) as r:
                    status = json.loads(r.read())
                if status.get("counters", {}).get("events", 0) >= 1:
                    break
            time.sleep(0.5)
        assert status["mode"] == "live" and status["counters"]["events"] >= 1, status
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        stop()
    tail = AgentTail(state)
    events = tail.poll()
    assert sorted(tail.t0) == ["fcla-1", "fcla-2", "fclb-1"]  # every agent's header read
    assert events and [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert all(e["t"] >= 0 for e in events)  # on the earliest agent's clock


def test_an_agent_that_cannot_bind_names_its_host(world: World) -> None:
    exp = world.experiment()
    state, nodes = world.state(exp)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", world.port + 1))  # fcla-2's port
        squatter.listen(1)
        with pytest.raises(DvmsError) as err:
            agents.start_agents(exp, state, nodes)
    message = str(err.value)
    assert message.startswith("host fcla-2.fsite1.grid5000.fr: agent failed to start:")
    assert "Address already in use" in message and "\n" not in message
    agents.stop_agents(exp, state)
    assert agents.running_agents(state) == dict.fromkeys(["fcla-1", "fcla-2", "fclb-1"], False)


def test_a_failing_install_command_names_its_host(world: World) -> None:
    exp = world.experiment(agents="install_command = 'echo \"no wheel here\"; exit 3'\n")
    state, nodes = world.state(exp)
    with pytest.raises(DvmsError) as err:
        agents.start_agents(exp, state, nodes[:1])
    assert str(err.value) == ("host fcla-1.fsite1.grid5000.fr: agent not started (exit 1): "
                              "no wheel here")
    assert agents.running_agents(state)["fcla-1"] is False


def test_an_agent_killed_mid_run_still_gives_a_run(world: World) -> None:
    exp = world.experiment('\n[scheduler]\nname = "centralized"\n')
    state, nodes = world.state(exp)
    with state.step("start"):
        records = agents.start_agents(exp, state, nodes)
    (state.workdir / "loads.jsonl").write_text(json.dumps(
        {"t_unix": time.time() + 0.5, "host": "fcla-1", "vm": "vm-1", "load": 70.0}) + "\n")
    time.sleep(4)  # Vivaldi rounds between the agents
    victim = records["fcla-2"].pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    agents.stop_agents(exp, state)
    lines: list[str] = []
    out = state.workdir / "run"
    summary = collect_run(state, out, progress=lines.append)
    assert validate_summary(summary) == []
    assert summary["status"] == "interrupted"
    assert summary["agents_incomplete"] == ["fcla-2"]
    assert summary["scheduler"] == "centralized" and summary["vms_lost"] == 0
    assert summary["scenario"]["g5k"] == {"name": "labexp"}
    assert any("fcla-2" in ln for ln in lines), lines
    with gzip.open(out / "events.jsonl.gz", "rt") as f:
        events = [json.loads(ln) for ln in f][1:]
    nodes_seen = {e.get("node") for e in events}
    assert {"fcla-1", "fclb-1"} <= nodes_seen
    assert any(e["type"] == "load" and e.get("vm") == "vm-1" for e in events)
    power = (out / "power.csv").read_text().splitlines()
    assert power[0] == "host,timestamp,watts"
    assert {ln.split(",")[0] for ln in power[1:]} == set(HOSTS)  # the fake Kwapi, every host
    watts = [e for e in events if e["type"] == "power"]
    assert watts and {e["hosts_on"] for e in watts} <= {1, 2, 3} and max(
        e["hosts_on"] for e in watts) == 3  # summed per second into the trace
    proc = subprocess.run([sys.executable, "-m", "dvms", "report", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert (out / "report" / "index.html").exists()
    assert (out / "report" / "power.png").exists()  # the hosts' power, from the trace


def test_load_events_follow_the_migrations_of_their_vm(tmp_path: Path) -> None:
    from deploy.g5k.collect import load_events_of, power_events
    from deploy.g5k.vmdeploy import VmRecord, VmsRun

    rs = VmsRun({"vm-1": VmRecord("fcla-1.fsite1.grid5000.fr", "10.0.0.1", "m", "OK"),
                 "vm-2": VmRecord("fclb-1.fsite2.grid5000.fr", "10.0.0.2", "n", "OK")})
    origin = 1000.0
    loads = tmp_path / "loads.jsonl"
    loads.write_text("".join(json.dumps({"t_unix": origin + t, "host": "fcla-1", "vm": vm,
                                         "load": 70.0}) + "\n"
                             for t, vm in ((2, "vm-1"), (8, "vm-1"), (9, "vm-2"))))
    moves = [{"t": 5.0, "type": "migration.end", "node": "fcla-1", "vm": "vm-1",
              "src": "fcla-1", "dst": "fclb-1"}]
    got = load_events_of(loads, moves, origin, rs)
    assert [(e["t_unix"], e["vm"], e["host"]) for e in got] == [
        (1002.0, "vm-1", "fcla-1"), (1008.0, "vm-1", "fclb-1"), (1009.0, "vm-2", "fclb-1")]
    assert all(e["type"] == "load" and e["node"] == e["host"] for e in got)
    assert power_events({"a": [(10, 100.0), (11, 120.0)], "b": [(10, 95.0)]}) == [
        {"t_unix": 10.0, "type": "power", "node": "world", "total_w": 195.0, "hosts_on": 2},
        {"t_unix": 11.0, "type": "power", "node": "world", "total_w": 120.0, "hosts_on": 1}]


@pytest.mark.skipif(not _cgroup_usable(), reason="needs root and a cgroup v2 hierarchy")
def test_power_series_for_every_host_rise_with_the_cgroup_cpu(world: World) -> None:
    world.experiment()
    world.cgroup.mkdir(exist_ok=True)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        (world.cgroup / "cgroup.procs").write_text(str(burner.pid))
        t0 = time.time()
        time.sleep(5)
        series = fetch_power(HOSTS, t0, time.time())
    finally:
        burner.kill()
        burner.wait()
        with contextlib.suppress(OSError):
            world.cgroup.rmdir()
    assert sorted(series) == sorted(HOSTS)
    assert all(len(v) >= 3 for v in series.values()), series
    busy = [w for ts, w in series[HOSTS[0]] if ts >= t0 + 2]  # a full second in the cgroup
    idle = [w for h in HOSTS[1:] for _, w in series[h]]
    assert set(idle) == {IDLE_W}
    # one core burning is +25 W; on this shared 2-core machine it gets half a core or more
    assert busy and min(busy) > IDLE_W + 5, series[HOSTS[0]]
