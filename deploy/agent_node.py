"""Assembles one agent's node: ThreadRuntime + ZeroMQ/CURVE, LibvirtHypervisor, services.

Services of the node (one peer, one actor): ``monitor`` (polling the hypervisor, reports
to ``hostwatch``), ``hostwatch`` (violation events, relays to ``dvms``), ``vivaldi``
(real RTTs over the transport; publishes coordinates to the overlay), ``dvms`` (the
protocol with the configured planner; solve time measured, not modelled).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from deploy.agent import HostWatch, LockedTrace
from deploy.agent_config import AgentConfig
from deploy.libvirt_hv import LibvirtHypervisor
from dvms.errors import InputError
from dvms.metrics import MetricsCollector
from dvms.overlay import make_overlay
from dvms.overlay.base import Overlay
from dvms.overlay.ring import build_ring
from dvms.protocol import DvmsConfig, DvmsService
from dvms.scheduler import make_planner
from dvms.services.monitor import Monitor
from dvms.services.vivaldi import VivaldiService, VivaldiServiceConfig
from dvms.trace import TraceWriter
from peeractor import PeerActorError, stable_seed
from peeractor.keys import load_run_keys
from peeractor.threaded import ThreadRuntime
from peeractor.zmq_transport import ZmqTransport

__all__ = ["RunningNode", "start_node"]

log = logging.getLogger(__name__)


@dataclass
class RunningNode:
    """A started agent node; ``stop()`` shuts it down and returns the summary."""

    cfg: AgentConfig
    runtime: Any
    hypervisor: LibvirtHypervisor
    trace: LockedTrace
    writer: TraceWriter
    t0_unix: float
    vivaldi: VivaldiService
    stopped: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> dict[str, Any]:
        if self.stopped:
            return self.stopped
        try:
            self.runtime.stop()
        finally:
            self.hypervisor.close()
            self.writer.close()
        summary = summarize(self)
        self.stopped = summary
        return summary


def summarize(node: RunningNode) -> dict[str, Any]:
    cfg = node.cfg
    metrics = MetricsCollector.from_events(node.trace.events).metrics()
    stats = node.runtime.stats
    return {
        "schema": "dvms.summary/1",
        "seed": cfg.seed,
        "scenario": {"agent": cfg.node, "site": cfg.site,
                     "peers": [p.node for p in cfg.peers], "libvirt_uri": cfg.libvirt_uri},
        "hosts": 1 + len(cfg.peers),
        "vms": len(node.hypervisor.vms()),
        "sites": len(set(cfg.sites().values())),
        "duration_s": node.runtime.now(),
        "scheduler": "dvms",
        "overlay": cfg.agent.overlay,
        **metrics,
        "messages": dict(sorted(stats.by_type.items())),
        "libvirt_errors": dict(sorted(node.hypervisor.errors.items())),
        "runtime": stats.as_dict(),
        "vivaldi": dataclasses.asdict(node.vivaldi.stats),
        "t0_unix": node.t0_unix,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _overlay(cfg: AgentConfig, bootstrap: list[str]) -> Overlay:
    """The configured overlay; ``ring`` and ``random`` draw from the run's seed."""
    name = cfg.agent.overlay
    if name == "ring":
        nodes = [cfg.node, *bootstrap]
        ring = build_ring(nodes, random.Random(stable_seed(cfg.seed, "ring")))
        return make_overlay("ring", cfg.node, successors=ring[cfg.node])
    rng = random.Random(stable_seed(cfg.seed, cfg.node, "overlay"))
    return make_overlay(name, cfg.node, rng=rng, bootstrap=bootstrap)


def start_node(cfg: AgentConfig) -> RunningNode:
    """Open the trace, start the runtime and transport, bind the services."""
    t0_unix = time.time()
    header = {"t0_unix": t0_unix, "node": cfg.node, "site": cfg.site, "seed": cfg.seed,
              "source": "dvms agent"}
    (cfg.output_dir / "agent.json").write_text(json.dumps({**header, "pid": os.getpid()}))
    writer = TraceWriter(cfg.output_dir / "events.jsonl.gz", header=header, flush_every=64)
    trace = LockedTrace(writer)
    try:
        keys = load_run_keys(cfg.key_dir)
    except PeerActorError as exc:
        writer.close()
        raise InputError(f"key_dir {str(cfg.key_dir)!r}: {exc}") from exc
    transport = ZmqTransport(keys, bind=cfg.listen)
    runtime = ThreadRuntime(seed=cfg.seed, trace=trace, transport=transport)
    for peer in cfg.peers:
        runtime.add_route(peer.node, peer.address)
    t = cfg.agent
    hv = LibvirtHypervisor(
        cfg.node, cfg.libvirt_uri, deliver=runtime.inject, peer_uris=cfg.peer_uris(),
        capacity=cfg.capacity, migration_timeout_s=t.migration_timeout_s, trace=trace,
        clock=runtime.now, sites=cfg.sites())
    bootstrap = [p.node for p in cfg.peers]
    overlay = _overlay(cfg, bootstrap)
    dvms_config = DvmsConfig(min_partition_size=t.min_partition_size,
                             partition_timeout_s=t.partition_timeout_s)
    vivaldi = VivaldiService(overlay, bootstrap, VivaldiServiceConfig(
        fast_period_s=min(1.0, t.vivaldi_period_s), period_s=t.vivaldi_period_s,
        trace_period_s=5.0))
    services = [
        Monitor(hv, period_s=t.monitor_period_s, target=(cfg.node, HostWatch.name)),
        HostWatch(),
        vivaldi,
        DvmsService(hv, overlay, make_planner(t.planner, cost="measured"), dvms_config, cfg.site),
    ]
    runtime.add_node(cfg.node, services)
    writer.flush()
    return RunningNode(cfg=cfg, runtime=runtime, hypervisor=hv, trace=trace, writer=writer,
                       t0_unix=t0_unix, vivaldi=vivaldi)
