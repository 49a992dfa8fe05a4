"""`make bench`: run every ``bench/bench_*.py`` module and write its figures.

Each module provides ``main(quick: bool) -> dict`` returning JSON-able figures; they are
written to ``bench/results/<name>.json`` and printed. ``python -m bench.run NAME...``
runs only those; ``--quick`` runs reduced sizes (for a smoke check, not for figures);
``--100k`` adds the 100,000-host point to the ``scale`` growth curve (long: opt-in).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

import bench

RESULTS = Path(__file__).parent / "results"


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    parser.add_argument("--quick", action="store_true", help="reduced sizes, smoke check only")
    parser.add_argument(
        "--100k", dest="big", action="store_true",
        help="scale: add the 100,000-host point (long; same as DVMS_BENCH_100K=1)",
    )
    args = parser.parse_args(argv)
    if args.big:
        os.environ["DVMS_BENCH_100K"] = "1"
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        known = available()
        print(f"bench: error: unknown benchmark(s) {unknown}; known: {known}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== bench {name}{' (quick)' if args.quick else ''}", flush=True)
        started = time.time()
        figures = module.main(quick=args.quick)
        figures["bench_wall_s"] = round(time.time() - started, 2)
        figures["quick"] = args.quick
        suffix = "-quick" if args.quick else ""
        (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
