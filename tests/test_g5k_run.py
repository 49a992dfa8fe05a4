"""``dvms g5k run`` and the step commands on the tier-L lab, as a user runs them (the CLI
as a process): real OAR/kadeploy stand-ins over real ssh, the ``vms`` step with the
stand-in ``virsh`` of ``tests/g5k_fake_virsh.py`` on the nodes' PATH (its "VMs" are real
processes listening on loopback addresses), real ``dvms agent`` processes. Tier L has no
hypervisor, so ``stress`` (ssh into the guests) is left to the tier-F end-to-end test:
``run --steps`` selects the others."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k.lab import lab as lab_mod
from deploy.g5k.lab.spec import LabSpec, default_spec
from dvms.summary import validate_summary
from tests.g5k_lab import ROOT, Lab, error_line, needs_sshd

pytestmark = needs_sshd

STEPS_L = "plan,reserve,deploy,vms,start,collect"
"""Every step tier L can run (no guest to ssh into: no stress, no load applied)."""


def _free_port_base(n: int) -> int:
    """``n`` consecutive free ports below the kernel's ephemeral range, so that no outgoing
    connection of the test (ssh, ZeroMQ) is given one of them while an agent restarts."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random(os.getpid())
    for _ in range(200):
        base = rng.randrange(10_000, max(10_001, low - n))
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + n):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port")


class Run:
    """The lab, the fake virsh on its nodes, an experiment running 6 VMs and 4 agents."""

    def __init__(self, tmp: Path) -> None:
        spec = default_spec(2, (2, 3))
        spec = LabSpec(sites=spec.sites, start_delay_s=1.0, kadeploy_s=0.2)
        self.lab = Lab(state=lab_mod.up(spec, tmp / "lab"), tmp=tmp)
        self.fv = tmp / "fakevirsh"
        self.fv.mkdir()
        (self.fv / "port").write_text("22")
        virsh = self.lab.dir / "bin" / "virsh"  # first on the nodes' PATH
        virsh.write_text(f"#!/bin/sh\nexec {sys.executable} "
                         f"{ROOT / 'tests' / 'g5k_fake_virsh.py'} {self.fv} \"$@\"\n")
        virsh.chmod(0o755)
        self.base = tmp / "base.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.base), "32M"],
                       check=True)
        self.port = _free_port_base(4)
        self.exp = self._experiment(tmp)

    def _experiment(self, tmp: Path) -> Path:
        path = self.lab.experiment()
        path.write_text(path.read_text() + f"""
[vms]
count = 6
template = {{ mem_mib = 128, vcpus = 1, disk_gib = 1 }}
backing_file = "{self.base}"
disk_dir = "{tmp / 'disks'}"
boot_timeout_s = 3.0
min_vms_ratio = 0.8
domain_type = "qemu"

[agents]
python = "{sys.executable}"
pythonpath = "{ROOT}"
address = "127.0.0.1"
port = {self.port}
libvirt_uri = "test:///default"
migration_storage = "shared"
remote_dir = "{tmp / 'remote'}"
capacity_percent = 100
stop_timeout_s = 10

[scheduler]
name = "dvms"

[vivaldi]
fast_period_s = 0.3
fast_rounds = 4
period_s = 0.5
""")
        return path

    def dvms(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.lab.dvms(*args, timeout=timeout)

    def loopback_pool(self) -> None:
        """The reservation's KaVLAN pairs with loopback IPs (this machine cannot hold the
        VLAN's addresses): what the fake VMs listen on and the probe connects to."""
        path = self.lab.workdir / "pool.json"
        pairs = json.loads(path.read_text())
        pool = [(f"127.77.1.{i + 1}", mac) for i, (_, mac) in enumerate(pairs[:200])]
        path.write_text(json.dumps(pool))
        (self.fv / "ips.json").write_text(json.dumps({mac: ip for ip, mac in pool}))

    def status(self) -> dict[str, Any]:
        return self.lab.state_json()

    def vm_pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.fv.glob("nodes/*/run/*.pid")]

    def starts(self) -> int:
        log = self.fv / "starts.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def count(self, command: str) -> int:
        return sum(1 for c in self.lab.commands() if f" {command} " in c)

    def close(self) -> None:
        self.dvms("release", str(self.exp))
        for pid in self.vm_pids():
            _kill(pid)
        lab_mod.down(self.lab.dir)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    r = Run(tmp_path_factory.mktemp("g5krun"))
    try:
        yield r
    finally:
        r.close()


def _until_deploy(run: Run) -> None:
    proc = run.dvms("run", str(run.exp), "--until", "deploy")
    assert proc.returncode == 0, proc.stderr
    assert "reserve: " in proc.stdout and "deploy: " in proc.stdout
    run.loopback_pool()


@pytest.mark.slow
def test_a_failed_step_resumes_then_ctrl_c_in_load_keeps_the_state_release_cleans(
        run: Run) -> None:
    _until_deploy(run)
    steps = run.status()["steps"]
    assert {s for s, r in steps.items() if r["status"] == "done"} >= {"reserve", "deploy"}
    oarsubs, kadeploys = run.count("oarsub"), run.count("kadeploy3")
    # 1. a step fails (the second host's agent port is taken): the state is kept (--keep)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", run.port + 1))
        squatter.listen(1)
        failed = run.dvms("run", str(run.exp), "--steps", STEPS_L, "--keep")
    assert failed.returncode == 1, failed.stderr
    line = error_line(failed)
    assert line.startswith("dvms g5k: error: host fcla-2.fsite1.grid5000.fr: agent failed "
                           "to start:") and "Address already in use" in line
    for step in ("plan", "reserve", "deploy"):
        assert f"{step}: done before, skipped" in failed.stdout
    state = run.status()
    assert state["steps"]["vms"]["status"] == "done"
    assert state["steps"]["start"]["status"] == "failed"
    assert len(state["vms"]["ok"]) == 6 and len(run.vm_pids()) == 6  # --keep: all kept
    assert [j["state"] for j in state["jobs"]] == ["submitted", "submitted"]
    # 2. the re-run resumes at the failed step: nothing done twice
    starts = run.starts()
    again = run.dvms("run", str(run.exp), "--steps", STEPS_L)
    assert again.returncode == 0, again.stderr
    for step in ("plan", "reserve", "deploy", "vms"):
        assert f"{step}: done before, skipped" in again.stdout
    assert (run.count("oarsub"), run.count("kadeploy3"), run.starts()) == (
        oarsubs, kadeploys, starts)
    state = run.status()
    assert all(state["steps"][s]["status"] == "done" for s in ("vms", "start", "collect"))
    assert {a["state"] for a in state["agents"].values()} == {"stopped"}
    out = run.lab.workdir / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert validate_summary(summary) == [] and summary["status"] == "complete"
    assert (summary["hosts"], summary["vms"], summary["vms_lost"]) == (4, 6, 0)
    assert len((out / "vms.list").read_text().splitlines()) == 6
    assert (out / "final_topo.xml").exists()
    power = (out / "power.csv").read_text().splitlines()
    assert {ln.split(",")[0] for ln in power[1:]} == {
        "fcla-1.fsite1.grid5000.fr", "fcla-2.fsite1.grid5000.fr",
        "fclb-1.fsite2.grid5000.fr", "fclb-2.fsite2.grid5000.fr"}
    # 3. agents again, then Ctrl-C during load: the state is kept
    up = run.dvms("start", str(run.exp))
    assert up.returncode == 0, up.stderr
    pids = [a["pid"] for a in run.status()["agents"].values()]
    assert len(pids) == 4 and all(_alive(p) for p in pids)
    events = run.lab.tmp / "events.jsonl"
    events.write_text('{"t": 60, "vm": "vm-1", "load": 70}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load = subprocess.Popen([sys.executable, "-m", "dvms", "g5k", "--workdir",
                             str(run.lab.workdir), "load", str(run.exp), "--events",
                             str(events)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=run.lab.tmp)
    deadline = time.monotonic() + 60
    state_file = run.lab.workdir / "state.json"
    while json.loads(state_file.read_text())["steps"].get("load", {}).get("status") != "running":
        assert load.poll() is None and time.monotonic() < deadline, load.communicate()
        time.sleep(0.2)
    load.send_signal(signal.SIGINT)
    _, err = load.communicate(timeout=30)
    assert load.returncode == 130, err
    assert "dvms g5k: interrupted" in err and "Traceback" not in err
    state = run.status()
    assert state["steps"]["load"]["status"] == "failed"
    assert state["steps"]["load"]["error"] == "KeyboardInterrupt"
    assert all(_alive(p) for p in pids) and len(run.vm_pids()) == 6
    assert [j["state"] for j in state["jobs"]] == ["submitted", "submitted"]
    # 4. release: agents, VMs (one "migrated" by the agents), jobs; twice: nothing
    vm_pids = run.vm_pids()
    src, dst = run.fv / "nodes" / "fcla-1", run.fv / "nodes" / "fclb-2"
    for sub, name in (("domains", "vm-1.xml"), ("run", "vm-1.pid")):
        (src / sub / name).rename(dst / sub / name)  # vm-1 now runs on fclb-2
    released = run.dvms("release", str(run.exp))
    assert released.returncode == 0, released.stderr
    assert "agents stopped" in released.stdout and "6 VMs destroyed" in released.stdout
    assert "jobs deleted" in released.stdout
    assert not any(_alive(p) for p in pids + vm_pids)
    assert not list(run.fv.glob("nodes/*/domains/*.xml"))  # undefined where they ran
    assert not any(j["state"] in ("Running", "Waiting") for j in run.lab.status()["jobs"])
    twice = run.dvms("release", str(run.exp))
    assert twice.returncode == 0 and "nothing (no agent, VM or job)" in twice.stdout


def test_bad_steps_are_one_line_exit_2(run: Run) -> None:
    proc = run.dvms("run", str(run.exp), "--steps", "plan,bogus")
    assert proc.returncode == 2
    assert error_line(proc) == ("dvms g5k: error: --steps 'plan,bogus': unknown step 'bogus'; "
                                "steps: plan, reserve, deploy, vms, stress, start, load, "
                                "collect")


def test_a_failing_run_releases_unless_kept(run: Run) -> None:
    run.lab.fault(kadeploy_fail_sites=["fsite1", "fsite2"])  # every node fails kadeploy
    try:
        proc = run.dvms("run", str(run.exp), "--until", "vms")
    finally:
        run.lab.clear_faults()
    assert proc.returncode == 1, proc.stderr
    assert "run failed: releasing (use --keep to keep the reservation)" in proc.stderr
    state = run.status()
    assert state["steps"]["deploy"]["status"] == "failed"
    assert state["steps"]["reserve"]["status"] == "released"
    assert {j["state"] for j in state["jobs"]} == {"deleted"}
    assert not any(j["state"] in ("Running", "Waiting") for j in run.lab.status()["jobs"])
