"""The monitor and the centralised scheduler on a real SimRuntime, with exact traces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dvms.hypervisor import HostCapacity, HypervisorChanged, MigrationResult, VMSample, demand_of
from dvms.scheduler import make_planner
from dvms.scheduler.model import VM, Host, overloaded_hosts
from dvms.services.central import CentralScheduler
from dvms.services.monitor import HostNormal, HostOverloaded, Monitor, host_demand
from peeractor import Address, Behaviour, NodeId
from peeractor.network import ConstantLatency
from peeractor.sim import SimRuntime


class FakeHypervisor:
    """A host whose VMs' demands the test sets; push mode optional."""

    def __init__(self, node: NodeId, demands: list[float], push: bool = True) -> None:
        self.node = node
        self.demands = demands
        self.push = push
        self.watchers: list[Address] = []

    def capacity(self) -> HostCapacity:
        return HostCapacity(700.0, 4096)

    def vms(self) -> Sequence[VMSample]:
        return [VMSample(f"vm{i}", 1, 1024, d) for i, d in enumerate(self.demands)]

    def demand_totals(self) -> tuple[float, int]:
        return demand_of(self.vms())

    def migrating(self) -> bool:
        return False

    def migrate(self, vm: str, destination: NodeId, reply_to: Address) -> None:
        raise AssertionError("not used")

    def watch(self, address: Address) -> bool:
        if self.push:
            self.watchers.append(address)
        return self.push


class Recorder(Behaviour):
    name = "dvms"

    def __init__(self) -> None:
        self.got: list[tuple[float, object]] = []

    def on_receive(self, message: object) -> None:
        self.got.append((self.now(), message))


def test_host_demand_sums_vms() -> None:
    hv = FakeHypervisor("a", [100.0, 250.0, 400.0])
    assert host_demand(hv) == (750.0, 3072)


def test_monitor_push_mode_reports_every_overloaded_change_and_one_normal() -> None:
    rt = SimRuntime(seed=1)
    hv = FakeHypervisor("a", [300.0, 300.0])
    rec = Recorder()
    monitor = Monitor(hv)
    rt.add_node("a", [monitor, rec])
    assert monitor.pushed and hv.watchers == [("a", "monitor")]

    def change(t: float, demands: list[float]) -> None:
        def apply() -> None:
            hv.demands = demands
            rt.inject(("a", "monitor"), HypervisorChanged("a"))

        rt.call_later(t, apply)

    change(1.0, [400.0, 400.0])  # 800 > 700: overloaded
    change(2.0, [400.0, 350.0])  # still overloaded: reported again
    change(3.0, [300.0, 350.0])  # back to normal
    change(4.0, [300.0, 300.0])  # still normal: nothing
    rt.run(until=10.0)
    assert rec.got == [
        (1.0, HostOverloaded("a", 800.0, 700.0, 2048, 4096)),
        (2.0, HostOverloaded("a", 750.0, 700.0, 2048, 4096)),
        (3.0, HostNormal("a")),
    ]
    assert monitor.checks == 5  # once at start + four changes


def test_monitor_polls_when_the_hypervisor_cannot_push() -> None:
    rt = SimRuntime(seed=1)
    hv = FakeHypervisor("a", [800.0], push=False)
    rec = Recorder()
    rt.add_node("a", [Monitor(hv, period_s=2.0), rec])
    rt.call_later(3.0, lambda: setattr(hv, "demands", [100.0]))
    rt.run(until=7.0)
    assert rec.got == [
        (0.0, HostOverloaded("a", 800.0, 700.0, 1024, 4096)),
        (2.0, HostOverloaded("a", 800.0, 700.0, 1024, 4096)),
        (4.0, HostNormal("a")),
    ]


def test_monitor_memory_overload_and_custom_target() -> None:
    rt = SimRuntime(seed=1)
    hv = FakeHypervisor("a", [10.0] * 5)  # 5 × 1024 MiB > 4096 MiB
    rec = Recorder()
    rt.add_node("a", [Monitor(hv, target=("b", "dvms"))])
    rt.add_node("b", [rec])
    rt.run(until=1.0)
    assert rec.got == [(0.001, HostOverloaded("a", 50.0, 700.0, 5120, 4096))]


class FakeView:
    """A GlobalView over a list of hosts/VMs; migrations take 5 s and succeed."""

    def __init__(self, rt: SimRuntime, hosts: list[Host], vms: list[VM]) -> None:
        self.rt = rt
        self.hosts = hosts
        self.vms = {v.id: v for v in vms}
        self.ordered: list[tuple[float, str, str, str]] = []

    def snapshot(self) -> tuple[Sequence[Host], Sequence[VM]]:
        return self.hosts, list(self.vms.values())

    def overloaded_count(self) -> int:
        return len(overloaded_hosts(*self.snapshot()))

    def migrate(self, vm: str, source: NodeId, destination: NodeId, reply_to: Address) -> None:
        now = self.rt.now()
        self.ordered.append((now, vm, source, destination))

        def done() -> None:
            old = self.vms[vm]
            self.vms[vm] = VM(vm, destination, old.cpu_demand, old.memory_mib)
            result = MigrationResult(vm, source, destination, True, "", now, 5.0)
            self.rt.inject(reply_to, result)

        self.rt.call_later(5.0, done)


def test_central_scheduler_plans_charges_compute_applies_and_waits() -> None:
    events: list[dict[str, Any]] = []
    rt = SimRuntime(seed=1, network=ConstantLatency(0.0), trace=events.append)
    hosts = [Host("h0", 700.0, 32768), Host("h1", 700.0, 32768)]
    vms = [VM(f"v{i}", "h0", 100.0, 1024) for i in range(8)] + [VM("w", "h1", 100.0, 1024)]
    view = FakeView(rt, hosts, vms)
    planner = make_planner("repair")
    central = CentralScheduler(view, planner, period_s=30.0)
    rt.add_node("controller", [central])
    rt.run(until=65.0)
    compute = planner.cost_s(2, 9)
    # run 1 at t=0: h0 has 800 > 700, one VM moves after the charged compute time
    assert len(view.ordered) == 1
    t, _vm, src, dst = view.ordered[0]
    assert (t, src, dst) == (compute, "h0", "h1")
    runs = [e for e in events if e["type"] == "scheduler.run"]
    assert runs[0] == {
        "t": compute + 5.0,
        "type": "scheduler.run",
        "node": "controller",
        "scheduler": "centralized",
        "hosts": 2,
        "vms": 9,
        "overloaded": 1,
        "migrations": 1,
        "compute_s": compute,
        "failed": 0,
        "duration_s": compute + 5.0,
    }
    # runs 2 and 3 start at the period boundaries 30 and 60: nothing to do
    assert [(e["t"], e["migrations"]) for e in runs[1:]] == [
        (30.0 + compute, 0),
        (60.0 + compute, 0),
    ]
    assert central.runs == 3


def test_central_scheduler_back_to_back_when_it_overshoots() -> None:
    events: list[dict[str, Any]] = []
    rt = SimRuntime(seed=1, network=ConstantLatency(0.0), trace=events.append)
    hosts = [Host("h0", 700.0, 32768), Host("h1", 700.0, 32768)]
    vms = [VM(f"v{i}", "h0", 100.0, 1024) for i in range(8)]
    view = FakeView(rt, hosts, vms)
    rt.add_node("controller", [CentralScheduler(view, make_planner("repair"), period_s=2.0)])
    rt.run(until=9.0)
    runs = [e["t"] - e["duration_s"] for e in events if e["type"] == "scheduler.run"]
    # run 1 (0 → compute + 5 s) overshoots the 2 s period: run 2 starts right after it
    assert runs[0] == 0.0
    assert runs[1] == events[0]["t"]


def test_overloaded_hosts() -> None:
    hosts = [Host("a", 100.0, 2048), Host("b", 100.0, 1024), Host("c", 100.0, 1024)]
    vms = [VM("x", "a", 150.0, 512), VM("y", "b", 10.0, 2048), VM("z", "c", 100.0, 1024)]
    assert overloaded_hosts(hosts, vms) == ["a", "b"]


class Settable(FakeHypervisor):
    """One VM whose demand the test changes over time (polled, not pushed)."""

    def __init__(self) -> None:
        super().__init__("h0", [150.0], push=False)

    def set(self, demand: float) -> None:
        self.demands[0] = demand


def test_monitor_traces_violations_on_real_hosts_and_can_report_nothing() -> None:
    events: list[dict[str, Any]] = []
    rt = SimRuntime(seed=1, trace=events.append)
    hv, sink = Settable(), Recorder()
    hv.capacity = lambda: HostCapacity(100.0, 4096)  # type: ignore[method-assign]
    rt.add_node("h0", [Monitor(hv, 1.0, ("h0", "dvms"), trace_violations=True), sink])
    quiet = Settable()
    quiet.node = "h1"
    quiet.capacity = hv.capacity  # type: ignore[method-assign]
    rt.add_node("h1", [Monitor(quiet, 1.0, report=False, trace_violations=True), Recorder()])
    rt.call_later(3.5, lambda: (hv.set(50.0), quiet.set(50.0)))
    rt.call_later(6.5, lambda: hv.set(120.0))
    rt.run(until=8.2)
    violations = [e for e in events if e["type"].startswith("violation.") and e["node"] == "h0"]
    assert violations == [
        {"t": 0.0, "type": "violation.start", "node": "h0", "host": "h0", "cpu_demand": 150.0,
         "cpu_capacity": 100.0, "mem_demand_mib": 1024, "memory_mib": 4096},
        {"t": 4.0, "type": "violation.end", "node": "h0", "host": "h0", "duration_s": 4.0},
        {"t": 7.0, "type": "violation.start", "node": "h0", "host": "h0", "cpu_demand": 120.0,
         "cpu_capacity": 100.0, "mem_demand_mib": 1024, "memory_mib": 4096},
    ]
    got = [(t, type(m).__name__) for t, m in sink.got]
    assert got == [(0.0, "HostOverloaded"), (1.0, "HostOverloaded"), (2.0, "HostOverloaded"),
                   (3.0, "HostOverloaded"), (4.0, "HostNormal"), (7.0, "HostOverloaded"),
                   (8.0, "HostOverloaded")]
    # h1's monitor sends nothing but still traces its violation
    assert [e["type"] for e in events if e["node"] == "h1"] == ["violation.start", "violation.end"]
    assert not rt.peer("h1").services["dvms"].got  # type: ignore[attr-defined]
