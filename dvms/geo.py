"""Geography of a geo-distributed cloud: site locations and the RTT they imply.

Shared by the simulator's network model (``sim.network.GeoNetwork``) and the Vivaldi test
harness (``dvms.testing.topology.sites``), so both measure against the same truth.

RTT model (all seconds), documented in ``RttModel``:

- between two hosts of different sites ``a``/``b``:
  ``2 · route_factor · d_km / fibre_km_s + (lan_a + lan_b) / 2 + access(x) + access(y)``
  where ``d_km`` is the great-circle distance between the site cities;
- between two hosts of one site: ``lan + access(x) + access(y)``;
- ``access(x)`` is a small per-host delay (NIC, stack, top-of-rack hop): the non-Euclidean
  "height" of Vivaldi, which makes the closest host of a site well defined.

The model is a metric that a Euclidean-plus-height embedding can represent closely, which
is what real measured Grid'5000 RTTs look like at the site level (ping between sites
tracks fibre distance along RENATER routes).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from dvms.errors import InputError

__all__ = [
    "DEFAULT_RTT_MODEL",
    "GRID5000_SITES",
    "SITE_PRESETS",
    "SITE_SETS",
    "WORLD_SITES",
    "RttModel",
    "Site",
    "access_delay_s",
    "assign_blocks",
    "assign_round_robin",
    "great_circle_km",
    "one_way_delays",
    "resolve_sites",
    "site_rtt_s",
]

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True, slots=True)
class Site:
    """A data-centre site at a real city."""

    name: str
    """Short site name, e.g. ``"rennes"``; unique within a site set."""
    city: str
    lat: float
    """Latitude of the city, degrees north."""
    lon: float
    """Longitude of the city, degrees east."""
    lan_rtt_s: float = 200e-6
    """RTT across the site's own network between two hosts (seconds; default 0.2 ms, the
    order of an intra-site ping on Grid'5000)."""


GRID5000_SITES: tuple[Site, ...] = (
    Site("grenoble", "Grenoble", 45.1885, 5.7245),
    Site("lille", "Lille", 50.6292, 3.0573),
    Site("luxembourg", "Luxembourg", 49.6116, 6.1319),
    Site("lyon", "Lyon", 45.7640, 4.8357),
    Site("nancy", "Nancy", 48.6921, 6.1844),
    Site("nantes", "Nantes", 47.2184, -1.5536),
    Site("rennes", "Rennes", 48.1173, -1.6778),
    Site("sophia", "Sophia-Antipolis", 43.6163, 7.0552),
    Site("toulouse", "Toulouse", 43.6047, 1.4442),
)
"""Grid'5000's site cities (the embedded default of the simulator)."""

WORLD_SITES: tuple[Site, ...] = (
    Site("paris", "Paris", 48.8566, 2.3522),
    Site("london", "London", 51.5074, -0.1278),
    Site("frankfurt", "Frankfurt", 50.1109, 8.6821),
    Site("newyork", "New York", 40.7128, -74.0060),
    Site("chicago", "Chicago", 41.8781, -87.6298),
    Site("sanfrancisco", "San Francisco", 37.7749, -122.4194),
    Site("saopaulo", "São Paulo", -23.5505, -46.6333),
    Site("tokyo", "Tokyo", 35.6762, 139.6503),
    Site("singapore", "Singapore", 1.3521, 103.8198),
    Site("sydney", "Sydney", -33.8688, 151.2093),
    Site("mumbai", "Mumbai", 19.0760, 72.8777),
    Site("johannesburg", "Johannesburg", -26.2041, 28.0473),
)
"""A wide-area variant: twelve cloud-region cities on five continents."""

SITE_SETS: dict[str, tuple[Site, ...]] = {"grid5000": GRID5000_SITES, "world": WORLD_SITES}
"""Named site sets, for scenarios (``sites = "grid5000"``)."""


@dataclass(frozen=True, slots=True)
class RttModel:
    """Parameters of the RTT model (see the module docstring)."""

    fibre_km_s: float = 200_000.0
    """Propagation speed of light in fibre (km/s; refractive index ~1.5)."""
    route_factor: float = 2.0
    """Fibre route length over great-circle distance (dimensionless; 1.5–2 is typical of
    national research networks, whose paths go through a few hubs such as Paris)."""
    access_min_s: float = 10e-6
    """Smallest per-host access delay (seconds, added once per end of a path)."""
    access_max_s: float = 60e-6
    """Largest per-host access delay (seconds)."""

    def __post_init__(self) -> None:
        if not self.fibre_km_s > 0:
            raise ValueError(f"fibre_km_s must be > 0, got {self.fibre_km_s}")
        if not self.route_factor >= 1:
            raise ValueError(f"route_factor must be >= 1, got {self.route_factor}")
        if not 0 <= self.access_min_s <= self.access_max_s:
            raise ValueError(
                f"access delays must satisfy 0 <= access_min_s <= access_max_s, got "
                f"{self.access_min_s}, {self.access_max_s}"
            )


DEFAULT_RTT_MODEL = RttModel()
"""The default RTT model."""


def great_circle_km(a: Site, b: Site) -> float:
    """Great-circle distance between two sites' cities (haversine, km)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def site_rtt_s(a: Site, b: Site, model: RttModel | None = None) -> float:
    """RTT between two sites, without the hosts' access delays (seconds)."""
    model = model or DEFAULT_RTT_MODEL
    if a.name == b.name:
        return a.lan_rtt_s
    wan = 2 * model.route_factor * great_circle_km(a, b) / model.fibre_km_s
    return wan + (a.lan_rtt_s + b.lan_rtt_s) / 2


def one_way_delays(
    names: Sequence[str], *, intra_site_s: float = 0.0001, model: RttModel | None = None
) -> dict[tuple[str, str], float]:
    """One-way delays between every ordered pair of the named sites (half their RTT;
    ``intra_site_s`` within a site), e.g. for ``peeractor.network.SiteLatency``."""
    sites = resolve_sites(list(dict.fromkeys(names)), field="sites")
    return {
        (a.name, b.name): intra_site_s if a.name == b.name else site_rtt_s(a, b, model) / 2
        for a in sites
        for b in sites
    }


def access_delay_s(node: str, model: RttModel | None = None) -> float:
    """A host's access delay, a fixed function of its name (crc32, not ``hash``)."""
    model = model or DEFAULT_RTT_MODEL
    u = zlib.crc32(node.encode()) / 2**32
    return model.access_min_s + u * (model.access_max_s - model.access_min_s)


SITE_PRESETS = {"grid5000": "grid5000", "wide-area": "world", "world": "world"}
"""Preset names a scenario's ``infrastructure.sites`` accepts → site set of ``SITE_SETS``."""


def resolve_sites(
    spec: str | Sequence[str], field: str = "infrastructure.sites"
) -> tuple[Site, ...]:
    """The sites of a preset name or of a list of site names (``InputError`` naming ``field``)."""
    if isinstance(spec, str):
        preset = SITE_PRESETS.get(spec)
        if preset is None:
            allowed = ", ".join(repr(k) for k in SITE_PRESETS)
            raise InputError(f"{field} = {spec!r}: must be one of {allowed} or a list")
        return SITE_SETS[preset]
    known = {s.name: s for preset in SITE_SETS.values() for s in preset}
    out: list[Site] = []
    for name in spec:
        site = known.get(name)
        if site is None:
            raise InputError(
                f"{field} = {list(spec)!r}: unknown site {name!r}; allowed: "
                + ", ".join(sorted(known))
            )
        if site in out:
            raise InputError(f"{field} = {list(spec)!r}: {name!r} listed twice")
        out.append(site)
    return tuple(out)


def assign_round_robin(nodes: Sequence[str], sites: Sequence[Site]) -> dict[str, str]:
    """Node → site name, node ``i`` on site ``i % len(sites)``."""
    if not sites:
        raise ValueError("sites must not be empty")
    return {node: sites[i % len(sites)].name for i, node in enumerate(nodes)}


def assign_blocks(nodes: Sequence[str], sites: Sequence[Site]) -> dict[str, str]:
    """Node → site name, in contiguous blocks of (almost) equal size, in site order."""
    if not sites:
        raise ValueError("sites must not be empty")
    n, k = len(nodes), len(sites)
    return {node: sites[i * k // n].name for i, node in enumerate(nodes)} if n else {}
