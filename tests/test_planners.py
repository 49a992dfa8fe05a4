"""The repair heuristic and the CP-SAT planner: hand-made cases and property tests."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dvms.errors import InputError
from dvms.scheduler import (
    VM,
    CpSatConfig,
    CpSatPlanner,
    Host,
    MeasuredCost,
    Migration,
    Plan,
    RepairConfig,
    RepairPlanner,
    SolveCostModel,
    make_planner,
    overloaded_hosts,
)
from dvms.testing import check_plan, check_plan_parallel
from dvms.testing.plans import vmplaces_problem
from dvms.testing.strategies import PartitionCase, hosts_and_vms, partitions

REPAIR = RepairPlanner(RepairConfig(headroom=0.1))  # the instances below were built for 10 %
CPSAT = CpSatPlanner(CpSatConfig(time_limit_s=2.0))


def host(name: str, cpu: float = 700.0, mem: int = 32768) -> Host:
    return Host(name, cpu, mem)


def vms_on(name: str, *loads: float, mem: int = 1024) -> list[VM]:
    return [VM(f"{name}-{i}", name, load, mem) for i, load in enumerate(loads)]


# ---- hand-made cases -------------------------------------------------------------------


@pytest.mark.parametrize("planner", [REPAIR, CPSAT], ids=lambda p: p.name)
def test_nothing_overloaded_gives_an_empty_plan(planner: RepairPlanner | CpSatPlanner) -> None:
    hosts = [host("a"), host("b")]
    vms = vms_on("a", *[100] * 7) + vms_on("b", 50)  # a exactly at capacity
    assert planner.plan(hosts, vms) == Plan(())
    assert planner.plan(hosts, []) == Plan(())


@pytest.mark.parametrize("planner", [REPAIR, CPSAT], ids=lambda p: p.name)
def test_one_overloaded_host_the_obvious_single_move(
    planner: RepairPlanner | CpSatPlanner,
) -> None:
    # a: 7 x 100 + 50 = 750 > 700. One VM must go; the 50 one suffices and is the lightest.
    hosts = [host("a"), host("b")]
    vms = vms_on("a", 100, 100, 100, 100, 100, 100, 100, 50)
    assert planner.plan(hosts, vms) == Plan((Migration("a-7", "a", "b", 1024),))


def test_destination_is_best_fit_keeping_headroom() -> None:
    # a needs 50 out. b: 500 (keeps 130 > 70 headroom after), c: 100, d: 640 (free 60).
    hosts = [host("a"), host("b"), host("c"), host("d")]
    vms = vms_on("a", *[100] * 7, 50) + vms_on("b", 500) + vms_on("c", 100) + vms_on("d", 640)
    assert REPAIR.plan(hosts, vms) == Plan((Migration("a-7", "a", "b", 1024),))
    # without headroom, plain best-fit: d, the tightest that fits
    tight = RepairPlanner(RepairConfig(headroom=0.0))
    assert tight.plan(hosts, vms) == Plan((Migration("a-7", "a", "d", 1024),))
    # when no host keeps the headroom, best-fit among those that fit
    only_d = [h for h in hosts if h.id in ("a", "d")]
    only_d_vms = [v for v in vms if v.host in ("a", "d")]
    assert REPAIR.plan(only_d, only_d_vms) == Plan((Migration("a-7", "a", "d", 1024),))


def test_destinations_on_the_source_site_come_first() -> None:
    # a (site x) needs 50 out; b (site y) is the best fit overall, c (site x) also fits.
    def at(name: str, site: str) -> Host:
        return Host(name, 700.0, 32768, site)

    hosts = [at("a", "x"), at("b", "y"), at("c", "x")]
    vms = vms_on("a", *[100] * 7, 50) + vms_on("b", 500) + vms_on("c", 100)
    assert REPAIR.plan(hosts, vms) == Plan((Migration("a-7", "a", "c", 1024),))
    # c is full: the VM leaves the site rather than stay on an overloaded host
    full = vms_on("a", *[100] * 7, 50) + vms_on("b", 500) + vms_on("c", 680)
    assert REPAIR.plan(hosts, full) == Plan((Migration("a-7", "a", "b", 1024),))
    # without sites, best-fit over all: b
    plain = [host("a"), host("b"), host("c")]
    assert REPAIR.plan(plain, vms) == Plan((Migration("a-7", "a", "b", 1024),))


def test_fewest_vms_largest_first_then_lightest_sufficient() -> None:
    # a: 100 x 6 + 90 + 60 + 50 = 800, 100 over: one 100 % VM is the only single move
    hosts = [host("a"), host("b")]
    vms = vms_on("a", 100, 100, 100, 100, 100, 100, 90, 60, 50)
    assert REPAIR.plan(hosts, vms) == Plan((Migration("a-0", "a", "b", 1024),))
    # 110 over: no single VM does; the lightest pair that suffices is 60 + 50
    vms = vms_on("a", 100, 100, 100, 100, 100, 100, 100, 60, 50)
    plan = REPAIR.plan(hosts, vms)
    assert plan == Plan((Migration("a-7", "a", "b", 1024), Migration("a-8", "a", "b", 1024)))
    # 150 over: largest first takes 100 then 60; the swap pass lightens it to 90 + 60
    vms = vms_on("a", 100, 100, 100, 100, 100, 100, 100, 90, 60)
    plan = REPAIR.plan(hosts, vms)
    assert plan == Plan((Migration("a-7", "a", "b", 1024), Migration("a-8", "a", "b", 1024)))


def test_memory_overload_moves_the_lightest_vm() -> None:
    hosts = [host("a", mem=8192), host("b")]
    vms = vms_on("a", 50, 40, 30, 20, 10, 60, 70, 80, 90)  # 9 GiB on 8 GiB
    assert REPAIR.plan(hosts, vms) == Plan((Migration("a-4", "a", "b", 1024),))
    assert CPSAT.plan(hosts, vms) == Plan((Migration("a-4", "a", "b", 1024),))


def test_cpsat_moves_less_memory_than_the_heuristic() -> None:
    # 50 % over; the heuristic takes the lightest CPU (50 %, 4 GiB), CP-SAT the 1 GiB one.
    hosts = [host("a"), host("b")]
    vms = [*vms_on("a", *[100] * 6, mem=2048), VM("x", "a", 40, 1024)]
    vms += [VM("big", "a", 50, 4096), VM("small", "a", 60, 1024)]
    assert REPAIR.plan(hosts, vms) == Plan((Migration("big", "a", "b", 4096),))
    assert CPSAT.plan(hosts, vms) == Plan((Migration("small", "a", "b", 1024),))
    assert CPSAT.last_status == "OPTIMAL"


def test_a_vm_that_fits_nowhere_is_replaced_by_another() -> None:
    # a: 7 x 100 + 60 (4 GiB): the 60 one would do, but b lacks the memory for it.
    hosts = [host("a"), host("b", mem=2048)]
    vms = [*vms_on("a", *[100] * 7), VM("fat", "a", 60, 4096)]
    assert REPAIR.plan(hosts, vms) == Plan((Migration("a-0", "a", "b", 1024),))


def test_unfixable_hosts_give_none_and_plan_partial_fixes_the_rest() -> None:
    hosts = [host("a"), host("b"), host("c", cpu=250)]
    vms = vms_on("a", *[100] * 8) + vms_on("b", 100, 100, 100, 100, 100, 100, 100, 50)
    vms += vms_on("c", 150)  # c has 100 free: a needs 100 out, b 50: not both
    assert REPAIR.plan(hosts, vms) is None
    plan, unfixed = REPAIR.plan_partial(hosts, vms)
    assert plan == Plan((Migration("a-0", "a", "c", 1024),))  # a is the more overloaded
    assert unfixed == ["b"]
    assert CPSAT.plan(hosts, vms) is None
    assert CPSAT.last_status == "INFEASIBLE"
    assert CPSAT.plan_partial(hosts, vms) == (plan, ["b"])


def test_cpsat_finds_a_plan_where_the_heuristic_fails() -> None:
    hosts = [host("h0", 300, 4096), host("h1", 300, 4096), host("h2", 300, 8192)]
    vms = [
        VM("h0-0", "h0", 60, 512), VM("h0-1", "h0", 80, 2048), VM("h0-2", "h0", 90, 2048),
        VM("h0-3", "h0", 100, 512), VM("h0-4", "h0", 50, 2048), VM("h0-5", "h0", 40, 2048),
        VM("h1-0", "h1", 80, 512), VM("h1-1", "h1", 80, 512), VM("h2-0", "h2", 100, 512),
        VM("h2-1", "h2", 60, 2048), VM("h2-2", "h2", 30, 1024),
    ]  # fmt: skip
    assert REPAIR.plan(hosts, vms) is None
    plan = CPSAT.plan(hosts, vms)
    assert plan is not None and len(plan) == 3 and plan.moved_mib == 6144
    check_plan(hosts, vms, plan)
    check_plan_parallel(hosts, vms, plan)


def test_size_cap_returns_the_heuristic_plan() -> None:
    capped = CpSatPlanner(CpSatConfig(max_hosts=2))
    hosts = [host("a"), host("b"), host("c")]
    vms = [*vms_on("a", *[100] * 6, 40), VM("big", "a", 50, 4096), VM("small", "a", 60, 1024)]
    assert capped.plan(hosts, vms) == REPAIR.plan(hosts, vms)
    assert capped.last_status == "size-cap"


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="VM 'x' is on host 'nowhere', which is not in the"):
        REPAIR.plan([host("a")], [VM("x", "nowhere", 1, 1)])
    with pytest.raises(ValueError, match="duplicate VM id 'x'"):
        REPAIR.plan([host("a")], [VM("x", "a", 1, 1), VM("x", "a", 1, 1)])
    with pytest.raises(ValueError, match="duplicate host id 'a'"):
        CPSAT.plan([host("a"), host("a")], [])
    with pytest.raises(ValueError, match="headroom"):
        RepairConfig(headroom=1.0)


def test_make_planner() -> None:
    repair = make_planner("repair")
    assert isinstance(repair, RepairPlanner) and isinstance(repair.cost, SolveCostModel)
    cpsat = make_planner("cpsat", cost="measured", time_limit_s=0.5, headroom=0.2)
    assert isinstance(cpsat, CpSatPlanner) and isinstance(cpsat.cost, MeasuredCost)
    assert cpsat.time_limit_s(100) == 0.5 and cpsat.heuristic.config.headroom == 0.2
    default = make_planner("cpsat")
    assert isinstance(default, CpSatPlanner)
    assert default.time_limit_s(80) == 10.0  # VMPlaceS: min(30, hosts / 8)
    assert default.time_limit_s(1000) == 30.0
    with pytest.raises(InputError, match=r"unknown 'greedy'; allowed: cpsat, repair"):
        make_planner("greedy")
    with pytest.raises(InputError, match=r"unknown 'wall'; allowed: exact-model, measured"):
        make_planner("repair", cost="wall")
    with pytest.raises(InputError, match=r"time_limit_s=-1"):
        make_planner("cpsat", time_limit_s=-1)


def test_measured_cost_charges_the_last_plan_call() -> None:
    planner = make_planner("repair", cost="measured")
    assert planner.cost_s(10, 100) == 0.0
    planner.plan([host("a"), host("b")], vms_on("a", *[100] * 8))
    assert isinstance(planner, RepairPlanner) and isinstance(planner.cost, MeasuredCost)
    assert planner.cost.calls == 1
    assert 0 < planner.cost_s(2, 8) == planner.cost.last_wall_s < 1.0


# ---- properties ------------------------------------------------------------------------

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Problem = tuple[list[Host], list[VM]]


def on_overloaded(hosts: list[Host], vms: list[VM]) -> int:
    over = set(overloaded_hosts(hosts, vms))
    return sum(1 for vm in vms if vm.host in over)


@PROPERTY
@given(hosts_and_vms())
def test_repair_plans_are_valid_and_small(problem: Problem) -> None:
    hosts, vms = problem
    plan = REPAIR.plan(hosts, vms)
    partial, unfixed = REPAIR.plan_partial(hosts, vms)
    if plan is None:
        event("heuristic: no plan")
        assert unfixed
        # the partial plan is valid once the unfixed hosts are left out
        rest = [h for h in hosts if h.id not in unfixed]
        rest_vms = [vm for vm in vms if vm.host not in unfixed]
        check_plan_parallel(rest, rest_vms, partial, movable_hosts=overloaded_hosts(hosts, vms))
        return
    event(f"heuristic: {min(len(plan), 3)}{'+' if len(plan) >= 3 else ''} migrations")
    assert (partial, unfixed) == (plan, [])
    check_plan(hosts, vms, plan)
    check_plan_parallel(hosts, vms, plan)
    assert len(plan) <= on_overloaded(hosts, vms)
    assert all(m.destination not in overloaded_hosts(hosts, vms) for m in plan.migrations)


@PROPERTY
@given(hosts_and_vms())
def test_cpsat_plans_are_valid_and_never_worse_than_the_heuristic(problem: Problem) -> None:
    hosts, vms = problem
    heuristic = REPAIR.plan(hosts, vms)
    plan = CPSAT.plan(hosts, vms)
    if plan is not None:
        check_plan(hosts, vms, plan)
        check_plan_parallel(hosts, vms, plan)
    if heuristic is None:
        # CP-SAT may still find a plan (exact search); if not, it proved there is none or ran
        # out of time.
        event(f"heuristic fails, cpsat: {'plan' if plan else CPSAT.last_status}")
        if plan is None:
            assert CPSAT.last_status in ("INFEASIBLE", "UNKNOWN")
        return
    assert plan is not None
    assert len(plan) <= len(heuristic)
    assert (len(plan), plan.moved_mib) <= (len(heuristic), heuristic.moved_mib)
    event("cpsat better" if (len(plan), plan.moved_mib) < (len(heuristic), heuristic.moved_mib)
          else "same cost")  # fmt: skip


def brute_force(hosts: list[Host], vms: list[VM]) -> tuple[int, int] | None:
    """Least (migrations, moved MiB) over every repair-mode placement valid all at once."""
    over = set(overloaded_hosts(hosts, vms))
    movable = [vm for vm in vms if vm.host in over]
    targets = [h.id for h in hosts if h.id not in over]
    best = None
    for choice in itertools.product(*[[vm.host, *targets] for vm in movable]):
        plan = Plan(tuple(
            Migration(vm.id, vm.host, dst, vm.memory_mib)
            for vm, dst in zip(movable, choice, strict=True) if dst != vm.host
        ))  # fmt: skip
        try:
            check_plan_parallel(hosts, vms, plan)
        except AssertionError:
            continue
        best = min(best or (10**9, 0), (len(plan), plan.moved_mib))
    return best


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hosts_and_vms(max_hosts=3, max_vms_per_host=4, cpu_capacity=200.0))
def test_cpsat_is_optimal_on_tiny_problems(problem: Problem) -> None:
    hosts, vms = problem
    plan = CPSAT.plan(hosts, vms)
    expected = brute_force(hosts, vms)
    assert (None if plan is None else (len(plan), plan.moved_mib)) == expected


@settings(max_examples=100, deadline=None)
@given(partitions(min_size=2, max_size=8, max_hosts=12), st.randoms(use_true_random=False))
def test_plans_do_not_depend_on_input_order(case: PartitionCase, rnd: random.Random) -> None:
    hosts, vms = case.hosts, case.vms
    shuffled_hosts, shuffled_vms = list(hosts), list(vms)
    rnd.shuffle(shuffled_hosts)
    rnd.shuffle(shuffled_vms)
    for planner in (REPAIR, CPSAT):
        assert planner.plan(hosts, vms) == planner.plan(shuffled_hosts, shuffled_vms)


def test_cpsat_is_deterministic_when_stopped_by_its_time_limit() -> None:
    # 32 VMPlaceS hosts, 7 overloaded: CP-SAT does not prove optimality in 0.05 (deterministic)
    # seconds; the deterministic limit makes the outcome independent of the machine's speed.
    hosts, vms = vmplaces_problem(32, 1)
    outcomes = set()
    for _ in range(2):
        planner = CpSatPlanner(CpSatConfig(time_limit_s=0.05))
        plan = planner.plan(hosts, vms)
        assert plan is not None
        check_plan_parallel(hosts, vms, plan)
        outcomes.add((plan, planner.last_status))
    assert len(outcomes) == 1
    assert next(iter(outcomes))[1] == "FEASIBLE"
