"""``dvms report RUN_DIR [RUN_DIR ...] [--out DIR]``: plots and tables of runs (or of a
campaign: ``dvms report CAMPAIGN_DIR``)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="figures (PNG+SVG), metrics tables and index.html from run directories",
        description="Write figures, a metrics table (Markdown+CSV) and index.html for one run, "
        "or a side-by-side comparison with overlaid figures for several.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run directories, or one campaign directory (aggregate.csv)")
    parser.add_argument(
        "--out", default=None, help="output directory (default RUN_DIR/report for one run, "
        "./report for several)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from dvms.report import build_report
    from dvms.report.campaign import build_campaign_report, is_campaign_dir
    from dvms.report.runs import load_run

    if len(args.runs) == 1 and is_campaign_dir(args.runs[0]):
        campaign = build_campaign_report(args.runs[0], args.out)
        print(f"wrote {len(campaign.files)} files; open {campaign.index}")
        return 0
    for path in args.runs:
        warning = load_run(path).warning
        if warning:
            print(f"dvms report: warning: {warning}", file=sys.stderr)
    report = build_report(args.runs, args.out)
    skipped = [f"{prefix}{f.name}: {f.note}" for prefix, f in report.figures if not f.files]
    for line in skipped:
        print(f"skipped {line}")
    print(f"wrote {len(report.written())} files; open {report.index}")
    return 0
