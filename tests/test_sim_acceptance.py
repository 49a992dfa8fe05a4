"""Issue 4, acceptance 4: the centralised baseline against no scheduler (slow runs).

- On the default scenario (256 Grid'5000-like hosts, one hour), the centralised scheduler
  reduces the cumulated violation time.
- It degrades with scale as in VMPlaceS: its mean violation duration at 1,024 hosts is
  larger than at 128 (the solve time charged by the cost model grows with the problem and
  each run waits for its slowest migration). Vivaldi is switched off in these two runs:
  the centralised scheduler does not use it and its results do not depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.run import simulate
from sim.scenario import load_scenario

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, name: str, **overrides: Any) -> dict[str, Any]:
    return simulate(load_scenario(overrides=overrides), tmp_path / name)


def test_centralized_reduces_violation_time_on_the_default_scenario(tmp_path: Path) -> None:
    none = _run(tmp_path, "none", **{"scheduler.name": "none"})
    central = _run(tmp_path, "central", **{"scheduler.name": "centralized"})
    assert none["hosts"] == central["hosts"] == 256
    assert none["migrations"] == 0 and central["migrations"] > 100
    assert central["violation_time_s"] < 0.8 * none["violation_time_s"]
    assert central["violation_duration_mean_s"] < none["violation_duration_mean_s"]
    assert central["vms_lost"] == none["vms_lost"] == 0


def test_centralized_mean_violation_grows_from_128_to_1024_hosts(tmp_path: Path) -> None:
    common = {"scheduler.name": "centralized", "vivaldi.enabled": False}
    small = _run(tmp_path, "128", **common, **{"infrastructure.hosts": 128})
    large = _run(tmp_path, "1024", **common, **{"infrastructure.hosts": 1024})
    assert large["violation_duration_mean_s"] > 1.15 * small["violation_duration_mean_s"]
    assert large["scheduler_compute_s"] / large["scheduler_runs"] > (
        small["scheduler_compute_s"] / small["scheduler_runs"]
    )
