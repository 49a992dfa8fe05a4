"""What runs on a host for its VMs: the domain XML and the shell commands, built per host.

Every command is one ``sh`` script for one ssh session (``session.run``), with every
user-given value passed through ``shlex.quote`` — never execo's ``{{...}}`` substitution.
A script reports each VM on its own line, ``DVMS <step> <vm> OK`` or ``DVMS <step> <vm> KO
<reason>``, which ``parse_report`` reads back; a VM a script never reported (the ssh
session died, the host rebooted) is KO with "no report".

- ``stage_command``: each backing file copied into a local directory of the host first
  (optional; skipped when an up-to-date copy is there);
- ``backing_command``: every backing file readable (a host without it fails the step);
- ``disks_command``: one qcow2 overlay per VM over its backing file
  (``qemu-img create -f qcow2 -F qcow2 -b BACKING DISK SIZE``), in ``disk_dir``;
- ``define_start_command``: write each domain's XML, ``virsh define`` it and start it
  (left alone when already running, so a re-run is harmless);
- ``liveness_command``: TCP connect to port 22 of each IP *from the host* (bash's
  ``/dev/tcp``, a timeout per try), the test vm5k approximated with nmap;
- ``restart_command`` (``virsh destroy`` + ``start``), ``destroy_command`` (destroy,
  undefine, remove the disk).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deploy.g5k.vms import VmSpec

__all__ = [
    "GuestBoot",
    "Report",
    "backing_command",
    "define_start_command",
    "destroy_command",
    "disk_path",
    "disks_command",
    "domain_xml",
    "liveness_command",
    "parse_report",
    "restart_command",
    "stage_command",
    "staged_path",
]

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

_PRELUDE = """\
dvms_do() {
  step=$1; vm=$2; shift 2
  if out=$("$@" 2>&1); then echo "DVMS $step $vm OK"
  else echo "DVMS $step $vm KO $(printf '%s' "$out" | tr '\\n' ' ' | cut -c1-300)"; return 1
  fi
}
"""


@dataclass(frozen=True)
class GuestBoot:
    """Direct kernel boot (the lab's guest image): kernel, initramfs and command line."""

    kernel: str
    initrd: str
    cmdline: str = ""


def disk_path(disk_dir: str, vm: str) -> str:
    return f"{disk_dir.rstrip('/')}/{vm}.qcow2"


def domain_xml(vm: VmSpec, mac: str, disk: str, *, domain_type: str = "kvm",
               bridge: str = "br0", boot: GuestBoot | None = None, ip: str = "") -> str:
    """The libvirt domain: virtio disk over ``disk`` (qcow2), a virtio NIC with ``mac`` on
    ``bridge``, serial console; ``domain_type`` ``kvm`` on Grid'5000, ``qemu`` (TCG) here.
    With a direct kernel ``boot`` and the VM's ``ip``, the command line gets
    ``dvms.ip=IP`` (the lab's guest configures its network from it)."""
    if not _MAC.match(mac):
        raise ValueError(f"{vm.id}: {mac!r} is not a MAC address")
    if ip:
        ipaddress.IPv4Address(ip)  # ValueError: never put anything else in the XML
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = vm.id
    ET.SubElement(dom, "memory", unit="MiB").text = str(vm.mem_mib)
    ET.SubElement(dom, "vcpu").text = str(vm.vcpus)
    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch="x86_64").text = "hvm"
    if boot is not None:
        ET.SubElement(os_, "kernel").text = boot.kernel
        ET.SubElement(os_, "initrd").text = boot.initrd
        cmdline = " ".join(w for w in (boot.cmdline, f"dvms.ip={ip}" if ip else "") if w)
        if cmdline:
            ET.SubElement(os_, "cmdline").text = cmdline
    else:
        ET.SubElement(os_, "boot", dev="hd")
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    d = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(d, "driver", name="qemu", type="qcow2", cache="none")
    ET.SubElement(d, "source", file=disk)
    ET.SubElement(d, "target", dev="vda", bus="virtio")
    nic = ET.SubElement(devices, "interface", type="bridge")
    ET.SubElement(nic, "source", bridge=bridge)
    ET.SubElement(nic, "mac", address=mac.lower())
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(devices, "console", type="pty")
    ET.SubElement(devices, "memballoon", model="none")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def _q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _virsh(uri: str, virsh: str = "virsh") -> list[str]:
    return [virsh, "-q"] + (["-c", uri] if uri else [])


def backing_command(backing_files: Sequence[str]) -> str:
    """Exit 3 with "backing file F missing" when one is not readable on the host."""
    lines = [f"test -r {_q(f)} || {{ echo {_q(f'backing file {f} missing')}; exit 3; }}"
             for f in sorted(set(backing_files))]
    return "\n".join(lines) + "\n"


def staged_path(stage_dir: str, backing_file: str) -> str:
    """Where ``stage_command`` puts a copy of ``backing_file`` on a host."""
    return f"{stage_dir.rstrip('/')}/{backing_file.rsplit('/', 1)[-1]}"


def stage_command(backing_files: Sequence[str], stage_dir: str) -> str:
    """Copy each backing file into ``stage_dir`` on the host (vm5k's copy to ``/tmp``: the
    disks' reads stay local), unless a copy of the same size, not older, is there; exit 3
    naming the file when a copy fails. The copy goes to a temporary name first."""
    lines = [f"mkdir -p {_q(stage_dir)} || exit 4"]
    for f in sorted(set(backing_files)):
        dst = staged_path(stage_dir, f)
        src, d = _q(f), _q(dst)
        lines.append(
            f"if [ -f {d} ] && [ \"$(stat -c %s {src} 2>/dev/null)\" = \"$(stat -c %s {d})\" ] "
            f"&& [ ! {src} -nt {d} ]; then :; "
            f"else cp {src} {d}.tmp.$$ 2>/dev/null && mv -f {d}.tmp.$$ {d} || "
            f"{{ rm -f {d}.tmp.$$; echo {_q(f'copying {f} to {dst} failed')}; exit 3; }}; fi")
    return "\n".join(lines) + "\n"


def disks_command(vms: Sequence[VmSpec], disk_dir: str) -> str:
    """One copy-on-write overlay per VM (``DVMS disk <vm> OK|KO``)."""
    lines = [_PRELUDE, f"mkdir -p {_q(disk_dir)} || exit 4"]
    for vm in vms:
        lines.append("dvms_do disk " + _q(vm.id, "qemu-img", "create", "-q", "-f", "qcow2",
                                          "-F", "qcow2", "-b", vm.backing_file,
                                          disk_path(disk_dir, vm.id), f"{vm.disk_gib}G"))
    return "\n".join(lines) + "\n"


def define_start_command(domains: Mapping[str, str], xml_dir: str, uri: str = "",
                         virsh_path: str = "virsh") -> str:
    """Write, define and start each domain (``DVMS define|start <vm> OK|KO``); ``domains``
    maps VM ids to their XML. A running domain is not started again."""
    virsh = _virsh(uri, virsh_path)
    lines = [_PRELUDE, f"mkdir -p {_q(xml_dir)} || exit 4"]
    for vm, xml in domains.items():
        path = f"{xml_dir.rstrip('/')}/{vm}.xml"
        lines.append(f"printf '%s' {_q(xml)} > {_q(path)}")
        running = f"{_q(*virsh, 'domstate', vm)} 2>/dev/null | grep -qx running"
        lines.append(f"dvms_do define {_q(vm, *virsh, 'define', path)} && "
                     f"{{ {running} && echo {_q(f'DVMS start {vm} OK')} || "
                     f"dvms_do start {_q(vm, *virsh, 'start', vm)}; }}")
    return "\n".join(lines) + "\n"


def restart_command(vms: Sequence[str], uri: str = "", virsh_path: str = "virsh") -> str:
    """Power-cycle VMs that did not answer (``DVMS restart <vm> OK|KO``)."""
    virsh = _virsh(uri, virsh_path)
    lines = [_PRELUDE]
    for vm in vms:
        lines.append(f"{_q(*virsh, 'destroy', vm)} >/dev/null 2>&1; "
                     f"dvms_do restart {_q(vm, *virsh, 'start', vm)}")
    return "\n".join(lines) + "\n"


def destroy_command(vms: Sequence[str], disk_dir: str, uri: str = "",
                    virsh_path: str = "virsh") -> str:
    """Destroy, undefine and delete the disks of VMs; absent ones are fine."""
    virsh = _virsh(uri, virsh_path)
    lines = []
    for vm in vms:
        lines.append(f"{_q(*virsh, 'destroy', vm)} >/dev/null 2>&1; "
                     f"{_q(*virsh, 'undefine', vm)} >/dev/null 2>&1; "
                     f"rm -f {_q(disk_path(disk_dir, vm))}; echo {_q(f'DVMS destroy {vm} OK')}")
    return "\n".join(lines) + "\n"


def liveness_command(addresses: Mapping[str, str], connect_timeout_s: float = 2.0,
                     port: int = 22) -> str:
    """From the host, a TCP connection to port 22 of each VM (``DVMS live <vm> OK|KO``), all
    probes at once (a round takes one ``connect_timeout_s``, not one per VM)."""
    lines = []
    for vm, ip in addresses.items():
        ipaddress.IPv4Address(ip)  # ValueError: never put anything else in the script
        probe = _q("bash", "-c", f"exec 3<>/dev/tcp/{ip}/{int(port)}")
        silent = f"DVMS live {vm} KO port {int(port)} closed or silent"
        lines.append(f"( if timeout {connect_timeout_s:g} {probe} 2>/dev/null; "
                     f"then echo {_q(f'DVMS live {vm} OK')}; else echo {_q(silent)}; fi ) &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    ok: bool
    reason: str = ""


def parse_report(output: str, step: str, vms: Sequence[str]) -> dict[str, Report]:
    """Each VM's result of ``step`` in a script's output (unreported → KO "no report")."""
    seen: dict[str, Report] = {}
    for line in output.splitlines():
        parts = line.strip().split(" ", 4)
        if len(parts) >= 4 and parts[0] == "DVMS" and parts[1] == step:
            vm, verdict = parts[2], parts[3]
            reason = parts[4].strip() if len(parts) > 4 else ""
            seen[vm] = Report(verdict == "OK", "" if verdict == "OK" else reason or "failed")
    return {vm: seen.get(vm, Report(False, "no report")) for vm in vms}
