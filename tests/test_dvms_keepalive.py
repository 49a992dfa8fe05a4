"""Keepalives go only to the members a plan binds, and only while the partition lives.

When the leader applies a plan, the members it involves in no migration (neither source
nor destination; the leader and the initiator stay) are released at once: they get
neither keepalives nor the final dissolve, and are free for other ISPs meanwhile.
Real runtime, monitor, overlay and planner (``tests.dvms_cluster``).
"""

from __future__ import annotations

from dvms.testing.invariants import check_protocol_trace
from tests.dvms_cluster import ToyCluster
from tests.test_dvms_protocol import one_hot_host


def plan_roles(c: ToyCluster) -> tuple[list[str], set[str], str, float]:
    """(members, involved members, leader, solve time) of the cluster's first plan."""
    solve = c.of_type("partition.solve")[0]
    members = c.of_type("partition.grow")[-1]["members"]
    moves = c.of_type("migration.start")
    involved = {"h000", solve["node"], *(m["dst"] for m in moves), *(m["src"] for m in moves)}
    return members, involved, solve["node"], solve["t"]


def test_members_outside_the_plan_are_free_while_it_runs() -> None:
    c = one_hot_host(migration_s=10.0)
    c.run(3.0)  # solved at about 1 s; the 10 s migration runs
    members, involved, _, _ = plan_roles(c)
    released = set(members) - involved
    assert released
    for node in members:
        assert (c.services[node].part is None) == (node in released), node
    # a released member overloaded now starts its own ISP at once, not after the plan
    node = sorted(released)[0]
    c.load_host(node, [100] * 4, at=3.5)
    c.run(5.0)
    assert [e["t"] < 5.0 for e in c.of_type("isp.start") if e["node"] == node] == [True]
    c.run(90)
    first = [e for e in c.of_type("partition.dissolve") if e["partition"] == "h000:1"]
    assert [(e["reason"], e["solved"], e["size"]) for e in first] == [("solved", True, 4)]
    assert c.overloaded() == [] and c.vm_placement_errors() == []
    check_protocol_trace(c.events, bound_s=60.0)


def test_a_bound_member_never_times_out_while_its_leader_lives() -> None:
    """A 40 s migration: 26 keepalive periods; each bound member gets every keepalive."""
    c = one_hot_host(migration_s=40.0)
    c.run(80)
    members, involved, leader, solved_at = plan_roles(c)
    leaves = {e["node"]: (e["reason"], e["t"]) for e in c.of_type("partition.leave")}
    assert {n: r for n, (r, _) in leaves.items()} == {
        n: "solved" if n in involved else "released" for n in members
    }
    ticks = sum(1 for k in range(1, 100) if solved_at + 1.5 * k < leaves[leader][1])
    assert ticks >= 26
    assert c.rt.stats.by_type["dvms.KeepAlive"] == ticks * (len(involved) - 1)
    check_protocol_trace(c.events, bound_s=60.0)


def test_keepalives_stop_with_the_partition() -> None:
    c = one_hot_host(migration_s=5.0)
    c.run(30)
    sent = c.rt.stats.by_type["dvms.KeepAlive"]
    assert sent > 0 and c.of_type("partition.dissolve")
    assert all(s.part is None and s.lead is None for s in c.services.values())
    c.run(200)
    assert c.rt.stats.by_type["dvms.KeepAlive"] == sent


def test_lossy_network_with_releases_loses_no_vm() -> None:
    """5 % of messages lost, a release or a dissolve among them: VMs are never lost or
    duplicated, every ISP ends, no membership outlives the bound."""
    released = 0
    for seed in range(1, 5):
        c = ToyCluster(12, seed=seed, capacity=300.0, overlay="random", loss=0.05, migration_s=6.0)
        for i, node in enumerate(c.nodes):
            c.load_host(node, [100 if i % 4 == 0 else 40] * 4, at=1.0 + i * 0.01)
        c.run(150)
        released += sum(1 for e in c.of_type("partition.leave") if e["reason"] == "released")
        assert c.vm_placement_errors() == [], seed
        check_protocol_trace(c.events, bound_s=60.0)
    assert released > 0
