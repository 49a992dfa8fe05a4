"""The side-by-side comparison table of run summaries (Markdown and CSV).

Rows are the summary's scalar metrics (the DESIGN.md contract keys first, then any
others alphabetically, then ``messages.<type>``); columns are runs. Numbers are
written exactly as the summaries hold them (shortest round-trip form), so a reader
of the table gets the summaries' values back.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTRACT_KEYS", "Table", "comparison_table", "format_value"]

CONTRACT_KEYS = (
    "scheduler", "overlay", "seed", "hosts", "vms", "sites", "duration_s",
    "violations", "violation_time_s", "violation_duration_mean_s", "violation_duration_sd_s",
    "migrations", "migrations_intra_site", "migrations_inter_site", "migrations_failed",
    "migration_duration_mean_s", "migrated_gib",
    "isp_started", "isp_solved", "isp_failed", "partition_size_mean",
    "scheduler_compute_s", "energy_kwh", "vivaldi_median_error", "vms_lost",
    "wall_s", "events_per_wall_s", "peak_rss_mib",
)  # fmt: skip
SKIPPED = frozenset({"schema", "scenario", "messages"})


@dataclass(frozen=True)
class Table:
    """Rows of (metric, value per run); values as the summaries hold them."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Any, ...]], ...]

    def markdown(self) -> str:
        head = "| metric | " + " | ".join(_md(c) for c in self.columns) + " |"
        rule = "|---|" + "---:|" * len(self.columns)
        body = [
            f"| {_md(name)} | " + " | ".join(_md(format_value(v)) for v in values) + " |"
            for name, values in self.rows
        ]
        return "\n".join([head, rule, *body]) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["metric", *self.columns])
        for name, values in self.rows:
            writer.writerow([name, *(format_value(v) for v in values)])
        return buffer.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def format_value(value: Any) -> str:
    """A cell: '' for missing, JSON-like for null/bools, repr (round-trip) for floats."""
    if value is _MISSING:
        return ""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


_MISSING: Any = object()


def comparison_table(labels: Sequence[str], summaries: Sequence[dict[str, Any]]) -> Table:
    """The table of scalar summary metrics, one column per run (absent → empty cell)."""
    present = {k for s in summaries for k, v in s.items() if _scalar(v) and k not in SKIPPED}
    names = [k for k in CONTRACT_KEYS if k in present]
    names += sorted(present - set(CONTRACT_KEYS))
    rows = [(k, tuple(s.get(k, _MISSING) for s in summaries)) for k in names]
    types = sorted(
        {str(t) for s in summaries if isinstance(s.get("messages"), dict) for t in s["messages"]}
    )
    for t in types:
        values = tuple(
            s["messages"].get(t, _MISSING) if isinstance(s.get("messages"), dict) else _MISSING
            for s in summaries
        )
        rows.append((f"messages.{t}", values))
    return Table(tuple(labels), tuple(rows))
