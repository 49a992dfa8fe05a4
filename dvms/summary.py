"""``summary.json``: the metrics of a run, a contract read by scripts and other tools.

Schema ``dvms.summary/1``: the keys of DESIGN.md's table keep their names and meanings
(more may be added). ``build_summary`` orders them as the table does; floats are rounded
to 9 significant digits so the file is stable and readable. ``WALL_KEYS`` are the cost of
the run (machine-dependent): every other key is the same for the same scenario and seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = ["SCHEMA", "WALL_KEYS", "build_summary", "summary_table", "write_summary"]

SCHEMA = "dvms.summary/1"
WALL_KEYS = ("wall_s", "events_per_wall_s", "peak_rss_mib")
"""Keys excluded from determinism checks."""

_ORDER = (
    "schema",
    "seed",
    "scenario",
    "hosts",
    "vms",
    "sites",
    "duration_s",
    "scheduler",
    "overlay",
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
    "messages",
    "vivaldi_median_error",
    "vms_lost",
    "wall_s",
    "events_per_wall_s",
    "peak_rss_mib",
)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def build_summary(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The summary: ``fields`` in the contract's order, extra keys after, floats rounded."""
    out: dict[str, Any] = {"schema": SCHEMA}
    for key in _ORDER:
        if key in fields:
            out[key] = fields[key]
    for key, value in fields.items():
        if key not in out:
            out[key] = value
    missing = [k for k in _ORDER if k not in out]
    if missing:
        raise ValueError(f"summary lacks {missing}")
    return {k: (v if k == "scenario" else _round(v)) for k, v in out.items()}


def write_summary(path: str | Path, summary: Mapping[str, Any]) -> None:
    """Write JSON, two-space indented, keys in the summary's order, a final newline."""
    Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summary_table(summary: Mapping[str, Any]) -> Table:
    """A two-column table of the headline figures, for the terminal."""
    table = Table(title="dvms simulate: summary", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("hosts / VMs / sites", f"{summary['hosts']} / {summary['vms']} / {summary['sites']}"),
        ("simulated time (s)", _fmt(summary["duration_s"])),
        ("scheduler / overlay", f"{summary['scheduler']} / {summary['overlay'] or '-'}"),
        ("violations", _fmt(summary["violations"])),
        ("violation time (s)", _fmt(summary["violation_time_s"])),
        (
            "violation duration (s, mean ± sd)",
            f"{summary['violation_duration_mean_s']:.2f} ± "
            f"{summary['violation_duration_sd_s']:.2f}",
        ),
        (
            "migrations (intra / inter / failed)",
            f"{summary['migrations']} ({summary['migrations_intra_site']} / "
            f"{summary['migrations_inter_site']} / {summary['migrations_failed']})",
        ),
        ("migration duration mean (s)", _fmt(summary["migration_duration_mean_s"])),
        ("migrated (GiB)", _fmt(summary["migrated_gib"])),
        (
            "ISPs started / solved / failed",
            f"{summary['isp_started']} / {summary['isp_solved']} / {summary['isp_failed']}",
        ),
        ("scheduler compute (s)", _fmt(summary["scheduler_compute_s"])),
        ("energy (kWh)", _fmt(summary["energy_kwh"])),
        ("messages", _fmt(sum(summary["messages"].values()))),
        ("Vivaldi median error", _fmt(summary["vivaldi_median_error"])),
        ("VMs lost", _fmt(summary["vms_lost"])),
        ("wall time (s)", _fmt(summary["wall_s"])),
        ("events per wall s", _fmt(summary["events_per_wall_s"])),
        ("peak RSS (MiB)", _fmt(summary["peak_rss_mib"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
