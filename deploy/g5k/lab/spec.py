"""The lab's platform description: fake sites, clusters and nodes with Grid'5000's names.

A lab is described by a small JSON document (``LAB/platform.json``) that every stand-in
reads: the fake REST API builds its payloads from it, the fake OAR allocates its nodes, the
generated ssh config names its frontends and nodes. ``default_spec(sites, nodes)`` builds
the usual one: site ``fsiteI``, node names ``fcla-1.fsite1.grid5000.fr`` (kadeploy's output
parser and execo's frontend lookup depend on that shape); a site with three nodes or more
gets a second, one-node cluster, so a blacklist can exclude a cluster and still leave nodes.
Global KaVLAN 16 is on the first site, local KaVLANs 4..6 on every site.

A node may carry ``netns`` (its sshd then runs inside that network namespace) and ``env``
(extra variables of its ssh sessions, e.g. ``LIBVIRT_DEFAULT_URI``) and ``cgroup`` (the
cgroup v2 directory of its hypervisor): tier F (``lab/hypervisors.py``) puts ``dvms
cluster`` hypervisors there.
"""

from __future__ import annotations

import json
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dvms.errors import InputError

__all__ = ["LabCluster", "LabNode", "LabSite", "LabSpec", "default_spec", "global_vlan_cidr"]

GLOBAL_VLAN = 16


def global_vlan_cidr(vlan: int) -> str:
    """Grid'5000's address block of global KaVLAN ``vlan`` (11..21): 10.(4(V−11)+7).192.0/18."""
    return f"10.{4 * (vlan - 11) + 7}.192.0/18"


@dataclass(frozen=True, slots=True)
class LabNode:
    name: str
    """Fully qualified: ``cluster-N.site.grid5000.fr``."""
    cores: int = 4
    memory_mib: int = 8192
    flops: float = 1.0e10
    netns: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cgroup: str = ""
    """Tier F: the cgroup v2 directory holding this host's libvirtd and its qemus."""

    @property
    def short(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class LabCluster:
    name: str
    nodes: tuple[LabNode, ...]


@dataclass(frozen=True, slots=True)
class LabSite:
    name: str
    clusters: tuple[LabCluster, ...]
    index: int
    """Position of the site (its local KaVLAN blocks are 10.(16+index).x)."""
    global_vlan: int | None = None
    local_vlans: tuple[int, ...] = (4, 5, 6)

    @property
    def frontend(self) -> str:
        return f"{self.name}.grid5000.fr"

    def nodes(self) -> list[tuple[str, LabNode]]:
        return [(c.name, n) for c in self.clusters for n in c.nodes]


@dataclass(frozen=True, slots=True)
class LabSpec:
    sites: tuple[LabSite, ...]
    start_delay_s: float = 2.0
    """Time between a job's submission and its start (OAR's scheduling round)."""
    kadeploy_s: float = 0.5
    """How long the fake kadeploy3 takes."""

    def site(self, name: str) -> LabSite:
        for s in self.sites:
            if s.name == name:
                return s
        raise InputError(f"site {name!r}: not in this lab ({', '.join(self.site_names())})")

    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    def node(self, name: str) -> tuple[LabSite, str, LabNode]:
        """(site, cluster, node) of a node given by its fqdn, short name or kavlan name."""
        short = name.split(".", 1)[0].split("-kavlan-", 1)[0]
        for s in self.sites:
            for cluster, n in s.nodes():
                if n.short == short:
                    return s, cluster, n
        raise InputError(f"node {name!r}: not in this lab")

    def all_nodes(self) -> list[tuple[LabSite, str, LabNode]]:
        return [(s, c, n) for s in self.sites for c, n in s.nodes()]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> LabSpec:
        try:
            data = json.loads(path.read_text())
            sites = tuple(
                LabSite(name=s["name"], index=int(s["index"]),
                        global_vlan=s.get("global_vlan"),
                        local_vlans=tuple(s.get("local_vlans", (4, 5, 6))),
                        clusters=tuple(
                            LabCluster(name=c["name"],
                                       nodes=tuple(LabNode(**n) for n in c["nodes"]))
                            for c in s["clusters"]))
                for s in data["sites"])
            return cls(sites=sites, start_delay_s=float(data.get("start_delay_s", 2.0)),
                       kadeploy_s=float(data.get("kadeploy_s", 0.5)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a lab platform description ({exc})") from exc


def default_spec(sites: int = 2, nodes: tuple[int, ...] = (2, 3)) -> LabSpec:
    """``sites`` fake sites; site i has ``nodes[i]`` nodes (the last count repeats)."""
    if not 1 <= sites <= 8:
        raise InputError(f"--sites {sites}: expected 1..8")
    if not nodes or any(not 1 <= n <= 32 for n in nodes):
        raise InputError(f"--nodes {','.join(map(str, nodes))}: expected counts in 1..32")
    letters = iter(string.ascii_lowercase)
    out: list[LabSite] = []
    for i in range(sites):
        count = nodes[min(i, len(nodes) - 1)]
        site = f"fsite{i + 1}"
        sizes = [count] if count < 3 else [count - 1, 1]
        clusters = []
        for size in sizes:
            cl = f"fcl{next(letters)}"
            clusters.append(LabCluster(name=cl, nodes=tuple(
                LabNode(name=f"{cl}-{k}.{site}.grid5000.fr") for k in range(1, size + 1))))
        out.append(LabSite(name=site, index=i, clusters=tuple(clusters),
                           global_vlan=GLOBAL_VLAN if i == 0 else None))
    return LabSpec(sites=tuple(out))
