"""Audit a trace: replay VM locations and host memory from the events alone.

``audit_trace(events)`` checks, at every event, what the world promises:

- every VM is on exactly one host (``host.info`` gives the initial placement; only
  ``migration.end`` moves a VM, from where it is to its destination);
- a migration starts only for a VM that is at its source and not already migrating, and
  every ``migration.start`` is followed by exactly one ``migration.end`` or
  ``migration.fail`` for that VM;
- every host's memory (its VMs plus VMs migrating to it) stays within its capacity;
- a crashed host's ``fault.crash`` lists exactly the VMs it held.

It returns the problems found (empty when the trace is sound). Usable on any trace of
``dvms.events/1`` that starts with the ``host.info`` events, simulated or real.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TraceAudit", "audit_trace"]


@dataclass
class TraceAudit:
    """The replayed state and the problems found."""

    location: dict[str, str] = field(default_factory=dict)
    """VM → host."""
    capacity: dict[str, int] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    """Host → memory of VMs there plus VMs migrating to it (MiB)."""
    in_flight: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    """VM → (src, dst, memory_mib)."""
    problems: list[str] = field(default_factory=list)
    migrations_started: int = 0
    migrations_ended: int = 0
    migrations_failed: int = 0

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        t = event["t"]
        if kind == "host.info":
            host = event["host"]
            self.capacity[host] = int(event["memory_mib"])
            self.used[host] = int(event.get("mem_used_mib", 0))
            for vm in event.get("vms", ()):
                if vm in self.location:
                    self.problems.append(f"t={t}: {vm} placed on {self.location[vm]} and {host}")
                self.location[vm] = host
            self._memory(t, host)
        elif kind == "migration.start":
            vm, src, dst, mem = event["vm"], event["src"], event["dst"], int(event["memory_mib"])
            self.migrations_started += 1
            if self.location.get(vm) != src:
                self.problems.append(
                    f"t={t}: {vm} starts from {src} but is on {self.location.get(vm)}"
                )
            if vm in self.in_flight:
                self.problems.append(f"t={t}: {vm} starts a second migration")
            self.in_flight[vm] = (src, dst, mem)
            self.used[dst] = self.used.get(dst, 0) + mem
            self._memory(t, dst)
        elif kind == "migration.end":
            vm = event["vm"]
            self.migrations_ended += 1
            flight = self.in_flight.pop(vm, None)
            if flight is None or flight[:2] != (event["src"], event["dst"]):
                self.problems.append(f"t={t}: {vm} ends a migration that did not start")
                return
            src, dst, mem = flight
            if self.location.get(vm) != src:
                self.problems.append(f"t={t}: {vm} leaves {src} but is on {self.location.get(vm)}")
            self.location[vm] = dst
            self.used[src] = self.used.get(src, 0) - mem
        elif kind == "migration.fail":
            self.migrations_failed += 1
            vm = event["vm"]
            flight = self.in_flight.get(vm)
            if flight is not None and flight[:2] == (event["src"], event["dst"]):
                del self.in_flight[vm]
                self.used[flight[1]] -= flight[2]
        elif kind == "fault.crash":
            host = event["host"]
            held = sorted(vm for vm, h in self.location.items() if h == host)
            if sorted(event.get("vms", ())) != held:
                self.problems.append(
                    f"t={t}: crash of {host} lists {event.get('vms')}, held {held}"
                )

    def _memory(self, t: float, host: str) -> None:
        if self.used.get(host, 0) > self.capacity.get(host, 0):
            self.problems.append(
                f"t={t}: {host} memory {self.used[host]} MiB > {self.capacity.get(host)} MiB"
            )

    def finish(self) -> list[str]:
        """Problems, including migrations that never ended."""
        for vm, (src, dst, _) in sorted(self.in_flight.items()):
            self.problems.append(f"migration of {vm} {src}->{dst} never ended")
        return self.problems


def audit_trace(events: Iterable[Mapping[str, Any]]) -> TraceAudit:
    """Replay ``events`` (see module doc); ``.problems`` lists what is wrong."""
    audit = TraceAudit()
    for event in events:
        audit.add(event)
    audit.finish()
    return audit
