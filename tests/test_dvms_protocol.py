"""The DVMS protocol on a small hand-made cluster (real runtime, monitor, overlays, planner)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dvms.protocol import DvmsConfig
from dvms.protocol.messages import MigrateOrder, PartitionView, TransmissionOfAnISP
from dvms.scheduler import RepairPlanner
from dvms.testing.invariants import check_protocol_trace
from tests.dvms_cluster import ToyCluster


def lifecycle(c: ToyCluster) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, node, fields) of the protocol's and migrations' events, in order."""
    return [
        (e["type"], e["node"], {k: v for k, v in e.items() if k not in ("t", "type", "node")})
        for e in c.events
        if e["type"].startswith(("isp.", "partition.", "migration."))
    ]


def one_hot_host(**kw: Any) -> ToyCluster:
    """8 hosts at 80 % of 300; h000 goes to 400 at t=1 (one VM must leave)."""
    c = ToyCluster(8, capacity=300.0, **kw)
    for node in c.nodes:
        c.load_host(node, [20] * 4)
    c.load_host("h000", [100] * 4, at=1.0)
    return c


def test_one_violation_is_fixed_by_a_partition_of_the_minimum_size() -> None:
    c = one_hot_host()
    c.run(30)
    events = lifecycle(c)
    grows = [f for t, _, f in events if t == "partition.grow"]
    assert [g["size"] for g in grows] == [2, 3, 4]
    members = grows[-1]["members"]
    assert members[0] == "h000" and len(set(members)) == 4
    leader = grows[-1]["leader"]
    assert leader == members[-1]
    # the exact lifecycle: start, three joins, solve, one migration, dissolve
    assert [(t, n) for t, n, _ in events][:9] == [
        ("isp.start", "h000"),
        ("partition.join", "h000"),
        ("partition.join", members[1]),
        ("partition.grow", members[1]),
        ("partition.join", members[2]),
        ("partition.grow", members[2]),
        ("partition.join", members[3]),
        ("partition.grow", members[3]),
        ("partition.solve", leader),
    ]
    # the plan's one migration leaves h000; the members it does not involve are released
    move = next(f for t, _, f in events if t == "migration.start")
    involved = {"h000", move["dst"], leader}
    released = sorted(
        n for t, n, f in events if t == "partition.leave" and f["reason"] == "released"
    )
    assert released == sorted(set(members) - involved) and released
    solve = next(f for t, _, f in events if t == "partition.solve")
    assert solve == {
        "partition": "h000:1",
        "size": 4,
        "migrations": 1,
        "compute_s": RepairPlanner().cost_s(4, 16),
    }
    dissolve = [(n, f) for t, n, f in events if t == "partition.dissolve"]
    assert len(dissolve) == 1
    node, fields = dissolve[0]
    assert node == "h000"
    assert fields["partition"] == "h000:1" and fields["solved"] is True
    assert fields["reason"] == "solved" and fields["size"] == 4
    assert 3.0 < fields["lifetime_s"] < 3.2  # one 3 s migration plus a few messages
    leaves = sorted(n for t, n, f in events if t == "partition.leave" and f["reason"] == "solved")
    assert leaves == sorted(involved)
    assert c.overloaded() == [] and c.vm_placement_errors() == []
    stats = c.rt.stats.by_type
    assert stats["dvms.TransmissionOfAnISP"] == 3
    assert stats["dvms.IsThisVersionOfThePartitionStillValid"] == 3
    assert stats["dvms.MigrateOrder"] == 1 and stats["dvms.MigrationReport"] == 1
    assert stats["dvms.DissolvePartition"] == 3
    assert all(s.part is None and s.lead is None for s in c.services.values())


@pytest.mark.parametrize("size", [2, 6])
def test_minimum_partition_size_is_configurable(size: int) -> None:
    c = one_hot_host(config=DvmsConfig(min_partition_size=size))
    c.run(30)
    solves = c.of_type("partition.solve")
    assert [s["size"] for s in solves] == [size]
    assert c.overloaded() == []


def test_two_blocked_partitions_merge() -> None:
    """The deadlock on purpose: two overloaded hosts, two idle ones, minimum size 4.

    Each ISP takes one idle host and then finds only the other partition's members: both
    come back to themselves and block; when one blocked partition meets a member of the
    other blocked one, the two merge (4 members) and a plan fixes both hosts.
    """
    c = ToyCluster(4, capacity=300.0, seed=2)
    c.load_host("h000", [100] * 4, at=1.0)
    c.load_host("h001", [100] * 4, at=1.0)
    c.run(30)
    events = lifecycle(c)
    blocks = sorted(f["partition"] for t, _, f in events if t == "partition.block")
    assert blocks == ["h000:1", "h001:1"]
    merges = [f for t, _, f in events if t == "partition.merge"]
    assert merges == [
        {
            "partition": "h000:1",
            "absorbed": "h001:1",
            "size": 4,
            "members": ["h000", "h002", "h001", "h003"],
        }
    ]
    assert [f["size"] for t, _, f in events if t == "partition.solve"] == [4]
    dissolved = {
        f["partition"]: (f["solved"], f["reason"])
        for t, _, f in events
        if t == "partition.dissolve"
    }
    assert dissolved == {"h000:1": (True, "solved"), "h001:1": (True, "solved")}
    assert c.overloaded() == []
    check_protocol_trace(c.events, bound_s=30.0, require_merge=True)


def test_the_deadlock_is_always_resolved() -> None:
    """Whatever the timing (seeds), blocked partitions merge or give way: both get fixed."""
    merged = 0
    for seed in range(1, 11):
        c = ToyCluster(4, capacity=300.0, seed=seed, overlay="random")
        c.load_host("h000", [100] * 4, at=1.0)
        c.load_host("h001", [100] * 4, at=1.0)
        c.run(60)
        assert c.overloaded() == [], seed
        merged += bool(c.of_type("partition.merge"))
        check_protocol_trace(c.events, bound_s=30.0)
    assert merged >= 3


def test_a_migrating_node_neither_starts_nor_joins() -> None:
    c = ToyCluster(6, capacity=300.0, migration_s=20.0, config=DvmsConfig(min_partition_size=2))
    for node in c.nodes:
        c.load_host(node, [20] * 4)
    c.rt.call_later(0.5, lambda: c.migrate("v001-0", "h001", "h002", ("h001", "dvms")))
    c.load_host("h001", [100] * 3, at=1.0)  # overloaded at 1 s, but migrating until 20.5 s
    c.load_host("h000", [100] * 4, at=2.0)
    c.run(60)
    starts = [(e["t"], e["node"]) for e in c.of_type("isp.start")]
    assert starts[0] == (2.0, "h000")
    assert all(node != "h001" or t >= 20.5 for t, node in starts)
    for join in c.of_type("partition.join"):
        if join["node"] in ("h001", "h002"):
            assert join["t"] >= 20.5
    assert c.overloaded() == []


def test_violation_ending_by_itself_dissolves_the_growing_isp() -> None:
    c = ToyCluster(8, capacity=300.0, latency=(0.4, 0.4), config=DvmsConfig(min_partition_size=8))
    c.load_host("h000", [100] * 4, at=1.0)
    c.load_host("h000", [10] * 4, at=2.0)
    c.run(20)
    dissolve = c.of_type("partition.dissolve")
    assert [(d["partition"], d["reason"], d["solved"]) for d in dissolve] == [
        ("h000:1", "violation-ended", False)
    ]
    assert c.of_type("partition.solve") == []
    check_protocol_trace(c.events, bound_s=10.0)
    assert all(s.part is None for s in c.services.values())


def test_unsolvable_violation_retries_with_back_off() -> None:
    """Every host is full: ISPs fail; the initiator retries after a back-off that doubles
    with each failure in a row (1 s, 2 s, then the 4 s cap; each ± 50 %)."""
    config = DvmsConfig(retry_delay_s=1.0, retry_delay_max_s=4.0)
    c = ToyCluster(5, capacity=300.0, config=config)
    for node in c.nodes:
        c.load_host(node, [70] * 4)  # 280 of 300: no room for a VM of 100
    c.load_host("h000", [100] * 4, at=1.0)
    c.run(41)
    starts = [e["t"] for e in c.of_type("isp.start")]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    slack = 0.2  # the failing ISP's own few messages
    assert 0.5 <= gaps[0] <= 1.5 + slack
    assert 1.0 <= gaps[1] <= 3.0 + slack
    assert all(2.0 <= g <= 6.0 + slack for g in gaps[2:])
    assert 8 <= len(starts) <= 20
    assert all(not d["solved"] for d in c.of_type("partition.dissolve"))
    check_protocol_trace(c.events, bound_s=10.0)


def test_maximum_partition_size_ends_the_isp() -> None:
    c = ToyCluster(8, capacity=300.0, config=DvmsConfig(min_partition_size=2, max_partition_size=3))
    for node in c.nodes:
        c.load_host(node, [70] * 4)
    c.load_host("h000", [100] * 4, at=1.0)
    c.run(3)
    dissolve = c.of_type("partition.dissolve")[0]
    assert (dissolve["reason"], dissolve["size"]) == ("max-size", 3)


def test_stale_copy_of_a_partition_is_refused_by_its_initiator() -> None:
    """A copy of the partition at an old version (a resend after a lost acknowledgement)
    reaches a free node while the partition still grows: the initiator refuses the claim."""
    c = ToyCluster(8, capacity=300.0, latency=(0.1, 0.1), config=DvmsConfig(min_partition_size=8))
    c.load_host("h000", [100] * 4, at=1.0)
    c.run(2.2)  # h000:1 has grown a few times since version 0
    part = c.services["h000"].part
    assert part is not None and part.version >= 2 and part.size < 8
    view = PartitionView(
        id="h000:1",
        initiator="h000",
        leader="h000",
        version=0,
        state="growing",
        members=("h000",),
        started_at=1.0,
    )
    stale = TransmissionOfAnISP(view=view, snapshots=(), sender="h000", seq=99)
    free = next(n for n in c.nodes if c.services[n].part is None)
    c.rt.inject((free, "dvms"), stale)
    c.run(30)
    leaders = [e["node"] for e in c.of_type("partition.grow")]
    assert len(leaders) == len(set(leaders)) == 7  # each node led once: no second copy
    grows = [e["size"] for e in c.of_type("partition.grow")]
    assert grows == [2, 3, 4, 5, 6, 7, 8]
    check_protocol_trace(c.events, bound_s=30.0)


def test_a_repeated_order_never_migrates_twice() -> None:
    """Orders are idempotent per (partition, vm): a duplicate during the migration is
    acknowledged (no second migration, no failure); one after it gets the cached result."""
    c = one_hot_host()
    c.run(2.0)  # the migration runs from ~1.03 s to ~4.03 s
    start = c.of_type("migration.start")[0]
    solve = c.of_type("partition.solve")[0]
    again = MigrateOrder("h000:1", start["vm"], "h000", start["dst"], solve["node"])
    c.rt.inject(("h000", "dvms"), again)
    c.rt.inject(("h000", "dvms"), again)
    c.run(40)
    assert len(c.of_type("migration.start")) == 1
    dissolve = c.of_type("partition.dissolve")[0]
    assert (dissolve["reason"], dissolve["solved"]) == ("solved", True)
    assert c.rt.stats.by_type["dvms.OrderAck"] == 3
    c.rt.inject(("h000", "dvms"), again)
    c.run(50)
    assert len(c.of_type("migration.start")) == 1
    assert c.rt.stats.by_type["dvms.MigrationReport"] == 2  # the cached result, re-sent


def test_crashed_source_is_detected_and_removed_by_the_leader() -> None:
    config = DvmsConfig(min_partition_size=4)
    c = one_hot_host(config=config, migration_s=5.0)
    c.crash("h000", at=1.5)  # the initiator is the migration's source
    c.run(60)
    fails = [f["reason"] for f in c.of_type("partition.fail")]
    assert fails == ["member-lost", "migration-failed"]
    leader = c.services[c.of_type("partition.solve")[0]["node"]]
    assert "h000" in getattr(leader.overlay, "dead", set())
    leaves = {e["node"]: e["reason"] for e in c.of_type("partition.leave")}
    assert set(leaves.values()) - {"released"} == {"migration-failed"} and "h000" not in leaves
    assert sum(r == "released" for r in leaves.values()) == 1  # the member the plan left out
    assert c.vm_placement_errors() == []
    check_protocol_trace(c.events, bound_s=30.0)


def test_crashed_leader_members_time_out_and_leave() -> None:
    c = one_hot_host(migration_s=10.0)
    c.run(1.5)
    leader = c.of_type("partition.solve")[0]["node"]
    c.crash(leader, at=2.0)
    c.run(60)
    leaves = {e["node"]: (e["reason"], e["t"]) for e in c.of_type("partition.leave")}
    assert leader not in leaves
    released = [node for node, (reason, _) in leaves.items() if reason == "released"]
    assert len(released) == 1 and leaves[released[0]][1] < 2.0  # the plan left it out
    for node, (reason, t) in leaves.items():
        if node not in released:
            assert reason == "timeout", node
            assert 2.0 + 4.5 - 1.0 <= t <= 2.0 + 4.5 + 1.0
    dissolve = c.of_type("partition.dissolve")[0]
    assert (dissolve["reason"], dissolve["solved"]) == ("timeout", False)
    assert c.overloaded() == []  # the migration itself completed
    check_protocol_trace(c.events, bound_s=30.0)


def test_lost_initiator_dissolves_the_partition() -> None:
    """The initiator crashes while its partition grows: the next claimant gets no answer
    and dissolves the partition for its members (before their own timeout)."""
    c = ToyCluster(8, capacity=300.0, latency=(0.2, 0.2), config=DvmsConfig(min_partition_size=8))
    c.load_host("h000", [100] * 4, at=1.0)
    c.crash("h000", at=1.9)
    c.run(20)
    leaves = c.of_type("partition.leave")
    assert leaves and {e["reason"] for e in leaves} == {"initiator-lost"}
    assert max(e["t"] for e in leaves) < 1.9 + 4.5
    assert c.of_type("partition.dissolve") == []  # the initiator is gone
    check_protocol_trace(c.events, bound_s=30.0)


def test_same_seed_same_trace() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        c = ToyCluster(12, seed=seed, capacity=300.0, overlay="random", loss=0.01)
        for i, node in enumerate(c.nodes):
            c.load_host(node, [100 if i % 3 == 0 else 40] * 4, at=1.0 + i * 0.01)
        c.run(60)
        return c.events

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_the_same_protocol_runs_on_the_thread_runtime() -> None:
    """Runtime-agnostic: the one-violation case on threads and the wall clock."""
    c = one_hot_host(runtime="thread", migration_s=0.5)
    try:
        c.run(3.0)
    finally:
        c.rt.stop()
    dissolve = c.of_type("partition.dissolve")
    assert [(d["partition"], d["solved"], d["size"]) for d in dissolve] == [("h000:1", True, 4)]
    assert 0.5 <= dissolve[0]["lifetime_s"] < 1.5
    assert c.overloaded() == [] and c.vm_placement_errors() == []
    check_protocol_trace(c.events, bound_s=5.0)


def test_no_node_outside_fails_the_isp() -> None:
    """Two hosts, minimum size 4: once both are in, the overlay knows nobody else."""
    c = ToyCluster(2, capacity=300.0)
    c.load_host("h000", [100] * 4, at=1.0)
    c.run(1.5)
    assert [e["reason"] for e in c.of_type("partition.fail")] == ["no-next-node"]
    dissolve = c.of_type("partition.dissolve")
    assert [(d["reason"], d["size"], d["solved"]) for d in dissolve] == [("no-next-node", 2, False)]
    assert all(s.part is None for s in c.services.values())
