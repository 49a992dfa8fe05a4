"""HostWatch between the real Monitor and the DVMS service, on SimRuntime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deploy.agent import HostWatch, LockedTrace
from dvms.hypervisor import HostCapacity, VMSample
from dvms.services.monitor import HostNormal, HostOverloaded, Monitor
from peeractor import Address, Behaviour
from peeractor.sim import SimRuntime


class SettableHost:
    """A hypervisor whose one VM's demand the test sets (polling only)."""

    node = "h0"

    def __init__(self) -> None:
        self.demand = 150.0

    def capacity(self) -> HostCapacity:
        return HostCapacity(cpu=100.0, memory_mib=1024)

    def vms(self) -> Sequence[VMSample]:
        return [VMSample("vm0", 2, 256, self.demand)]

    def migrating(self) -> bool:
        return False

    def migrate(self, vm: str, destination: str, reply_to: Address) -> None:
        raise AssertionError("not used")

    def watch(self, address: Address) -> bool:
        return False


class Sink(Behaviour):
    name = "dvms"

    def __init__(self) -> None:
        self.got: list[tuple[float, str]] = []

    def on_receive(self, message: object) -> None:
        self.got.append((self.now(), type(message).__name__))


def test_violation_events_from_the_monitor_reports() -> None:
    events: list[dict[str, Any]] = []
    trace = LockedTrace(events.append)
    rt = SimRuntime(seed=1, trace=trace)
    hv = SettableHost()
    sink, watch = Sink(), HostWatch()
    rt.add_node("h0", [Monitor(hv, period_s=1.0, target=("h0", "hostwatch")), watch, sink])
    rt.call_later(3.5, lambda: setattr(hv, "demand", 50.0))
    rt.call_later(6.5, lambda: setattr(hv, "demand", 120.0))
    rt.run(until=8.2)
    violations = [e for e in events if e["type"].startswith("violation.")]
    assert violations == [
        {"t": 0.0, "type": "violation.start", "node": "h0", "host": "h0", "cpu_demand": 150.0,
         "cpu_capacity": 100.0, "mem_demand_mib": 256, "memory_mib": 1024},
        {"t": 4.0, "type": "violation.end", "node": "h0", "host": "h0", "duration_s": 4.0},
        {"t": 7.0, "type": "violation.start", "node": "h0", "host": "h0", "cpu_demand": 120.0,
         "cpu_capacity": 100.0, "mem_demand_mib": 256, "memory_mib": 1024},
    ]
    assert trace.events == events
    overloaded, normal = HostOverloaded.__name__, HostNormal.__name__
    assert sink.got == [(0.0, overloaded), (1.0, overloaded), (2.0, overloaded),
                        (3.0, overloaded), (4.0, normal), (7.0, overloaded), (8.0, overloaded)]
    assert watch.violations == 2
