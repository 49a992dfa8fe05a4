"""The platform seen through the REST API: sites, clusters, nodes and KaVLAN networks.

``load_platform`` reads the reference API through execo_g5k's ``api_utils`` (so execo's
own planning functions see the same data, and its cache serves when the API is down) and
turns it into small frozen records. A site whose API fails raises ``SiteUnavailable``
naming it; an API that cannot be reached at all (and no cache) raises ``ApiUnreachable``.
KaVLAN networks come from either shape the API has had: ``vlans`` tables in the routers of
``/sites/S/network_equipments``, or ``/sites/S/vlans`` items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dvms.errors import DvmsError

__all__ = [
    "ApiUnreachable",
    "Cluster",
    "Kavlan",
    "Node",
    "Platform",
    "Site",
    "SiteUnavailable",
    "kavlans_from_equipments",
    "kavlans_from_vlans",
    "load_platform",
    "parse_node",
]


class SiteUnavailable(DvmsError):
    """One site's API failed: ``site fsite2: API error 503 on /sites/fsite2/clusters``."""

    def __init__(self, site: str, detail: str) -> None:
        super().__init__(f"site {site}: {detail}")
        self.site = site
        self.detail = detail


class ApiUnreachable(DvmsError):
    """The API root cannot be reached and no cache can stand in for it."""

    def __init__(self, uri: str, detail: str) -> None:
        super().__init__(f"API {uri} unreachable: {detail}")
        self.uri = uri
        self.detail = detail


@dataclass(frozen=True)
class Node:
    name: str
    """Fully qualified: ``cluster-N.site.grid5000.fr``."""
    site: str
    cluster: str
    cores: int
    memory_mib: int
    flops: float
    """``performance.node_flops`` (0 when the API has none)."""
    power_sensor: bool
    """``sensors.power.available`` (Kwapi/Kwollect watts)."""

    @property
    def short(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Cluster:
    name: str
    site: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Kavlan:
    """A KaVLAN network: id 1-3 local, 4-9 routed (one site), 11-21 global."""

    vlan: int
    network: str
    """CIDR, e.g. ``10.27.192.0/18``."""

    @property
    def kind(self) -> str:
        if self.vlan <= 3:
            return "kavlan-local"
        return "kavlan" if self.vlan < 10 else "kavlan-global"


@dataclass(frozen=True)
class Site:
    name: str
    clusters: tuple[Cluster, ...]
    kavlans: tuple[Kavlan, ...] = ()


@dataclass(frozen=True)
class Platform:
    sites: Mapping[str, Site]

    def site(self, name: str) -> Site:
        """The site (KeyError if unknown)."""
        raise NotImplementedError

    def cluster(self, name: str) -> Cluster:
        """The cluster (KeyError if unknown)."""
        raise NotImplementedError

    def node(self, name: str) -> Node:
        """The node by FQDN or short name (KeyError if unknown)."""
        raise NotImplementedError

    def kind(self, element: str) -> str | None:
        """'grid5000', 'site', 'cluster', 'host' or None for an unknown name."""
        raise NotImplementedError


def parse_node(site: str, cluster: str, payload: Mapping[str, Any]) -> Node:
    """A ``/sites/S/clusters/C/nodes`` item → ``Node`` (ValueError naming a missing field)."""
    raise NotImplementedError


def kavlans_from_equipments(items: Sequence[Mapping[str, Any]]) -> tuple[Kavlan, ...]:
    """KaVLANs from routers' ``vlans`` tables (``{"vlan716": {"name": "kavlan-16", ...}}``)."""
    raise NotImplementedError


def kavlans_from_vlans(items: Sequence[Mapping[str, Any]]) -> tuple[Kavlan, ...]:
    """KaVLANs from ``/sites/S/vlans`` items."""
    raise NotImplementedError


def load_platform(sites: Sequence[str] | None = None) -> Platform:
    """The platform (all sites, or ``sites``) from the API configured by ``session``."""
    raise NotImplementedError
