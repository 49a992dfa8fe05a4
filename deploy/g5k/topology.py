"""The run directory's VM outputs, in vm5k's formats.

- ``vms.list``: ``IP<TAB>name``, one line per VM that is OK (what vm5k wrote and the talk's
  load injector read);
- the topology (vm5k's ``final_topo.xml`` shape): ``<vm5k><site id><cluster id><host id
  cpu mem state><vm id mem n_cpu hdd backing_file ip mac state/>``; ``cpu`` is ``100 ×
  cores``, ``mem`` MiB; KO hosts are listed with ``state="KO"`` (and no VM), like vm5k's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.g5k.platform import Node
from deploy.g5k.vms import Placement, VmSpec

__all__ = ["TOPOLOGY", "VMS_LIST", "topology_xml", "vms_list", "write_outputs"]

VMS_LIST = "vms.list"
TOPOLOGY = "final_topo.xml"


def vms_list(vms: Sequence[VmSpec], addresses: Mapping[str, tuple[str, str]],
             states: Mapping[str, str]) -> str:
    """``IP<TAB>name`` for the OK VMs, in rank order."""
    return "".join(f"{addresses[v.id][0]}\t{v.id}\n" for v in vms
                   if states.get(v.id) == "OK" and v.id in addresses)


def topology_xml(nodes: Sequence[Node], host_states: Mapping[str, str], placement: Placement,
                 vms: Sequence[VmSpec], addresses: Mapping[str, tuple[str, str]],
                 vm_states: Mapping[str, str]) -> str:
    """Sites, clusters, hosts (OK/KO) and their VMs with states, as vm5k's final topology."""
    spec = {v.id: v for v in vms}
    root = ET.Element("vm5k")
    sites: dict[str, ET.Element] = {}
    clusters: dict[tuple[str, str], ET.Element] = {}
    for node in nodes:
        site = sites.get(node.site)
        if site is None:
            site = sites[node.site] = ET.SubElement(root, "site", id=node.site)
        key = (node.site, node.cluster)
        cluster = clusters.get(key)
        if cluster is None:
            cluster = clusters[key] = ET.SubElement(site, "cluster", id=node.cluster)
        state = host_states.get(node.name, "OK")
        host = ET.SubElement(cluster, "host", id=node.name, cpu=str(100 * node.cores),
                             mem=str(node.memory_mib), state="KO" if state == "KO" else "OK")
        if state == "KO":
            continue
        for vm_id in placement.hosts.get(node.name, []):
            v = spec[vm_id]
            ip, mac = addresses.get(vm_id, ("", ""))
            ET.SubElement(host, "vm", id=v.id, mem=str(v.mem_mib), n_cpu=str(v.vcpus),
                          hdd=str(v.disk_gib), backing_file=v.backing_file, ip=ip, mac=mac,
                          state=vm_states.get(v.id, "KO"))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_outputs(run_dir: Path, nodes: Sequence[Node], host_states: Mapping[str, str],
                  placement: Placement, vms: Sequence[VmSpec],
                  addresses: Mapping[str, tuple[str, str]],
                  vm_states: Mapping[str, str]) -> tuple[Path, Path]:
    """Write ``vms.list`` and ``final_topo.xml`` atomically in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in ((VMS_LIST, vms_list(vms, addresses, vm_states)),
                       (TOPOLOGY, topology_xml(nodes, host_states, placement, vms, addresses,
                                               vm_states))):
        tmp = run_dir / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(run_dir / name)
        out.append(run_dir / name)
    return out[0], out[1]
