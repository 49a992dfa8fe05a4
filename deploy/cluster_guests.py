"""Guests of the local cluster: TCG domains booting the dvms test kernel + initramfs.

No disk, no network, no balloon; the serial console goes to a file opened with
``append='on'``, on a path both daemons see, so the log of a guest continues in the same
file across live migrations. Guests are persistent (defined, then started).
"""

from __future__ import annotations

import time
from pathlib import Path
from xml.sax.saxutils import escape

import libvirt

from deploy.guest_image import GuestImage, kernel_cmdline
from dvms.errors import DvmsError

__all__ = ["MIN_MEMORY_MIB", "domain_xml", "last_tick", "start_guest", "wait_booted"]

MIN_MEMORY_MIB = 72
"""Below this the guest kernel dies early (64 MiB does)."""


def domain_xml(name: str, image: GuestImage, serial: Path, *, memory_mib: int = 96,
               vcpus: int = 1, workload: str = "spin") -> str:
    """The libvirt definition of a test guest."""
    if memory_mib < MIN_MEMORY_MIB:
        raise ValueError(f"memory_mib {memory_mib} < {MIN_MEMORY_MIB}")
    cmdline = kernel_cmdline(workload, dirty_mib=max(4, memory_mib // 5))
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(image.kernel))}</kernel>
    <initrd>{escape(str(image.initrd))}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><tcg><tb-cache unit='MiB'>16</tb-cache></tcg></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='{escape(str(serial))}' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def start_guest(conn: libvirt.virConnect, xml: str) -> libvirt.virDomain:
    """Define and start a persistent guest."""
    dom = conn.defineXML(xml)
    dom.create()
    return dom


def last_tick(serial: Path) -> int | None:
    """The last ``tick N`` the guest wrote to its serial log (None before the first)."""
    try:
        lines = serial.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "tick" and parts[1].isdigit():
            return int(parts[1])
    return None


def wait_booted(serials: list[Path], timeout_s: float) -> None:
    """Wait until every guest wrote its first tick."""
    deadline = time.monotonic() + timeout_s
    pending = list(serials)
    while pending:
        pending = [s for s in pending if last_tick(s) is None]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(s.stem for s in pending)
            raise DvmsError(f"guests not booted after {timeout_s:g} s: {names}")
        time.sleep(0.2)
