"""The simulated world: runtime + network + hosts + services.

``World(scenario, sink)`` assembles one run: sites and the ``GeoNetwork``, the hosts and VMs
(``Infrastructure``), a ``SimRuntime`` sharing the world's ``simpy.Environment``, one
``SimHypervisor`` per host, every node's services from the one node assembly
(``dvms.node``: the same functions the real agents call; the scheduler's coordinator, if
any, on a ``controller`` node of its own with the world as its global view), and the
world-side processes that are not actors: the load injector, migrations, power sampling
and faults. Every trace event (the world's own and
the behaviours') goes to ``sink``.

Violations are tracked exactly on every change of a host's demand (``changed``); when the
run ends, open violations are closed (``violation.end`` with ``open: true``) and migrations
still in flight are failed (reason ``"run ended"``), so the trace is balanced.

Its trace events are built by the ``dvms.events`` constructors. ``sim.run.simulate`` runs a
world and writes its run directory.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import Any

import simpy

from dvms import events
from dvms.errors import InputError
from dvms.events import Event
from dvms.geo import resolve_sites
from dvms.hypervisor import HypervisorChanged
from dvms.node import (
    bootstrap_peers,
    coordinator_services,
    make_node_overlay,
    node_seed,
    node_services,
    ring_of,
)
from dvms.scheduler.model import VM, Host
from dvms.services.vivaldi import VivaldiService
from peeractor import Address, NodeId, message_tag
from peeractor.sim import SimRuntime
from sim.accuracy import median_error
from sim.faults import FaultAction, link_pairs, plan_faults
from sim.hypervisor import SimHypervisor
from sim.infrastructure import Infrastructure, SimHost, SimVM
from sim.load import LoadDistribution, PoissonLoad, read_load_trace, replay_process
from sim.migration import MigrationEngine
from sim.network import GeoNetwork
from sim.power import PowerMeter
from sim.scenario import Scenario

__all__ = ["CONTROLLER", "Progress", "World"]

CONTROLLER: NodeId = "controller"
"""Node of a scheduler's coordinator in simulation (at the first site; not a host)."""

Sink = Callable[[dict[str, Any]], None]
Progress = Callable[[float, float, int, int], None]
"""``progress(now_s, duration_s, events, violations)``, called between chunks of the run."""


class World:
    """One simulated run (see module doc). Implements the ``GlobalView`` of central schedulers."""

    def __init__(self, scenario: Scenario, sink: Sink, env: simpy.Environment | None = None):
        self.scenario = sc = scenario
        self.sink = sink
        seed = sc.run.seed
        self.env = env if env is not None else simpy.Environment()
        self.sites = resolve_sites(sc.infrastructure.sites)
        self.plan = sc.node_plan()
        load = sc.load
        cap = load.max_per_vcpu * sc.infrastructure.vm_vcpus
        self.distribution = LoadDistribution(load.mean, load.sd, load.slot, cap, load.distribution)
        self.load_rng = random.Random(node_seed(seed, "load"))
        vms = sc.infrastructure.hosts * sc.infrastructure.vms_per_host
        initial = (
            [self.distribution.draw(self.load_rng) for _ in range(vms)]
            if load.initial == "draw"
            else None
        )
        self.replay = read_load_trace(load.replay_file) if load.mode == "replay" else None
        site_names = [s.name for s in self.sites]
        self.infra = Infrastructure.build(
            sc.infrastructure, site_names, random.Random(node_seed(seed, "vms")), initial
        )
        if self.replay is not None:
            for ev in self.replay:
                if ev.vm not in self.infra.vm_by_id:
                    raise InputError(f"load.replay_file: unknown VM {ev.vm!r} at t={ev.t}")
        site_of = {h.id: h.site for h in self.infra.hosts}
        self.network = GeoNetwork(
            site_of,
            self.sites,
            loss=sc.faults.loss_rate,
            nic_bps=sc.infrastructure.host_nic_bps * 8,
            wan_loss=sc.migration.wan_tcp_loss,
        )
        self.runtime = SimRuntime(
            seed=seed,
            env=self.env,
            network=self.network,
            trace=sink,
            handler_errors=sc.run.handler_errors,
        )
        self.migrations = MigrationEngine(
            self, sc.migration, lambda a, b: self.network.bandwidth_bps(a, b) / 8
        )
        self.power = PowerMeter(self.infra.hosts, sc.power.idle_w, sc.power.max_w)
        self.hypervisors = {h.id: SimHypervisor(h, self.migrations) for h in self.infra.hosts}
        self._changed_msg = {h.id: HypervisorChanged(h.id) for h in self.infra.hosts}
        self.injected: dict[str, int] = {}
        self.violations = 0
        self.overloaded = 0
        """Hosts overloaded now (live ones)."""
        self.vivaldi: dict[NodeId, VivaldiService] = {}
        """Each host's Vivaldi service (empty when Vivaldi is off)."""
        self._host_models = {
            h.id: Host(h.id, h.cpu_capacity, h.memory_mib, h.site) for h in self.infra.hosts
        }
        self.faults = plan_faults(
            sc.faults,
            [h.id for h in self.infra.hosts],
            site_of,
            sc.run.duration_s,
            random.Random(node_seed(seed, "faults")),
        )

    # ----- the world's port for migrations and node services ---------------------------

    def now(self) -> float:
        return float(self.env.now)

    def record(self, event: Event) -> None:
        """Trace ``event`` (built by a ``dvms.events`` constructor at ``env.now``)."""
        self.sink(event)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.runtime.call_later(delay, fn)

    def reply(self, address: Address, message: object) -> None:
        tag = message_tag(type(message))
        self.injected[tag] = self.injected.get(tag, 0) + 1
        if self.runtime.is_alive(address[0]):
            self.runtime.inject(address, message)

    def changed(self, host: SimHost) -> None:
        """Host demand changed: violations, power, watchers.

        Watchers get ``hv.Changed`` only when the change can alter what an overload monitor
        sees: the host is overloaded now, or it was at the previous change (back to normal).
        A change from normal to normal is not pushed (a monitor's check would find nothing
        to report: about nine changes in ten at the VMPlaceS load).
        """
        was_over = host.violated_since is not None
        over = host.overloaded()
        if over:
            if host.violated_since is None:
                host.violated_since = self.env.now
                self.violations += 1
                self.overloaded += 1
                self.sink(
                    events.violation_start(
                        self.env.now,
                        host.id,
                        host=host.id,
                        cpu_demand=host.cpu_demand,
                        cpu_capacity=host.cpu_capacity,
                        mem_demand_mib=host.mem_resident,
                        memory_mib=host.memory_mib,
                    )
                )
        elif host.violated_since is not None:
            self._end_violation(host)
        self.power.update(host, self.env.now)
        if host.watchers and (over or was_over):
            msg = self._changed_msg[host.id]
            inject = self.runtime.inject
            for address in host.watchers:
                inject(address, msg)
            self.injected["hv.Changed"] = self.injected.get("hv.Changed", 0) + len(host.watchers)

    def _end_violation(self, host: SimHost, *, open: bool = False, crashed: bool = False) -> None:
        assert host.violated_since is not None
        now = self.env.now
        duration = now - host.violated_since
        host.violated_since = None
        self.overloaded -= 1
        self.sink(
            events.violation_end(
                now, host.id, host=host.id, duration_s=duration, open=open, crashed=crashed
            )
        )

    # ----- GlobalView ------------------------------------------------------------------

    def snapshot(self) -> tuple[Sequence[Host], Sequence[VM]]:
        hosts = [self._host_models[h.id] for h in self.infra.hosts if h.alive]
        vms: list[VM] = []
        append = vms.append
        for h in self.infra.hosts:
            if h.alive:
                for vm in h.vms.values():
                    model = vm.model
                    if model is None:
                        model = vm.model = VM(vm.id, h.id, vm.demand, vm.memory_mib)
                    append(model)
        return hosts, vms

    def migrate(self, vm: str, source: NodeId, destination: NodeId, reply_to: Address) -> None:
        self.migrations.start(vm, source, destination, reply_to)

    def overloaded_count(self) -> int:
        """Live hosts overloaded now (kept on every change: O(1))."""
        return self.overloaded

    # ----- assembly ----------------------------------------------------------------------

    def start(self) -> None:
        """Emit the initial state, add the nodes, start the world's processes."""
        sc = self.scenario
        for host in self.infra.hosts:
            self.sink(
                events.host_info(
                    self.env.now,
                    host.id,
                    host=host.id,
                    site=host.site,
                    cpu_capacity=host.cpu_capacity,
                    memory_mib=host.memory_mib,
                    mem_used_mib=host.mem_resident,
                    vms=host.vms,
                )
            )
        for host in self.infra.hosts:
            self.changed(host)
        plan = self.plan
        nodes = [h.id for h in self.infra.hosts]
        ring = ring_of(plan, nodes)
        for host in self.infra.hosts:
            bootstrap = bootstrap_peers(plan.seed, host.id, nodes)
            overlay = None
            if plan.uses_overlay:
                overlay = make_node_overlay(plan, host.id, bootstrap, ring)
            hv = self.hypervisors[host.id]
            services = node_services(plan, host.id, host.site, hv, overlay, bootstrap)
            for service in services:
                if isinstance(service, VivaldiService):
                    self.vivaldi[host.id] = service
            self.runtime.add_node(host.id, services)
        coordinator = coordinator_services(plan, self, nodes)
        if coordinator:
            self.network.add_node(CONTROLLER, self.sites[0].name)
            self.runtime.add_node(CONTROLLER, coordinator)
        if sc.faults.loss_rate > 0:
            self.sink(events.fault_loss(self.env.now, rate=sc.faults.loss_rate))
        if self.replay is not None:
            load = replay_process(
                self.env, self.replay, self.infra.vm_by_id, self.set_load, self.distribution.cap
            )
            self.env.process(load)
        else:
            rate = len(self.infra.vms) / sc.load.period_s
            PoissonLoad(
                self.env, self.infra.vms, rate, self.load_rng, self.distribution, self.set_load
            ).start()
        self.env.process(self._power_sampler())
        for action in self.faults:
            self.runtime.call_later(action.t, partial(self._fault, action))

    def set_load(self, vm: SimVM, load: float) -> None:
        if self.scenario.trace.load_events:
            host = vm.host.id
            self.sink(events.load(self.env.now, host, vm=vm.id, host=host, load=load))
        if load != vm.demand:
            self.changed(self.infra.set_demand(vm, load))

    def _power_sampler(self) -> Generator[simpy.Event, Any, None]:
        period = self.scenario.trace.power_period_s
        while True:
            self._power_sample()
            yield self.env.timeout(period)

    def _power_sample(self) -> None:
        self.power.advance(self.env.now)
        self.sink(
            events.power(self.env.now, total_w=self.power.total_w, hosts_on=self.power.hosts_on())
        )

    def _fault(self, action: FaultAction) -> None:
        if action.kind == "crash":
            self.crash(self.infra.host_by_id[action.a])
            return
        site_of = {h.id: h.site for h in self.infra.hosts}
        link = self.runtime.cut_link if action.kind == "link_cut" else self.runtime.heal_link
        for a, b in link_pairs(action, site_of):
            link(a, b)
        event = events.fault_link_cut if action.kind == "link_cut" else events.fault_link_heal
        self.sink(event(self.env.now, a=action.a, b=action.b))

    def crash(self, host: SimHost) -> None:
        """Crash a host now: its node dies, its migrations fail, its VMs are recorded."""
        if not host.alive:
            return
        self.sink(events.fault_crash(self.env.now, host.id, host=host.id, vms=host.vms))
        self.runtime.crash(host.id)
        host.alive = False
        self.migrations.host_crashed(host)
        if host.violated_since is not None:
            self._end_violation(host, crashed=True)
        self.power.update(host, self.env.now)

    # ----- running -------------------------------------------------------------------------

    def run(self, progress: Progress | None = None, chunks: int = 100) -> None:
        duration = self.scenario.run.duration_s
        for i in range(1, chunks + 1):
            self.runtime.run(until=duration * i / chunks)
            if progress is not None:
                progress(self.env.now, duration, 0, self.violations)

    def finish(self) -> None:
        """Close what is open at the end of the run (see module doc)."""
        for flight in list(self.migrations.in_flight.values()):
            self.migrations.fail_in_flight(flight, "run ended")
        for host in self.infra.hosts:
            if host.violated_since is not None:
                self._end_violation(host, open=True)
        self._power_sample()

    def vivaldi_error(self) -> float | None:
        """Median relative RTT error of the live hosts' coordinates (None: Vivaldi off)."""
        if not self.vivaldi:
            return None
        coords = {
            node: service.coordinate
            for node, service in self.vivaldi.items()
            if self.infra.host_by_id[node].alive
        }
        return median_error(coords, self.network.rtt, self.scenario.run.seed)

    def messages(self) -> dict[str, int]:
        """Messages by type: sent by behaviours, plus those the world injected."""
        counts = dict(self.runtime.stats.by_type)
        for tag, n in self.injected.items():
            counts[tag] = counts.get(tag, 0) + n
        return dict(sorted(counts.items()))
