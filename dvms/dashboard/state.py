"""The infrastructure as the dashboard shows it, folded from trace events.

:class:`InfraState` applies events one by one in O(1) each (hosts, VMs and their
load, violations, migrations in flight, partitions, Vivaldi coordinates, power,
counters) and renders compact frames for clients: a full frame on connect or after a
seek, then deltas carrying only the hosts changed since that client's last frame.
Above ``aggregate_above`` hosts, frames carry per-site aggregates instead of hosts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from dvms.report.series import project_2d, site_hint

__all__ = ["ClientCursor", "HostView", "InfraState", "PowerModel"]

UNKNOWN_SITE = "unknown"


@dataclass(frozen=True)
class PowerModel:
    """Linear host power (W): idle + (max − idle) × CPU utilisation; 0 when crashed."""

    idle_w: float = 100.0
    max_w: float = 200.0

    def watts(self, demand: float, capacity: float, alive: bool) -> float:
        if not alive:
            return 0.0
        use = min(1.0, demand / capacity) if capacity > 0 else 0.0
        return self.idle_w + (self.max_w - self.idle_w) * use


@dataclass
class HostView:
    """One host: its site, capacity, VMs (name → load) and status."""

    name: str
    site: str = UNKNOWN_SITE
    capacity: float = 700.0
    vms: dict[str, float] = field(default_factory=dict)
    violated: bool = False
    alive: bool = True
    version: int = 0

    @property
    def demand(self) -> float:
        return sum(self.vms.values())


@dataclass
class ClientCursor:
    """What one client has already been sent."""

    epoch: int = -1
    seq: int = 0
    coords_seq: int = -1
    power_seq: int = 0


COUNTERS = (
    "violations", "violations_active", "migrations", "migrations_intra_site",
    "migrations_inter_site", "migrations_failed", "migrations_active", "isp_started",
    "isp_solved", "isp_failed", "partitions_active", "crashes", "scheduler_runs", "events",
)  # fmt: skip


class InfraState:
    """Infrastructure state at time ``t``, built by :meth:`apply`."""

    def __init__(
        self,
        *,
        power: PowerModel | None = None,
        aggregate_above: int = 1000,
        sites: dict[str, str] | None = None,
        default_capacity: float = 700.0,
        history: int = 720,
    ) -> None:
        self.power_model = power or PowerModel()
        self.aggregate_above = aggregate_above
        self.default_capacity = default_capacity
        self.epoch = 0
        self._site_seed = dict(sites or {})
        self._history_len = history
        self.reset()

    def reset(self) -> None:
        """Back to the empty infrastructure at t = 0 (clients get a full frame next)."""
        self.epoch += 1
        self.t = 0.0
        self.seq = 0
        self.hosts: dict[str, HostView] = {}
        self.vm_host: dict[str, str] = {}
        self.sites: dict[str, str] = dict(self._site_seed)
        self.coords: dict[str, list[float]] = {}
        self.coords_seq = 0
        self.partitions: dict[str, dict[str, Any]] = {}
        self.migrating: dict[str, tuple[str, str, bool]] = {}
        self.recent: deque[tuple[float, str, str, bool]] = deque(maxlen=200)
        self.power_total: float | None = None
        self.power_history: deque[tuple[int, float, float]] = deque(maxlen=self._history_len)
        self.power_seq = 0
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._projection: tuple[int, list[str], list[list[float]]] | None = None

    def copy(self) -> InfraState:
        """An independent copy (a replay checkpoint); much cheaper than ``deepcopy``."""
        other = object.__new__(InfraState)
        other.__dict__.update(self.__dict__)
        other._site_seed = dict(self._site_seed)
        other.hosts = {
            name: HostView(h.name, h.site, h.capacity, dict(h.vms), h.violated, h.alive,
                           h.version)
            for name, h in self.hosts.items()
        }
        other.vm_host = dict(self.vm_host)
        other.sites = dict(self.sites)
        other.coords = dict(self.coords)  # vectors are replaced, never mutated
        other.partitions = {
            pid: {**p, "members": list(p["members"])} for pid, p in self.partitions.items()
        }
        other.migrating = dict(self.migrating)
        other.recent = deque(self.recent, maxlen=self.recent.maxlen)
        other.power_history = deque(self.power_history, maxlen=self.power_history.maxlen)
        other.counters = dict(self.counters)
        other._projection = None
        return other

    # ----- folding events ---------------------------------------------------------------

    def _host(self, name: str) -> HostView:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostView(
                name, self.sites.get(name, UNKNOWN_SITE), self.default_capacity
            )
        return host

    def _touch(self, host: HostView) -> None:
        self.seq += 1
        host.version = self.seq

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one event (in trace order) into the state."""
        t = event["t"]
        if t > self.t:
            self.t = float(t)
        kind = event["type"]
        if kind != "header":
            self.counters["events"] += 1
        if kind in _SITE_HINTS:
            for name, site in site_hint(event):
                self.sites[name] = site
                host = self.hosts.get(name)
                if host is not None and host.site != site:
                    host.site = site
                    self._touch(host)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event)

    def _on_host_info(self, e: dict[str, Any]) -> None:
        host = self._host(str(e.get("host", e["node"])))
        if isinstance(e.get("cpu_capacity"), int | float):
            host.capacity = float(e["cpu_capacity"])
        vms = e.get("vms") or ()
        loads = e.get("loads")
        if isinstance(loads, dict):  # {vm: load}
            vms, loads = list(loads), list(loads.values())
        for k, vm in enumerate(vms):
            name = str(vm)
            if self.vm_host.get(name) not in (None, host.name):
                self._host(self.vm_host[name]).vms.pop(name, None)
            self.vm_host[name] = host.name
            if isinstance(loads, list) and k < len(loads):
                host.vms[name] = float(loads[k])
            else:
                host.vms.setdefault(name, 0.0)
        self._touch(host)

    def _on_header(self, e: dict[str, Any]) -> None:
        site_of = e.get("site_of")
        if isinstance(site_of, dict):
            for name, site in site_of.items():
                self.sites[str(name)] = str(site)
                self._host(str(name)).site = str(site)
        capacity = e.get("host_cpu_capacity")
        if isinstance(capacity, int | float) and capacity > 0:
            self.default_capacity = float(capacity)

    def _on_load(self, e: dict[str, Any]) -> None:
        vm, name = str(e["vm"]), str(e.get("host", e["node"]))
        if vm in self.migrating:
            name = self.migrating[vm][0]  # demand counts on the source until the end
        previous = self.vm_host.get(vm)
        if previous is not None and previous != name:
            old = self._host(previous)
            old.vms.pop(vm, None)
            self._touch(old)
        self.vm_host[vm] = name
        host = self._host(name)
        host.vms[vm] = float(e.get("load", 0.0))
        self._touch(host)

    def _on_violation(self, e: dict[str, Any]) -> None:
        host = self._host(str(e.get("host", e["node"])))
        start = e["type"] == "violation.start"
        if start and not host.violated:
            self.counters["violations"] += 1
            self.counters["violations_active"] += 1
        elif not start and host.violated:
            self.counters["violations_active"] -= 1
        host.violated = start
        if start and isinstance(e.get("cpu_capacity"), int | float):
            host.capacity = float(e["cpu_capacity"])
        self._touch(host)

    def _on_migration(self, e: dict[str, Any]) -> None:
        vm, src, dst = str(e["vm"]), str(e["src"]), str(e["dst"])
        kind = e["type"]
        inter = bool(e.get("inter_site", e.get("src_site") != e.get("dst_site")))
        if kind == "migration.start":
            self.migrating[vm] = (src, dst, inter)
        else:
            self.migrating.pop(vm, None)
        if kind == "migration.end":
            source, target = self._host(src), self._host(dst)
            load = source.vms.pop(vm, 0.0)
            target.vms[vm] = load
            self.vm_host[vm] = dst
            self._touch(source)
            self._touch(target)
            self.counters["migrations"] += 1
            self.counters["migrations_inter_site" if inter else "migrations_intra_site"] += 1
            self.recent.append((self.t, src, dst, inter))
        elif kind == "migration.fail":
            self.counters["migrations_failed"] += 1
        self.counters["migrations_active"] = len(self.migrating)

    def _on_power(self, e: dict[str, Any]) -> None:
        self.power_total = float(e.get("total_w", 0.0))
        self.power_seq += 1
        self.power_history.append((self.power_seq, self.t, self.power_total))

    def _on_crash(self, e: dict[str, Any]) -> None:
        host = self._host(str(e.get("host", e["node"])))
        host.alive = False
        self.counters["crashes"] += 1
        self._touch(host)

    def _on_coord(self, e: dict[str, Any]) -> None:
        vec = e.get("vec")
        if isinstance(vec, list) and vec:
            self.coords[str(e["node"])] = [float(v) for v in vec]
            self.coords_seq += 1

    def _on_partition(self, e: dict[str, Any]) -> None:
        kind, pid = e["type"], str(e.get("partition"))
        if kind == "isp.start":
            node = str(e.get("initiator", e["node"]))
            self.partitions[pid] = {"leader": node, "members": [node], "state": "growing"}
            self.counters["isp_started"] += 1
        elif kind == "partition.dissolve":
            self.partitions.pop(pid, None)
            self.counters["isp_solved" if e.get("solved") else "isp_failed"] += 1
        elif kind == "partition.leave":
            part = self.partitions.get(pid)
            if part is not None:
                part["members"] = [m for m in part["members"] if m != str(e["node"])]
                if not part["members"]:
                    del self.partitions[pid]
        elif kind == "partition.join":
            node = str(e["node"])
            part = self.partitions.setdefault(
                pid, {"leader": node, "members": [], "state": "growing"}
            )
            if node not in part["members"]:
                part["members"].append(node)
            part["leader"] = str(e.get("leader", part["leader"]))
        else:
            part = self.partitions.setdefault(
                pid, {"leader": str(e["node"]), "members": [str(e["node"])], "state": "growing"}
            )
            if isinstance(e.get("members"), list):
                part["members"] = [str(m) for m in e["members"]]
            if kind == "partition.grow":
                part["leader"] = str(e.get("leader", e["node"]))
            elif kind == "partition.block":
                part["state"] = "blocked"
            elif kind == "partition.merge":
                self.partitions.pop(str(e.get("absorbed")), None)
                part["leader"] = str(e["node"])
            elif kind == "partition.solve":
                part["state"] = "applying"
        self.counters["partitions_active"] = len(self.partitions)

    def _on_scheduler_run(self, e: dict[str, Any]) -> None:
        self.counters["scheduler_runs"] += 1

    # ----- frames -----------------------------------------------------------------------

    def projection(self) -> tuple[list[str], list[list[float]]]:
        """Nodes and their 2-D Vivaldi projection (cached until coordinates change)."""
        if self._projection is None or self._projection[0] != self.coords_seq:
            nodes = sorted(self.coords)
            dims = max((len(self.coords[n]) for n in nodes), default=0)
            vecs = [self.coords[n] + [0.0] * (dims - len(self.coords[n])) for n in nodes]
            xy = project_2d(vecs).round(6).tolist() if nodes else []
            self._projection = (self.coords_seq, nodes, xy)
        return self._projection[1], self._projection[2]

    def site_names(self) -> list[str]:
        return sorted({h.site for h in self.hosts.values()})

    def _site_rows(self, names: list[str]) -> list[dict[str, Any]]:
        index = {s: i for i, s in enumerate(names)}
        rows: list[dict[str, Any]] = [
            {"name": s, "hosts": 0, "vms": 0, "violated": 0, "crashed": 0, "demand": 0.0,
             "capacity": 0.0, "power_w": 0.0, "hist": [0] * 10}
            for s in names
        ]  # fmt: skip
        for host in self.hosts.values():
            row = rows[index[host.site]]
            demand = host.demand
            row["hosts"] += 1
            row["vms"] += len(host.vms)
            row["violated"] += host.violated
            row["crashed"] += not host.alive
            row["demand"] += demand
            row["capacity"] += host.capacity
            row["power_w"] += self.power_model.watts(demand, host.capacity, host.alive)
            use = demand / host.capacity if host.capacity > 0 else 0.0
            row["hist"][min(9, max(0, int(use * 10)))] += 1
        for row in rows:
            row["demand"] = round(row["demand"], 3)
            row["power_w"] = round(row["power_w"], 3)
        return rows

    def _host_row(self, host: HostView, index: dict[str, int]) -> list[Any]:
        demand = host.demand
        return [
            host.name, index[host.site], round(demand, 3), host.capacity, int(host.violated),
            int(host.alive), round(self.power_model.watts(demand, host.capacity, host.alive), 2),
            [round(v, 1) for v in host.vms.values()],
        ]  # fmt: skip

    def frame(self, cursor: ClientCursor, status: dict[str, Any]) -> dict[str, Any]:
        """The next frame for a client (full if it is new or the state was reset)."""
        full = cursor.epoch != self.epoch
        names = self.site_names()
        aggregated = len(self.hosts) > self.aggregate_above
        out: dict[str, Any] = {
            "kind": "frame", "full": full, "t": status.get("t", round(self.t, 3)),
            "status": status,
            "counters": dict(self.counters), "power_w": self.power_total,
            "site_names": names, "sites": self._site_rows(names), "aggregated": aggregated,
            "hosts_total": len(self.hosts), "vms_total": len(self.vm_host),
        }  # fmt: skip
        if not aggregated:
            index = {s: i for i, s in enumerate(names)}
            since = -1 if full else cursor.seq
            out["hosts"] = [
                self._host_row(h, index)
                for h in sorted(self.hosts.values(), key=lambda h: h.name)
                if h.version > since
            ]
        if full or cursor.coords_seq != self.coords_seq:
            nodes, xy = self.projection()
            out["coords"] = {"nodes": nodes, "xy": xy,
                             "sites": [self.sites.get(n, UNKNOWN_SITE) for n in nodes]}
        since_power = -1 if full else cursor.power_seq
        out["power_history"] = [[round(t, 3), w] for s, t, w in self.power_history
                                if s > since_power]
        out["partitions"] = [
            [pid, p["leader"], p["members"], p["state"]]
            for pid, p in sorted(self.partitions.items())
        ][:500]
        out["migrating"] = [[vm, s, d, int(i)] for vm, (s, d, i) in
                            sorted(self.migrating.items())][:500]
        out["recent"] = [[round(self.t - t, 3), s, d, int(i)] for t, s, d, i in self.recent
                         if self.t - t <= 30.0]
        cursor.epoch, cursor.seq = self.epoch, self.seq
        cursor.coords_seq, cursor.power_seq = self.coords_seq, self.power_seq
        return out


_SITE_HINTS = frozenset({"host.info", "host", "migration.start", "migration.end", "migration.fail"})

_HANDLERS = {
    "header": InfraState._on_header,
    "host.info": InfraState._on_host_info,
    "host": InfraState._on_host_info,
    "load": InfraState._on_load,
    "violation.start": InfraState._on_violation,
    "violation.end": InfraState._on_violation,
    "migration.start": InfraState._on_migration,
    "migration.end": InfraState._on_migration,
    "migration.fail": InfraState._on_migration,
    "power": InfraState._on_power,
    "fault.crash": InfraState._on_crash,
    "vivaldi.coord": InfraState._on_coord,
    "isp.start": InfraState._on_partition,
    "partition.join": InfraState._on_partition,
    "partition.leave": InfraState._on_partition,
    "partition.grow": InfraState._on_partition,
    "partition.block": InfraState._on_partition,
    "partition.merge": InfraState._on_partition,
    "partition.solve": InfraState._on_partition,
    "partition.fail": InfraState._on_partition,
    "partition.dissolve": InfraState._on_partition,
    "scheduler.run": InfraState._on_scheduler_run,
}
