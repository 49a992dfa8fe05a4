"""DVMS in the simulated world: determinism, VMPlaceS's table shape, locality by overlay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dvms.summary import WALL_KEYS
from sim.run import simulate
from sim.scenario import load_scenario


def run(tmp: Path, name: str, **overrides: Any) -> dict[str, Any]:
    settings = {"scheduler.name": "dvms", **overrides}
    summary = simulate(load_scenario(None, settings), tmp / name)
    return summary


def stable(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in WALL_KEYS}


@pytest.mark.parametrize("overlay", ["lbo", "ring", "random"])
def test_same_seed_same_trace_and_summary(tmp_path: Path, overlay: str) -> None:
    common = {
        "infrastructure.hosts": 48,
        "run.duration_s": 900.0,
        "overlay.name": overlay,
        "faults.loss_rate": 0.01,
        "faults.crash_rate_per_host_h": 0.2,
    }
    a = run(tmp_path, "a", **common)
    b = run(tmp_path, "b", **common)
    run(tmp_path, "c", **common, **{"run.seed": 2})
    assert a["isp_started"] > 10 and a["migrations"] > 10
    assert stable(a) == stable(b)
    trace = "events.jsonl.gz"
    assert (tmp_path / "a" / trace).read_bytes() == (tmp_path / "b" / trace).read_bytes()
    assert (tmp_path / "a" / trace).read_bytes() != (tmp_path / "c" / trace).read_bytes()
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert stable(saved) == stable(a)
    assert any(key.startswith("dvms.") for key in a["messages"])


def mean_violation(tmp: Path, hosts: int, scheduler: str, duration: float) -> float:
    summary = simulate(
        load_scenario(
            None,
            {
                "scheduler.name": scheduler,
                "infrastructure.hosts": hosts,
                "run.duration_s": duration,
            },
        ),
        tmp / f"{scheduler}-{hosts}",
    )
    assert summary["vms_lost"] == 0
    value: float = summary["violation_duration_mean_s"]
    return value


@pytest.mark.slow
def test_vmplaces_table_shape(tmp_path: Path) -> None:
    """REFERENCE.md: DVMS stays flat from 128 to 1,024 hosts (±20 %) and, at 1,024 hosts,
    is below half the centralised scheduler (VMPlaceS's workload, 20 simulated minutes)."""
    dvms_128 = mean_violation(tmp_path, 128, "dvms", 1200.0)
    dvms_1024 = mean_violation(tmp_path, 1024, "dvms", 1200.0)
    central_1024 = mean_violation(tmp_path, 1024, "centralized", 1200.0)
    assert abs(dvms_1024 - dvms_128) <= 0.2 * dvms_128, (dvms_128, dvms_1024)
    assert dvms_1024 < 0.5 * central_1024, (dvms_1024, central_1024)


def intra_share(summary: dict[str, Any]) -> float:
    done = summary["migrations_intra_site"] + summary["migrations_inter_site"]
    return float(summary["migrations_intra_site"] / done) if done else 0.0


@pytest.mark.slow
def test_lbo_keeps_migrations_inside_their_site(tmp_path: Path) -> None:
    """Grid'5000-like sites, Vivaldi probing as in the DVMS prototype (a round every 2 s):
    with LBO most migrations stay inside their site; on the ring (random ids) and the
    random overlay partitions spread over the sites and most migrations cross them."""
    shares = {}
    inter = {}
    for overlay in ("lbo", "ring", "random"):
        settings = {
            "infrastructure.hosts": 128,
            "run.duration_s": 1200.0,
            "overlay.name": overlay,
            "vivaldi.period_s": 2.0,
        }
        summary = run(tmp_path, overlay, **settings)
        assert summary["migrations"] > 50
        shares[overlay] = intra_share(summary)
        inter[overlay] = summary["migrations_inter_site"]
    assert shares["lbo"] >= 0.6, shares
    # ring/random shares wander around 0.3 with the seed (0.27-0.34 over seeds 1-3)
    assert shares["ring"] <= 0.35 and shares["random"] <= 0.35, shares
    assert inter["lbo"] <= 0.4 * inter["ring"], inter
