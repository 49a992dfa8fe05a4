"""Tier F of the lab without root: the guest image's module order, the per-VM kernel
command line, the ``[vms]`` boot fields, node attachment, the silent-VM ``virsh``
wrapper."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploy.g5k.domains import domain_xml
from deploy.g5k.lab import hypervisors
from deploy.g5k.lab.faults import Faults, save_faults
from deploy.g5k.lab.spec import default_spec
from deploy.g5k.vmdeploy import hypervisor_of
from deploy.g5k.vms import VmSpec, parse_vms
from deploy.guest_image import GuestImageError
from deploy.guest_image_g5k import MODULES, G5kGuestImage, _modinfo_depends, module_order
from dvms.errors import InputError

DEPENDS = {"virtio_ring": [], "virtio": [], "virtio_pci_legacy_dev": [],
           "virtio_pci_modern_dev": [], "failover": [],
           "virtio_pci": ["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring",
                          "virtio"],
           "net_failover": ["failover"], "virtio_net": ["net_failover", "virtio_ring", "virtio"],
           "virtio_blk": ["virtio_ring", "virtio"]}


def test_module_order_puts_dependencies_first() -> None:
    order = module_order(DEPENDS, ("virtio_net", "virtio_blk"))
    assert order == ["failover", "net_failover", "virtio_ring", "virtio", "virtio_net",
                     "virtio_blk"]
    for name in order:
        assert all(order.index(d) < order.index(name) for d in DEPENDS[name])
    assert set(module_order(DEPENDS, MODULES)) == set(MODULES)
    with pytest.raises(GuestImageError, match="kernel module virtio_scsi not in"):
        module_order(DEPENDS, ("virtio_scsi",))
    with pytest.raises(GuestImageError, match="cycle: a -> b -> a"):
        module_order({"a": ["b"], "b": ["a"]}, ("a",))


def test_modinfo_depends_read_from_the_module_bytes() -> None:
    ko = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0retpoline=Y\0name=virtio_net\0"
    assert _modinfo_depends(ko) == ["virtio", "virtio_ring"]
    assert _modinfo_depends(b"\0depends=\0name=failover\0") == []


def test_each_vm_gets_its_address_on_the_kernel_command_line() -> None:
    vm = VmSpec("vm-1", 128, 1, 1, "/b.qcow2")
    cfg = parse_vms({"backing_file": "/b.qcow2", "domain_type": "qemu", "kernel": "/k",
                     "initrd": "/i", "cmdline": "console=ttyS0 dvms.prefix=18"})
    hv = hypervisor_of(cfg, poll_s=0.5)
    assert (hv.domain_type, hv.poll_s, hv.boot and hv.boot.kernel) == ("qemu", 0.5, "/k")
    root = ET.fromstring(domain_xml(vm, "00:20:4e:00:00:01", "/d/vm-1.qcow2",
                                    domain_type=hv.domain_type, boot=hv.boot,
                                    ip="10.27.216.1"))
    assert root.get("type") == "qemu"
    assert root.findtext("os/cmdline") == "console=ttyS0 dvms.prefix=18 dvms.ip=10.27.216.1"
    assert root.findtext("os/kernel") == "/k" and root.findtext("os/initrd") == "/i"
    with pytest.raises(ValueError):
        domain_xml(vm, "00:20:4e:00:00:01", "/d", boot=hv.boot, ip="10.0.0.1 init=/bin/sh")
    assert hypervisor_of(parse_vms({"backing_file": "/b.qcow2"})).boot is None


def test_vms_boot_fields_are_validated() -> None:
    with pytest.raises(InputError, match=r"vms\.kernel and vms\.initrd: give both"):
        parse_vms({"backing_file": "/b.qcow2", "kernel": "/k"})
    with pytest.raises(InputError, match=r"vms\.initrd = 'i': must be an absolute path"):
        parse_vms({"backing_file": "/b.qcow2", "kernel": "/k", "initrd": "i"})
    with pytest.raises(InputError, match=r"vms\.domain_type"):
        parse_vms({"backing_file": "/b.qcow2", "domain_type": "xen"})


def test_attach_gives_each_node_its_namespace_daemon_and_cgroup(tmp_path: Path) -> None:
    spec = hypervisors.attach(default_spec(2, (2, 1)), tmp_path, "g5ku")
    nodes = [n for _, _, n in spec.all_nodes()]
    assert [n.netns for n in nodes] == ["g5ku-h0", "g5ku-h1", "g5ku-h2"]
    assert [n.env["DVMS_HOST_IP"] for n in nodes] == ["10.27.192.1", "10.27.192.2",
                                                      "10.27.192.3"]
    assert nodes[2].env["LIBVIRT_DEFAULT_URI"] == (
        f"qemu+unix:///system?socket={tmp_path}/hv/hosts/fclb-1/run/libvirt-sock")
    assert all(n.cgroup.endswith(f"/libvirt-g5ku-h{i}") for i, n in enumerate(nodes))
    assert hypervisors.control_ip(spec) == "10.27.192.254"
    for bad in ("", "dvms-x", "1abc", "toolongx"):
        with pytest.raises(InputError, match="--prefix"):
            hypervisors.attach(spec, tmp_path, bad)
    block = hypervisors.ssh_block(spec, "g5ku", tmp_path / "key")
    assert block[:2] == ["Host 10.27.*",
                         "  ProxyCommand nsenter --net=/run/netns/g5ku-net nc %h %p"]


def test_vms_table_is_a_valid_experiment_table(tmp_path: Path) -> None:
    import tomllib

    image = G5kGuestImage(tmp_path / "vmlinuz", tmp_path / "initrd.gz", tmp_path / "b.qcow2")
    table = tomllib.loads(hypervisors.vms_table(image, tmp_path / "lab-initrd.gz", 3))["vms"]
    cfg = parse_vms(table)
    assert (cfg.count, cfg.domain_type, cfg.initrd) == (6, "qemu",
                                                         str(tmp_path / "lab-initrd.gz"))
    assert cfg.disk_dir == cfg.stage_dir == hypervisors.DISK_DIR


def test_virsh_wrapper_silences_only_the_vms_of_the_fault_switch(tmp_path: Path) -> None:
    wrapper = tmp_path / "virsh"
    hypervisors.virsh_wrapper(wrapper, sys.executable, tmp_path / "faults.json")
    save_faults(tmp_path, Faults(silent_vms=["vm-6"]))
    xml = "<domain><os><cmdline>console=ttyS0 dvms.ip=10.27.216.6</cmdline></os></domain>"
    for vm in ("vm-6", "vm-5"):
        (tmp_path / f"{vm}.xml").write_text(xml)
        subprocess.run([str(wrapper), "-q", "-c", "test:///default", "define",
                        str(tmp_path / f"{vm}.xml")], capture_output=True)
    assert "dvms.ip=10.27.216.6 dvms.sshd=0</cmdline>" in (tmp_path / "vm-6.xml").read_text()
    assert (tmp_path / "vm-5.xml").read_text() == xml
