"""Tier F of the lab on real libvirtd + QEMU: ``dvms g5k lab up --libvirt`` (run as the
CLI), guest image v2 booted by the real ``vms`` step on two hosts of two sites, ssh into
the guests through the lab's ssh config, their disk, ``cpulimit`` and ``dvms-memtouch``,
a VM that never answers (restarted once, then KO), a storage-copy live migration across
sites through ``LibvirtHypervisor`` run on the source host (as an agent runs it), one that
fails on a missing backing file, and ``lab down`` leaving nothing behind.

Needs root, libvirtd, qemu, gcc, nc and Debian's apt (the guest image is built from
packages, cached). Figures measured here are printed (``-s``) and kept in
``LAB/timings.json`` while the lab is up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.g5k import session, stress
from deploy.g5k.config import load_experiment
from deploy.g5k.lab import hypervisors
from deploy.g5k.lab.faults import set_fault
from deploy.g5k.platform import Node, load_platform
from deploy.g5k.state import ExperimentState, HostRecord
from deploy.g5k.vmdeploy import VmsRun, deploy_vms, hypervisor_of
from deploy.g5k.vms import parse_vms
from deploy.guest_image_g5k import DISK_MARKER, build_g5k_image
from tests.g5k_lab import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in
                           ("libvirtd", "qemu-system-x86_64", "gcc", "nc", "sshd")),
                       reason="needs libvirtd, qemu, gcc, nc, sshd (make test installs them)"),
]

PREFIX = "g5kf"
A, B = "fcla-1.fsite1.grid5000.fr", "fclb-1.fsite2.grid5000.fr"
POOL = [(f"10.27.216.{i}", f"00:20:4e:00:00:{i:02x}") for i in range(1, 20)]


@dataclass
class HvLab:
    dir: Path
    exp: Path
    timings: dict[str, float] = field(default_factory=dict)
    vms: VmsRun | None = None
    pids: dict[str, int] = field(default_factory=dict)

    def dvms(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "dvms", "g5k", *args, "--workdir",
                               str(self.dir)], capture_output=True, text=True, env=env,
                              timeout=timeout)

    def ssh(self, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-F", str(self.dir / "ssh_config"), host, command],
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict[str, Any]:
        proc = self.dvms("lab", "status")
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def migrate(self, src: str, vm: str, dst: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``LibvirtHypervisor.migrate`` (copy-inc) run on ``src`` over ssh, as an agent."""
        hosts = self.status()["hypervisors"]["hosts"]
        s, d = src.split(".")[0], dst.split(".")[0]
        proc = self.ssh(src, f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} "
                             f"tests/g5k_hv_migrate.py {s} {vm} {d} {hosts[d]['tcp_uri']}",
                        timeout=150)
        lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
        assert lines and "result" in lines[-1], proc.stdout + proc.stderr
        return lines[:-1], lines[-1]["result"]

    def record(self, name: str, value: float) -> None:
        self.timings[name] = round(value, 2)
        (self.dir / "timings.json").write_text(json.dumps(self.timings, indent=1))
        print(f"\n[hvlab] {name} = {value:.2f}")


def leftovers(lab_dir: Path) -> list[str]:
    found = [f"netns {ns}" for ns in hypervisors.net.list_netns()
             if ns.startswith(f"{PREFIX}-")]
    for root in Path("/sys/fs/cgroup").iterdir():
        found += [f"cgroup {d}" for d in root.glob(f"libvirt-{PREFIX}-*")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(lab_dir) in cmd or (cmd.startswith("/usr/sbin/libvirtd")
                                       and str(lab_dir) in _mounts(proc.name)):
                found.append(f"process {proc.name}: {cmd[:80]}")
    found += [f"mount {ln.split()[1]}" for ln in Path("/proc/mounts").read_text().splitlines()
              if str(lab_dir) in ln]
    return found


def _mounts(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/mounts").read_text()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def hvlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HvLab]:
    tmp = tmp_path_factory.mktemp("hvlab")
    lab = HvLab(dir=tmp / "lab", exp=tmp / "exp")
    t0 = time.monotonic()
    proc = lab.dvms("lab", "up", "--libvirt", "--sites", "2", "--nodes", "2,1", "--prefix",
                    PREFIX, "--start-delay-s", "0.5")
    try:
        assert proc.returncode == 0, proc.stderr
        lab.record("lab_up_s", time.monotonic() - t0)
        yield lab
    finally:
        lab.dvms("lab", "down")


def test_lab_up_every_node_reaches_its_own_libvirtd(hvlab: HvLab) -> None:
    st = hvlab.status()
    hosts = st["hypervisors"]["hosts"]
    assert sorted(hosts) == ["fcla-1", "fcla-2", "fclb-1"]
    assert st["hypervisors"]["network"]["subnet"] == "10.27.192.0/18"
    assert {h: v["site"] for h, v in hosts.items()} == {
        "fcla-1": "fsite1", "fcla-2": "fsite1", "fclb-1": "fsite2"}
    for short, info in hosts.items():
        assert info["libvirtd"] and info["netns"].startswith(f"{PREFIX}-h")
        fqdn = f"{short}.{info['site']}.grid5000.fr"
        r = hvlab.ssh(fqdn, "virsh -q uri && virsh -q list --all && ip -br -4 addr show br0 "
                            "&& echo DISKS $(readlink -f /var/lib/dvms-lab-vms)")
        assert r.returncode == 0, r.stderr
        uri = r.stdout.splitlines()[0]
        assert uri == info["uri"] and str(hvlab.dir / "hv" / "hosts" / short) in uri
        assert f"{info['ip']}/18" in r.stdout  # the host's address moved to br0
        # the node's cgroup: its daemon's subtree, weighted as many processes as its cores
        cg = Path(info["cgroup"])
        assert cg.name == f"libvirt-{info['netns']}" and cg.is_dir()
        assert (cg / "cpuacct.usage").exists() or (cg / "cpu.stat").exists()
        shares = Path("/sys/fs/cgroup/cpu", cg.name, "cpu.shares")
        assert not shares.exists() or shares.read_text().strip() == "4096"
    # the example experiment of tier F
    exp = tomllib.loads((hvlab.dir / "experiment.toml").read_text())
    assert exp["hosts"]["packages"] == []
    vms = exp["vms"]
    assert vms["domain_type"] == "qemu" and vms["backing_file"].endswith("backing.qcow2")
    assert Path(vms["kernel"]).exists() and Path(vms["initrd"]).exists()
    parse_vms(vms)  # a valid [vms] table


def test_guest_image_v2_cold_and_cached_build(hvlab: HvLab, tmp_path: Path) -> None:
    t0 = time.monotonic()
    image = build_g5k_image(tmp_path / "cache")
    hvlab.record("image_build_cold_s", time.monotonic() - t0)
    t0 = time.monotonic()
    assert build_g5k_image(tmp_path / "cache") == image
    hvlab.record("image_build_cached_s", time.monotonic() - t0)
    assert time.monotonic() - t0 < 1.0
    raw = tmp_path / "backing.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(image.backing),
                    str(raw)], check=True)
    assert raw.read_bytes()[:len(DISK_MARKER)] == DISK_MARKER
    assert image.kernel.stat().st_size > 5_000_000 and image.initrd.stat().st_size > 1_000_000


def _world(hvlab: HvLab) -> tuple[ExperimentState, list[Node], dict[str, Any]]:
    exp = load_experiment(hvlab.dir / "experiment.toml")
    session.configure(exp, hvlab.exp)
    platform = load_platform()
    nodes = [platform.node(h) for h in (A, B)]
    state = ExperimentState(workdir=hvlab.exp, name="hvlab")
    for n in nodes:
        state.hosts[n.name] = HostRecord(n.name, n.site, n.cluster, state="ready")
    hvlab.exp.mkdir(parents=True, exist_ok=True)
    state.save()
    table = tomllib.loads((hvlab.dir / "experiment.toml").read_text())["vms"]
    return state, nodes, table


def test_vms_step_boots_v2_guests_ssh_disk_stress_and_a_silent_vm(hvlab: HvLab) -> None:
    state, nodes, table = _world(hvlab)
    set_fault(hvlab.dir, "silent_vms", "vm-3")
    cfg = parse_vms({**table, "count": 3, "boot_timeout_s": 15.0, "min_vms_ratio": 0.6})
    progress: list[str] = []
    t0 = time.monotonic()
    rs = deploy_vms(1, state, cfg, nodes, POOL, hv=hypervisor_of(cfg, poll_s=0.5),
                    progress=progress.append)
    hvlab.record("vms_step_s", time.monotonic() - t0)
    hvlab.vms = rs
    assert {v: (r.host, r.state) for v, r in rs.vms.items()} == {
        "vm-1": (A, "OK"), "vm-2": (B, "OK"), "vm-3": (A, "KO")}
    assert (rs.vms["vm-3"].step, rs.vms["vm-3"].reason) == (
        "live", "no answer on port 22 after one restart")
    # vm-3 restarted once (a loaded machine may also restart a slow booter: it is OK then)
    assert any(p.startswith("restarting ") and "vm-3" in p for p in progress), progress
    assert (hvlab.exp / "vms.list").read_text().splitlines() == [
        "10.27.216.1\tvm-1", "10.27.216.2\tvm-2"]
    # boot-to-ssh of one more guest, timed alone
    t0 = time.monotonic()
    r = hvlab.ssh(A, "virsh -q destroy vm-1 >/dev/null && virsh -q start vm-1 >/dev/null && "
                     "for i in $(seq 1 300); do timeout 1 bash -c 'exec 3<>/dev/tcp/"
                     "10.27.216.1/22' 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
    assert r.returncode == 0, r.stderr
    hvlab.record("guest_boot_to_port22_s", time.monotonic() - t0)
    for ip in ("10.27.216.1", "10.27.216.2"):
        r = hvlab.ssh(ip, "uname -r; ip -4 -o addr show eth0; "
                          "dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 15; echo; "
                          "dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 6; "
                          "echo; ls /usr/lib/sftp-server; cut -d' ' -f1 /proc/modules | sort "
                          "| tr '\\n' ' '")
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        assert out[0].endswith("-cloud-amd64") and f"{ip}/18" in out[1]
        assert out[2] == DISK_MARKER.decode() and out[3] == "booted"  # backing + own sector
        assert {"virtio_net", "virtio_blk", "virtio_pci", "net_failover"} <= set(out[5].split())
    # the stress program uploaded with execo's Put (scp, i.e. sftp-server), started, capped
    binary = stress.build(hvlab.dir / "stress")
    assert stress.upload(["10.27.216.1", "10.27.216.2"], binary) == {}
    started = stress.start(["10.27.216.1", "10.27.216.2"], 16, 4.0, 1)
    assert all(err == "" and pid for pid, err in started.values()), started
    hvlab.pids = {ip: int(pid or 0) for ip, (pid, _) in started.items()}
    for ip, pid in hvlab.pids.items():
        r = hvlab.ssh(ip, f"cat /proc/{pid}/cmdline | tr '\\0' ' '; echo; ps | grep -v grep "
                          f"| grep 'cpulimit.*-l 1 -p {pid}'")
        assert r.returncode == 0 and "dvms-memtouch 16 4" in r.stdout, r.stdout + r.stderr
    # the silent VM runs (restarted once) but never answers on port 22
    r = hvlab.ssh(A, "virsh -q domstate vm-3; virsh -q dumpxml vm-3 | grep -c dvms.sshd=0")
    assert r.stdout.split() == ["running", "1"], r.stdout


def test_live_migration_copy_inc_across_sites_keeps_address_and_stress(hvlab: HvLab) -> None:
    assert hvlab.vms is not None and hvlab.pids, "needs the vms test first"
    t0 = time.monotonic()
    events, result = hvlab.migrate(A, "vm-1", B)
    hvlab.record("migration_wall_s", time.monotonic() - t0)
    hvlab.record("migration_api_s", float(result["duration_s"]))
    assert result["ok"], result
    assert [e["type"] for e in events] == ["migration.start", "migration.end"]
    r = hvlab.ssh(B, "virsh -q list --name")
    assert "vm-1" in r.stdout.split()
    assert "vm-1" not in hvlab.ssh(A, "virsh -q list --all --name").stdout.split()
    pid = hvlab.pids["10.27.216.1"]
    r = hvlab.ssh("10.27.216.1", f"test -d /proc/{pid} && ps | grep -v grep | "
                                 f"grep -c 'cpulimit.*-l 1 -p {pid}'; "
                                 "dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 6")
    assert r.returncode == 0 and r.stdout.split() == ["1", "booted"], r.stdout + r.stderr
    # the disk really moved: the overlay now exists on the destination host
    assert "vm-1.qcow2" in hvlab.ssh(B, "ls /var/lib/dvms-lab-vms").stdout.split()
    for host in (A, B):  # guests' taps never change a host's MAC (see _host_bridge)
        macs = hvlab.ssh(host, "cat /sys/class/net/br0/address /sys/class/net/eth0/address")
        assert len(set(macs.stdout.split())) == 1, macs.stdout


def test_storage_copy_migration_failing_leaves_vm_at_source_traced(hvlab: HvLab) -> None:
    assert hvlab.vms is not None, "needs the vms test first"
    staged = "/var/lib/dvms-lab-vms/backing.qcow2"
    r = hvlab.ssh(A, f"mv {staged} {staged}.away")  # the backing file gone on A
    assert r.returncode == 0, r.stderr
    try:
        events, result = hvlab.migrate(B, "vm-2", A)
    finally:
        hvlab.ssh(A, f"mv {staged}.away {staged}")
    assert not result["ok"] and "backing" in result["reason"], result
    assert [e["type"] for e in events] == ["migration.start", "migration.fail"]
    assert events[-1]["reason"] == result["reason"]
    assert events[-1]["reason"].startswith("destination disk: ")
    assert "vm-2" in hvlab.ssh(B, "virsh -q list --name").stdout.split()
    r = hvlab.ssh("10.27.216.2", f"test -d /proc/{hvlab.pids['10.27.216.2']} && echo alive")
    assert r.stdout.strip() == "alive", r.stderr


def test_lab_down_leaves_no_netns_daemon_cgroup_or_mount(hvlab: HvLab) -> None:
    t0 = time.monotonic()
    proc = hvlab.dvms("lab", "down")
    assert proc.returncode == 0, proc.stderr
    hvlab.record("lab_down_s", time.monotonic() - t0)
    assert "guest vm-1" in proc.stdout and f"netns {PREFIX}-net" in proc.stdout
    deadline = time.monotonic() + 10
    while leftovers(hvlab.dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(hvlab.dir) == []
    again = hvlab.dvms("lab", "down")
    assert again.returncode == 0 and "nothing" in again.stdout
