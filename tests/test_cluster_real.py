"""The local real cluster end to end: real libvirtd daemons in namespaces, real TCG guests.

Needs root and the packages of scripts/sysdeps/libvirt.txt (``make test`` installs them).
"""

from __future__ import annotations

import os
import queue
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from deploy import cluster  # noqa: E402
from deploy.cluster import ClusterSpec, ClusterState  # noqa: E402
from deploy.cluster_guests import last_tick  # noqa: E402
from deploy.cluster_libvirtd import cgroup_controller_mounts  # noqa: E402
from deploy.cluster_net import list_netns  # noqa: E402
from deploy.libvirt_hv import LibvirtHypervisor  # noqa: E402
from dvms.hypervisor import MigrationResult  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("libvirtd") is None
                       or shutil.which("qemu-system-x86_64") is None,
                       reason="libvirtd/qemu not installed (make test installs them)"),
]

PREFIX = "dvt"


def leftovers(workdir: Path) -> list[str]:
    """Anything of a cluster still on the machine."""
    found = [f"netns {ns}" for ns in list_netns() if ns.startswith(f"{PREFIX}-")]
    found += [f"cgroup {m}/{d.name}" for m in cgroup_controller_mounts() if m.is_dir()
              for d in m.iterdir() if d.name.startswith(f"libvirt-{PREFIX}-")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(workdir).encode() in cmd:
                found.append(f"process {proc.name}: {cmd[:80]!r}")
    found += [f"mount {line}" for line in Path("/proc/mounts").read_text().splitlines()
              if str(workdir) in line]
    return found


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    workdir = tmp_path_factory.mktemp("cluster")
    spec = ClusterSpec(hosts=2, vms_per_host=1, load=30.0, prefix=PREFIX,
                       subnet="10.214.0.0/24", workload="spin")
    state = cluster.up(spec, workdir)
    try:
        yield state
    finally:
        cluster.down(workdir)
        assert leftovers(workdir) == []
        assert cluster.down(workdir) == []  # safe to repeat


class Inbox:
    def __init__(self) -> None:
        self.results: queue.Queue[MigrationResult] = queue.Queue()
        self.events: list[dict[str, Any]] = []

    def deliver(self, _address: object, message: object) -> None:
        assert isinstance(message, MigrationResult)
        self.results.put(message)


def hypervisor(state: ClusterState, name: str, inbox: Inbox,
               **kwargs: Any) -> LibvirtHypervisor:
    return LibvirtHypervisor(name, state.host(name).uri, deliver=inbox.deliver,
                             peer_uris=state.peer_uris(), trace=inbox.events.append,
                             sites={"h0": "s0", "h1": "s1"}, **kwargs)


def names(hv: LibvirtHypervisor) -> list[str]:
    return [v.vm for v in hv.vms()]


def wait_ticks(serial: Path, after: int, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tick = last_tick(serial)
        if tick is not None and tick >= after + 2:
            return tick
        time.sleep(0.2)
    raise AssertionError(f"{serial.name}: no new ticks after {after}")


def test_live_migration_keeps_the_guest_running(two_hosts: ClusterState) -> None:
    inbox = Inbox()
    h0, h1 = hypervisor(two_hosts, "h0", inbox), hypervisor(two_hosts, "h1", inbox)
    try:
        assert names(h0) == ["h0-vm0"] and names(h1) == ["h1-vm0"]
        [vm] = h0.vms()
        assert (vm.vcpus, vm.memory_mib, vm.cpu_demand) == (1, 96, 30.0)  # the cap
        serial = two_hosts.serial("h0-vm0")
        before = wait_ticks(serial, 0)
        h0.migrate("h0-vm0", "h1", ("h0", "dvms"))
        assert h0.migrating()
        result = inbox.results.get(timeout=120)
        assert (result.ok, result.reason, result.destination) == (True, "", "h1")
        assert 0.1 < result.duration_s < 60
        assert names(h0) == [] and names(h1) == ["h0-vm0", "h1-vm0"]
        moved = next(v for v in h1.vms() if v.vm == "h0-vm0")
        assert moved.cpu_demand == 30.0  # the CPU cap travelled with the guest
        wait_ticks(serial, before)  # same serial log, still ticking
        assert [e["type"] for e in inbox.events] == ["migration.start", "migration.end"]
        end = inbox.events[1]
        assert (end["inter_site"], end["memory_mib"], end["src_site"]) == (True, 96, "s0")
    finally:
        h0.close()
        h1.close()


def test_timed_out_migration_is_aborted_and_vm_stays(two_hosts: ClusterState) -> None:
    inbox = Inbox()
    h1 = hypervisor(two_hosts, "h1", inbox, migration_timeout_s=0.2)
    try:
        h1.migrate("h1-vm0", "h0", ("h1", "dvms"))
        result = inbox.results.get(timeout=60)
        assert (result.ok, result.reason) == (False, "timeout after 0.2s")
        assert "h1-vm0" in names(h1)
        tick = last_tick(two_hosts.serial("h1-vm0"))
        assert tick is not None
        wait_ticks(two_hosts.serial("h1-vm0"), tick)
        assert inbox.events[-1]["type"] == "migration.fail"
    finally:
        h1.close()


def test_destination_daemon_stopped_during_migration(two_hosts: ClusterState) -> None:
    inbox = Inbox()
    h1 = hypervisor(two_hosts, "h1", inbox)
    try:
        h1.migrate("h1-vm0", "h0", ("h1", "dvms"))
        time.sleep(0.3)  # a migration takes seconds here
        assert h1.migrating()
        two_hosts.host("h0").stop()
        result = inbox.results.get(timeout=60)
        assert result.ok is False and result.reason
        assert "h1-vm0" in names(h1)
        assert [e["type"] for e in inbox.events] == ["migration.start", "migration.fail"]
        assert inbox.events[-1]["reason"] == result.reason
    finally:
        h1.close()
