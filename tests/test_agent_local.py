"""``dvms agent`` processes on loopback over libvirt's test driver: start, talk over
ZeroMQ/CURVE, stop cleanly on SIGTERM with trace + summary; wrong keys cannot join."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from deploy.agent_config import AgentConfig, PeerConfig, render_agent_config
from dvms.hypervisor import HostCapacity
from dvms.node import parse_node_tables
from dvms.trace import read_events, read_header
from peeractor.keys import generate_run_keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(tmp: Path, node: str, ports: dict[str, int], key_dir: Path) -> Path:
    peers = tuple(PeerConfig(n, "lab", f"tcp://127.0.0.1:{p}", "test:///default")
                  for n, p in sorted(ports.items()) if n != node)
    cfg = AgentConfig(node=node, site="lab", listen=f"tcp://127.0.0.1:{ports[node]}",
                      libvirt_uri="test:///default", key_dir=key_dir,
                      output_dir=tmp / node, seed=7,
                      capacity=HostCapacity(cpu=1000.0, memory_mib=8192), peers=peers,
                      tables=parse_node_tables({
                          "scheduler": {"name": "dvms"},
                          "vivaldi": {"fast_period_s": 0.5, "period_s": 0.5}}))
    path = tmp / f"{node}.toml"
    path.write_text(render_agent_config(cfg))
    return path


def start(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "dvms", "agent", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def summary(tmp: Path, node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp / node / "summary.json").read_text())
    return data


@pytest.mark.slow
def test_agents_talk_and_stop_cleanly_and_intruder_is_refused(tmp_path: Path) -> None:
    keys, other_keys = tmp_path / "keys", tmp_path / "other-keys"
    generate_run_keys(keys)
    generate_run_keys(other_keys)
    ports = {n: free_port() for n in ("a0", "a1", "a2", "evil")}
    procs = {n: start(config(tmp_path, n, ports, other_keys if n == "evil" else keys))
             for n in ports}
    deadline = time.monotonic() + 60
    while not all((tmp_path / n / "agent.json").exists() for n in ports):
        assert time.monotonic() < deadline, "agents did not start"
        time.sleep(0.1)
    time.sleep(4.0)
    for proc in procs.values():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        proc.send_signal(signal.SIGTERM)
    outputs = {n: p.communicate(timeout=30)[0].decode() for n, p in procs.items()}
    assert {n: p.returncode for n, p in procs.items()} == dict.fromkeys(procs, 0), outputs
    assert outputs["a0"].splitlines()[-1].startswith("agent a0: stopped after ")
    for node in ("a0", "a1", "a2"):
        s = summary(tmp_path, node)
        assert s["schema"] == "dvms.summary/1" and s["hosts"] == 4
        assert s["vivaldi"]["pongs"] > 0, s  # real RTTs measured over the transport
        header = read_header(tmp_path / node / "events.jsonl.gz")
        assert header is not None and header["node"] == node and header["t0_unix"] > 0
        list(read_events(tmp_path / node / "events.jsonl.gz"))  # complete, readable
    evil = summary(tmp_path, "evil")
    assert evil["vivaldi"]["pings"] > 0 and evil["vivaldi"]["pongs"] == 0
    refused = sum(summary(tmp_path, n)["runtime"]["dropped"].get("unauthorised", 0)
                  for n in ("a0", "a1", "a2"))
    assert refused > 0


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('node = "x"\n')
    proc = subprocess.run([sys.executable, "-m", "dvms", "agent", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"dvms agent: error: {path}: listen: missing (required)\n"
    path.write_text('node = "x"\nlisten = "tcp://127.0.0.1:1"\nlibvirt_uri = "test:///default"\n'
                    'key_dir = "k"\noutput_dir = "o"\n[scheduler]\nplanner = "nope.nothing:Cls"\n')
    proc = subprocess.run([sys.executable, "-m", "dvms", "agent", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"dvms agent: error: {path}: scheduler.planner") or \
        proc.stderr.startswith(f"dvms agent: error: {path}: planner 'nope.nothing:Cls': "
                               "cannot import 'nope.nothing'"), proc.stderr
    assert proc.stderr.count("\n") == 1


def test_an_agent_whose_port_is_taken_exits_1_with_one_line(tmp_path: Path) -> None:
    """The ZeroMQ bind fails: the agent says so and exits (no thread keeps it alive)."""
    keys = tmp_path / "keys"
    generate_run_keys(keys)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start(config(tmp_path, "a0", {"a0": port, "a1": free_port()}, keys))
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 1, out
    lines = out.strip().splitlines()
    assert lines == [f"dvms agent: error: agent a0: cannot listen on tcp://127.0.0.1:{port}: "
                     "Address already in use"], out
