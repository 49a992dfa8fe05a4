"""check_plan / check_plan_parallel: exact messages, and agreement with a naive reference."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvms.scheduler import VM, Host, Migration, Plan, RepairPlanner, overloaded_hosts
from dvms.testing import PlanViolation, check_plan, check_plan_parallel
from dvms.testing.strategies import PartitionCase, hosts_and_vms, partitions


def naive_valid(hosts: list[Host], vms: list[VM], plan: Plan, movable: set[str] | None) -> bool:
    """Ten-line reference: replay the plan one migration at a time, recomputing every load."""
    cap = {h.id: (h.cpu_capacity, h.memory_mib) for h in hosts}
    at, size = {v.id: v.host for v in vms}, {v.id: (v.cpu_demand, v.memory_mib) for v in vms}

    def fits(h: str, extra: tuple[float, int] = (0.0, 0)) -> bool:
        cpu = sum(size[v][0] for v in at if at[v] == h) + extra[0]
        mem = sum(size[v][1] for v in at if at[v] == h) + extra[1]
        return cpu <= cap[h][0] + 1e-6 and mem <= cap[h][1]

    movable = {h for h in cap if not fits(h)} if movable is None else movable
    moved: set[str] = set()
    for m in plan.migrations:
        if (m.vm not in at or m.vm in moved or at[m.vm] != m.source or m.destination not in cap
                or m.source == m.destination or m.source not in movable
                or m.memory_mib != size[m.vm][1]
                or not fits(m.destination, size[m.vm])):  # fmt: skip
            return False
        moved.add(m.vm)
        at[m.vm] = m.destination
    return all(fits(h) for h in cap)


def naive_valid_parallel(hosts: list[Host], vms: list[VM], plan: Plan) -> bool:
    """All at once: each destination holds its VMs plus every incoming one."""
    if not naive_valid(hosts, vms, plan, None):
        return False
    size = {v.id: (v.cpu_demand, v.memory_mib) for v in vms}
    for h in hosts:
        incoming = [m.vm for m in plan.migrations if m.destination == h.id]
        if not incoming:
            continue
        cpu = sum(v.cpu_demand for v in vms if v.host == h.id) + sum(size[v][0] for v in incoming)
        mem = sum(v.memory_mib for v in vms if v.host == h.id) + sum(size[v][1] for v in incoming)
        if cpu > h.cpu_capacity + 1e-6 or mem > h.memory_mib:
            return False
    return True


H = [Host("a", 700.0, 4096), Host("b", 700.0, 4096), Host("c", 700.0, 4096)]


def vms_on(host: str, *loads: float, mem: int = 512) -> list[VM]:
    return [VM(f"{host}{i}", host, load, mem) for i, load in enumerate(loads)]


# a: 800 > 700 (overloaded); b: 600; c: 100
BASE = [*vms_on("a", *[100] * 8), *vms_on("b", 300, 300), *vms_on("c", 100)]


def mig(vm: str, src: str, dst: str, mem: int = 512) -> Migration:
    return Migration(vm, src, dst, mem)


def test_a_valid_plan_passes_both_checks() -> None:
    plan = Plan((mig("a0", "a", "c"),))
    check_plan(H, BASE, plan)
    check_plan_parallel(H, BASE, plan)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (Plan(()), "after the plan, host 'a' is over capacity: CPU 800 > capacity 700"),
        (Plan((mig("zz", "a", "c"),)), "migration 0 ('zz': 'a' -> 'c'): unknown VM"),
        (
            Plan((mig("a0", "a", "c"), mig("a0", "c", "b"))),
            "migration 1 ('a0': 'c' -> 'b'): VM moved twice",
        ),
        (
            Plan((mig("a0", "a", "x"),)),
            "migration 0 ('a0': 'a' -> 'x'): destination is not a host of the partition",
        ),
        (
            Plan((mig("a0", "a", "a"),)),
            "migration 0 ('a0': 'a' -> 'a'): source and destination are the same host",
        ),
        (
            Plan((mig("a0", "b", "c"),)),
            "migration 0 ('a0': 'b' -> 'c'): the VM is on 'a', not at the source",
        ),
        (
            Plan((mig("a0", "a", "c", mem=100),)),
            "migration 0 ('a0': 'a' -> 'c'): memory_mib 100 != the VM's 512",
        ),
        (
            Plan((mig("a0", "a", "c"), mig("b0", "b", "c"))),
            "migration 1 ('b0': 'b' -> 'c'): source may not give VMs away (movable hosts: ['a'])",
        ),
        (
            Plan((mig("a0", "a", "b"), mig("a1", "a", "b"))),
            "migration 1 ('a1': 'a' -> 'b'): destination lacks room when it starts: "
            "CPU 800 > capacity 700",
        ),
    ],
)
def test_each_violation_has_a_precise_message(plan: Plan, message: str) -> None:
    with pytest.raises(PlanViolation) as caught:
        check_plan(H, BASE, plan)
    assert str(caught.value) == message
    assert isinstance(caught.value, AssertionError)


def test_memory_room_is_checked() -> None:
    vms = vms_on("a", 10, 10, mem=3000) + vms_on("b", 10, mem=3000)  # a: 6000 MiB > 4096
    with pytest.raises(PlanViolation, match="destination lacks room when it starts: memory "
                       "6000 MiB > capacity 4096 MiB"):  # fmt: skip
        check_plan(H, vms, Plan((Migration("a0", "a", "b", 3000),)))
    check_plan(H, vms, Plan((Migration("a0", "a", "c", 3000),)))


def test_in_order_but_not_all_at_once() -> None:
    # b first makes room for two of a's VMs: fine in order; all at once b holds 600 + 200.
    plan = Plan((mig("b0", "b", "c"), mig("a0", "a", "b"), mig("a1", "a", "b")))
    check_plan(H, BASE, plan, movable_hosts={"a", "b"})
    with pytest.raises(PlanViolation) as caught:
        check_plan_parallel(H, BASE, plan, movable_hosts={"a", "b"})
    assert str(caught.value) == (
        "host 'b' lacks room with all migrations in flight: CPU 800 > capacity 700"
    )
    # the same moves in another order fail in order: b is full when a1 arrives
    reordered = Plan((mig("a0", "a", "b"), mig("a1", "a", "b"), mig("b0", "b", "c")))
    with pytest.raises(PlanViolation) as caught:
        check_plan(H, BASE, reordered, movable_hosts={"a", "b"})
    assert str(caught.value) == (
        "migration 1 ('a1': 'a' -> 'b'): destination lacks room when it starts: "
        "CPU 800 > capacity 700"
    )


def test_bad_inputs_are_reported() -> None:
    with pytest.raises(PlanViolation, match="VM 'a0' appears twice"):
        check_plan(H, [*BASE, VM("a0", "b", 1, 1)], Plan(()))
    with pytest.raises(PlanViolation, match="VM 'q' is on unknown host 'zz'"):
        check_plan(H, [VM("q", "zz", 1, 1)], Plan(()))
    with pytest.raises(PlanViolation, match="no plan"):
        check_plan(H, BASE, None)


@st.composite
def problems_and_plans(draw: st.DrawFn) -> tuple[list[Host], list[VM], Plan]:
    """A problem and a plan: the heuristic's, shuffled, or with random (often bad) moves."""
    hosts, vms = draw(hosts_and_vms(min_hosts=2, max_hosts=5, max_vms_per_host=8))
    ids = [h.id for h in hosts]
    plan = RepairPlanner().plan(hosts, vms) or Plan(())
    moves = list(plan.migrations)
    moves = draw(st.permutations(moves))
    for _ in range(draw(st.integers(0, 3))):
        if not vms:
            break
        vm = draw(st.sampled_from(vms))
        source = draw(st.sampled_from([vm.host, vm.host, draw(st.sampled_from(ids))]))
        memory = draw(st.sampled_from([vm.memory_mib, vm.memory_mib, vm.memory_mib + 1]))
        moves.insert(
            draw(st.integers(0, len(moves))),
            Migration(vm.id, source, draw(st.sampled_from([*ids, "nowhere"])), memory),
        )
    return hosts, vms, Plan(tuple(moves))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems_and_plans(), st.booleans())
def test_check_plan_agrees_with_the_naive_reference(
    case: tuple[list[Host], list[VM], Plan], parallel: bool
) -> None:
    hosts, vms, plan = case
    check = check_plan_parallel if parallel else check_plan
    if parallel:
        expected = naive_valid_parallel(hosts, vms, plan)
    else:
        expected = naive_valid(hosts, vms, plan, None)
    try:
        check(hosts, vms, plan)
        verdict = True
    except PlanViolation:
        verdict = False
    assert verdict == expected


@settings(max_examples=50, deadline=None)
@given(partitions(min_size=2, max_size=5, max_hosts=8))
def test_partitions_strategy_gives_a_partition_around_an_overloaded_initiator(
    case: PartitionCase,
) -> None:
    assert 2 <= len(case.members) <= 5
    assert len(set(case.members)) == len(case.members)
    assert sorted(h.id for h in case.hosts) == sorted(case.members)
    assert [vm for vm in case.all_vms if vm.host in case.members] == case.vms
    if overloaded_hosts(case.all_hosts, case.all_vms):
        assert case.initiator in overloaded_hosts(case.all_hosts, case.all_vms)
