"""Assembles one agent's node: ThreadRuntime + ZeroMQ/CURVE, LibvirtHypervisor, and the
services of the one node assembly (``dvms.node``), exactly as the simulator builds them:
the Vivaldi service (real RTTs over the transport), a Monitor polling the hypervisor and
tracing violations, the scheduler's host services (``dvms``: the protocol; ``centralized``:
the host side of the coordinator), and, on the coordinator's agent, the coordinator.
Solve time is what the ``[scheduler] cost`` says (``measured`` is the honest choice here).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deploy.agent_config import AgentConfig
from deploy.libvirt_hv import LibvirtHypervisor
from dvms.errors import DvmsError, InputError
from dvms.metrics import MetricsCollector
from dvms.node import (
    NodePlan,
    coordinator_node,
    coordinator_services,
    make_node_overlay,
    node_plan,
    node_services,
    ring_of,
)
from dvms.provenance import trace_header
from dvms.services.vivaldi import VivaldiService
from dvms.summary import build_summary
from dvms.trace import TraceWriter
from peeractor import Address, PeerActorError
from peeractor.keys import load_run_keys
from peeractor.threaded import ThreadRuntime
from peeractor.zmq_transport import ZmqTransport

__all__ = ["LockedTrace", "RunningNode", "agent_plan", "start_node"]

log = logging.getLogger(__name__)


class LockedTrace:
    """A trace sink shared by actor threads and migration workers (one lock)."""

    def __init__(self, sink: Callable[[Mapping[str, Any]], None],
                 flush: Callable[[], None] | None = None) -> None:
        self._sink = sink
        self._flush = flush
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        """Everything written (kept for the summary; an agent's trace is small)."""

    def __call__(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append(dict(event))
            self._sink(event)

    def flush(self) -> None:
        """Make what was written readable now (a live view tails the file)."""
        if self._flush is not None:
            with self._lock:
                self._flush()


@dataclass
class RunningNode:
    """A started agent node; ``stop()`` shuts it down and returns the summary."""

    cfg: AgentConfig
    plan: NodePlan
    runtime: ThreadRuntime
    hypervisor: LibvirtHypervisor
    trace: LockedTrace
    writer: TraceWriter
    t0_unix: float
    services: list[Any]
    started: float = field(default_factory=time.perf_counter)
    stopped: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> Any:
        """The node's service called ``name`` (tests read their settings)."""
        return next(s for s in self.services if s.name == name)

    def stop(self, error: BaseException | None = None) -> dict[str, Any]:
        """Stop the node; the summary says ``failed`` (with ``error``) when a service failed."""
        if self.stopped:
            return self.stopped
        try:
            self.runtime.stop()
        finally:
            self.hypervisor.close()
            self.writer.close()
        self.stopped = summarize(self, error)
        return self.stopped


def summarize(node: RunningNode, error: BaseException | None = None) -> dict[str, Any]:
    """The agent's ``summary.json`` (the one contract; not-applicable keys null)."""
    cfg = node.cfg
    metrics = MetricsCollector.from_events(node.trace.events)
    stats = node.runtime.stats
    wall = time.perf_counter() - node.started
    vivaldi = [s for s in node.services if isinstance(s, VivaldiService)]
    fields: dict[str, Any] = {
        "seed": cfg.seed,
        "scenario": {"agent": cfg.node, "site": cfg.site, "peers": [p.node for p in cfg.peers],
                     "libvirt_uri": cfg.libvirt_uri},
        "hosts": len(cfg.nodes()),
        "vms": len(node.hypervisor.vms()),
        "sites": len(set(cfg.sites().values())),
        "duration_s": node.runtime.now(),
        "scheduler": node.plan.scheduler.name,
        "overlay": node.plan.overlay if node.plan.spec.uses_overlay else None,
        **metrics.metrics(),
        "energy_kwh": None,
        "messages": dict(sorted(stats.by_type.items())),
        "vivaldi_median_error": None,
        "vms_lost": 0,
        "wall_s": wall,
        "events_per_wall_s": (metrics.events + stats.delivered) / wall if wall > 0 else 0.0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "libvirt_errors": dict(sorted(node.hypervisor.errors.items())),
        "runtime": stats.as_dict(),
        "vivaldi": dataclasses.asdict(vivaldi[0].stats) if vivaldi else None,
        "t0_unix": node.t0_unix,
    }
    return build_summary(fields, status="failed" if error else "complete", exception=error)


def agent_plan(cfg: AgentConfig) -> NodePlan:
    """The node plan of an agent: its node tables, as a scenario's, on a real host."""
    return node_plan(cfg.tables, seed=cfg.seed, real=True)


def start_node(cfg: AgentConfig) -> RunningNode:
    """Open the trace, start the runtime and transport, bind the services."""
    plan = agent_plan(cfg)
    t0_unix = time.time()
    header = trace_header({"t0_unix": t0_unix, "node": cfg.node, "site": cfg.site,
                           "seed": cfg.seed, "scheduler": plan.scheduler.name,
                           "source": "dvms agent"})
    (cfg.output_dir / "agent.json").write_text(json.dumps({**header, "pid": os.getpid()}))
    writer = TraceWriter(cfg.output_dir / "events.jsonl.gz", header=header, flush_every=64)
    trace = LockedTrace(writer, flush=writer.flush)
    try:
        keys = load_run_keys(cfg.key_dir)
    except PeerActorError as exc:
        writer.close()
        raise InputError(f"key_dir {str(cfg.key_dir)!r}: {exc}") from exc
    transport = ZmqTransport(keys, bind=cfg.listen)
    try:
        runtime = ThreadRuntime(seed=cfg.seed, trace=trace, transport=transport)
    except PeerActorError as exc:
        writer.close()
        raise DvmsError(f"agent {cfg.node}: {exc}") from exc
    for peer in cfg.peers:
        runtime.add_route(peer.node, peer.address)

    def deliver(address: Address, message: object) -> None:
        """A migration's result to whoever ordered it: a service of this node, or of
        another agent (the centralised coordinator), over the transport."""
        if address[0] == cfg.node:
            runtime.inject(address, message)
        else:
            transport.send(cfg.node, address[0], address[1], message)

    hv = LibvirtHypervisor(
        cfg.node, cfg.libvirt_uri, deliver=deliver, peer_uris=cfg.peer_uris(),
        capacity=cfg.capacity, migration_timeout_s=cfg.agent.migration_timeout_s, trace=trace,
        clock=runtime.now, sites=cfg.sites(), migration_storage=cfg.agent.migration_storage)
    nodes = cfg.nodes()
    bootstrap = [p.node for p in cfg.peers]
    overlay = (make_node_overlay(plan, cfg.node, bootstrap, ring_of(plan, nodes))
               if plan.uses_overlay else None)
    services = node_services(plan, cfg.node, cfg.site, hv, overlay, bootstrap)
    if coordinator_node(plan, nodes) == cfg.node:
        services += coordinator_services(plan, None, nodes)
    runtime.add_node(cfg.node, services)
    writer.flush()
    return RunningNode(cfg=cfg, plan=plan, runtime=runtime, hypervisor=hv, trace=trace,
                       writer=writer, t0_unix=t0_unix, services=services)
