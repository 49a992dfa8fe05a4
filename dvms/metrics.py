"""Metrics computed from the event stream (simulated or real runs alike).

``MetricsCollector`` is a trace sink: call it with every event, in order
(``collector(event)``); ``metrics()`` gives the counts and means of the summary
(DESIGN.md's table; see docs/trace.md for the mapping). Everything it reports is a function
of the events alone, so a trace read back gives the same figures (``from_events``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["MetricsCollector", "RunningStats"]

Event = Mapping[str, Any]


class RunningStats:
    """Count, sum, mean and population standard deviation (Welford), in O(1) memory."""

    __slots__ = ("_m2", "mean", "n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self.total += x
        delta = x - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (x - self.mean)

    @property
    def sd(self) -> float:
        """Population standard deviation (0 for fewer than two values)."""
        return math.sqrt(self._m2 / self.n) if self.n > 1 else 0.0


class MetricsCollector:
    """Folds events into the summary's metrics; O(1) per event."""

    def __init__(self) -> None:
        self.events = 0
        self.by_type: dict[str, int] = {}
        self.violation = RunningStats()
        self.violations = 0
        self.migration = RunningStats()
        self.migrations_intra = 0
        self.migrations_inter = 0
        self.migrations_started = 0
        self.migrations_failed = 0
        self.migrated_mib = 0
        self.isp_started = 0
        self.isp_solved = 0
        self.isp_failed = 0
        self.partition_size = RunningStats()
        self.partition_lifetime = RunningStats()
        self.scheduler_runs = 0
        self.compute_s = 0.0
        self.crashes = 0
        self.vms_affected = 0
        self.t_last = 0.0
        self._handlers: dict[str, Callable[[Event], None]] = {
            "violation.start": self._violation_start,
            "violation.end": self._violation_end,
            "migration.start": self._migration_start,
            "migration.end": self._migration_end,
            "migration.fail": self._migration_fail,
            "isp.start": self._isp_start,
            "partition.dissolve": self._dissolve,
            "partition.solve": self._solve,
            "scheduler.run": self._solve,
            "fault.crash": self._crash,
        }

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> MetricsCollector:
        collector = cls()
        for event in events:
            collector(event)
        return collector

    def __call__(self, event: Event) -> None:
        kind = event["type"]
        self.events += 1
        by_type = self.by_type
        by_type[kind] = by_type.get(kind, 0) + 1
        self.t_last = event["t"]
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    def _violation_start(self, event: Event) -> None:
        self.violations += 1

    def _violation_end(self, event: Event) -> None:
        self.violation.add(float(event["duration_s"]))

    def _migration_start(self, event: Event) -> None:
        self.migrations_started += 1

    def _migration_end(self, event: Event) -> None:
        self.migration.add(float(event["duration_s"]))
        self.migrated_mib += int(event["memory_mib"])
        if event["inter_site"]:
            self.migrations_inter += 1
        else:
            self.migrations_intra += 1

    def _migration_fail(self, event: Event) -> None:
        self.migrations_failed += 1

    def _isp_start(self, event: Event) -> None:
        self.isp_started += 1

    def _dissolve(self, event: Event) -> None:
        if event.get("solved"):
            self.isp_solved += 1
        else:
            self.isp_failed += 1
        self.partition_size.add(float(event["size"]))
        if "lifetime_s" in event:
            self.partition_lifetime.add(float(event["lifetime_s"]))

    def _solve(self, event: Event) -> None:
        self.scheduler_runs += 1
        self.compute_s += float(event.get("compute_s", 0.0))

    def _crash(self, event: Event) -> None:
        self.crashes += 1
        self.vms_affected += len(event.get("vms", ()))

    def metrics(self) -> dict[str, Any]:
        """The summary's metric keys (DESIGN.md), plus a few more."""
        return {
            "violations": self.violations,
            "violation_time_s": self.violation.total,
            "violation_duration_mean_s": self.violation.mean,
            "violation_duration_sd_s": self.violation.sd,
            "migrations": self.migration.n,
            "migrations_intra_site": self.migrations_intra,
            "migrations_inter_site": self.migrations_inter,
            "migrations_failed": self.migrations_failed,
            "migrations_started": self.migrations_started,
            "migration_duration_mean_s": self.migration.mean,
            "migrated_gib": self.migrated_mib / 1024.0,
            "isp_started": self.isp_started,
            "isp_solved": self.isp_solved,
            "isp_failed": self.isp_failed,
            "partition_size_mean": self.partition_size.mean,
            "partition_lifetime_mean_s": self.partition_lifetime.mean,
            "scheduler_runs": self.scheduler_runs,
            "scheduler_compute_s": self.compute_s,
            "crashes": self.crashes,
            "vms_affected": self.vms_affected,
            "events": self.events,
            "events_by_type": dict(sorted(self.by_type.items())),
        }
