"""``dvms demo``: the default simulation, compared with the centralised baseline, then plotted.

Runs the embedded default scenario (Grid'5000-like sites, 256 hosts, 2,560 VMs, one
simulated hour) twice — DVMS over the Locality-Based Overlay, and the centralised
Entropy-like scheduler — prints each summary and a side-by-side table, and writes both
runs plus their report (figures, tables, index.html) under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["DESCRIPTION", "register", "run"]

DESCRIPTION = """\
Run the default simulation twice and compare: DVMS over the Locality-Based Overlay, and
the centralised Entropy-like baseline, on the embedded Grid'5000-like scenario (256 hosts,
2,560 VMs, one simulated hour; about a minute on a laptop).

Prints each run's summary and a side-by-side table, and writes under --out (default
runs/demo): dvms-lbo/ and centralized/ (summary.json, events.jsonl.gz, scenario.toml) and
report/ (figures, metrics tables, index.html). An existing run there is refused unless
--force. Then: dvms dashboard runs/demo/dvms-lbo replays a run in the browser."""


RUNS = (
    ("dvms-lbo", {"scheduler": "dvms", "overlay": "lbo"}),
    ("centralized", {"scheduler": "centralized"}),
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the default simulation (DVMS+LBO vs centralised) and write results and plots",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--force", action="store_true",
                        help="replace the runs of a previous demo under --out")
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="output (runs/demo)")
    parser.add_argument("--hosts", type=int, metavar="N", help="hosts (default scenario: 256)")
    parser.add_argument("--duration", type=float, metavar="S", help="simulated seconds (3600)")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dvms.app.commands.simulate import flag_overrides
    from dvms.report import build_report
    from dvms.rundir import RunDirectory
    from dvms.summary import summary_table
    from sim.run import simulate
    from sim.scenario import load_scenario

    console = Console()
    out = Path(args.out)
    base = flag_overrides(args)
    for name, _ in RUNS:  # refuse a reused --out before the first run, not after it
        RunDirectory(out / name, force=args.force)
    run_dirs = []
    for name, choice in RUNS:
        overrides = dict(base)
        overrides["scheduler.name"] = choice["scheduler"]
        if "overlay" in choice:
            overrides["overlay.name"] = choice["overlay"]
        scenario = load_scenario(None, overrides)
        console.print(
            f"[bold]simulating {name}[/]: {scenario.infrastructure.hosts} hosts, "
            f"{scenario.run.duration_s:.0f} s"
        )
        summary = simulate(scenario, out / name, force=args.force)
        console.print(summary_table(summary))
        run_dirs.append(str(out / name))
    report = build_report(run_dirs, str(out / "report"))
    print(report.table.markdown())
    console.print(f"results in {out}/ ; plots and tables: {report.index}")
    return 0
