"""The ``vms`` step over real ssh on the tier-L lab (its nodes are ``sshd -i`` sessions on
this machine, without libvirt): real qemu-img overlays through each node's session, a
stand-in ``virsh`` (``tests/g5k_fake_virsh.py``) whose "VMs" are real processes listening
on their addresses (127.77.0.x), the port-22 probe run from each node, capacities read
from the lab's fake API through execo."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.g5k import session, vmdeploy
from deploy.g5k.config import load_experiment
from deploy.g5k.domains import disk_path
from deploy.g5k.platform import Node, load_platform
from deploy.g5k.state import ExperimentState, HostRecord
from deploy.g5k.vmdeploy import VMS_STATE, Hypervisor, VmsRun, deploy_vms, destroy_vms
from deploy.g5k.vms import VmsConfig, parse_vms
from dvms.errors import DvmsError, InputError
from tests.g5k_lab import ROOT, Lab, lab, needs_sshd  # noqa: F401 (the lab fixture)

pytestmark = needs_sshd

HOSTS = ["fcla-1.fsite1.grid5000.fr", "fcla-2.fsite1.grid5000.fr",
         "fclb-1.fsite2.grid5000.fr", "fclb-2.fsite2.grid5000.fr"]
POOL = [(f"127.77.0.{i}", f"00:20:4e:4d:00:{i:02x}") for i in range(1, 40)]


class World:
    def __init__(self, the_lab: Lab) -> None:
        self.lab = the_lab
        exp = load_experiment(the_lab.experiment())
        session.configure(exp, the_lab.workdir)
        platform = load_platform()
        self.nodes: list[Node] = [platform.node(h) for h in HOSTS]
        self.state = ExperimentState(workdir=the_lab.workdir, name="labexp")
        for n in self.nodes:
            self.state.hosts[n.name] = HostRecord(n.name, n.site, n.cluster, state="ready")
        the_lab.workdir.mkdir(parents=True, exist_ok=True)
        self.state.save()
        self.fv = the_lab.tmp / "fakevirsh"
        self.fv.mkdir()
        (self.fv / "ips.json").write_text(json.dumps({mac: ip for ip, mac in POOL}))
        (self.fv / "port").write_text("22")
        self.virsh = self.fv / "virsh"
        self.virsh.write_text(f"#!/bin/sh\nexec {sys.executable} "
                              f"{ROOT / 'tests' / 'g5k_fake_virsh.py'} {self.fv} \"$@\"\n")
        self.virsh.chmod(0o755)
        self.base = the_lab.tmp / "base.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.base), "32M"],
                       check=True)
        self.disks = the_lab.tmp / "disks"
        self.progress: list[str] = []

    def cfg(self, **vms: object) -> VmsConfig:
        table = {"count": 6, "template": {"mem_mib": 128, "vcpus": 1, "disk_gib": 1},
                 "backing_file": str(self.base), "disk_dir": str(self.disks),
                 "boot_timeout_s": 2.0, "min_vms_ratio": 0.8, **vms}
        return parse_vms(table)

    def hv(self) -> Hypervisor:
        return Hypervisor(virsh=str(self.virsh), domain_type="qemu", poll_s=0.3)

    def starts(self) -> list[tuple[str, str]]:
        log = self.fv / "starts.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [tuple(ln.split()) for ln in lines]  # type: ignore[misc]

    def kill_vms(self) -> None:
        for pidfile in self.fv.glob("nodes/*/run/*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.fixture
def world(lab: Lab) -> Iterator[World]:  # noqa: F811
    w = World(lab)
    try:
        yield w
    finally:
        w.kill_vms()


@pytest.mark.slow
def test_vms_over_ssh_host_dropped_redistributed_silent_vm_restarted_then_ko(
        world: World) -> None:
    (world.fv / "fail_nodes").write_text("fclb-2\n")  # its libvirt refuses every domain
    (world.fv / "silent").write_text("vm-6\n")  # boots, never answers on port 22
    cfg = world.cfg(stage_dir=str(world.lab.tmp / "stage"))  # vm5k's copy to the hosts
    rs = deploy_vms(1, world.state, cfg, world.nodes, POOL, hv=world.hv(),
                    progress=world.progress.append)
    # round-robin over 4 hosts, then fclb-2 dropped and vm-4 moved to the next host
    where = {vm: r.host.split(".")[0] for vm, r in rs.vms.items()}
    assert where == {"vm-1": "fcla-1", "vm-2": "fcla-2", "vm-3": "fclb-1", "vm-4": "fcla-1",
                     "vm-5": "fcla-1", "vm-6": "fcla-2"}
    ko = world.state.hosts["fclb-2.fsite2.grid5000.fr"]
    assert (ko.state, ko.step) == ("KO", "vms-libvirt")
    assert "failed to connect to the hypervisor" in ko.reason
    assert {vm: r.state for vm, r in rs.vms.items()} == {
        "vm-1": "OK", "vm-2": "OK", "vm-3": "OK", "vm-4": "OK", "vm-5": "OK", "vm-6": "KO"}
    assert (rs.vms["vm-6"].step, rs.vms["vm-6"].reason) == (
        "live", "no answer on port 22 after one restart")
    starts = world.starts()
    assert starts.count(("vm-6", "fcla-2")) == 2  # started, restarted once
    assert ("vm-4", "fcla-1") in starts and not any(h == "fclb-2" for _, h in starts)
    assert any("KO fclb-2.fsite2.grid5000.fr: vms-libvirt" in p for p in world.progress)
    assert any("1 VMs redistributed over 3 hosts" in p for p in world.progress)
    # the overlays exist over the backing file, made through each node's ssh session
    for vm in rs.vms:
        info = subprocess.run(["qemu-img", "info", "--output=json",
                               disk_path(str(world.disks), vm)], capture_output=True,
                              text=True, check=True).stdout
        assert json.loads(info)["backing-filename"] == str(world.lab.tmp / "stage" /
                                                           world.base.name)
    # outputs in the run directory
    listing = (world.state.workdir / "vms.list").read_text().splitlines()
    assert listing == [f"127.77.0.{i}\tvm-{i}" for i in range(1, 6)]
    topo = ET.parse(world.state.workdir / "final_topo.xml").getroot()
    states = {h.get("id"): h.get("state") for h in topo.iter("host")}
    assert states["fclb-2.fsite2.grid5000.fr"] == "KO" and list(states.values()).count("OK") == 3
    assert {v.get("id"): v.get("state") for v in topo.iter("vm")}["vm-6"] == "KO"
    assert world.state.steps["vms"]["status"] == "done"
    # the state says where everything is: destroy removes VMs and disks
    assert VmsRun.load(world.state.workdir) is not None
    assert destroy_vms(world.state, cfg, world.hv()) == []
    assert not list(world.fv.glob("nodes/*/run/*.pid"))
    assert not any(world.disks.glob("*.qcow2"))
    assert not (world.state.workdir / VMS_STATE).exists()


def test_pool_too_small_fails_before_anything_is_created(world: World) -> None:
    with pytest.raises(InputError, match=r"^vms: 6 VMs but the address pool holds only 3 "):
        deploy_vms(1, world.state, world.cfg(), world.nodes, POOL[:3],
                   hv=world.hv())
    assert not world.disks.exists() and not (world.state.workdir / VMS_STATE).exists()
    assert "vms" not in world.state.steps


@pytest.mark.slow
def test_one_vm_disk_failing_and_backing_missing_everywhere(world: World,
                                                           tmp_path: Path) -> None:
    topo = tmp_path / "topo.xml"
    topo.write_text(f'<vm5k><vm id="a" backing_file="{world.base}"/>'
                    f'<vm id="b" backing_file="{tmp_path / "gone.qcow2"}"/>'
                    f'<vm id="c" backing_file="{world.base}"/></vm5k>')
    # every host lacks b's backing file: each fails the backing check in turn
    with pytest.raises(DvmsError, match=r"do not fit"):
        deploy_vms(1, world.state, world.cfg(topology=str(topo)), world.nodes,
                   POOL, hv=world.hv(), progress=world.progress.append)
    ko = [h for h in world.state.hosts.values() if h.state == "KO"]
    assert ko and all(h.step == "vms-backing" and "gone.qcow2 missing" in h.reason for h in ko)
    assert world.state.steps["vms"]["status"] == "failed"


def test_a_vm_whose_disk_cannot_be_made_is_ko_alone(world: World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Three VMs on one host (concentrated), its scripts in chunks of two VMs."""
    monkeypatch.setattr(vmdeploy, "CHUNK", 2)
    world.disks.mkdir()
    (world.disks / "vm-2.qcow2").mkdir()  # qemu-img cannot create a file over a directory
    with pytest.raises(DvmsError, match=r"^only 2 of 3 VMs OK, below vms.min_vms_ratio = 0.9; "
                                        r"first KO: vm-2 \(disk: "):
        deploy_vms(1, world.state, world.cfg(count=3, min_vms_ratio=0.9,
                                             distribution="concentrated"),
                   world.nodes, POOL, hv=world.hv())
    rs = VmsRun.load(world.state.workdir)
    assert rs is not None
    assert {vm: r.state for vm, r in rs.vms.items()} == {"vm-1": "OK", "vm-2": "KO",
                                                        "vm-3": "OK"}
    assert all(h.state == "ready" for h in world.state.hosts.values())  # no host blamed
    assert {r.host for r in rs.vms.values()} == {"fcla-1.fsite1.grid5000.fr"}
    assert [vm for vm, _ in world.starts()] == ["vm-1", "vm-3"]
    assert (world.state.workdir / "vms.list").read_text().count("\n") == 2
    assert world.state.steps["vms"]["status"] == "failed"
