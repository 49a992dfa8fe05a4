"""What the figures need from a trace, extracted in one streaming pass.

:class:`RunSeries` keeps only small per-run series (violation periods, migrations,
partitions, power samples, last Vivaldi coordinates, sites), so a report over a
trace of millions of load events holds little memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Migration", "PartitionTrace", "RunSeries", "project_2d", "site_hint"]


@dataclass(frozen=True)
class Migration:
    """A completed migration: when it ended, how long it took, between which hosts."""

    t: float
    duration_s: float
    src: str
    dst: str
    inter_site: bool


@dataclass
class PartitionTrace:
    """The last known shape of a partition (an ISP)."""

    initiator: str
    leader: str
    members: list[str] = field(default_factory=list)
    size_at_dissolve: int | None = None
    lifetime_s: float | None = None
    solved: bool | None = None


def site_hint(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(host, site) pairs an event tells: host descriptions and migrations."""
    kind = event["type"]
    pairs: list[tuple[str, str]] = []
    if kind in ("host.info", "host") and isinstance(event.get("site"), str):
        pairs.append((str(event.get("host", event.get("node"))), event["site"]))
    elif kind.startswith("migration."):
        for end in ("src", "dst"):
            site = event.get(f"{end}_site")
            if isinstance(site, str) and end in event:
                pairs.append((str(event[end]), site))
    return pairs


@dataclass
class RunSeries:
    """Time series of one run, built by :meth:`add` over every event in order."""

    label: str
    t_end: float = 0.0
    violation_changes: list[tuple[float, int]] = field(default_factory=list)
    violation_durations: list[float] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)
    migrations_failed: int = 0
    partitions: dict[str, PartitionTrace] = field(default_factory=dict)
    power: list[tuple[float, float]] = field(default_factory=list)
    coords: dict[str, tuple[list[float], float]] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    scheduler: str = ""
    vivaldi_enabled: bool | None = None
    coord_period_s: float | None = None
    _active: int = 0

    @classmethod
    def from_events(cls, label: str, events: Iterable[dict[str, Any]],
                    summary: dict[str, Any] | None = None) -> RunSeries:
        """The series of a trace; ``summary`` (its run's) tells scheduler and Vivaldi setup."""
        series = cls(label)
        series.configure(summary or {})
        for event in events:
            series.add(event)
        return series

    def configure(self, summary: dict[str, Any]) -> None:
        """Scheduler, Vivaldi on/off and coordinate sample period from a run's summary."""
        scenario = summary.get("scenario")
        scenario = scenario if isinstance(scenario, dict) else {}
        self.scheduler = str(summary.get("scheduler") or
                             (scenario.get("scheduler") or {}).get("name", ""))
        vivaldi = scenario.get("vivaldi")
        if isinstance(vivaldi, dict) and "enabled" in vivaldi:
            self.vivaldi_enabled = bool(vivaldi["enabled"])
        period = (scenario.get("trace") or {}).get("coord_period_s")
        if isinstance(period, int | float) and period > 0:
            self.coord_period_s = float(period)

    def add(self, event: dict[str, Any]) -> None:
        """Fold one event into the series."""
        t = float(event["t"])
        self.t_end = max(self.t_end, t)
        kind = event["type"]
        for host, site in site_hint(event):
            self.sites[host] = site
        if kind == "violation.start":
            self._active += 1
            self.violation_changes.append((t, self._active))
        elif kind == "violation.end":
            self._active = max(0, self._active - 1)
            self.violation_changes.append((t, self._active))
            self.violation_durations.append(float(event.get("duration_s", 0.0)))
        elif kind == "migration.end":
            self.migrations.append(
                Migration(
                    t,
                    float(event.get("duration_s", 0.0)),
                    str(event.get("src")),
                    str(event.get("dst")),
                    bool(event.get("inter_site", False)),
                )
            )
        elif kind == "migration.fail":
            self.migrations_failed += 1
        elif kind == "power":
            self.power.append((t, float(event.get("total_w", 0.0))))
        elif kind == "vivaldi.coord":
            vec = event.get("vec")
            if isinstance(vec, list) and vec:
                self.coords[str(event["node"])] = (
                    [float(v) for v in vec],
                    float(event.get("height", 0.0)),
                )
        elif kind.startswith(("partition.", "isp.")):
            self._add_partition(kind, event)

    def _add_partition(self, kind: str, event: dict[str, Any]) -> None:
        pid = str(event.get("partition"))
        part = self.partitions.get(pid)
        if part is None:
            node = str(event.get("initiator", event.get("node")))
            part = self.partitions[pid] = PartitionTrace(node, node, [node])
        if kind in ("partition.grow", "partition.merge"):
            members = event.get("members")
            if isinstance(members, list):
                part.members = [str(m) for m in members]
            if kind == "partition.grow":
                part.leader = str(event.get("leader", part.leader))
        elif kind == "partition.dissolve":
            part.size_at_dissolve = int(event.get("size", len(part.members)))
            part.lifetime_s = float(event.get("lifetime_s", 0.0))
            part.solved = bool(event.get("solved", False))

    # ----- derived series -------------------------------------------------------------

    def migrations_per_minute(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(minute starts in s, intra-site counts, inter-site counts) per minute."""
        bins = max(1, int(np.ceil(self.t_end / 60.0)) or 1)
        intra = np.zeros(bins, dtype=int)
        inter = np.zeros(bins, dtype=int)
        for m in self.migrations:
            index = min(bins - 1, int(m.t // 60.0))
            (inter if m.inter_site else intra)[index] += 1
        return np.arange(bins) * 60.0, intra, inter

    def energy_kwh(self) -> list[tuple[float, float]]:
        """Cumulated energy (kWh) at each power sample, each sample held until the next."""
        out: list[tuple[float, float]] = []
        total = 0.0
        for i, (t, _) in enumerate(self.power):
            if i:
                prev_t, prev_w = self.power[i - 1]
                total += prev_w * (t - prev_t) / 3.6e6
            out.append((t, total))
        return out

    def dissolved_sizes(self) -> list[int]:
        return [p.size_at_dissolve for p in self.partitions.values() if p.size_at_dissolve]


def project_2d(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    """An (n, 2) projection of coordinates: themselves if 2-D, PCA if more, y=0 if 1-D.

    The sign of each axis is fixed (largest-magnitude loading positive) so a projection
    does not flip between calls on nearly the same points.
    """
    data = np.asarray(vectors, dtype=float)
    if data.ndim != 2 or data.shape[0] == 0:
        return np.zeros((0, 2))
    n, dims = data.shape
    if dims == 1:
        return np.column_stack([data[:, 0], np.zeros(n)])
    if dims == 2:
        return data.copy()
    centred = data - data.mean(axis=0)
    if n < 2:
        return np.zeros((n, 2))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    for k in range(axes.shape[0]):
        if axes[k, int(np.argmax(np.abs(axes[k])))] < 0:
            axes[k] = -axes[k]
    out = centred @ axes.T
    if out.shape[1] < 2:
        out = np.column_stack([out, np.zeros(n)])
    return out
