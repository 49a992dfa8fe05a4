"""``dvms report``: figures, tables and an index.html from one or several run directories."""

from __future__ import annotations

from dvms.report.build import Report, build_report
from dvms.report.runs import Run, iter_events, load_run
from dvms.report.series import RunSeries, project_2d
from dvms.report.tables import Table, comparison_table

__all__ = [
    "Report",
    "Run",
    "RunSeries",
    "Table",
    "build_report",
    "comparison_table",
    "iter_events",
    "load_run",
    "project_2d",
]
