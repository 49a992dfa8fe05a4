"""``planning_problem``: the leader's planner input from its members' snapshots.

Its fast path (no VM listed twice) must give exactly what the newest-snapshot rule gives;
the reference below is that rule written out plainly (one pass to find each VM's newest
snapshot, one to list the VMs), compared on random partitions with hypothesis.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dvms.protocol.messages import HostSnapshot
from dvms.protocol.partition import planning_problem
from dvms.scheduler.model import VM, Host


def reference(
    members: tuple[str, ...], snapshots: dict[str, HostSnapshot]
) -> tuple[list[Host], list[VM]]:
    known = [(n, snapshots[n]) for n in dict.fromkeys(members) if n in snapshots]
    newest: dict[str, tuple[float, str]] = {}
    for node, snap in known:
        for vm, _cpu, _mem in snap.vms:
            if vm not in newest or newest[vm][0] < snap.taken_at:
                newest[vm] = (snap.taken_at, node)
    hosts = [Host(n, s.cpu_capacity, s.memory_mib, s.site) for n, s in known]
    vms = [
        VM(vm, node, cpu, mem)
        for node, snap in known
        for vm, cpu, mem in snap.vms
        if newest[vm][1] == node
    ]
    return hosts, vms


def snap(node: str, vms: list[str], taken_at: float) -> HostSnapshot:
    listed = tuple((vm, 10.0 * (i + 1), 1024) for i, vm in enumerate(vms))
    return HostSnapshot(node, 700.0, 32768, listed, taken_at, site="s")


@st.composite
def partitions(draw: st.DrawFn) -> tuple[tuple[str, ...], dict[str, HostSnapshot]]:
    nodes = [f"h{i}" for i in range(draw(st.integers(1, 6)))]
    members = tuple(draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=8)))
    snapshots = {}
    for node in nodes:
        if draw(st.booleans()) or node == members[0]:
            vms = draw(st.lists(st.sampled_from([f"v{i}" for i in range(10)]), unique=True))
            snapshots[node] = snap(node, vms, draw(st.sampled_from([0.0, 1.0, 2.0])))
    return members, snapshots


@settings(max_examples=300, deadline=None)
@given(partitions())
def test_same_problem_as_the_newest_snapshot_rule(
    case: tuple[tuple[str, ...], dict[str, HostSnapshot]],
) -> None:
    members, snapshots = case
    assert planning_problem(members, snapshots) == reference(members, snapshots)


def test_a_vm_listed_twice_is_kept_where_the_newer_snapshot_saw_it() -> None:
    snapshots = {
        "a": snap("a", ["v1", "v2"], 1.0),
        "b": snap("b", ["v2", "v3"], 2.0),  # v2 migrated a → b between the two snapshots
        "c": snap("c", ["v3"], 2.0),  # same time as b's: the first member's listing wins
    }
    hosts, vms = planning_problem(("a", "b", "c"), snapshots)
    assert [h.id for h in hosts] == ["a", "b", "c"]
    assert [(v.id, v.host) for v in vms] == [("v1", "a"), ("v2", "b"), ("v3", "b")]


def test_members_without_a_snapshot_are_left_out_and_repeats_counted_once() -> None:
    snapshots = {"a": snap("a", ["v1"], 0.0), "c": snap("c", ["v2"], 0.0)}
    hosts, vms = planning_problem(("c", "b", "a", "c"), snapshots)
    assert [h.id for h in hosts] == ["c", "a"]
    assert [(v.id, v.host) for v in vms] == [("v2", "c"), ("v1", "a")]
