"""VM specs, distributions, addresses, domain XML, host scripts and vm5k outputs.

The host scripts run for real on this machine with ``sh`` (``qemu-img`` creates real
overlays; the liveness probe connects to real sockets on loopback); the domain XML is
defined in libvirt's ``test:///default`` driver and read back.
"""

from __future__ import annotations

import socket
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.g5k.domains import (
    GuestBoot,
    backing_command,
    define_start_command,
    destroy_command,
    disk_path,
    disks_command,
    domain_xml,
    liveness_command,
    parse_report,
    stage_command,
    staged_path,
)
from deploy.g5k.platform import Node
from deploy.g5k.reserve import kavlan_pool
from deploy.g5k.topology import topology_xml, vms_list, write_outputs
from deploy.g5k.vms import (
    HostRoom,
    VmSpec,
    VmTemplate,
    assign_addresses,
    distribute,
    parse_vms,
    read_topology,
    redistribute,
    rooms_of,
    specs_of,
    subnet_pool,
)
from dvms.errors import DvmsError, InputError


def _node(name: str, cores: int = 4, mem: int = 4096) -> Node:
    short, site = name.split(".")[:2]
    return Node(name=name, site=site, cluster=short.rsplit("-", 1)[0], cores=cores,
                memory_mib=mem, flops=0.0, power_sensor=True)


NODES = [_node("fcla-1.fsite1.grid5000.fr"), _node("fcla-2.fsite1.grid5000.fr"),
         _node("fclb-1.fsite2.grid5000.fr")]


def _vms(n: int, mem: int = 512, vcpus: int = 1) -> list[VmSpec]:
    return [VmSpec(f"vm-{i}", mem, vcpus, 10, "/tmp/base.qcow2") for i in range(1, n + 1)]


def _counts(hosts: dict[str, list[str]]) -> list[int]:
    return [len(v) for v in hosts.values()]


# -- specs ---------------------------------------------------------------------------------


def test_template_specs_and_config_errors() -> None:
    cfg = parse_vms({"count": 3, "template": {"mem_mib": 256, "vcpus": 2, "disk_gib": 4},
                     "backing_file": "/b.qcow2"})
    assert specs_of(cfg) == [VmSpec(f"vm-{i}", 256, 2, 4, "/b.qcow2") for i in (1, 2, 3)]
    with pytest.raises(InputError, match=r"^vms.template.vcpus = 0: must be"):
        parse_vms({"template": {"vcpus": 0}, "backing_file": "/b"})
    with pytest.raises(InputError, match=r"^vms.distribution = 'spread': must be one of"):
        parse_vms({"distribution": "spread", "backing_file": "/b"})
    with pytest.raises(InputError, match=r"^vms.backing_file = '': must name"):
        parse_vms({"count": 2})
    with pytest.raises(InputError, match=r"^vms.colour: unknown key"):
        parse_vms({"colour": 1, "backing_file": "/b"})


TOPO = """<deployment>
  <site id="fsite1"><cluster id="fcla">
    <host id="fcla-1"><vm id="vm-a" mem="256" n_cpu="1" hdd="4" ip="X.X.X.X"/>
                      <vm id="vm-b" mem="1024" n_cpu="2" hdd="4"/></host>
    <host id="fcla-2"><vm id="vm-c" backing_file="/other.qcow2"/></host>
  </cluster></site>
  <vm id="vm-free" mem="128"/>
</deployment>
"""


def test_topology_file_gives_specs_with_wished_hosts(tmp_path: Path) -> None:
    path = tmp_path / "topo.xml"
    path.write_text(TOPO)
    cfg = parse_vms({"topology": "topo.xml", "template": {"mem_mib": 512},
                     "backing_file": "/b.qcow2"})
    specs = specs_of(cfg, base=tmp_path)
    assert [(s.id, s.mem_mib, s.vcpus, s.host) for s in specs] == [
        ("vm-a", 256, 1, "fcla-1"), ("vm-b", 1024, 2, "fcla-1"), ("vm-c", 512, 1, "fcla-2"),
        ("vm-free", 128, 1, "")]
    assert specs[2].backing_file == "/other.qcow2"
    placement = distribute(specs, rooms_of(NODES), "round-robin", 1)
    assert placement.hosts["fcla-1.fsite1.grid5000.fr"][:2] == ["vm-a", "vm-b"]
    assert "vm-c" in placement.hosts["fcla-2.fsite1.grid5000.fr"]


def test_topology_errors_name_the_file_and_the_vm(tmp_path: Path) -> None:
    t = VmTemplate()
    dup = tmp_path / "dup.xml"
    dup.write_text('<vm5k><host id="h-1"><vm id="vm-1" backing_file="/b"/></host>'
                   '<host id="h-2"><vm id="vm-1" backing_file="/b"/></host></vm5k>')
    with pytest.raises(InputError, match=r"dup.xml: duplicate VM id 'vm-1'$"):
        read_topology(dup, t, "")
    bad = tmp_path / "bad.xml"
    bad.write_text('<vm5k><vm id="vm-1" mem="lots" backing_file="/b"/></vm5k>')
    with pytest.raises(InputError, match=r"vm 'vm-1': mem = 'lots': must be a positive"):
        read_topology(bad, t, "")
    nob = tmp_path / "nob.xml"
    nob.write_text('<vm5k><vm id="vm-1"/></vm5k>')
    with pytest.raises(InputError, match=r"vm 'vm-1': no backing_file"):
        read_topology(nob, t, "")
    broken = tmp_path / "broken.xml"
    broken.write_text("<vm5k><vm id=")
    with pytest.raises(InputError, match=r"broken.xml: not XML"):
        read_topology(broken, t, "/b")
    with pytest.raises(InputError, match=r"cannot read"):
        read_topology(tmp_path / "absent.xml", t, "/b")


# -- distributions -------------------------------------------------------------------------


def test_round_robin_cycles_and_skips_full_hosts() -> None:
    rooms = [HostRoom("a", 1024, 30), HostRoom("b", 4096, 30), HostRoom("c", 4096, 30)]
    p = distribute(_vms(7), rooms, "round-robin", 1)
    assert p.hosts == {"a": ["vm-1", "vm-4"], "b": ["vm-2", "vm-5", "vm-7"],
                       "c": ["vm-3", "vm-6"]}
    assert not p.unplaced and not p.dropped


def test_concentrated_fills_a_host_before_the_next() -> None:
    rooms = rooms_of(NODES, vcpus_per_core=1)  # 4 vCPU slots, 4096 MiB each
    p = distribute(_vms(6, mem=1024), rooms, "concentrated", 1)
    assert _counts(p.hosts) == [4, 2, 0]
    p = distribute(_vms(6, mem=2048), rooms_of(NODES), "concentrated", 1)
    assert _counts(p.hosts) == [2, 2, 2]  # memory is the limit now


def test_n_by_hosts_drops_the_surplus_and_reports_it() -> None:
    p = distribute(_vms(8), rooms_of(NODES), "n_by_hosts", 1)
    assert _counts(p.hosts) == [2, 2, 2]
    assert p.dropped == ["vm-7", "vm-8"] and not p.unplaced
    p.require_all()  # dropped by rule is not an error


def test_random_is_seeded_and_respects_capacity() -> None:
    rooms = lambda: rooms_of(NODES)  # noqa: E731
    a = distribute(_vms(20), rooms(), "random", 7)
    b = distribute(_vms(20), rooms(), "random", 7)
    c = distribute(_vms(20), rooms(), "random", 8)
    assert a.hosts == b.hosts and a.hosts != c.hosts
    assert sum(_counts(a.hosts)) == 20
    full = distribute(_vms(40, mem=256), rooms(), "random", 7)  # 12 vCPU slots per host
    assert _counts(full.hosts) == [12, 12, 12] and len(full.unplaced) == 4


def test_vms_that_do_not_fit_are_reported_with_totals() -> None:
    p = distribute(_vms(5, mem=3000), rooms_of(NODES), "round-robin", 1)
    assert _counts(p.hosts) == [1, 1, 1] and p.unplaced == ["vm-4", "vm-5"]
    with pytest.raises(DvmsError, match=r"^2 VMs do not fit \(vm-4, vm-5\): needed 15000 MiB "
                       r"and 5 vCPUs, available 12288 MiB and 36 vCPU slots on 3 hosts$"):
        p.require_all()
    huge = distribute(_vms(1, mem=8192), rooms_of(NODES), "concentrated", 1)
    assert huge.unplaced == ["vm-1"]
    nothing = distribute(_vms(2), [], "random", 1)
    assert nothing.unplaced == ["vm-1", "vm-2"]


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 60), mems=st.lists(st.integers(0, 6000), min_size=1, max_size=6),
       cores=st.integers(0, 8), dist=st.sampled_from(["round-robin", "concentrated",
                                                       "n_by_hosts", "random"]),
       seed=st.integers(0, 5))
def test_every_vm_is_placed_once_or_reported(n: int, mems: list[int], cores: int, dist: str,
                                             seed: int) -> None:
    rooms = [HostRoom(f"h{i}", m, cores * 3) for i, m in enumerate(mems)]
    vms = _vms(n, mem=700)
    p = distribute(vms, rooms, dist, seed)
    placed = [v for ids in p.hosts.values() for v in ids]
    assert Counter(placed + p.unplaced + p.dropped) == Counter(v.id for v in vms)
    for i, m in enumerate(mems):
        count = len(p.hosts[f"h{i}"])
        assert count * 700 <= m and count <= cores * 3
    if dist != "n_by_hosts" and p.unplaced:  # nothing left that would have taken it
        assert all(r.memory_mib < 700 or r.vcpu_slots < 1 for r in rooms)


def test_redistribution_moves_only_the_dropped_hosts_vms() -> None:
    vms = _vms(9)
    p = distribute(vms, rooms_of(NODES), "round-robin", 1)
    before = dict(p.hosts)
    gone = "fcla-2.fsite1.grid5000.fr"
    q = redistribute(p, [gone], vms, rooms_of(NODES), "round-robin", 1)
    assert gone not in q.hosts and not q.unplaced
    for host in q.hosts:
        assert q.hosts[host][:len(before[host])] == before[host]
    moved = [v for h in q.hosts for v in q.hosts[h][len(before[h]):]]
    assert sorted(moved) == sorted(before[gone])
    assert _counts(q.hosts) == [5, 4]
    assert q.available == (8192, 24)
    # capacity after the drop: what no longer fits is reported with the totals
    tight = rooms_of(NODES, vcpus_per_core=1)  # 4 slots per host
    p = distribute(_vms(10), tight, "round-robin", 1)
    q = redistribute(p, [gone], _vms(10), rooms_of(NODES, vcpus_per_core=1), "n_by_hosts", 1)
    assert _counts(q.hosts) == [4, 4] and len(q.unplaced) == 2
    with pytest.raises(DvmsError, match=r"available 8192 MiB and 8 vCPU slots on 2 hosts"):
        q.require_all()


# -- addresses -----------------------------------------------------------------------------


def test_addresses_by_rank_from_the_kavlan_pool() -> None:
    pool = kavlan_pool(16, "10.27.192.0/18")
    got = assign_addresses(_vms(3), pool)
    assert got == {"vm-1": ("10.27.216.1", "00:20:4e:1b:d8:01"),
                   "vm-2": ("10.27.216.2", "00:20:4e:1b:d8:02"),
                   "vm-3": ("10.27.216.3", "00:20:4e:1b:d8:03")}


def test_pool_too_small_or_repeating_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"^vms: 5 VMs but the address pool holds only 2 "):
        assign_addresses(_vms(5), subnet_pool(["10.158.0.0/30"]))
    with pytest.raises(InputError, match=r"repeats the IP 10.0.0.1"):
        assign_addresses(_vms(2), [("10.0.0.1", "00:16:3e:00:00:01"),
                                   ("10.0.0.1", "00:16:3e:00:00:02")])
    with pytest.raises(InputError, match=r"subnet 'x': not an IPv4 network"):
        subnet_pool(["x"])


def test_subnet_pool_uses_the_mac_convention() -> None:
    pool = subnet_pool(["10.158.4.0/22"])
    assert len(pool) == 1022
    assert pool[0] == ("10.158.4.1", "00:16:3e:9e:04:01")
    assert pool[-1] == ("10.158.7.254", "00:16:3e:9e:07:fe")


# -- domain XML and host scripts ----------------------------------------------------------


def _sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)


def _base_image(tmp_path: Path) -> Path:
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    return base


def test_domain_xml_defines_in_libvirt_with_disk_bridge_and_mac() -> None:
    libvirt = pytest.importorskip("libvirt")
    vm = VmSpec("vm-7", 256, 2, 4, "/tmp/base.qcow2")
    xml = domain_xml(vm, "00:20:4E:1B:D8:07", "/tmp/dvms-vms/vm-7.qcow2", domain_type="qemu")
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(xml)
        back = ET.fromstring(dom.XMLDesc(0))
    finally:
        conn.close()
    assert back.findtext("name") == "vm-7" and back.findtext("vcpu") == "2"
    assert int(back.findtext("memory") or 0) == 256 * 1024  # KiB
    disk = back.find("devices/disk")
    assert disk is not None
    assert disk.find("source").get("file") == "/tmp/dvms-vms/vm-7.qcow2"  # type: ignore[union-attr]
    assert disk.find("target").get("bus") == "virtio"  # type: ignore[union-attr]
    assert disk.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    nic = back.find("devices/interface")
    assert nic is not None and nic.get("type") == "bridge"
    assert nic.find("source").get("bridge") == "br0"  # type: ignore[union-attr]
    assert nic.find("mac").get("address") == "00:20:4e:1b:d8:07"  # type: ignore[union-attr]
    boot = domain_xml(vm, "00:20:4e:00:00:01", "/d", boot=GuestBoot("/k", "/i", "dvms.ip=x"))
    assert "<kernel>/k</kernel>" in boot and "<cmdline>dvms.ip=x</cmdline>" in boot
    with pytest.raises(ValueError, match="not a MAC"):
        domain_xml(vm, "00:20", "/d")


def test_disks_script_creates_overlays_on_the_backing_file(tmp_path: Path) -> None:
    base = _base_image(tmp_path)
    odd = tmp_path / "it's odd"  # quoting: a quote and a space in a path
    odd.mkdir()
    vms = [VmSpec("vm-1", 128, 1, 2, str(base)), VmSpec("vm-2", 128, 1, 2, str(base)),
           VmSpec("vm-3", 128, 1, 2, str(tmp_path / "absent.qcow2"))]
    disk_dir = str(odd / "disks")
    r = _sh(disks_command(vms, disk_dir))
    rep = parse_report(r.stdout, "disk", [v.id for v in vms])
    assert rep["vm-1"].ok and rep["vm-2"].ok
    assert not rep["vm-3"].ok and "absent.qcow2" in rep["vm-3"].reason
    info = subprocess.run(["qemu-img", "info", "--output=json", disk_path(disk_dir, "vm-1")],
                          capture_output=True, text=True, check=True).stdout
    assert f'"backing-filename": "{base}"' in info and '"virtual-size": 2147483648' in info
    r = _sh(backing_command([str(base), str(tmp_path / "absent.qcow2")]))
    assert r.returncode == 3 and "absent.qcow2 missing" in r.stdout
    assert _sh(backing_command([str(base)])).returncode == 0
    _sh(destroy_command(["vm-1", "vm-2"], disk_dir, "test:///default"))
    assert not Path(disk_path(disk_dir, "vm-1")).exists()


def test_stage_script_copies_once_and_recopies_a_changed_image(tmp_path: Path) -> None:
    base = _base_image(tmp_path)
    stage = str(tmp_path / "stage")
    dst = Path(staged_path(stage, str(base)))
    assert dst == tmp_path / "stage" / "base.qcow2"
    assert _sh(stage_command([str(base)], stage)).returncode == 0
    assert dst.read_bytes() == base.read_bytes()
    first = dst.stat().st_ino
    assert _sh(stage_command([str(base), str(base)], stage)).returncode == 0
    assert dst.stat().st_ino == first  # same size, not older: left alone
    with base.open("ab") as f:
        f.write(b"\0" * 512)
    assert _sh(stage_command([str(base)], stage)).returncode == 0
    assert dst.stat().st_ino != first and dst.read_bytes() == base.read_bytes()
    r = _sh(stage_command([str(tmp_path / "gone.qcow2")], stage))
    assert r.returncode == 3 and "copying" in r.stdout and "gone.qcow2" in r.stdout
    assert not list((tmp_path / "stage").glob("*.tmp.*"))
    with pytest.raises(InputError, match=r"^vms.stage_dir = 'rel': must be an absolute"):
        parse_vms({"backing_file": "/b", "stage_dir": "rel"})


def test_define_start_script_defines_then_reports_start() -> None:
    """``test:///default`` keeps no state between two virsh runs: define succeeds, the start
    in the next virsh call finds no domain and is reported KO with virsh's reason."""
    vm = VmSpec("vm-1", 128, 1, 1, "/b")
    xml = domain_xml(vm, "00:20:4e:00:00:01", "/tmp/x.qcow2", domain_type="test")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        r = _sh(define_start_command({"vm-1": xml}, d, "test:///default"))
        assert Path(d, "vm-1.xml").read_text() == xml
    assert parse_report(r.stdout, "define", ["vm-1"])["vm-1"].ok
    start = parse_report(r.stdout, "start", ["vm-1"])["vm-1"]
    assert not start.ok and "vm-1" in start.reason
    assert parse_report("", "start", ["vm-9"])["vm-9"].reason == "no report"


def test_liveness_probe_connects_to_port_22_of_each_vm() -> None:
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.2", 22))
    except OSError:
        pytest.skip("cannot bind port 22 on 127.0.0.2 (not root?)")
    listener.listen()
    try:
        r = _sh(liveness_command({"vm-1": "127.0.0.2", "vm-2": "127.0.0.3"}, 1.0))
    finally:
        listener.close()
    rep = parse_report(r.stdout, "live", ["vm-1", "vm-2"])
    assert rep["vm-1"].ok and not rep["vm-2"].ok
    with pytest.raises(ValueError):
        liveness_command({"vm-1": "1.2.3.4; reboot"})


# -- outputs -------------------------------------------------------------------------------


def test_vms_list_and_final_topology(tmp_path: Path) -> None:
    vms = _vms(4)
    p = distribute(vms, rooms_of(NODES), "round-robin", 1)
    addresses = assign_addresses(vms, kavlan_pool(16, "10.27.192.0/18"))
    nodes = [*NODES, _node("fclb-2.fsite2.grid5000.fr")]
    states = {"vm-1": "OK", "vm-2": "OK", "vm-3": "KO", "vm-4": "OK"}
    host_states = {"fclb-2.fsite2.grid5000.fr": "KO"}
    assert vms_list(vms, addresses, states) == ("10.27.216.1\tvm-1\n10.27.216.2\tvm-2\n"
                                                "10.27.216.4\tvm-4\n")
    listing, topo = write_outputs(tmp_path, nodes, host_states, p, vms, addresses, states)
    assert listing.read_text().count("\n") == 3
    root = ET.fromstring(topo.read_text())
    assert root.tag == "vm5k" and [s.get("id") for s in root] == ["fsite1", "fsite2"]
    hosts = {h.get("id"): h for h in root.iter("host")}
    assert hosts["fclb-2.fsite2.grid5000.fr"].get("state") == "KO"
    assert hosts["fcla-1.fsite1.grid5000.fr"].attrib == {
        "id": "fcla-1.fsite1.grid5000.fr", "cpu": "400", "mem": "4096", "state": "OK"}
    vm3 = next(v for v in root.iter("vm") if v.get("id") == "vm-3")
    assert vm3.attrib == {"id": "vm-3", "mem": "512", "n_cpu": "1", "hdd": "10",
                          "backing_file": "/tmp/base.qcow2", "ip": "10.27.216.3",
                          "mac": "00:20:4e:1b:d8:03", "state": "KO"}
    assert topology_xml(nodes, host_states, p, vms, addresses, states) == topo.read_text()
    # the topology we write reads back as a topology input (vm5k's round trip)
    again = read_topology(topo, VmTemplate(), "")
    assert [(s.id, s.host) for s in again] == [
        (v, h) for h, ids in p.hosts.items() for v in ids]
