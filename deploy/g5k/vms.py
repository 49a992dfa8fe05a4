"""The experiment's VMs: specs, their distribution over the hosts, and their addresses.

- **Specs** (``[vms]``): ``count`` VMs ``vm-1 .. vm-N`` from a ``template`` (memory, vCPUs,
  disk) over one ``backing_file``, or the VMs of a vm5k-style XML ``topology`` file
  (``<site><cluster><host><vm id mem n_cpu hdd backing_file/>``; the host a VM sits under
  is its wished placement; a duplicate VM id is an error naming the file and the id).
- **Distribution** (seeded, pure), against each host's capacity from the API: memory
  (``memory_mib``) and vCPU slots (``cores × vcpus_per_core``, vm5k's 3 vCPUs per core).
  ``round-robin`` — next host after every VM, full hosts skipped; ``concentrated`` — stay
  on a host until the next VM does not fit; ``n_by_hosts`` — ``count // hosts`` VMs per
  host, the surplus **dropped** (reported); ``random`` — a host drawn uniformly among those
  the VM fits on. VMs that fit nowhere are ``unplaced``; ``Placement.require_all`` turns
  them into one error line with the needed and available totals.
- **Redistribution**: when hosts drop, the VMs of the others stay where they are and the
  dropped hosts' VMs are distributed over what is left (same rule, same seed).
- **Addresses**: each VM gets the pool's pair of its rank (``vm-1`` the first): the KaVLAN's
  ``(IP, MAC)`` list or subnet pairs (``subnet_pool``: MAC ``00:16:3e`` + the IP's last
  three bytes, Grid'5000's convention). A pool smaller than the VMs is an ``InputError``,
  raised before anything is created.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.g5k.platform import Node
from dvms.config import Section, option, parse_section
from dvms.errors import DvmsError, InputError

__all__ = [
    "DISTRIBUTIONS",
    "HostRoom",
    "Placement",
    "VmSpec",
    "VmTemplate",
    "VmsConfig",
    "assign_addresses",
    "distribute",
    "parse_vms",
    "read_topology",
    "redistribute",
    "rooms_of",
    "specs_of",
    "subnet_pool",
]

DISTRIBUTIONS = ("round-robin", "concentrated", "n_by_hosts", "random")


@dataclass(frozen=True)
class VmTemplate(Section):
    """One VM's size (``[vms].template``)."""

    mem_mib: int = option(1024, "Guest memory (MiB).", lo=16)
    vcpus: int = option(1, "Virtual CPUs.", lo=1, hi=256)
    disk_gib: int = option(10, "Virtual size of the copy-on-write disk (GiB).", lo=1)


@dataclass(frozen=True)
class VmsConfig(Section):
    """The ``[vms]`` table."""

    count: int = option(1, "VMs built from the template (ignored with a topology).", lo=1)
    template: VmTemplate = field(default_factory=VmTemplate)
    backing_file: str = option("", "Backing image on every host (qcow2).")
    topology: str = option("", "vm5k-style XML topology instead of count + template.")
    distribution: str = option("round-robin", "How VMs are spread.", choices=DISTRIBUTIONS)
    vcpus_per_core: int = option(3, "vCPUs a host core takes (vm5k: 3).", lo=1, hi=64)
    disk_dir: str = option("/tmp/dvms-vms", "Where each host keeps its VMs' disks.")
    stage_dir: str = option("", "Copy the backing files here on every host first (vm5k: "
                                "/tmp); empty: the disks use them in place.")
    boot_timeout_s: float = option(300.0, "Deadline for a VM to answer on port 22 (s).",
                                   lo=0, lo_open=True)
    min_vms_ratio: float = option(0.95, "Continue only if this share of VMs is OK.", lo=0,
                                  hi=1)
    domain_type: str = option("kvm", "libvirt domain type: kvm on Grid'5000, qemu (TCG) in "
                                     "the lab.", choices=("kvm", "qemu"))
    kernel: str = option("", "Direct kernel boot (the lab's guest image): the kernel; empty: "
                             "boot the disk.")
    initrd: str = option("", "Direct kernel boot: the initramfs.")
    cmdline: str = option("", "Direct kernel boot: the kernel arguments (each VM's gets "
                              "dvms.ip=ITS_IP appended).")

    def __post_init__(self) -> None:
        if not self.topology and not self.backing_file.strip():
            raise InputError("vms.backing_file = '': must name the backing image (or give "
                             "vms.topology)")
        if bool(self.kernel) != bool(self.initrd):
            raise InputError("vms.kernel and vms.initrd: give both (direct kernel boot) or "
                             "neither")
        for name in ("disk_dir", "stage_dir", "kernel", "initrd"):
            value = getattr(self, name)
            if (value or name == "disk_dir") and not value.startswith("/"):
                raise InputError(f"vms.{name} = {value!r}: must be an absolute path")


def parse_vms(table: Mapping[str, Any]) -> VmsConfig:
    """Validate the ``[vms]`` table (the template is a nested table)."""
    if not isinstance(table, Mapping):
        raise InputError(f"[vms]: must be a table, got {table!r}")
    rest = dict(table)
    template = parse_section("vms.template", VmTemplate, rest.pop("template", {}))
    cfg: VmsConfig = parse_section("vms", VmsConfig, rest)
    return dataclasses.replace(cfg, template=template)


@dataclass(frozen=True)
class VmSpec:
    id: str
    mem_mib: int
    vcpus: int
    disk_gib: int
    backing_file: str
    host: str = ""
    """Wished host (short name or FQDN) from a topology file; empty: any."""


def specs_of(cfg: VmsConfig, base: Path | None = None) -> list[VmSpec]:
    """The experiment's VMs in rank order (``vm-1`` first, or the topology's order)."""
    if cfg.topology:
        path = Path(cfg.topology).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return read_topology(path, cfg.template, cfg.backing_file)
    t = cfg.template
    return [VmSpec(f"vm-{i}", t.mem_mib, t.vcpus, t.disk_gib, cfg.backing_file)
            for i in range(1, cfg.count + 1)]


def _int_attr(path: Path, vm: ET.Element, name: str, default: int) -> int:
    raw = vm.get(name)
    if raw is None:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{path}: vm {vm.get('id')!r}: {name} = {raw!r}: must be a "
                         "positive integer")
    return value


def read_topology(path: Path, template: VmTemplate, backing_file: str) -> list[VmSpec]:
    """VMs of a vm5k-style topology (``<vm5k>`` or ``<deployment>`` root), in file order."""
    try:
        root = ET.parse(path).getroot()
    except OSError as exc:
        raise InputError(f"vms.topology = {str(path)!r}: cannot read ({exc.strerror})") from None
    except ET.ParseError as exc:
        raise InputError(f"{path}: not XML ({exc})") from None
    specs: list[VmSpec] = []
    seen: set[str] = set()
    under_host: set[int] = set()
    for host in root.iter("host"):
        for vm in host.iter("vm"):
            under_host.add(id(vm))
            specs.append(_topology_vm(path, vm, host.get("id", ""), template, backing_file))
    for vm in root.iter("vm"):  # VMs with no host: placed by the distribution
        if id(vm) not in under_host:
            specs.append(_topology_vm(path, vm, "", template, backing_file))
    for s in specs:
        if s.id in seen:
            raise InputError(f"{path}: duplicate VM id {s.id!r}")
        seen.add(s.id)
    if not specs:
        raise InputError(f"{path}: no <vm> element")
    return specs


def _topology_vm(path: Path, vm: ET.Element, host: str, template: VmTemplate,
                 backing_file: str) -> VmSpec:
    vm_id = (vm.get("id") or "").strip()
    if not vm_id or any(c.isspace() for c in vm_id):
        raise InputError(f"{path}: a <vm> has no usable id ({vm.get('id')!r})")
    backing = vm.get("backing_file") or backing_file
    if not backing:
        raise InputError(f"{path}: vm {vm_id!r}: no backing_file (and vms.backing_file is "
                         "empty)")
    return VmSpec(vm_id, _int_attr(path, vm, "mem", template.mem_mib),
                  _int_attr(path, vm, "n_cpu", template.vcpus),
                  _int_attr(path, vm, "hdd", template.disk_gib), backing, host)


# -- distribution ------------------------------------------------------------------------


@dataclass
class HostRoom:
    """What a host can still take."""

    host: str
    memory_mib: int
    vcpu_slots: int

    def fits(self, vm: VmSpec) -> bool:
        return vm.mem_mib <= self.memory_mib and vm.vcpus <= self.vcpu_slots

    def take(self, vm: VmSpec) -> None:
        self.memory_mib -= vm.mem_mib
        self.vcpu_slots -= vm.vcpus


def rooms_of(nodes: Sequence[Node], vcpus_per_core: int = 3) -> list[HostRoom]:
    """Each host's capacity from the API (memory MiB, cores × ``vcpus_per_core``)."""
    return [HostRoom(n.name, n.memory_mib, n.cores * vcpus_per_core) for n in nodes]


@dataclass
class Placement:
    hosts: dict[str, list[str]]
    """Host → VM ids, in placement order (every host given, possibly empty)."""
    unplaced: list[str] = field(default_factory=list)
    """VMs that fit on no host."""
    dropped: list[str] = field(default_factory=list)
    """VMs ``n_by_hosts`` leaves out by rule (the surplus of ``count // hosts``)."""
    needed: tuple[int, int] = (0, 0)
    """(memory MiB, vCPUs) of all the VMs to place."""
    available: tuple[int, int] = (0, 0)
    """(memory MiB, vCPU slots) of the hosts before placing."""

    def host_of(self) -> dict[str, str]:
        return {vm: h for h, vms in self.hosts.items() for vm in vms}

    def require_all(self) -> None:
        """``DvmsError`` naming the unplaced VMs with the totals (needed / available)."""
        if not self.unplaced:
            return
        first = ", ".join(self.unplaced[:3]) + (", ..." if len(self.unplaced) > 3 else "")
        raise DvmsError(
            f"{len(self.unplaced)} VMs do not fit ({first}): needed {self.needed[0]} MiB and "
            f"{self.needed[1]} vCPUs, available {self.available[0]} MiB and "
            f"{self.available[1]} vCPU slots on {len(self.hosts)} hosts")


def _short(name: str) -> str:
    return name.split(".", 1)[0]


def distribute(vms: Sequence[VmSpec], rooms: Sequence[HostRoom], distribution: str,
               seed: int) -> Placement:
    """Place ``vms`` on the hosts of ``rooms`` (their capacity is consumed: pass copies).

    A VM with a wished ``host`` goes there if it fits (else it is distributed like the
    others)."""
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"vms.distribution = {distribution!r}: must be one of "
                         + ", ".join(repr(d) for d in DISTRIBUTIONS))
    placement = Placement(
        hosts={r.host: [] for r in rooms},
        needed=(sum(v.mem_mib for v in vms), sum(v.vcpus for v in vms)),
        available=(sum(r.memory_mib for r in rooms), sum(r.vcpu_slots for r in rooms)))
    if not rooms:
        placement.unplaced = [v.id for v in vms]
        return placement
    by_name = {r.host: r for r in rooms} | {_short(r.host): r for r in rooms}
    free: list[VmSpec] = []
    for vm in vms:
        room = by_name.get(vm.host) if vm.host else None
        if room is not None and room.fits(vm):
            room.take(vm)
            placement.hosts[room.host].append(vm.id)
        else:
            free.append(vm)
    rng = random.Random(seed)
    if distribution == "n_by_hosts":
        per_host = len(free) // len(rooms)
        placement.dropped = [v.id for v in free[per_host * len(rooms):]]
        for i, room in enumerate(rooms):
            for vm in free[i * per_host:(i + 1) * per_host]:
                _put(placement, room, vm)
        return placement
    cursor = 0
    for vm in free:
        if distribution == "random":
            fits = [r for r in rooms if r.fits(vm)]
            if fits:
                _put(placement, rng.choice(fits), vm)
            else:
                placement.unplaced.append(vm.id)
            continue
        for step in range(len(rooms)):
            room = rooms[(cursor + step) % len(rooms)]
            if room.fits(vm):
                _put(placement, room, vm)
                cursor = (cursor + step + (distribution == "round-robin")) % len(rooms)
                break
        else:
            placement.unplaced.append(vm.id)
    return placement


def _put(placement: Placement, room: HostRoom, vm: VmSpec) -> None:
    if room.fits(vm):
        room.take(vm)
        placement.hosts[room.host].append(vm.id)
    else:
        placement.unplaced.append(vm.id)


def redistribute(placement: Placement, dropped_hosts: Sequence[str], vms: Sequence[VmSpec],
                 rooms: Sequence[HostRoom], distribution: str, seed: int) -> Placement:
    """Move the VMs of ``dropped_hosts`` to the other hosts of ``rooms`` (full capacity:
    what the staying VMs use is taken first); the staying VMs do not move."""
    gone = set(dropped_hosts)
    spec = {v.id: v for v in vms}
    left = [dataclasses.replace(r) for r in rooms if r.host not in gone]
    stay: dict[str, list[str]] = {r.host: list(placement.hosts.get(r.host, [])) for r in left}
    for room in left:
        for vm_id in stay[room.host]:
            room.take(spec[vm_id])
    moving = [spec[vm_id] for h in dropped_hosts for vm_id in placement.hosts.get(h, [])]
    moving += [spec[vm_id] for vm_id in placement.unplaced]
    # n_by_hosts would drop again by rule: the moved VMs go round-robin over the rest
    rule = "round-robin" if distribution == "n_by_hosts" else distribution
    moved = distribute([dataclasses.replace(v, host="") for v in moving], left, rule, seed)
    for host, ids in moved.hosts.items():
        stay[host] += ids
    return Placement(hosts=stay, unplaced=moved.unplaced, dropped=list(placement.dropped),
                     needed=placement.needed,
                     available=(sum(r.memory_mib for r in rooms if r.host not in gone),
                                sum(r.vcpu_slots for r in rooms if r.host not in gone)))


# -- addresses ---------------------------------------------------------------------------


def subnet_pool(networks: Sequence[str]) -> list[tuple[str, str]]:
    """(IP, MAC) pairs of subnets: hosts of each network, MAC ``00:16:3e`` + the IP's last
    three bytes (Grid'5000's ``g5k-subnets -im`` convention)."""
    out: list[tuple[str, str]] = []
    for net in networks:
        try:
            network = ipaddress.IPv4Network(net, strict=False)
        except ValueError:
            raise InputError(f"subnet {net!r}: not an IPv4 network") from None
        for ip in network.hosts():
            b = ip.packed
            out.append((str(ip), f"00:16:3e:{b[1]:02x}:{b[2]:02x}:{b[3]:02x}"))
    return out


def assign_addresses(vms: Sequence[VmSpec],
                     pool: Sequence[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """VM id → (IP, MAC), by rank; ``InputError`` if the pool is too small or repeats."""
    if len(pool) < len(vms):
        raise InputError(f"vms: {len(vms)} VMs but the address pool holds only {len(pool)} "
                         "IP/MAC pairs (reserve a larger KaVLAN or more subnets, or fewer "
                         "VMs)")
    pairs = list(pool[:len(vms)])
    for kind, i in (("IP", 0), ("MAC", 1)):
        values = [p[i].lower() for p in pairs]
        if len(set(values)) != len(values):
            dup = next(v for v in values if values.count(v) > 1)
            raise InputError(f"vms: the address pool repeats the {kind} {dup}")
    return {vm.id: (ip, mac) for vm, (ip, mac) in zip(vms, pairs, strict=True)}
