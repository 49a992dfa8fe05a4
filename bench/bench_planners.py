"""Planner solve times: 8-host / 80-VM partitions (both planners), whole infrastructures
(the repair heuristic, as the centralised baseline uses it). VMPlaceS workload: 10 VMs of
1 vCPU / 1 GiB per 700 %-CPU / 32 GiB host, loads N(60, 20) in slots of 10, about 10 % of the
hosts overloaded (at least one). Wall times of ``plan`` calls (perf_counter), in ms.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

from dvms.scheduler import RepairPlanner, SolveCostModel, overloaded_hosts
from dvms.scheduler.cpsat import CpSatPlanner
from dvms.testing.plans import check_plan_parallel, vmplaces_problem


def _stats_ms(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(1e3 * statistics.median(ordered), 4),
        "p95_ms": round(1e3 * ordered[int(0.95 * (len(ordered) - 1))], 4),
        "max_ms": round(1e3 * ordered[-1], 4),
    }


def partitions(count: int) -> dict[str, Any]:
    problems = [vmplaces_problem(8, seed) for seed in range(count)]
    repair, cpsat = RepairPlanner(), CpSatPlanner()
    figures: dict[str, Any] = {"problems": count, "hosts": 8, "vms": 80}
    times: list[float] = []
    plans = []
    for hosts, vms in problems:
        started = time.perf_counter()
        plans.append(repair.plan(hosts, vms))
        times.append(time.perf_counter() - started)
    figures["repair"] = _stats_ms(times) | {
        "no_plan": sum(p is None for p in plans),
        "migrations_mean": round(statistics.mean(len(p) for p in plans if p), 3),
    }
    times, statuses, better = [], Counter[str](), 0
    for (hosts, vms), heuristic in zip(problems, plans, strict=True):
        started = time.perf_counter()
        plan = cpsat.plan(hosts, vms)
        times.append(time.perf_counter() - started)
        statuses[cpsat.last_status] += 1
        if plan is not None:
            check_plan_parallel(hosts, vms, plan)
            cost = (len(plan), plan.moved_mib)
            if heuristic is None or cost < (len(heuristic), heuristic.moved_mib):
                better += 1
    figures["cpsat"] = _stats_ms(times) | {"status": dict(sorted(statuses.items())),
                                           "better_than_repair": better}  # fmt: skip
    figures["charged_cost_s"] = round(SolveCostModel().cost_s(8, 80), 6)
    return figures


def infrastructure(hosts_count: int, runs: int) -> dict[str, Any]:
    repair = RepairPlanner()
    times: list[float] = []
    figures: dict[str, Any] = {"hosts": hosts_count, "vms": 10 * hosts_count, "runs": runs}
    for seed in range(runs):
        hosts, vms = vmplaces_problem(hosts_count, seed, overloaded_share=0.0)
        started = time.perf_counter()
        plan, unfixed = repair.plan_partial(hosts, vms)
        times.append(time.perf_counter() - started)
        if seed == 0:
            figures["overloaded"] = len(overloaded_hosts(hosts, vms))
            figures["migrations"] = len(plan)
            figures["unfixed"] = len(unfixed)
            if not unfixed:
                check_plan_parallel(hosts, vms, plan)
    figures["repair"] = _stats_ms(times)
    figures["charged_cost_s"] = SolveCostModel().cost_s(hosts_count, 10 * hosts_count)
    return figures


def main(quick: bool) -> dict[str, Any]:
    return {
        "partition_8x80": partitions(100 if quick else 1000),
        "global_1024x10240": infrastructure(1024, 2 if quick else 7),
        "global_10000x100000": infrastructure(10_000, 1 if quick else 5),
    }
