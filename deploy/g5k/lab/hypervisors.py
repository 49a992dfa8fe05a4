"""Tier F of the lab (``dvms g5k lab up --libvirt``): every lab node a real hypervisor.

Each node is a ``dvms cluster``-style host (``deploy.cluster_net`` + ``deploy.cluster_libvirtd``,
reused as they are): network namespace ``PREFIX-hI`` with its own ``libvirtd`` in its own
mount namespace and cgroup subtree ``libvirt-PREFIX-hI``. The network is one L2 spanning
the fake sites, like a global KaVLAN, in the lab's KaVLAN-16 block (``global_vlan_cidr``):

- the bridge namespace ``PREFIX-net`` holds one bridge per site (``sK``) and a core bridge
  (``br0``); each site bridge is joined to the core by a veth pair with ``tc netem`` on
  both ends (``delay_ms / 2`` each), so a frame between two sites is delayed ``delay_ms``
  one way (RTT ``2 × delay_ms``) and a frame within a site not at all, wherever its VM is
  (a kernel without ``sch_netem`` gets no delay: recorded as ``delay_unavailable`` in the
  state and ``lab status``, with a warning);
- in each host namespace, a bridge ``br0`` enslaves the host's ``eth0`` and takes its
  address: the VMs' taps join ``br0``, so hosts and VMs share the L2. Hosts are the
  block's first addresses (``10.27.192.1`` ...), VMs come from the KaVLAN pool (execo's
  ``get_kavlan_ip_mac``: from ``10.27.216.1``), all in the same /18: no route needed;
- the bridge namespace has ``CONTROL_HOST`` (``10.27.192.254``, outside the VM pool) on
  the core bridge: the lab's ssh config reaches the VMs (``Host 10.27.*``) with
  ``ProxyCommand nsenter --net=/run/netns/PREFIX-net nc %h %p``, as a frontend reaches
  VMs on a KaVLAN.

Each daemon's mount namespace also has a host-local disk directory (``DISK_DIR``, like a
node's own ``/tmp`` on Grid'5000, where vm5k keeps disks): the node's ssh sessions run in
that mount namespace (``proxy.py``), so the ``vms`` step's overlays, the staged backing
file and the migrated disks are each host's own. Every step is recorded
(``LAB/hv/state.json``, a ``ClusterState``) before it is done; ``down`` is
``deploy.cluster.down`` on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Any

import libvirt

from deploy import cluster_net as net
from deploy.cluster import ClusterState, _warm_up, require_root
from deploy.cluster import down as cluster_down
from deploy.cluster_libvirtd import LibvirtdHost, cgroup_controller_mounts
from deploy.g5k.lab.spec import GLOBAL_VLAN, LabNode, LabSpec, global_vlan_cidr
from deploy.guest_image_g5k import G5kGuestImage
from dvms.config import toml_value
from dvms.errors import DvmsError, InputError

__all__ = ["DISK_DIR", "GUEST_CMDLINE", "HV_DIR", "attach", "control_ip", "down", "hosts",
           "ssh_block", "status", "up", "virsh_wrapper", "vms_table"]

HV_DIR = "hv"
DISK_DIR = "/var/lib/dvms-lab-vms"
"""The host-local directory of every lab hypervisor (a private bind mount per host)."""
GUEST_CMDLINE = "console=ttyS0 quiet panic=-1 dvms.prefix=18"
"""The guests' kernel command line; the ``vms`` step adds ``dvms.ip=`` per VM (the
global KaVLAN block is a /18)."""


def _vlan_cidr(spec: LabSpec) -> str:
    vlan = next((s.global_vlan for s in spec.sites if s.global_vlan is not None), GLOBAL_VLAN)
    return global_vlan_cidr(vlan)


def control_ip(spec: LabSpec) -> str:
    """The bridge namespace's address on the L2 (the block's .254 of its first /24,
    outside execo's VM pool, which starts at the third byte 216)."""
    net_ = ipaddress.ip_network(_vlan_cidr(spec))
    return str(net_.network_address + 254)


def cpu_cgroup(name: str) -> str:
    """The directory of a host's subtree that accounts its qemus' CPU: the v1 ``cpuacct``
    one (``cpuacct.usage``) on a machine with v1 controllers (libvirt then puts each qemu
    in ``machine/…`` there; a hybrid machine's cgroup v2 hierarchy holds none of them),
    else the cgroup v2 one (``cpu.stat``)."""
    mounts = cgroup_controller_mounts()
    for mount in mounts:
        if mount.name.split(",").count("cpuacct") or mount.name == "cpuacct":
            return str(mount / name)
    return str((mounts[0] if mounts else Path("/sys/fs/cgroup")) / name)


def hosts(spec: LabSpec, workdir: Path, prefix: str) -> list[tuple[str, LibvirtdHost]]:
    """(site, daemon) of every node, in the spec's order."""
    cidr = _vlan_cidr(spec)
    out = []
    for i, (site, _, node) in enumerate(spec.all_nodes()):
        out.append((site.name, LibvirtdHost(
            name=node.short, netns=f"{prefix}-h{i}", ip=net.host_ip(cidr, i),
            base=workdir / HV_DIR / "hosts" / node.short, cgroup=f"libvirt-{prefix}-h{i}",
            private_dirs=(("disks", DISK_DIR),))))
    return out


def attach(spec: LabSpec, workdir: Path, prefix: str) -> LabSpec:
    """The spec with each node's ``netns``, ``env`` (``LIBVIRT_DEFAULT_URI``,
    ``DVMS_HOST_IP``) and ``cgroup`` set for its hypervisor."""
    if not 1 <= len(prefix) <= 6 or not prefix.isalnum() or not prefix[0].isalpha():
        raise InputError(f"--prefix {prefix!r}: expected 1-6 letters/digits, first a letter")
    daemons = {h.name: h for _, h in hosts(spec, workdir, prefix)}

    def node(n: LabNode) -> LabNode:
        h = daemons[n.short]
        return dataclasses.replace(n, netns=h.netns, cgroup=cpu_cgroup(h.cgroup),
                                   env={**n.env, "LIBVIRT_DEFAULT_URI": h.uri,
                                        "DVMS_HOST_IP": h.ip})

    sites = tuple(dataclasses.replace(s, clusters=tuple(
        dataclasses.replace(c, nodes=tuple(node(n) for n in c.nodes)) for c in s.clusters))
        for s in spec.sites)
    return dataclasses.replace(spec, sites=sites)


def up(spec: LabSpec, workdir: Path, prefix: str, delay_ms: float = 5.0) -> ClusterState:
    """Build the hypervisors of ``spec`` (already ``attach``-ed); undone by ``down``. A
    command failing is a ``DvmsError`` naming it and its message."""
    try:
        return _up(spec, workdir, prefix, delay_ms)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise DvmsError(f"lab: {' '.join(map(str, exc.cmd))} failed: "
                        f"{detail[-1] if detail else f'exit {exc.returncode}'}") from exc


def _up(spec: LabSpec, workdir: Path, prefix: str, delay_ms: float) -> ClusterState:
    require_root()
    if not 0 <= delay_ms <= 1000:
        raise InputError(f"--delay-ms {delay_ms}: expected 0..1000 (one way between sites)")
    clash = [ns for ns in net.list_netns() if ns.startswith(f"{prefix}-")]
    if clash:
        raise InputError(f"namespaces {', '.join(clash)} exist: another lab or cluster with "
                         f"prefix {prefix!r} is up")
    hv = workdir / HV_DIR
    hv.mkdir(parents=True, exist_ok=True)
    cidr = _vlan_cidr(spec)
    state = ClusterState(workdir=hv, spec={"prefix": prefix, "delay_ms": delay_ms,
                                           "subnet": cidr, "lab": str(workdir)},
                         bridge_ns=f"{prefix}-net")
    state.save()
    prefixlen = ipaddress.ip_network(cidr).prefixlen
    bns = state.bridge_ns
    net.create_bridge_ns(bns)  # its br0 is the core every site bridge joins
    net.run(["ip", "-n", bns, "addr", "add", f"{control_ip(spec)}/{prefixlen}", "dev",
             net.BRIDGE])
    for k in range(len(spec.sites)):
        sb, a, b = f"s{k}", f"l{k}s", f"l{k}c"
        net.run(["ip", "-n", bns, "link", "add", sb, "type", "bridge"])
        net.run(["ip", "-n", bns, "link", "set", sb, "up"])
        if len(spec.sites) > 1:
            net.run(["ip", "-n", bns, "link", "add", a, "type", "veth", "peer", "name", b])
            net.run(["ip", "-n", bns, "link", "set", a, "master", sb])
            net.run(["ip", "-n", bns, "link", "set", b, "master", net.BRIDGE])
            for end in (a, b):
                net.run(["ip", "-n", bns, "link", "set", end, "up"])
                if delay_ms > 0 and not state.spec.get("delay_unavailable"):
                    _netem(state, end, delay_ms / 2)
    site_index = {s.name: k for k, s in enumerate(spec.sites)}
    for i, (site_name, host) in enumerate(hosts(spec, workdir, prefix)):
        state.hosts.append(host)
        state.save()
        link = f"{prefix}v{i}"
        net.add_host_link(bns, host.netns, link, host.ip, prefixlen)
        net.run(["ip", "-n", bns, "link", "set", f"{link}b", "master",
                 f"s{site_index[site_name]}"])
        _host_bridge(host.netns, host.ip, prefixlen)
    cores = {n.short: n.cores for _, _, n in spec.all_nodes()}
    for host in state.hosts:
        host.start()
        _fair_share(host.cgroup, cores[host.name])
    _warm_up(state.hosts)
    state.hosts[0].save_capabilities()
    return state


def _netem(state: ClusterState, dev: str, ms: float) -> None:
    """``netem`` delay on a link of the bridge namespace; a kernel without ``sch_netem``
    (some VM kernels) is recorded (``delay_unavailable``) and the lab has no delay."""
    r = net.run(["tc", "-n", state.bridge_ns, "qdisc", "add", "dev", dev, "root", "netem",
                 "delay", f"{ms:g}ms"], check=False)
    if r.returncode == 0:
        return
    detail = (r.stderr.strip().splitlines() or ["tc failed"])[-1]
    if "unknown" not in detail:
        raise DvmsError(f"lab: tc netem on {dev} of {state.bridge_ns}: {detail}")
    state.spec["delay_unavailable"] = f"no netem in this kernel ({detail})"
    state.save()
    print(f"lab: warning: no delay between sites: {state.spec['delay_unavailable']}",
          file=sys.stderr, flush=True)


def _fair_share(cgroup: str, cores: int) -> None:
    """CPU weight of a host's subtree = ``cores`` ordinary processes: a cgroup competes
    with the machine's other processes as *one* (weight 1024), so the qemus of a lab host
    would share one process's CPU between them and their measured load (what the agents
    see) would collapse on a busy machine. Not a priority: a busy host gets what as many
    processes as it has cores would."""
    for mount in cgroup_controller_mounts():
        for knob, value in (("cpu.shares", 1024 * cores), ("cpu.weight", 100 * cores)):
            path = mount / cgroup / knob
            if path.exists():
                with contextlib.suppress(OSError):
                    path.write_text(str(min(value, 10000) if knob == "cpu.weight" else value))


def _host_bridge(ns: str, ip: str, prefixlen: int) -> None:
    """``br0`` in the host namespace, enslaving ``eth0`` and taking its IP address and its
    MAC address, set explicitly: a bridge with no set address takes its ports' lowest, and
    a guest's tap (``fe:`` + the guest's MAC) may be lower than a random ``eth0``'s; the
    host's MAC would then change as guests come and go, and equal the tap of the same
    guest migrating in on another host (that host then keeps this one's frames: the
    daemons' connection stalls until libvirt's keepalive kills the migration)."""
    out = net.run(["ip", "-n", ns, "-o", "link", "show", "eth0"]).stdout.split()
    mac = out[out.index("link/ether") + 1]
    for cmd in (["link", "add", net.BRIDGE, "address", mac, "type", "bridge"],
                ["link", "set", "eth0", "master", net.BRIDGE],
                ["addr", "del", f"{ip}/{prefixlen}", "dev", "eth0"],
                ["addr", "add", f"{ip}/{prefixlen}", "dev", net.BRIDGE],
                ["link", "set", net.BRIDGE, "up"]):
        net.run(["ip", "-n", ns, *cmd])


def ssh_block(spec: LabSpec, prefix: str, user_key: Path) -> list[str]:
    """The ssh config block reaching the VMs of the lab's KaVLAN from the bridge namespace."""
    net_ = ipaddress.ip_network(_vlan_cidr(spec))
    pattern = ".".join(str(net_.network_address).split(".")[:2]) + ".*"
    return [f"Host {pattern}",
            f"  ProxyCommand nsenter --net=/run/netns/{prefix}-net nc %h %p",
            "  User root",
            f"  IdentityFile {user_key}",
            "  IdentitiesOnly yes",
            "  BatchMode yes",
            "  StrictHostKeyChecking no",
            "  UserKnownHostsFile /dev/null",
            "  LogLevel ERROR"]


def virsh_wrapper(path: Path, python: str, faults: Path) -> None:
    """``virsh`` of the nodes' sessions (``LAB/bin`` is first on their PATH): the real one,
    except that ``virsh define F.xml`` of a VM named in the fault switch ``silent_vms``
    first adds ``dvms.sshd=0`` to its kernel command line (a VM that boots but never
    answers on port 22)."""
    helper = path.with_name("silent-vm.py")
    helper.write_text(
        "import json, sys\n"
        "faults, xml = sys.argv[1], sys.argv[2]\n"
        "vm = xml.rsplit('/', 1)[-1].removesuffix('.xml')\n"
        "try:\n"
        "    silent = json.load(open(faults)).get('silent_vms', [])\n"
        "except (OSError, ValueError):\n"
        "    silent = []\n"
        "if vm in silent:\n"
        "    text = open(xml).read()\n"
        "    open(xml, 'w').write(text.replace('</cmdline>', ' dvms.sshd=0</cmdline>', 1))\n")
    path.write_text(
        "#!/bin/sh\n"
        "# lab stand-in (tier F): the real virsh; see deploy/g5k/lab/hypervisors.py\n"
        'prev=""\n'
        'for a in "$@"; do\n'
        '  if [ "$prev" = define ] && [ -f "$a" ]; then\n'
        f"    '{python}' '{helper}' '{faults}' \"$a\"\n"
        "  fi\n"
        "  prev=$a\n"
        "done\n"
        'exec /usr/bin/virsh "$@"\n')
    path.chmod(0o755)


def vms_table(image: G5kGuestImage, initrd: Path, hosts: int) -> str:
    """The example experiment's ``[vms]`` table: guest image v2 booted directly by TCG,
    disks and staged backing file in each host's own ``DISK_DIR``."""
    values = {
        "count": 2 * max(1, hosts),
        "template": {"mem_mib": 128, "vcpus": 1, "disk_gib": 1},
        "backing_file": str(image.backing),
        "distribution": "round-robin",
        "disk_dir": DISK_DIR,
        "stage_dir": DISK_DIR,
        "boot_timeout_s": 60.0,
        "min_vms_ratio": 0.8,
        "domain_type": "qemu",
        "kernel": str(image.kernel),
        "initrd": str(initrd),
        "cmdline": GUEST_CMDLINE,
    }
    return "[vms]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


def down(workdir: Path) -> list[str]:
    """Destroy guests, stop the daemons, kill and remove the cgroups, delete the
    namespaces (``deploy.cluster.down`` on the recorded state). Safe to repeat."""
    if not (workdir / HV_DIR / "state.json").exists():
        return []
    return cluster_down(workdir / HV_DIR)


def status(workdir: Path, spec: LabSpec) -> dict[str, Any]:
    """The L2 (block, delay, bridge namespace) and each hypervisor: site, address,
    namespace, daemon alive, URIs, cgroup, running domains."""
    state = ClusterState.load(workdir / HV_DIR)
    if state is None:
        return {}
    sites = {n.short: s.name for s, _, n in spec.all_nodes()}
    cgroups = {n.short: n.cgroup for _, _, n in spec.all_nodes()}
    hosts_: dict[str, Any] = {}
    for h in state.hosts:
        domains: list[str] = []
        if h.alive():
            with contextlib.suppress(libvirt.libvirtError):
                conn = libvirt.open(h.uri)
                domains = sorted(d.name() for d in conn.listAllDomains(
                    libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
                conn.close()
        hosts_[h.name] = {"site": sites.get(h.name, ""), "ip": h.ip, "netns": h.netns,
                          "libvirtd": h.alive(), "uri": h.uri, "tcp_uri": h.tcp_uri,
                          "cgroup": cgroups.get(h.name, ""), "domains": domains}
    net_ = {"subnet": state.spec.get("subnet", ""), "bridge_ns": state.bridge_ns,
            "control_ip": control_ip(spec), "disk_dir": DISK_DIR,
            "delay_ms": 0.0 if state.spec.get("delay_unavailable")
            else state.spec.get("delay_ms", 0.0),
            "delay_unavailable": state.spec.get("delay_unavailable", "")}
    return {"network": net_, "hosts": hosts_}
