"""The end-to-end test of G5K.md §5.6 on the tier-F lab (real libvirtd + QEMU guests),
driving the CLI (``python -m dvms g5k ...`` processes) step by step, once with
``scheduler = "dvms"`` and once with ``"centralized"`` (issue 13, acceptance 1 and 2).

Lab: ``fsite1`` (``fcla`` × 2) and ``fsite2`` (``fclb`` × 2, ``fclc`` × 1), every node a
hypervisor, one L2 (global KaVLAN 16 on ``fsite1``); faults: ``fclb-2`` fails kadeploy,
``vm-6`` boots with ``dvms.sshd=0``. Experiment: 4 nodes, ``fclc`` blacklisted, 6 VMs of
128 MiB round-robin, stress capped at 1 % in every VM, agents with a declared capacity of
``CAPACITY`` % per host; load events put the two VMs of one host at ``LOAD`` % (over
``CAPACITY``): the scheduler must live-migrate one of them (storage copy), which keeps its
address, its stress process and its cap. Then collect (one trace, summary, power,
report) and release.
Inter-site delay: none on this machine (its kernel has no ``sch_netem``; the lab says so).
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k.lab.faults import Faults, save_faults
from deploy.g5k.oarspec import parse_resources
from dvms.config import toml_value
from dvms.summary import validate_summary
from tests.g5k_lab import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in
                           ("libvirtd", "qemu-system-x86_64", "gcc", "nc", "sshd")),
                       reason="needs libvirtd, qemu, gcc, nc, sshd (make test installs them)"),
]

PREFIX = "g5ke"
MIGRATION_DEADLINE_S = 120.0
CAPACITY, LOAD = 60, 40
"""Declared CPU of each host (percent of a core) and the load put on the two VMs of one
host. §5.6 says 100 and 70; this 2-core machine runs 5 lab hypervisors beside other
users' work, so a guest's measured CPU (what the agents see) is what the machine gives it:
a guest capped at 70 % measured 40-45 % on a busy machine, an idle guest with its stress
at 1 % ~10 % (TCG, cpulimit's polling). Two guests at 40 % (measured 30-45 each) exceed
60; one of them fits beside the lightest host's guests (~15 %)."""


@dataclass
class E2e:
    dir: Path
    tmp: Path

    def cli(self, *args: str, workdir: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "dvms", *args,
                               *(["--workdir", str(workdir)] if workdir else [])],
                              capture_output=True, text=True, env=env, timeout=timeout)

    def g5k(self, *args: str, workdir: Path, timeout: float = 300) -> str:
        proc = self.cli("g5k", *args, workdir=workdir, timeout=timeout)
        assert proc.returncode == 0, f"dvms g5k {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def status(self, exp: Path, workdir: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.g5k("status", str(exp), workdir=workdir))
        return data

    def lab_status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.g5k("lab", "status", workdir=self.dir))
        return data

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-F", str(self.dir / "ssh_config"), host, command],
                              capture_output=True, text=True, timeout=60)

    def jobs(self, name: str) -> list[dict[str, Any]]:
        """The lab's jobs of one experiment (by OAR job name)."""
        return [j for j in self.lab_status()["jobs"] if j["name"] == name]

    def where(self) -> dict[str, str]:
        """VM → the host whose daemon runs it now."""
        hosts = self.lab_status()["hypervisors"]["hosts"]
        return {vm: h for h, info in hosts.items() for vm in info["domains"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2e]:
    tmp = tmp_path_factory.mktemp("e2e")
    lab = E2e(dir=tmp / "lab", tmp=tmp)
    t0 = time.monotonic()
    proc = lab.cli("g5k", "lab", "up", "--libvirt", "--sites", "2", "--nodes", "2,3",
                   "--prefix", PREFIX, "--start-delay-s", "1", workdir=lab.dir)
    try:
        assert proc.returncode == 0, proc.stderr
        print(f"\n[e2e] lab up (5 hypervisors): {time.monotonic() - t0:.1f} s")
        yield lab
    finally:
        lab.cli("g5k", "lab", "down", workdir=lab.dir)


def _experiment(lab: E2e, name: str, scheduler: str) -> tuple[Path, Path]:
    """The §5.6 experiment on this lab (the lab's own example, sized and tuned)."""
    base = tomllib.loads((lab.dir / "experiment.toml").read_text())
    events = lab.tmp / f"{name}-events.jsonl"
    tables: dict[str, dict[str, Any]] = {
        "platform": base["platform"],
        "reservation": {**base["reservation"], "resources": ["grid5000:4"],
                        "blacklist": ["fclc"], "kavlan": True, "walltime": "0:30:00",
                        "start_timeout_s": 60},
        "hosts": {**base["hosts"], "min_hosts_ratio": 0.7},
        "vms": {**base["vms"], "count": 6, "boot_timeout_s": 12.0, "min_vms_ratio": 0.8},
        "stress": {"mem_mib": 16, "rate_mib_s": 4.0, "initial_percent": 1},
        "load": {"events": str(events)},
        "agents": {**base["agents"], "capacity_percent": CAPACITY, "dashboard": True,
                   "dashboard_port": _free_port(), "migration_timeout_s": 90,
                   "start_timeout_s": 60, "stop_timeout_s": 15},
        "scheduler": {"name": scheduler, "period_s": 3.0, "headroom": 0.0},
        "dvms": {"min_partition_size": 2},
        "monitor": {"mode": "poll", "period_s": 1.0},
        "vivaldi": {"fast_period_s": 0.3, "fast_rounds": 4, "period_s": 1.0},
    }
    text = f'name = "e2e-{name}"\nseed = 1\n'
    for table, values in tables.items():
        text += f"\n[{table}]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                           for k, v in values.items())
    path = lab.tmp / f"{name}.toml"
    path.write_text(text)
    return path, events


def _flow(lab: E2e, name: str, scheduler: str) -> None:
    exp, events = _experiment(lab, name, scheduler)
    work = lab.tmp / f"{name}-work"
    save_faults(lab.dir, Faults(kadeploy_fail_nodes=["fclb-2"], silent_vms=["vm-6"]))
    timings: dict[str, float] = {}

    def step(*args: str, timeout: float = 300) -> str:
        t0 = time.monotonic()
        out = lab.g5k(*args, str(exp), workdir=work, timeout=timeout)
        timings[args[0]] = round(time.monotonic() - t0, 1)
        return out

    # 1. plan: both sites, fclc excluded inside the nodes group, strings OAR 2.5 accepts
    out = step("plan")
    lines = {ln.split(":", 1)[0].strip(): shlex.split(ln.split(":", 1)[1])
             for ln in out.splitlines() if "oarsub -l" in ln}
    assert sorted(lines) == ["fsite1", "fsite2"], out
    for site, argv in lines.items():
        expr = argv[argv.index("-l") + 1]
        parse_resources(expr)  # the OAR 2.5 grammar port accepts it
        assert not expr.split(",")[0].endswith("+"), expr
        assert ("{cluster NOT IN ('fclc')}/nodes=2" in expr) == (site == "fsite2"), expr
    # 2. reserve: two jobs running, 4 nodes (none of fclc), KaVLAN 16, a pool for 6 VMs
    step("reserve")
    st = lab.status(exp, work)
    assert sorted(j["site"] for j in st["jobs"]) == ["fsite1", "fsite2"]
    assert {j["state"] for j in lab.jobs(f"e2e-{name}")} == {"Running"}
    hosts = {**st["hosts"]["ok"], **st["hosts"]["ko"]}
    assert len(hosts) == 4 and not any("fclc" in h for h in hosts), st["hosts"]
    # 3. deploy: fclb-2 KO (kadeploy), 3 hosts OK, each answering with its own libvirtd
    step("deploy")
    st = lab.status(exp, work)
    assert [h.split(".")[0] for h in st["hosts"]["ko"]] == ["fclb-2"], st["hosts"]
    assert "deploy" in json.dumps(st["hosts"]["ko"]), st["hosts"]["ko"]
    ok_hosts = sorted(st["hosts"]["ok"])
    assert len(ok_hosts) == 3 and {r["state"] for r in st["hosts"]["ok"].values()} == {
        "ready"}, st["hosts"]
    # 4. vms: 6 domains, vm-6 silent → restarted once → KO; 5 OK, 2 per host round-robin
    step("vms", timeout=400)
    st = lab.status(exp, work)
    ok, ko = st["vms"]["ok"], st["vms"]["ko"]
    assert sorted(ok) == [f"vm-{i}" for i in range(1, 6)], st["vms"]
    assert ko["vm-6"]["reason"] == "no answer on port 22 after one restart"
    per_host: dict[str, list[str]] = {}
    for vm, rec in ok.items():
        per_host.setdefault(rec["host"], []).append(vm)
    assert sorted(per_host) == ok_hosts
    assert (work / "vms.list").read_text().splitlines() == [
        f"{ok[vm]['ip']}\t{vm}" for vm in sorted(ok)]
    assert "<vm " in (work / "final_topo.xml").read_text()
    # 5. stress: dvms-memtouch and cpulimit -l 1 in every OK VM
    step("stress")
    pids: dict[str, int] = {}
    for vm, rec in ok.items():
        r = lab.ssh(rec["ip"], "pid=$(cat /tmp/dvms-memtouch.pid); echo $pid; "
                               "ps | grep -v grep | grep -c \"cpulimit.*-l 1 -p $pid\"")
        assert r.returncode == 0 and r.stdout.split()[1:] == ["1"], (vm, r.stdout, r.stderr)
        pids[vm] = int(r.stdout.split()[0])
    # 6. start: one agent per OK host, listening
    step("start")
    st = lab.status(exp, work)
    assert {a["state"] for a in st["agents"].values()} == {"running"}
    assert len(st["agents"]) == 3
    # 7. load: the two VMs of one host at LOAD % (over CAPACITY), two no-op events
    loaded_host = next(h for h in ok_hosts if len(per_host[h]) == 2)
    hot = sorted(per_host[loaded_host])
    cold = sorted(vm for vm in ok if vm not in hot)
    events.write_text("".join(json.dumps(e) + "\n" for e in (
        {"t": 1.0, "vm": hot[0], "load": LOAD}, {"t": 1.5, "vm": hot[1], "load": LOAD},
        {"t": 2.0, "vm": cold[0], "load": 1}, {"t": 2.5, "vm": cold[1], "load": 1})))
    exp_cfg = tomllib.loads(exp.read_text())
    port = exp_cfg["agents"]["dashboard_port"]
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "dvms", "g5k", "load", str(exp),
                             "--workdir", str(work)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    dashboard = False
    while proc.poll() is None and not dashboard:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                dashboard = resp.status == 200
        except OSError:
            time.sleep(0.3)
    out_, err_ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out_ + err_
    assert "load: 4 of 4 events applied" in out_, out_
    timings["load"] = round(time.monotonic() - t0, 1)
    assert dashboard, "the live dashboard never answered during load"
    short = loaded_host.split(".")[0]
    moved: str | None = None
    deadline = time.monotonic() + MIGRATION_DEADLINE_S
    while moved is None and time.monotonic() < deadline:
        where = lab.where()
        moved = next((vm for vm in hot if where.get(vm, short) != short), None)
        if moved is None:
            time.sleep(1.0)
    timings["until_migrated"] = round(time.monotonic() - t0, 1)
    assert moved is not None, f"no VM of {loaded_host} migrated within {MIGRATION_DEADLINE_S} s"
    # the migrated guest: same address, same stress process, still capped at LOAD %
    capped = f"cpulimit.*-l {LOAD} -p {pids[moved]}"
    r = lab.ssh(ok[moved]["ip"], f"test -d /proc/{pids[moved]} && "
                                 f"ps | grep -v grep | grep -c '{capped}'")
    assert r.returncode == 0 and r.stdout.strip() == "1", (moved, r.stdout, r.stderr)
    # 8. collect: one trace with the migration and the violation, summary, power, report
    run_dir = work / "run"
    step("collect")
    with gzip.open(run_dir / "events.jsonl.gz", "rt") as f:
        trace = [json.loads(ln) for ln in f]
    types = {e["type"] for e in trace}
    assert "migration.end" in types and "violation.start" in types, sorted(types)
    assert any(e["type"] == "migration.end" and e["vm"] == moved for e in trace)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert validate_summary(summary) == [] and summary["vms_lost"] == 0, summary
    power = (run_dir / "power.csv").read_text().splitlines()[1:]
    assert {ln.split(",")[0] for ln in power} == set(ok_hosts), power[:5]
    report = lab.cli("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert (run_dir / "report" / "index.html").exists()
    # 9. release: no job, VM or agent left; a second release is a no-op
    step("release")
    st = lab.status(exp, work)
    assert {j["state"] for j in lab.jobs(f"e2e-{name}")} <= {"Error", "Terminated"}  # oardel
    assert all(not info["domains"] for info in
               lab.lab_status()["hypervisors"]["hosts"].values())
    assert not _agent_processes(lab.dir)
    again = lab.g5k("release", str(exp), workdir=work)
    assert "nothing" in again.lower(), again
    print(f"\n[e2e] {scheduler}: step times {timings}; migrated {moved} off {short}")


def _agent_processes(lab_dir: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "agent" in cmd and str(lab_dir / "agents") in cmd:
                found.append(cmd[:120])
    return found


def test_e2e_dvms_live_migrates_a_real_guest(e2e: E2e) -> None:
    _flow(e2e, "dvms", "dvms")


def test_e2e_centralized_resolves_the_overload_too(e2e: E2e) -> None:
    _flow(e2e, "central", "centralized")


def test_lab_down_leaves_no_namespace_or_daemon(e2e: E2e) -> None:
    proc = e2e.cli("g5k", "lab", "down", workdir=e2e.dir)
    assert proc.returncode == 0, proc.stderr
    assert not [ns for ns in subprocess.run(["ip", "netns"], capture_output=True, text=True)
                .stdout.split() if ns.startswith(f"{PREFIX}-")]
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit():
            try:
                mounts = (proc_dir / "mounts").read_text()
            except OSError:
                continue
            assert str(e2e.dir) not in mounts, f"process {proc_dir.name} still in the lab"
