"""``dvms campaign CAMPAIGN.toml``: run a grid of scenarios × seeds on Dask, resumably.

Points run on a ``LocalCluster`` sized to the machine (``--workers`` to change it) or on an
existing Dask cluster (``--scheduler-address tcp://HOST:PORT``). Complete points are
skipped; incomplete ones run again. Writes ``OUT/points/<id>/`` (one run directory per
point), ``OUT/results.csv``, ``OUT/aggregate.csv`` (mean ± 95 % CI over seeds) and
``OUT/campaign.md``. A failed point does not stop the others; the command then exits 1 with
one line naming it. docs/campaign.md.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="run a grid of scenarios × seeds on Dask (resumable), with 95 % CIs",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("campaign", metavar="CAMPAIGN.toml", help="the campaign file")
    parser.add_argument(
        "--out", metavar="DIR", help="output directory (default campaigns/<campaign.name>)"
    )
    parser.add_argument(
        "--scheduler-address",
        metavar="tcp://HOST:PORT",
        help="an existing Dask cluster's scheduler (default: a LocalCluster on this machine)",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="LocalCluster worker processes (default: cores)"
    )
    parser.add_argument(
        "--list", action="store_true", help="print the points and whether each is complete"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dvms.campaign import completed_summary, load_campaign, run_campaign
    from dvms.errors import DvmsError, InputError

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be >= 1")
    if args.scheduler_address is not None and args.workers is not None:
        raise InputError("--workers: only for the LocalCluster (not with --scheduler-address)")
    spec = load_campaign(args.campaign, args.out)
    if args.list:
        for point in spec.points:
            state = "complete" if completed_summary(point) is not None else "to run"
            print(f"{point.id}\t{state}\t{point.run_dir}")
        return 0
    result = run_campaign(
        spec,
        scheduler_address=args.scheduler_address,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(
        f"{len(result.ran)} points run, {len(result.skipped)} complete before, "
        f"{len(result.failed)} failed in {result.wall_s:.1f} s; "
        f"wrote {', '.join(str(p) for p in result.files)}"
    )
    line = result.failure_line()
    if line is not None:
        raise DvmsError(line)
    return 0
