"""The metrics collector against hand-made event streams."""

from __future__ import annotations

import random
import statistics

import pytest

from dvms.metrics import MetricsCollector, RunningStats
from dvms.summary import WALL_KEYS, build_summary


def test_running_stats_match_statistics() -> None:
    rng = random.Random(2)
    xs = [rng.uniform(0, 100) for _ in range(1000)]
    stats = RunningStats()
    for x in xs:
        stats.add(x)
    assert stats.n == 1000
    assert stats.mean == pytest.approx(statistics.fmean(xs))
    assert stats.sd == pytest.approx(statistics.pstdev(xs))
    assert stats.total == pytest.approx(sum(xs))
    assert RunningStats().sd == 0.0


def _ev(t: float, kind: str, **fields: object) -> dict[str, object]:
    return {"t": t, "type": kind, "node": "n", **fields}


def test_collector_counts_by_hand() -> None:
    events = [
        _ev(0, "violation.start", host="a"),
        _ev(0, "violation.start", host="b"),
        _ev(10, "violation.end", host="a", duration_s=10.0),
        _ev(30, "violation.end", host="b", duration_s=30.0),
        _ev(1, "migration.start", vm="v", src="a", dst="c"),
        _ev(9, "migration.end", vm="v", duration_s=8.0, memory_mib=1024, inter_site=False),
        _ev(2, "migration.start", vm="w", src="b", dst="d"),
        _ev(14, "migration.end", vm="w", duration_s=12.0, memory_mib=2048, inter_site=True),
        _ev(3, "migration.fail", vm="x", src="b", dst="d", reason="destination lacks memory"),
        _ev(4, "isp.start", partition="p1", initiator="a"),
        _ev(5, "partition.solve", partition="p1", size=4, migrations=1, compute_s=0.5),
        _ev(
            6,
            "partition.dissolve",
            partition="p1",
            size=4,
            reason="done",
            lifetime_s=2.0,
            solved=True,
        ),
        _ev(
            7,
            "partition.dissolve",
            partition="p2",
            size=2,
            reason="timeout",
            lifetime_s=4.0,
            solved=False,
        ),
        _ev(8, "scheduler.run", scheduler="centralized", compute_s=1.25),
        _ev(9, "fault.crash", host="e", vms=["v1", "v2", "v3"]),
    ]
    m = MetricsCollector.from_events(events).metrics()
    assert m["violations"] == 2
    assert m["violation_time_s"] == 40.0
    assert m["violation_duration_mean_s"] == 20.0
    assert m["violation_duration_sd_s"] == 10.0
    assert (m["migrations"], m["migrations_intra_site"], m["migrations_inter_site"]) == (2, 1, 1)
    assert (m["migrations_failed"], m["migrations_started"]) == (1, 2)
    assert m["migration_duration_mean_s"] == 10.0
    assert m["migrated_gib"] == 3.0
    assert (m["isp_started"], m["isp_solved"], m["isp_failed"]) == (1, 1, 1)
    assert m["partition_size_mean"] == 3.0
    assert m["partition_lifetime_mean_s"] == 3.0
    assert m["scheduler_compute_s"] == 1.75
    assert m["scheduler_runs"] == 2
    assert (m["crashes"], m["vms_affected"]) == (1, 3)
    assert m["events"] == len(events)
    assert m["events_by_type"]["violation.start"] == 2


def test_summary_orders_contract_keys_and_rounds() -> None:
    fields: dict[str, object] = {
        k: 0
        for k in (
            "seed",
            "hosts",
            "vms",
            "sites",
            "duration_s",
            "violations",
            "violation_time_s",
            "violation_duration_mean_s",
            "violation_duration_sd_s",
            "migrations",
            "migrations_intra_site",
            "migrations_inter_site",
            "migrations_failed",
            "migration_duration_mean_s",
            "migrated_gib",
            "isp_started",
            "isp_solved",
            "isp_failed",
            "partition_size_mean",
            "scheduler_compute_s",
            "energy_kwh",
            "vms_lost",
            *WALL_KEYS,
        )
    }
    fields.update(
        extra=1,
        scenario={"run": {}},
        scheduler="none",
        overlay=None,
        messages={},
        vivaldi_median_error=None,
        energy_kwh=1 / 3,
    )
    summary = build_summary(fields)
    keys = list(summary)
    assert keys[:4] == ["schema", "seed", "scenario", "hosts"]
    assert keys[-1] == "extra"
    assert summary["schema"] == "dvms.summary/1"
    assert summary["energy_kwh"] == 0.333333333
    assert keys[-4:-1] == ["status", "exception", "provenance"]
    assert summary["status"] == "complete" and summary["exception"] is None
    del fields["vms_lost"]  # a key the run could not know is null, never left out
    partial = build_summary(fields)
    assert "vms_lost" in partial and partial["vms_lost"] is None
