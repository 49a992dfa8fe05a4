"""The DVMS protocol's main scenarios on each runtime: virtual time (``sim``) and threads on
the wall clock (``thread``). Outcomes, not exact timings, are compared: the same code must
reach the same end on both."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dvms.protocol import DvmsConfig
from dvms.testing.invariants import check_protocol_trace
from tests.dvms_cluster import ToyCluster

KINDS = ("sim", "thread")


@pytest.fixture(params=KINDS)
def cluster(request: pytest.FixtureRequest) -> Iterator[Callable[..., ToyCluster]]:
    """``cluster(hosts, **kw)`` on the runtime kind of the test; stopped at teardown."""
    made: list[ToyCluster] = []

    def make(hosts: int, **kw: Any) -> ToyCluster:
        c = ToyCluster(hosts, runtime=request.param, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.rt.stop()


def test_one_violation_is_fixed(cluster: Callable[..., ToyCluster]) -> None:
    c = cluster(8, capacity=300.0, migration_s=0.3)
    for node in c.nodes:
        c.load_host(node, [20] * 4)
    c.load_host("h000", [100] * 4, at=0.2)
    c.run(2.0)
    dissolve = c.of_type("partition.dissolve")
    assert [(d["partition"], d["solved"], d["size"]) for d in dissolve] == [("h000:1", True, 4)]
    assert [e["node"] for e in c.of_type("migration.start")] == ["h000"]
    assert c.overloaded() == [] and c.vm_placement_errors() == []
    assert all(s.part is None and s.lead is None for s in c.services.values())
    check_protocol_trace(c.events, bound_s=2.0)


def test_two_blocked_partitions_are_both_fixed(cluster: Callable[..., ToyCluster]) -> None:
    """Two overloaded hosts, two idle ones, minimum size 4: each partition blocks; they
    merge (or one gives way) and both hosts are fixed, whatever the timing."""
    c = cluster(4, capacity=300.0, seed=2, migration_s=0.3)
    c.load_host("h000", [100] * 4, at=0.2)
    c.load_host("h001", [100] * 4, at=0.2)
    c.run(4.0)
    assert c.of_type("partition.block")
    assert c.overloaded() == [] and c.vm_placement_errors() == []
    check_protocol_trace(c.events, bound_s=4.0)


def test_maximum_partition_size_ends_the_isp(cluster: Callable[..., ToyCluster]) -> None:
    config = DvmsConfig(min_partition_size=2, max_partition_size=3)
    c = cluster(8, capacity=300.0, config=config)
    for node in c.nodes:
        c.load_host(node, [70] * 4)
    c.load_host("h000", [100] * 4, at=0.2)
    c.run(1.0)
    dissolve = c.of_type("partition.dissolve")[0]
    assert (dissolve["reason"], dissolve["size"], dissolve["solved"]) == ("max-size", 3, False)
    assert [g["size"] for g in c.of_type("partition.grow")][:2] == [2, 3]


def test_no_node_outside_fails_the_isp(cluster: Callable[..., ToyCluster]) -> None:
    c = cluster(2, capacity=300.0)
    c.load_host("h000", [100] * 4, at=0.2)
    c.run(0.7)
    assert [e["reason"] for e in c.of_type("partition.fail")][:1] == ["no-next-node"]
    dissolve = c.of_type("partition.dissolve")[0]
    assert (dissolve["reason"], dissolve["size"], dissolve["solved"]) == ("no-next-node", 2, False)


def test_a_crashed_leader_is_left_by_its_members(cluster: Callable[..., ToyCluster]) -> None:
    """The leader crashes while the migration runs: members time out and leave."""
    config = DvmsConfig(partition_timeout_s=0.8, keepalive_period_s=0.2)
    c = cluster(8, capacity=300.0, migration_s=2.0, config=config)
    for node in c.nodes:
        c.load_host(node, [20] * 4)
    c.load_host("h000", [100] * 4, at=0.2)
    c.run(0.5)
    solve = c.of_type("partition.solve")
    assert solve, "the partition was solved by 0.5 s"
    leader = solve[0]["node"]
    c.crash(leader, at=0.6)
    c.run(3.0)
    leaves = {e["node"]: e["reason"] for e in c.of_type("partition.leave")}
    # the members the plan binds time out; the one it left out was released at once
    assert leader not in leaves and set(leaves.values()) <= {"timeout", "released"}
    assert list(leaves.values()).count("timeout") >= 2
    assert all(s.part is None for n, s in c.services.items() if n != leader)
    check_protocol_trace(c.events, bound_s=3.0)
