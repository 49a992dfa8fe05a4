"""The world's glue for Vivaldi and overlays: one overlay object and one Vivaldi service
per host, bootstrapped from a seeded random peer list, and the final accuracy figure.

- overlays (``[overlay] name``): ``lbo`` and ``random`` learn nodes from the Vivaldi
  service's observations (and the bootstrap list); ``ring`` gets each host's successors on
  a ring of random ids (``build_ring``);
- bootstrap: each host starts knowing ``BOOTSTRAP`` other hosts drawn uniformly;
- ``median_error()``: the median over sampled pairs (each live host against
  ``ERROR_SAMPLE`` random live others) of ``|estimated − true RTT| / true RTT``, estimated
  from the hosts' current coordinates, true from ``GeoNetwork.rtt``.
"""

from __future__ import annotations

import dataclasses
import importlib
import random
import statistics
import zlib
from typing import TYPE_CHECKING, Any

from dvms.overlay.base import Overlay
from dvms.overlay.factory import make_overlay
from dvms.overlay.ring import build_ring
from peeractor import Behaviour, NodeId

if TYPE_CHECKING:
    from sim.scenario import Scenario
    from sim.world import World

__all__ = ["BOOTSTRAP", "ERROR_SAMPLE", "VivaldiSetup"]

BOOTSTRAP = 8
"""Hosts each host knows at start."""
ERROR_SAMPLE = 16
"""Peers per host in the accuracy sample."""


def _seed(seed: int, name: str) -> int:
    return zlib.crc32(f"{seed}:{name}".encode()) ^ (seed << 32)


class VivaldiSetup:
    """Per-host overlays and Vivaldi services of one world."""

    def __init__(self, world: World, scenario: Scenario) -> None:
        self.world = world
        self.scenario = scenario
        seed = scenario.run.seed
        self.hosts: list[NodeId] = [h.id for h in world.infra.hosts]
        rng = random.Random(_seed(seed, "bootstrap"))
        n = len(self.hosts)
        self.bootstrap: dict[NodeId, list[NodeId]] = {}
        for i, node in enumerate(self.hosts):
            k = min(BOOTSTRAP, n - 1)
            picks = rng.sample(range(n - 1), k) if k > 0 else []
            self.bootstrap[node] = [self.hosts[j if j < i else j + 1] for j in picks]
        name = scenario.overlay.name
        ring = build_ring(self.hosts, random.Random(_seed(seed, "ring"))) if name == "ring" else {}
        self.overlays: dict[NodeId, Overlay] = {}
        for node in self.hosts:
            overlay = make_overlay(
                name,
                node,
                rng=random.Random(_seed(seed, f"overlay:{node}")),
                bootstrap=self.bootstrap[node],
                successors=ring.get(node, ()),
            )
            for peer in self.bootstrap[node]:
                overlay.observe(peer)
            self.overlays[node] = overlay
        self.services: dict[NodeId, Any] = {}
        self._config: Any = scenario.vivaldi.service_config()
        if self._config is not None and "trace_period_s" not in scenario.vivaldi.options:
            period = scenario.trace.coord_period_s
            self._config = dataclasses.replace(self._config, trace_period_s=period)

    def overlay(self, node: NodeId) -> Overlay:
        return self.overlays[node]

    def service(self, node: NodeId) -> Behaviour | None:
        """The host's Vivaldi service (None while ``dvms.services.vivaldi`` is not built)."""
        try:
            module = importlib.import_module("dvms.services.vivaldi")
        except ImportError:
            return None
        service_class: Any = module.VivaldiService

        kwargs: dict[str, Any] = {"bootstrap": self.bootstrap[node]}
        if self._config is not None:
            kwargs["config"] = self._config
        service: Behaviour = service_class(self.overlays[node], **kwargs)
        self.services[node] = service
        return service

    def median_error(self) -> float | None:
        """Median relative RTT error over sampled pairs of live hosts (see module doc)."""
        alive = [
            n for n in self.hosts if n in self.services and self.world.infra.host_by_id[n].alive
        ]
        if len(alive) < 2:
            return None
        rng = random.Random(_seed(self.scenario.run.seed, "vivaldi-error"))
        coords = {n: self.services[n].coordinate for n in alive}
        errors: list[float] = []
        rtt = self.world.network.rtt
        for node in alive:
            for _ in range(min(ERROR_SAMPLE, len(alive) - 1)):
                peer = alive[rng.randrange(len(alive))]
                if peer == node:
                    continue
                truth = rtt(node, peer)
                estimate = coords[node].distance_to(coords[peer])
                errors.append(abs(estimate - truth) / truth)
        return statistics.median(errors) if errors else None
