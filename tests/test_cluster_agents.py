"""Agent configs for the cluster and trace merging (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from deploy.agent_config import AgentTuning
from deploy.cluster import ClusterState
from deploy.cluster_agents import agent_configs, load_events, merge_traces
from deploy.cluster_libvirtd import LibvirtdHost
from dvms.errors import DvmsError
from dvms.hypervisor import HostCapacity
from dvms.trace import TraceWriter, read_events, read_header


def test_every_other_host_is_a_peer(tmp_path: Path) -> None:
    state = ClusterState(workdir=tmp_path, spec={}, bridge_ns="x-net")
    for i in range(3):
        state.hosts.append(LibvirtdHost(name=f"h{i}", netns=f"x-h{i}", ip=f"10.9.0.{i + 1}",
                                        base=tmp_path / f"h{i}", cgroup=f"libvirt-x-h{i}"))
    cfgs = agent_configs(state, capacity=HostCapacity(50.0, 1024), tuning=AgentTuning())
    assert cfgs[0].tables.scheduler.name == "dvms" and cfgs[0].tables.dvms.min_partition_size == 2
    assert [c.node for c in cfgs] == ["h0", "h1", "h2"]
    h1 = cfgs[1]
    assert h1.listen == "tcp://10.9.0.2:7100"
    assert h1.libvirt_uri == f"qemu+unix:///system?socket={tmp_path}/h1/run/libvirt-sock"
    assert [(p.node, p.address, p.libvirt_uri) for p in h1.peers] == [
        ("h0", "tcp://10.9.0.1:7100", "qemu+tcp://10.9.0.1/system"),
        ("h2", "tcp://10.9.0.3:7100", "qemu+tcp://10.9.0.3/system")]
    assert h1.key_dir == tmp_path / "keys"
    assert h1.output_dir == tmp_path / "agents" / "h1"


def test_merge_puts_agents_on_one_time_line(tmp_path: Path) -> None:
    for name, t0, events in [
        ("h0", 1000.0, [(0.5, "isp.start"), (3.0, "migration.end")]),
        ("h1", 1001.0, [(0.0, "violation.start"), (1.0, "violation.end")]),
    ]:
        d = tmp_path / name
        d.mkdir()
        with TraceWriter(d / "events.jsonl.gz", header={"t0_unix": t0}) as w:
            for t, kind in events:
                w.write({"t": t, "type": kind, "node": name})
    out = tmp_path / "run" / "events.jsonl.gz"
    out.parent.mkdir()
    assert merge_traces([tmp_path / "h0", tmp_path / "h1"], out) == 4
    assert [(e["t"], e["type"], e["node"]) for e in read_events(out)] == [
        (0.5, "isp.start", "h0"), (1.0, "violation.start", "h1"),
        (2.0, "violation.end", "h1"), (3.0, "migration.end", "h0")]
    header = read_header(out)
    assert header is not None and header["t0_unix"] == 1000.0
    (tmp_path / "h2").mkdir()
    with TraceWriter(tmp_path / "h2" / "events.jsonl.gz") as w:
        pass
    with pytest.raises(DvmsError, match="no trace header with t0_unix"):
        merge_traces([tmp_path / "h2"], out)


def test_load_log_becomes_load_events(tmp_path: Path) -> None:
    loads = tmp_path / "loads.jsonl"
    loads.write_text('{"t_unix": 99.0, "vm": "v0", "host": "h0", "load": 5.0}\n'
                     '{"t_unix": 103.5, "vm": "v1", "host": "h1", "load": 30}\n'
                     'not json\n')
    assert load_events(loads, 100.0) == [
        {"t": 3.5, "type": "load", "node": "h1", "vm": "v1", "host": "h1", "load": 30.0}]
    assert load_events(tmp_path / "none.jsonl", 0.0) == []


def test_merge_keeps_what_a_killed_agent_left(tmp_path: Path) -> None:
    d = tmp_path / "h0"
    d.mkdir()
    (d / "agent.json").write_text('{"t0_unix": 10.0}')
    with TraceWriter(d / "events.jsonl.gz", header={"t0_unix": 10.0}) as w:
        for i in range(50):
            w.write({"t": float(i), "type": "load", "node": "h0"})
    data = (d / "events.jsonl.gz").read_bytes()
    (d / "events.jsonl.gz").write_bytes(data[: len(data) // 2])  # killed mid-write
    e = tmp_path / "h1"
    e.mkdir()
    (e / "agent.json").write_text('{"t0_unix": 12.0}')  # killed before any flush
    out = tmp_path / "merged.jsonl.gz"
    n = merge_traces([d, e], out)
    assert 0 <= n < 50
    header = read_header(out)
    assert header is not None and header["truncated"] == ["h0", "h1"]
