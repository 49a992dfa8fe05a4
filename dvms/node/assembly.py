"""The one node assembly: what a node runs, built the same way for any runtime and hypervisor.

``NodePlan`` is a frozen description of a node (scheduler, overlay, planner, DVMS and Vivaldi
settings, monitor settings); ``node_plan`` builds it from the node tables of a scenario or
an agent config. Then, for every node:

- ``bootstrap_peers(seed, node, nodes)``: the peers a node knows at start;
- ``make_node_overlay(plan, seed, node, bootstrap, nodes)``: its overlay object;
- ``node_services(plan, node, site, hypervisor, overlay, bootstrap)``: its services (the
  Vivaldi service, a Monitor, the scheduler's host services);
- ``coordinator_services(plan, view, hosts)``: the scheduler's coordinator, if it has one.

The simulator (``sim.world.World.start``), the agent (``deploy.agent_node.start_node``) and
the tests' cluster helper (``tests/dvms_cluster.py``) call these functions and nothing else
to put nodes together. Every seed derives from the run seed through ``node_seed``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dvms.hypervisor import Hypervisor
from dvms.node.config import NodeTables, SchedulerConfig
from dvms.node.schedulers import CoordinatorContext, HostContext, SchedulerSpec, scheduler_spec
from dvms.overlay.base import Overlay
from dvms.overlay.factory import make_overlay
from dvms.overlay.ring import build_ring
from dvms.protocol.config import DvmsConfig
from dvms.scheduler import make_planner
from dvms.scheduler.model import Planner
from dvms.services.central import GlobalView
from dvms.services.monitor import Monitor
from dvms.services.vivaldi import VivaldiService, VivaldiServiceConfig
from peeractor import Behaviour, NodeId, stable_seed

__all__ = [
    "BOOTSTRAP",
    "NodePlan",
    "bootstrap_peers",
    "coordinator_node",
    "coordinator_services",
    "make_node_overlay",
    "node_plan",
    "node_seed",
    "node_services",
]

BOOTSTRAP = 8
"""Peers a node knows at start (all of them when there are fewer)."""


def node_seed(seed: int, *parts: object) -> int:
    """The one seed function: a stable 64-bit seed for ``parts`` of run ``seed``."""
    return stable_seed(seed, *parts)


@dataclass(frozen=True)
class NodePlan:
    """What every node of a run runs (the same object for all its nodes)."""

    seed: int
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    overlay: str = "lbo"
    dvms: DvmsConfig = field(default_factory=DvmsConfig)
    vivaldi: VivaldiServiceConfig | None = field(default_factory=VivaldiServiceConfig)
    """None: no Vivaldi service."""
    monitor_period_s: float | None = None
    """None: the monitor is pushed changes where the hypervisor can (else it polls at 1 s)."""
    trace_violations: bool = False
    """The monitor emits ``violation.*`` (real hosts; the simulated world tracks them exactly)."""
    remote_view: bool = False
    """Centralised scheduling gathers snapshots over the transport (real hosts)."""

    @property
    def spec(self) -> SchedulerSpec:
        return scheduler_spec(self.scheduler.name)

    @property
    def uses_overlay(self) -> bool:
        """Whether nodes need an overlay object (the scheduler's, or Vivaldi's)."""
        return self.spec.uses_overlay or self.vivaldi is not None

    def planner(self) -> Planner:
        """A new planner as ``[scheduler]`` says (each node plans with its own)."""
        sc = self.scheduler
        return make_planner(sc.planner, cost=sc.cost, headroom=sc.headroom, seed=self.seed)


def node_plan(
    tables: NodeTables,
    *,
    seed: int,
    trace_period_s: float | None = None,
    real: bool = False,
) -> NodePlan:
    """The plan of a run from its node tables.

    ``trace_period_s``: the period of ``vivaldi.coord`` events unless ``[vivaldi]`` sets it;
    ``real``: nodes on real hosts (the monitor traces violations; centralised scheduling
    gathers its view over the transport).
    """
    scheduler_spec(tables.scheduler.name)  # unknown names fail here, with one line
    vivaldi = tables.vivaldi.service_config(trace_period_s) if tables.vivaldi.enabled else None
    return NodePlan(
        seed=seed,
        scheduler=tables.scheduler,
        overlay=tables.overlay.name,
        dvms=tables.dvms,
        vivaldi=vivaldi,
        monitor_period_s=tables.monitor.poll_period_s,
        trace_violations=real,
        remote_view=real,
    )


def bootstrap_peers(seed: int, node: NodeId, nodes: Sequence[NodeId]) -> list[NodeId]:
    """``BOOTSTRAP`` peers of ``node`` drawn from ``nodes`` (all others when fewer)."""
    n = len(nodes)
    if n - 1 <= BOOTSTRAP:
        return [other for other in nodes if other != node]
    rng = random.Random(node_seed(seed, "bootstrap", node))
    picks: list[NodeId] = []
    while len(picks) < BOOTSTRAP:
        other = nodes[rng.randrange(n)]
        if other != node and other not in picks:
            picks.append(other)
    return picks


def make_node_overlay(
    plan: NodePlan,
    node: NodeId,
    bootstrap: Sequence[NodeId],
    ring: dict[NodeId, list[NodeId]] | None = None,
) -> Overlay:
    """``node``'s overlay, knowing its bootstrap peers. ``ring``: ``ring_of(plan, nodes)``,
    computed once for all nodes (needed only by the ring overlay)."""
    successors = (ring or {}).get(node, ())
    if plan.overlay == "ring" and not successors and bootstrap:
        raise ValueError(f"{node}: the ring overlay needs ring_of(plan, nodes)")
    overlay = make_overlay(
        plan.overlay,
        node,
        rng=random.Random(node_seed(plan.seed, "overlay", node)),
        bootstrap=bootstrap,
        successors=successors,
    )
    for peer in bootstrap:
        overlay.observe(peer)
    return overlay


def ring_of(plan: NodePlan, nodes: Sequence[NodeId]) -> dict[NodeId, list[NodeId]]:
    """Every node's ring successors (empty unless the overlay is the ring)."""
    if plan.overlay != "ring":
        return {}
    return build_ring(nodes, random.Random(node_seed(plan.seed, "ring")))


def node_services(
    plan: NodePlan,
    node: NodeId,
    site: str,
    hypervisor: Hypervisor,
    overlay: Overlay | None,
    bootstrap: Sequence[NodeId],
) -> list[Behaviour]:
    """The services of one node: Vivaldi, a Monitor, the scheduler's host services."""
    spec = plan.spec
    services: list[Behaviour] = []
    if plan.vivaldi is not None:
        assert overlay is not None
        services.append(VivaldiService(overlay, bootstrap, plan.vivaldi))
    target = (node, spec.monitor_target) if spec.monitor_target is not None else None
    if target is not None or plan.trace_violations:
        services.append(
            Monitor(
                hypervisor,
                plan.monitor_period_s,
                target,
                trace_violations=plan.trace_violations,
            )
        )
    ctx = HostContext(
        node,
        site,
        hypervisor,
        overlay if spec.uses_overlay else None,
        plan.planner,
        plan.scheduler,
        plan.dvms,
        plan.remote_view,
    )
    services.extend(spec.host_services(ctx))
    return services


def coordinator_node(plan: NodePlan, nodes: Sequence[NodeId]) -> NodeId | None:
    """Real runs: the node whose agent runs the scheduler's coordinator (None: none)."""
    if plan.spec.coordinator is None or not nodes:
        return None
    return plan.scheduler.coordinator or min(nodes)


def coordinator_services(
    plan: NodePlan, view: GlobalView | None, hosts: Sequence[NodeId]
) -> list[Behaviour]:
    """The scheduler's coordinator services (none for schedulers without one)."""
    make: Any = plan.spec.coordinator
    if make is None:
        return []
    return list(make(CoordinatorContext(plan.scheduler, plan.planner, view, tuple(hosts))))
