"""VMPlaceS's table shape and the locality shares, in a couple of minutes.

    .venv/bin/python scripts/vmplaces_table.py [--duration 1200] [--hosts 128 1024]

Prints, per size, the mean ± sd violation duration of the centralised scheduler and DVMS+LBO,
then the intra-site share of migrations for DVMS over lbo, ring and random (Vivaldi rounds every
2 s, as the DVMS prototype). Runs go to a temporary directory.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from sim.run import simulate
from sim.scenario import load_scenario


def run(out: Path, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return simulate(load_scenario(None, overrides), out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1200.0)
    parser.add_argument("--hosts", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="dvms-table-"))
    base = {"run.duration_s": args.duration, "run.seed": args.seed}
    print("| hosts | centralised mean ± sd (s) | DVMS+LBO mean ± sd (s) |\n|---|---|---|")
    for hosts in args.hosts:
        cells = []
        for sched in ("centralized", "dvms"):
            s = run(
                out,
                f"{hosts}-{sched}",
                {
                    **base,
                    "infrastructure.hosts": hosts,
                    "scheduler.name": sched,
                    "overlay.name": "lbo",
                },
            )
            mean, sd = s["violation_duration_mean_s"], s["violation_duration_sd_s"]
            cells.append(f"{mean:.2f} ± {sd:.2f}")
        print(f"| {hosts} | {cells[0]} | {cells[1]} |", flush=True)
    print("\n| overlay | intra-site share of migrations | migrations |\n|---|---|---|")
    for overlay in ("lbo", "ring", "random"):
        s = run(
            out,
            f"loc-{overlay}",
            {
                **base,
                "infrastructure.hosts": min(args.hosts),
                "scheduler.name": "dvms",
                "overlay.name": overlay,
                "vivaldi.period_s": 2.0,
            },
        )
        done = s["migrations_intra_site"] + s["migrations_inter_site"]
        share = s["migrations_intra_site"] / done if done else 0.0
        print(f"| {overlay} | {share:.1%} | {done} |", flush=True)


if __name__ == "__main__":
    main()
