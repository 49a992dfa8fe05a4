"""Measure CP-SAT solve times over problem sizes and fit the solve cost model.

    .venv/bin/python scripts/fit_cost_model.py            # measure, write the CSV, fit, print
    .venv/bin/python scripts/fit_cost_model.py --fit-only # re-fit the committed CSV, print

Problems: VMPlaceS-like (hosts of 700 % CPU / 32 GiB, 10 VMs of 1 vCPU / 1 GiB per host,
loads max(N(60, 20), 0) capped at 100 in slots of 10), with about 10 % of the hosts (at
least one) overloaded. Each is solved by ``CpSatPlanner`` with no size cap and VMPlaceS's
wall-clock time limit ``min(30, hosts / 8)`` s; the wall time of the whole ``plan`` call (heuristic
hint, model construction, solve) is recorded. The fit (``fit_solve_times`` in
``dvms.scheduler.cost``) is over the median time per size, in log space, with the time
limit as the model's cap; paste the printed coefficients into
``dvms/scheduler/cost.py`` (FITTED_A, FITTED_B, FITTED_C).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

from dvms.scheduler.cost import SolveCostModel, fit_solve_times, vmplaces_time_limit_s
from dvms.scheduler.cpsat import CpSatConfig, CpSatPlanner
from dvms.scheduler.repair import RepairPlanner, overloaded_hosts
from dvms.testing.plans import vmplaces_problem

CSV = Path(__file__).resolve().parent.parent / "dvms" / "scheduler" / "data" / "solve_times.csv"
FIELDS = [
    "hosts", "vms", "seed", "overloaded", "movable_vms", "time_limit_s",
    "status", "heuristic_migrations", "migrations", "wall_s",
]  # fmt: skip


def measure(sizes: list[int], seeds: int) -> list[dict[str, object]]:
    # VMPlaceS's wall-clock time limit (the charged time is capped by it anyway).
    planner = CpSatPlanner(
        CpSatConfig(deterministic=False, max_hosts=10**9, max_movable_vms=10**9)
    )
    heuristic = RepairPlanner()
    rows: list[dict[str, object]] = []
    for n in sizes:
        for seed in range(seeds):
            hosts, vms = vmplaces_problem(n, seed)
            over = overloaded_hosts(hosts, vms)
            hint = heuristic.plan(hosts, vms)
            started = time.perf_counter()
            plan = planner.plan(hosts, vms)
            wall = time.perf_counter() - started
            row: dict[str, object] = {
                "hosts": n,
                "vms": len(vms),
                "seed": seed,
                "overloaded": len(over),
                "movable_vms": sum(1 for vm in vms if vm.host in over),
                "time_limit_s": planner.time_limit_s(n),
                "status": planner.last_status,
                "heuristic_migrations": "" if hint is None else len(hint),
                "migrations": "" if plan is None else len(plan),
                "wall_s": round(wall, 6),
            }
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def fit(rows: list[dict[str, str]]) -> tuple[float, float, float]:
    a, b, c = fit_solve_times((int(row["hosts"]), float(row["wall_s"])) for row in rows)
    by_size: dict[int, list[float]] = {}
    for row in rows:
        by_size.setdefault(int(row["hosts"]), []).append(float(row["wall_s"]))
    model = SolveCostModel(a, b, c)
    print(f"{'hosts':>6} {'median_s':>10} {'model_s':>10} {'limit_s':>8}")
    for n, times in sorted(by_size.items()):
        median, limit = statistics.median(times), vmplaces_time_limit_s(n)
        print(f"{n:>6} {median:>10.4f} {model.cost_s(n, 10 * n):>10.4f} {limit:>8.2f}")
    return a, b, c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-only", action="store_true", help="re-fit the committed CSV")
    parser.add_argument("--sizes", default="4,8,12,16,24,32,48,64,128,256", help="host counts")
    parser.add_argument("--seeds", type=int, default=5, help="problems per size")
    parser.add_argument("--csv", type=Path, default=CSV)
    args = parser.parse_args(argv)
    if not args.fit_only:
        sizes = [int(s) for s in args.sizes.split(",")]
        measured = measure(sizes, args.seeds)
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(measured)
    with args.csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    a, b, c = fit(rows)
    print(f"FITTED_A = {a:.6g}\nFITTED_B = {b:.6g}\nFITTED_C = {c:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
