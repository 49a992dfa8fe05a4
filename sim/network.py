"""The geo-distributed network model: per-pair latency and bandwidth of the simulated world.

``GeoNetwork`` implements the runtime's ``NetworkModel`` (``latency(src, dst, rng)``,
one-way seconds, None = lost). RTTs follow ``dvms.geo`` (great-circle distance between
site cities, fibre speed, route factor, per-site LAN RTT, per-host access delay).

Jitter: each message's one-way delay is ``rtt/2 · (1 + u)``, ``u`` uniform in
``[-jitter, +jitter]`` (default ±5 %); it is symmetric, so ``rtt(a, b)`` is the mean RTT a
prober measures (the truth Vivaldi is scored against).

Bandwidth (for live migrations): within a site, the hosts' NIC rate; across sites,
``min(nic, Mathis(rtt))`` where Mathis et al.'s TCP steady-state throughput is
``mss·8 / rtt · 1.22 / sqrt(loss)``: it decreases as the RTT grows (about 450 Mb/s at
10 ms, 45 Mb/s at 100 ms with the defaults).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from dvms.geo import GRID5000_SITES, RttModel, Site, access_delay_s, site_rtt_s

__all__ = ["GeoNetwork"]


class GeoNetwork:
    """Latency, RTT and bandwidth between nodes placed on geographic sites."""

    def __init__(
        self,
        site_of: Mapping[str, str],
        sites: Sequence[Site] = GRID5000_SITES,
        *,
        model: RttModel | None = None,
        jitter: float = 0.05,
        loss: float = 0.0,
        access: Mapping[str, float] | None = None,
        nic_bps: float = 1e9,
        wan_mss_bytes: int = 1460,
        wan_loss: float = 1e-5,
    ) -> None:
        """``site_of``: node → site name (the world assigns hosts); ``sites``: the site set.

        ``jitter``: relative one-way jitter amplitude in [0, 1); ``loss``: probability a
        message is lost, in [0, 1); ``access``: per-node access delay (seconds) overriding
        the default function of the name; ``nic_bps``: NIC rate (bits/s, default 1 Gb/s =
        VMPlaceS's 125 MB/s); ``wan_mss_bytes``/``wan_loss``: Mathis model of WAN TCP.
        """
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if not 0 <= loss < 1:
            raise ValueError(f"loss must be in [0, 1), got {loss}")
        if not nic_bps > 0:
            raise ValueError(f"nic_bps must be > 0, got {nic_bps}")
        if not wan_mss_bytes > 0 or not 0 < wan_loss < 1:
            raise ValueError(f"bad WAN TCP model: mss {wan_mss_bytes}, loss {wan_loss}")
        self.sites = {s.name: s for s in sites}
        if len(self.sites) != len(sites):
            raise ValueError("site names must be unique")
        self.model = model = model or RttModel()
        self.jitter = jitter
        self.loss = loss
        self.nic_bps = nic_bps
        self._mathis_bits = wan_mss_bytes * 8 * 1.22 / math.sqrt(wan_loss)
        names = sorted(self.sites)
        self._site_rtt = {
            (a, b): site_rtt_s(self.sites[a], self.sites[b], model) for a in names for b in names
        }
        self._rtt_from = {a: {b: self._site_rtt[(a, b)] for b in names} for a in names}
        self._site: dict[str, str] = {}
        self._access: dict[str, float] = {}
        overrides = dict(access or {})
        for node, site in site_of.items():
            self.add_node(node, site, overrides.get(node))

    def add_node(self, node: str, site: str, access_s: float | None = None) -> None:
        """Place ``node`` on ``site`` (its access delay: given, or a function of its name)."""
        if site not in self.sites:
            raise ValueError(f"node {node!r}: unknown site {site!r}; known: {sorted(self.sites)}")
        if access_s is not None and not access_s >= 0:
            raise ValueError(f"node {node!r}: access delay must be >= 0, got {access_s}")
        self._site[node] = site
        self._access[node] = access_delay_s(node, self.model) if access_s is None else access_s

    @property
    def nodes(self) -> list[str]:
        """Every placed node, sorted."""
        return sorted(self._site)

    def site_of(self, node: str) -> str:
        """The site name of ``node``."""
        try:
            return self._site[node]
        except KeyError:
            raise ValueError(f"unknown node {node!r}: not placed on a site") from None

    def access_s(self, node: str) -> float:
        """The access delay of ``node`` (seconds)."""
        self.site_of(node)
        return self._access[node]

    def rtt(self, a: str, b: str) -> float:
        """The true (mean) RTT between two nodes, seconds; 0 from a node to itself."""
        if a == b:
            self.site_of(a)
            return 0.0
        pair = (self.site_of(a), self.site_of(b))
        return self._site_rtt[pair] + self._access[a] + self._access[b]

    def latency(self, src: str, dst: str, rng: random.Random) -> float | None:
        """One-way delay of one message (seconds, jittered), or None when it is lost."""
        if src == dst:
            return 0.0
        if self.loss and rng.random() < self.loss:
            return None
        site, access = self._site, self._access
        if src not in site or dst not in site:
            self.rtt(src, dst)  # raises ValueError naming the unknown node
        half = (self._rtt_from[site[src]][site[dst]] + access[src] + access[dst]) / 2
        jitter = self.jitter
        if jitter:  # rng.uniform(-jitter, jitter), inlined (same draw, same value)
            half *= 1.0 + (-jitter + (jitter - -jitter) * rng.random())
        return half

    def bandwidth_bps(self, a: str, b: str) -> float:
        """Throughput one transfer from ``a`` to ``b`` can reach (bits/s)."""
        if self.site_of(a) == self.site_of(b):
            return self.nic_bps
        return min(self.nic_bps, self._mathis_bits / self.rtt(a, b))

    def same_site(self, a: str, b: str) -> bool:
        """Whether two nodes are on one site."""
        return self.site_of(a) == self.site_of(b)
