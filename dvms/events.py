"""The trace's vocabulary: one constructor per event type of docs/trace.md.

Every producer (the simulated world and its migration engine, the libvirt hypervisor, the
node services) builds its events here, so the names, the fields and their order are
written once. Each constructor returns the event as the trace stores it: ``t``, ``type``,
``node``, then the fields in the order of its signature (the order the bytes of a trace
depend on). ``t`` is kept as given (the simulator's clock may be an ``int`` at 0).

A behaviour, whose runtime adds ``t`` and ``node`` itself, emits a constructed event with
:func:`emit_event`. ``EVENT_FIELDS`` lists every type's fields (docs/trace.md and a test
check each other against it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "EVENT_FIELDS",
    "Event",
    "emit_event",
    "fault_crash",
    "fault_link_cut",
    "fault_link_heal",
    "fault_loss",
    "hier_assign",
    "hier_manager_crash",
    "hier_manager_failed",
    "host_info",
    "isp_start",
    "load",
    "migration_end",
    "migration_fail",
    "migration_start",
    "partition_block",
    "partition_dissolve",
    "partition_fail",
    "partition_grow",
    "partition_join",
    "partition_leave",
    "partition_merge",
    "partition_solve",
    "power",
    "runtime_rejected",
    "scheduler_run",
    "violation_end",
    "violation_start",
    "vivaldi_coord",
]

Event = dict[str, Any]
"""One trace event: ``{"t": seconds, "type": str, "node": str, ...fields}``."""

WORLD = "world"
"""The ``node`` of world-wide events."""


# ----- hosts and load ---------------------------------------------------------------------


def host_info(
    t: float,
    node: str,
    *,
    host: str,
    site: str,
    cpu_capacity: float,
    memory_mib: int,
    mem_used_mib: int,
    vms: Iterable[str],
) -> Event:
    """A host's size, memory in use and VMs (once per host at the start)."""
    return {"t": t, "type": "host.info", "node": node, "host": host, "site": site,
            "cpu_capacity": cpu_capacity, "memory_mib": memory_mib,
            "mem_used_mib": mem_used_mib, "vms": list(vms)}


def load(t: float, node: str, *, vm: str, host: str, load: float) -> Event:
    """A load event sets a VM's CPU demand (percent of one core)."""
    return {"t": t, "type": "load", "node": node, "vm": vm, "host": host, "load": load}


def violation_start(
    t: float,
    node: str,
    *,
    host: str,
    cpu_demand: float,
    cpu_capacity: float,
    mem_demand_mib: float,
    memory_mib: float,
) -> Event:
    """A host goes from within capacity to overloaded."""
    return {"t": t, "type": "violation.start", "node": node, "host": host,
            "cpu_demand": cpu_demand, "cpu_capacity": cpu_capacity,
            "mem_demand_mib": mem_demand_mib, "memory_mib": memory_mib}


def violation_end(
    t: float, node: str, *, host: str, duration_s: float, open: bool = False,
    crashed: bool = False,
) -> Event:
    """The host is back within capacity; ``open`` (closed at the end of the run) and
    ``crashed`` (ended by a crash) are written only when true."""
    event: Event = {"t": t, "type": "violation.end", "node": node, "host": host,
                    "duration_s": duration_s}
    if open:
        event["open"] = True
    if crashed:
        event["crashed"] = True
    return event


def power(t: float, node: str = WORLD, *, total_w: float, hosts_on: int) -> Event:
    """The power drawn by all hosts (sampled)."""
    return {"t": t, "type": "power", "node": node, "total_w": total_w, "hosts_on": hosts_on}


# ----- migrations ---------------------------------------------------------------------------


def migration_start(
    t: float, node: str, *, vm: str, src: str, dst: str, src_site: str, dst_site: str,
    memory_mib: int,
) -> Event:
    """A live migration starts (memory now reserved on ``dst``)."""
    return {"t": t, "type": "migration.start", "node": node, "vm": vm, "src": src,
            "dst": dst, "src_site": src_site, "dst_site": dst_site, "memory_mib": memory_mib}


def migration_end(
    t: float, node: str, *, vm: str, src: str, dst: str, src_site: str, dst_site: str,
    duration_s: float, memory_mib: int,
) -> Event:
    """A live migration completed: the VM runs on ``dst`` (``inter_site`` derived)."""
    return {"t": t, "type": "migration.end", "node": node, "vm": vm, "src": src, "dst": dst,
            "src_site": src_site, "dst_site": dst_site, "duration_s": duration_s,
            "memory_mib": memory_mib, "inter_site": src_site != dst_site}


def migration_fail(t: float, node: str, *, vm: str, src: str, dst: str, reason: str) -> Event:
    """A migration was refused or failed in flight; the VM stays on ``src``."""
    return {"t": t, "type": "migration.fail", "node": node, "vm": vm, "src": src, "dst": dst,
            "reason": reason}


# ----- faults -------------------------------------------------------------------------------


def fault_crash(t: float, node: str, *, host: str, vms: Iterable[str]) -> Event:
    """A host crashes; ``vms`` are the VMs it held (affected, not lost)."""
    return {"t": t, "type": "fault.crash", "node": node, "host": host, "vms": list(vms)}


def fault_link_cut(t: float, node: str = WORLD, *, a: str, b: str) -> Event:
    """The links between ``a`` and ``b`` (hosts, or all hosts of sites) are cut."""
    return {"t": t, "type": "fault.link_cut", "node": node, "a": a, "b": b}


def fault_link_heal(t: float, node: str = WORLD, *, a: str, b: str) -> Event:
    """The links between ``a`` and ``b`` are healed."""
    return {"t": t, "type": "fault.link_heal", "node": node, "a": a, "b": b}


def fault_loss(t: float, node: str = WORLD, *, rate: float) -> Event:
    """The network loses messages with probability ``rate`` (at the start)."""
    return {"t": t, "type": "fault.loss", "node": node, "rate": rate}


# ----- schedulers and Vivaldi -----------------------------------------------------------------


def scheduler_run(
    t: float, node: str, *, scheduler: str, hosts: int, vms: int, overloaded: int,
    migrations: int, compute_s: float, failed: int, duration_s: float,
    group: str | None = None,
) -> Event:
    """A centralised run ended (all its migrations done or failed); ``group``: the
    hierarchical scheduler's group of that run (written only then)."""
    event: Event = {"t": t, "type": "scheduler.run", "node": node, "scheduler": scheduler,
                    "hosts": hosts, "vms": vms, "overloaded": overloaded,
                    "migrations": migrations, "compute_s": compute_s, "failed": failed,
                    "duration_s": duration_s}
    if group is not None:
        event["group"] = group
    return event


def vivaldi_coord(
    t: float, node: str, *, vec: Iterable[float], height: float, error: float
) -> Event:
    """A node's Vivaldi coordinate (sampled)."""
    return {"t": t, "type": "vivaldi.coord", "node": node, "vec": list(vec),
            "height": height, "error": error}


# ----- the DVMS protocol (docs/protocol.md) -------------------------------------------------


def isp_start(t: float, node: str, *, partition: str, initiator: str) -> Event:
    """An overloaded node starts an ISP (a partition)."""
    return {"t": t, "type": "isp.start", "node": node, "partition": partition,
            "initiator": initiator}


def partition_grow(
    t: float, node: str, *, partition: str, leader: str, size: int, members: Iterable[str]
) -> Event:
    """A node joined the partition and leads it now."""
    return {"t": t, "type": "partition.grow", "node": node, "partition": partition,
            "leader": leader, "size": size, "members": list(members)}


def partition_join(t: float, node: str, *, partition: str, leader: str) -> Event:
    """A node became a member of a partition."""
    return {"t": t, "type": "partition.join", "node": node, "partition": partition,
            "leader": leader}


def partition_leave(t: float, node: str, *, partition: str, reason: str) -> Event:
    """A node left a partition (dissolved, merged, ...)."""
    return {"t": t, "type": "partition.leave", "node": node, "partition": partition,
            "reason": reason}


def partition_block(t: float, node: str, *, partition: str, size: int) -> Event:
    """The partition's growth is blocked by another partition."""
    return {"t": t, "type": "partition.block", "node": node, "partition": partition,
            "size": size}


def partition_merge(
    t: float, node: str, *, partition: str, absorbed: str, size: int, members: Iterable[str]
) -> Event:
    """The partition absorbed another one."""
    return {"t": t, "type": "partition.merge", "node": node, "partition": partition,
            "absorbed": absorbed, "size": size, "members": list(members)}


def partition_solve(
    t: float, node: str, *, partition: str, size: int, migrations: int, compute_s: float
) -> Event:
    """A plan was found and will be applied."""
    return {"t": t, "type": "partition.solve", "node": node, "partition": partition,
            "size": size, "migrations": migrations, "compute_s": compute_s}


def partition_fail(t: float, node: str, *, partition: str, size: int, reason: str) -> Event:
    """A step of the partition failed (informational)."""
    return {"t": t, "type": "partition.fail", "node": node, "partition": partition,
            "size": size, "reason": reason}


def partition_dissolve(
    t: float, node: str, *, partition: str, size: int, reason: str, lifetime_s: float,
    solved: bool,
) -> Event:
    """The end of an ISP."""
    return {"t": t, "type": "partition.dissolve", "node": node, "partition": partition,
            "size": size, "reason": reason, "lifetime_s": lifetime_s, "solved": solved}


# ----- helpers ------------------------------------------------------------------------------


def hier_assign(t: float, node: str, *, manager: str, hosts: int, reason: str) -> Event:
    """Hierarchical: the group leader assigned ``hosts`` hosts to ``manager``."""
    return {"t": t, "type": "hier.assign", "node": node, "manager": manager, "hosts": hosts,
            "reason": reason}


def hier_manager_failed(t: float, node: str, *, manager: str, hosts: int) -> Event:
    """Hierarchical: no heartbeat from ``manager``; its ``hosts`` hosts are re-assigned."""
    return {"t": t, "type": "hier.manager_failed", "node": node, "manager": manager,
            "hosts": hosts}


def hier_manager_crash(t: float, node: str, *, group: str) -> Event:
    """Hierarchical: a group manager crashed (fault injection)."""
    return {"t": t, "type": "hier.manager_crash", "node": node, "group": group}


# ----- the runtime ------------------------------------------------------------------------


def runtime_rejected(
    t: float, node: str, *, service: str, message: str, cause: str, n: int, error: str
) -> Event:
    """Messages from the network a node dropped (by service, message type and cause: a
    frame that failed to decode, a handler that raised, a full inbox): written by the
    runtime at the 1st, 2nd, 4th, 8th... of each key, ``n`` the count so far."""
    return {"t": t, "type": "runtime.rejected", "node": node, "service": service,
            "message": message, "cause": cause, "n": n, "error": error}


def emit_event(emit: Callable[..., None], event: Event) -> None:
    """Hand a constructed event to a behaviour's ``emit(type, **fields)`` (its runtime
    stamps ``t`` and ``node``; construct the event with the behaviour's ``now()``)."""
    fields = {k: v for k, v in event.items() if k not in ("t", "type", "node")}
    emit(event["type"], **fields)


def _fields(fn: Callable[..., Event]) -> tuple[str, ...]:
    params = inspect.signature(fn).parameters.values()
    names = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return (*names, "inter_site") if fn is migration_end else names


_CONSTRUCTORS: tuple[Callable[..., Event], ...] = (
    host_info, load, violation_start, violation_end, power, migration_start, migration_end,
    migration_fail, fault_crash, fault_link_cut, fault_link_heal, fault_loss, scheduler_run,
    vivaldi_coord, isp_start, partition_grow, partition_join, partition_leave,
    partition_block, partition_merge, partition_solve, partition_fail, partition_dissolve,
    runtime_rejected, hier_assign, hier_manager_failed, hier_manager_crash,
)

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    fn.__name__.replace("_", ".", 1): _fields(fn) for fn in _CONSTRUCTORS
}
"""Event type → its fields, in order (after ``t``, ``type``, ``node``)."""
