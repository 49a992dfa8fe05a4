"""A campaign on a Dask ``LocalCluster`` against the same points one after another.

The grid (48 points: 64/128 hosts × 4 schedulers × 6 seeds, 1,800 simulated s) runs
twice from scratch: once with ``run_campaign`` (one worker process per core), once calling
``run_point`` for every point in this process. Figures: both wall times and the speed-up.
``--quick``: 4 points of 16 hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from dvms.campaign import load_campaign, run_campaign, run_point

CAMPAIGN = """
[campaign]
name = "bench"
seeds = {seeds}

[base]
"run.duration_s" = {duration}

[grid]
hosts = {hosts}
scheduler = ["none", "centralized", "hierarchical", "dvms"]
"""


def measure(hosts: list[int], seeds: int, duration: float, workers: int | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="dvms-bench-campaign-"))
    try:
        path = root / "campaign.toml"
        path.write_text(CAMPAIGN.format(seeds=seeds, duration=duration, hosts=hosts))
        spec = load_campaign(path, root / "dask")
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = run_campaign(spec, workers=workers, progress=False)
        dask_s = time.perf_counter() - started
        assert not result.failed and len(result.ran) == len(spec.points)
        dask_points = sum(_wall(p.run_dir) for p in spec.points)
        serial = load_campaign(path, root / "serial")
        started = time.perf_counter()
        for point in serial.points:
            run_point(point)
        serial_s = time.perf_counter() - started
        serial_points = sum(_wall(p.run_dir) for p in serial.points)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "points": len(spec.points),
        "workers": workers or os.cpu_count(),
        "localcluster_wall_s": round(dask_s, 2),
        "one_process_wall_s": round(serial_s, 2),
        "speedup": round(serial_s / dask_s, 2),
        "localcluster_points_wall_sum_s": round(dask_points, 2),
        "one_process_points_wall_sum_s": round(serial_points, 2),
        "load_average_before": round(load_before, 2),
        "cores": os.cpu_count(),
    }


def _wall(run_dir: str) -> float:
    """The point's own wall time (its summary): inflated when cores are contended."""
    return float(json.loads((Path(run_dir) / "summary.json").read_text())["wall_s"])


def main(quick: bool = False) -> dict[str, Any]:
    if quick:
        return measure([16], 1, 300.0, None)
    return measure([64, 128], 6, 1800.0, None)


if __name__ == "__main__":
    import sys

    print(json.dumps(main("--quick" in sys.argv), indent=2))
