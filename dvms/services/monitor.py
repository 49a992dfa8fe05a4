"""The monitor: watches its node's hypervisor and reports overload to the scheduler.

``Monitor`` (service name ``"monitor"``) reads the node's :class:`~dvms.hypervisor.Hypervisor`
and tells a target service (default ``(node, "dvms")``) about the host's state:

- ``HostOverloaded`` whenever it observes the host overloaded: the CPU demand of its VMs
  exceeds the CPU capacity, or their memory exceeds the host's memory. Sent on *every*
  observation while overloaded (each demand change in push mode, each poll in polling
  mode), so the receiver always has the latest figures and may treat it as a reminder.
- ``HostNormal`` once, when the host goes back from overloaded to normal.

Two ways to observe:

- push (``period_s=None`` and ``hypervisor.watch(...)`` returns True, as simulated hosts
  do): the hypervisor sends ``HypervisorChanged`` on every demand change that matters
  (``Hypervisor.watch``); no timer at all (polling 10,000 hosts every second would cost
  36M events per simulated hour);
- polling (``period_s`` given, or the hypervisor cannot push): a check every ``period_s``
  seconds (``DEFAULT_POLL_S`` when the hypervisor cannot push and no period was given).

In both modes the host is checked once right after start (a zero-delay timer).

With ``trace_violations`` (real hosts, where no world watches every change) the monitor
also emits ``violation.start`` when it first sees the host overloaded and ``violation.end``
(with the duration) when it sees it back to normal; with ``report=False`` it sends nothing
(schedulers that do not react to overloads still get the violations traced).
"""

from __future__ import annotations

from dvms import events
from dvms.events import emit_event
from dvms.hypervisor import Hypervisor, HypervisorChanged
from dvms.scheduler.model import is_overloaded
from peeractor import Address, Behaviour, NodeId, Timer, message

__all__ = [
    "DEFAULT_POLL_S",
    "HostNormal",
    "HostOverloaded",
    "Monitor",
    "MonitorTick",
    "host_demand",
]

DEFAULT_POLL_S = 1.0
"""Polling period (s) used when the hypervisor cannot push and no period was given."""

"""CPU slack (percent of a core) under which a float sum counts as within capacity."""


@message("monitor.HostOverloaded")
class HostOverloaded:
    """The host's VMs want more than it has (CPU or memory)."""

    node: NodeId
    """The overloaded host."""
    cpu_demand: float
    """Sum of its VMs' CPU demand, percent of a core."""
    cpu_capacity: float
    """CPU available to VMs, percent of a core."""
    mem_demand_mib: int
    """Sum of its VMs' memory, MiB."""
    memory_mib: int
    """Memory available to VMs, MiB."""


@message("monitor.HostNormal")
class HostNormal:
    """The host is back within capacity (sent once after being overloaded)."""

    node: NodeId


@message("monitor.Tick")
class MonitorTick:
    """The polling timer (self-message)."""


def host_demand(hypervisor: Hypervisor) -> tuple[float, int]:
    """(CPU demand, memory MiB) summed over the VMs the hypervisor lists now."""
    return hypervisor.demand_totals()


class Monitor(Behaviour):
    """Reports ``HostOverloaded``/``HostNormal`` for its node to ``target``."""

    name = "monitor"

    def __init__(
        self,
        hypervisor: Hypervisor,
        period_s: float | None = None,
        target: Address | None = None,
        *,
        report: bool = True,
        trace_violations: bool = False,
    ) -> None:
        if period_s is not None and not period_s > 0:
            raise ValueError(f"monitor: period_s={period_s!r} must be > 0 or None (push)")
        self.hypervisor = hypervisor
        self.period_s = period_s
        self._target = target
        self.report = report
        self.trace_violations = trace_violations
        self.violated_since: float | None = None
        """When the current violation started (traced violations only)."""
        self.overloaded = False
        """Whether the last observation found the host overloaded."""
        self.checks = 0
        """Observations made so far."""
        self.pushed = False
        """True when the hypervisor pushes changes (no polling timer)."""
        self._timer: Timer | None = None

    @property
    def target(self) -> Address:
        return self._target if self._target is not None else (self.node, "dvms")

    def on_start(self) -> None:
        if self.period_s is None:
            self.pushed = self.hypervisor.watch(self.address)
        if not self.pushed and self.period_s is None:
            self.period_s = DEFAULT_POLL_S
        # first check right after start (every node of the run exists by then)
        self._timer = self.schedule(0.0, MonitorTick())

    def on_receive(self, message: object) -> None:
        if isinstance(message, HypervisorChanged):
            self.check()
        elif isinstance(message, MonitorTick):
            if not self.pushed:
                assert self.period_s is not None
                self._timer = self.schedule(self.period_s, MonitorTick())
            self.check()

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def check(self) -> None:
        """Observe the host now and report to the target if needed."""
        self.checks += 1
        capacity = self.hypervisor.capacity()
        cpu, mem = host_demand(self.hypervisor)
        if is_overloaded(cpu, mem, capacity.cpu, capacity.memory_mib):
            self.overloaded = True
            if self.trace_violations and self.violated_since is None:
                self.violated_since = self.now()
                emit_event(
                    self.emit,
                    events.violation_start(
                        self.now(),
                        self.node,
                        host=self.node,
                        cpu_demand=cpu,
                        cpu_capacity=capacity.cpu,
                        mem_demand_mib=mem,
                        memory_mib=capacity.memory_mib,
                    ),
                )
            if self.report:
                self.send(
                    self.target,
                    HostOverloaded(self.node, cpu, capacity.cpu, mem, capacity.memory_mib),
                )
        elif self.overloaded:
            self.overloaded = False
            if self.violated_since is not None:
                emit_event(
                    self.emit,
                    events.violation_end(
                        self.now(),
                        self.node,
                        host=self.node,
                        duration_s=self.now() - self.violated_since,
                    ),
                )
                self.violated_since = None
            if self.report:
                self.send(self.target, HostNormal(self.node))
