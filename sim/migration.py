"""Live migration: the pre-copy model (Hirofuchi et al. 2013, as in SimGrid/VMPlaceS).

``precopy(ram, bandwidth, dirty_rate)`` — a pure function — gives a migration's duration:

1. copy the whole RAM (``ram / bandwidth``);
2. resend the pages dirtied meanwhile, round after round: a round lasting ``t`` dirties
   ``min(dirty_rate · t, dirty_cap · ram)`` bytes, sent in the next round;
3. when what is left fits the downtime (``left ≤ downtime_s · bandwidth``), or after
   ``max_rounds`` rounds, or when the next round would bring the bytes sent beyond
   ``max_sent_ratio × ram`` (Xen's rule: at most 29 rounds or 3 × RAM sent), stop the VM
   and copy the rest (stop-and-copy).

With ``r = dirty_rate / bandwidth < 1`` this is about ``ram / bandwidth / (1 − r)``.
The dirty rate is SimGrid's: ``intensity × utilisation × dirty_reference_bps`` (the VM's
memory intensity, its CPU usage over its vCPUs' maximum, and the rate at which a fully
busy VM of intensity 1 dirties memory — SimGrid's "migration speed", 125 MB/s).

Bandwidth (bytes/s) of a migration = ``min(src NIC / k_src, dst NIC / k_dst, path)`` where
``k`` counts the migrations using that NIC (in or out) including this one, and ``path`` is
``GeoNetwork.bandwidth_bps(src, dst) / 8`` (lower across sites as RTT grows). The share is
**fixed when the migration starts** (not re-shared when others start or end): O(1) per
migration; it under-estimates a migration that outlives its neighbours and over-estimates
one joined later. Likewise the dirty rate uses the VM's utilisation at start.

``MigrationEngine`` runs migrations in the world: it refuses (``migration.fail``, the VM
stays) when the VM is unknown, not on the source, already migrating, either host is down,
or the destination lacks memory now; otherwise it reserves the VM's memory on the
destination (memory counts on both hosts), keeps the VM's CPU on the source, and at the
end moves the VM (``migration.end``). A crash of either host during the migration fails
it at once and releases the reservation; the VM stays on its source (if the source
crashed, the VM is affected by that crash, never lost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dvms import events
from dvms.events import Event
from dvms.hypervisor import MigrationResult
from peeractor import Address
from sim.infrastructure import Infrastructure, SimHost, SimVM
from sim.scenario_schema import MigrationConfig

__all__ = ["MigrationEngine", "Precopy", "WorldPort", "precopy"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Precopy:
    """Timing of one pre-copy migration."""

    duration_s: float
    rounds: int
    """Dirty-page rounds after the first full copy."""
    sent_bytes: float
    downtime_s: float
    """Duration of the final stop-and-copy."""


def precopy(
    ram_bytes: float,
    bandwidth_bps: float,
    dirty_rate_bps: float,
    *,
    downtime_s: float = 0.03,
    dirty_cap: float = 0.9,
    max_rounds: int = 29,
    max_sent_ratio: float = 3.0,
) -> Precopy:
    """Duration of a pre-copy live migration (bytes, bytes/s, seconds; see module doc)."""
    if not bandwidth_bps > 0:
        raise ValueError(f"bandwidth {bandwidth_bps!r} must be > 0")
    if ram_bytes < 0 or dirty_rate_bps < 0:
        raise ValueError(f"ram {ram_bytes!r} and dirty rate {dirty_rate_bps!r} must be >= 0")
    cap = dirty_cap * ram_bytes
    t = ram_bytes / bandwidth_bps
    total = t
    sent = ram_bytes
    left = min(dirty_rate_bps * t, cap)
    threshold = downtime_s * bandwidth_bps
    rounds = 0
    budget = max_sent_ratio * ram_bytes
    while left > threshold and rounds < max_rounds and sent + left <= budget:
        t = left / bandwidth_bps
        total += t
        sent += left
        rounds += 1
        left = min(dirty_rate_bps * t, cap)
    stop = left / bandwidth_bps
    return Precopy(total + stop, rounds, sent + left, stop)


class WorldPort(Protocol):
    """What the engine needs from the world."""

    infra: Infrastructure

    def now(self) -> float: ...

    def record(self, event: Event) -> None:
        """Trace ``event`` (built by a ``dvms.events`` constructor)."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...

    def reply(self, address: Address, message: object) -> None: ...

    def changed(self, host: SimHost) -> None:
        """A host's demand changed: check violations, tell watchers, update power."""
        ...


class _InFlight:
    __slots__ = ("bandwidth", "dst", "memory_mib", "reply_to", "src", "started", "vm")

    def __init__(
        self, vm: SimVM, src: SimHost, dst: SimHost, reply_to: Address | None, started: float
    ) -> None:
        self.vm = vm
        self.src = src
        self.dst = dst
        self.reply_to = reply_to
        self.started = started
        self.memory_mib = vm.memory_mib
        self.bandwidth = 0.0


class MigrationEngine:
    """Starts, completes and fails migrations in the world (see module doc)."""

    def __init__(
        self,
        world: WorldPort,
        config: MigrationConfig,
        path_bps: Callable[[str, str], float],
    ) -> None:
        self.world = world
        self.config = config
        self.path_bps = path_bps
        """Bytes/s one transfer can reach between two hosts."""
        self.in_flight: dict[str, _InFlight] = {}
        self.started = 0
        self.completed = 0
        self.failed = 0

    def _fail(
        self, vm: str, src: str, dst: str, reason: str, reply_to: Address | None, started: float
    ) -> None:
        world = self.world
        now = world.now()
        self.failed += 1
        world.record(events.migration_fail(now, src, vm=vm, src=src, dst=dst, reason=reason))
        if reply_to is not None:
            world.reply(
                reply_to, MigrationResult(vm, src, dst, False, reason, started, now - started)
            )

    def start(self, vm_id: str, src_id: str, dst_id: str, reply_to: Address | None) -> None:
        """Start migrating ``vm_id`` from ``src_id`` to ``dst_id``; result to ``reply_to``."""
        world = self.world
        infra = world.infra
        now = world.now()
        vm = infra.vm_by_id.get(vm_id)
        src = infra.host_by_id.get(src_id)
        dst = infra.host_by_id.get(dst_id)
        reason = ""
        if vm is None:
            reason = "unknown VM"
        elif src is None or dst is None:
            reason = "unknown host"
        elif vm.host is not src:
            reason = "VM not on source"
        elif vm.migrating is not None:
            reason = "VM already migrating"
        elif src is dst:
            reason = "source is destination"
        elif not src.alive:
            reason = "source down"
        elif not dst.alive:
            reason = "destination down"
        elif dst.mem_free() < vm.memory_mib:
            reason = "destination lacks memory"
        if reason or vm is None or src is None or dst is None:
            self._fail(vm_id, src_id, dst_id, reason, reply_to, now)
            return
        cfg = self.config
        src.migrations += 1
        dst.migrations += 1
        bandwidth = min(
            src.nic_bps / src.migrations,
            dst.nic_bps / dst.migrations,
            self.path_bps(src.id, dst.id),
        )
        utilisation = src.usage(vm) / (100.0 * vm.vcpus)
        dirty = vm.intensity * utilisation * cfg.dirty_reference_bps
        timing = precopy(
            vm.memory_mib * MIB,
            bandwidth,
            dirty,
            downtime_s=cfg.downtime_s,
            dirty_cap=cfg.dirty_cap,
            max_rounds=cfg.max_rounds,
            max_sent_ratio=cfg.max_sent_ratio,
        )
        vm.migrating = dst
        vm.sample = None
        dst.mem_reserved += vm.memory_mib
        flight = _InFlight(vm, src, dst, reply_to, now)
        flight.bandwidth = bandwidth
        self.in_flight[vm.id] = flight
        self.started += 1
        world.record(
            events.migration_start(
                now,
                src.id,
                vm=vm.id,
                src=src.id,
                dst=dst.id,
                src_site=src.site,
                dst_site=dst.site,
                memory_mib=vm.memory_mib,
            )
        )
        world.call_later(timing.duration_s, lambda: self._complete(flight))

    def _release(self, flight: _InFlight) -> None:
        del self.in_flight[flight.vm.id]
        flight.vm.migrating = flight.vm.sample = None
        flight.dst.mem_reserved -= flight.memory_mib
        flight.src.migrations -= 1
        flight.dst.migrations -= 1

    def _complete(self, flight: _InFlight) -> None:
        if self.in_flight.get(flight.vm.id) is not flight:
            return  # failed meanwhile (a crash)
        world = self.world
        vm, src, dst = flight.vm, flight.src, flight.dst
        self._release(flight)
        src.remove(vm)
        dst.add(vm)
        self.completed += 1
        now = world.now()
        world.record(
            events.migration_end(
                now,
                src.id,
                vm=vm.id,
                src=src.id,
                dst=dst.id,
                src_site=src.site,
                dst_site=dst.site,
                duration_s=now - flight.started,
                memory_mib=vm.memory_mib,
            )
        )
        world.changed(src)
        world.changed(dst)
        if flight.reply_to is not None:
            world.reply(
                flight.reply_to,
                MigrationResult(
                    vm.id, src.id, dst.id, True, "", flight.started, now - flight.started
                ),
            )

    def fail_in_flight(self, flight: _InFlight, reason: str) -> None:
        """Fail a migration in flight now: the VM stays on its source, memory is released."""
        self._release(flight)
        self._fail(
            flight.vm.id, flight.src.id, flight.dst.id, reason, flight.reply_to, flight.started
        )

    def host_crashed(self, host: SimHost) -> None:
        """Fail every migration from or to ``host`` now (in start order)."""
        for flight in [f for f in self.in_flight.values() if host in (f.src, f.dst)]:
            reason = "source crashed" if flight.src is host else "destination crashed"
            self.fail_in_flight(flight, reason)
