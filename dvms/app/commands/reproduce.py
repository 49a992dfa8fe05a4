"""``dvms reproduce {vmplaces,europar2014} [--quick]``: a published experiment, our numbers
with 95 % intervals beside the published ones.

Runs the campaign shipped in ``dvms/campaign/<name>.toml`` (``--quick``: the small
``<name>-quick.toml``) like ``dvms campaign`` does (resumable, on Dask), then writes
``OUT/reproduce.md``, ``OUT/reproduce.csv`` and ``OUT/reproduce.png`` beside the campaign's
outputs. docs/campaign.md.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from dvms.campaign.reproduce import EXPERIMENTS

    parser = subparsers.add_parser(
        "reproduce",
        help="a published experiment (VMPlaceS's table, Euro-Par 2014's locality) as a campaign",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which experiment")
    parser.add_argument("--quick", action="store_true", help="a small version (CI-sized)")
    parser.add_argument("--seeds", type=int, metavar="K", help="seeds per point (default 5)")
    parser.add_argument("--out", metavar="DIR", help="output (default campaigns/<experiment>)")
    parser.add_argument("--scheduler-address", metavar="tcp://HOST:PORT", help="a Dask cluster")
    parser.add_argument("--workers", type=int, metavar="N", help="LocalCluster workers")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dvms.campaign.reproduce import reproduce
    from dvms.errors import DvmsError, InputError

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be >= 1")
    result = reproduce(
        args.experiment,
        quick=args.quick,
        out_dir=args.out,
        seeds=args.seeds,
        scheduler_address=args.scheduler_address,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(result.markdown)
    print(f"wrote {', '.join(str(p) for p in result.files)}")
    line = result.campaign.failure_line()
    if line is not None:
        raise DvmsError(line)
    return 0
