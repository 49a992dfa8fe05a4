"""One campaign point: run it (``run_point``), and tell whether it already ran.

A point's run directory holds what ``simulate`` writes (``summary.json`` last) plus
``point.json`` (its id, parameters, seed and overrides, written first). A point is complete
when ``summary.json`` parses and ``point.json`` names the same overrides; anything else
(a directory left by a killed worker, a point whose settings changed, a recorded failure) is
incomplete, and its directory is cleared before the point runs again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dvms.campaign.spec import PointSpec
from sim.run import simulate
from sim.scenario import load_scenario

__all__ = ["FAILURE", "completed_summary", "record_failure", "run_point"]

FAILURE = "failure.json"
"""Written in a point's run directory when it failed (its exception)."""


def _identity(point: PointSpec) -> dict[str, Any]:
    return {
        "id": point.id,
        "params": dict(point.params),
        "seed": point.seed,
        "scenario": point.scenario,
        "overrides": dict(point.overrides),
    }


def completed_summary(point: PointSpec) -> dict[str, Any] | None:
    """The point's summary if it ran to completion with these settings, else None."""
    run_dir = Path(point.run_dir)
    try:
        identity = json.loads((run_dir / "point.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if identity != json.loads(json.dumps(_identity(point))) or not isinstance(summary, dict):
        return None
    return summary


def run_point(point: PointSpec) -> dict[str, Any]:
    """Run one point into its run directory (a previous attempt's removed first; the run is
    written aside and renamed on when complete, ``sim.run``) and return its summary; the
    point's identity is written last, so a point is complete only once both are there."""
    run_dir = Path(point.run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    scenario = load_scenario(point.scenario, point.overrides_dict())
    summary = simulate(scenario, run_dir)
    (run_dir / "point.json").write_text(json.dumps(_identity(point), indent=2) + "\n")
    return summary


def record_failure(point: PointSpec, error: BaseException, traceback: str) -> str:
    """Write the point's ``failure.json``; return its one-line description."""
    line = (
        f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    )
    run_dir = Path(point.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILURE).write_text(
        json.dumps({"id": point.id, "error": line, "traceback": traceback}, indent=2) + "\n"
    )
    return line
