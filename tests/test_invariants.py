"""The protocol invariant kit: the checker on hand-made traces, then on random faulty runs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dvms.testing.invariants import ProtocolViolation, check_protocol_trace, run_invariants
from tests.dvms_cluster import ToyCluster


def ev(t: float, type: str, node: str, **fields: Any) -> dict[str, Any]:
    return {"t": t, "type": type, "node": node, **fields}


GOOD = [
    ev(1.0, "isp.start", "a", partition="a:1", initiator="a"),
    ev(1.0, "partition.join", "a", partition="a:1"),
    ev(1.1, "partition.join", "b", partition="a:1"),
    ev(1.1, "partition.grow", "b", partition="a:1", leader="b", size=2, members=["a", "b"]),
    ev(1.2, "migration.start", "a", vm="v1", src="a", dst="b"),
    ev(4.0, "migration.end", "a", vm="v1", src="a", dst="b"),
    ev(4.1, "partition.leave", "b", partition="a:1", reason="solved"),
    ev(4.1, "partition.leave", "a", partition="a:1", reason="solved"),
    ev(
        4.1,
        "partition.dissolve",
        "a",
        partition="a:1",
        size=2,
        reason="solved",
        lifetime_s=3.1,
        solved=True,
    ),
    ev(5.0, "migration.start", "b", vm="v1", src="b", dst="a"),
    ev(6.0, "migration.fail", "b", vm="v1", src="b", dst="a", reason="x"),
]


def test_a_correct_trace_passes_with_its_figures() -> None:
    report = check_protocol_trace(GOOD, bound_s=10.0)
    assert (report.isp_started, report.isp_dissolved, report.memberships) == (1, 1, 2)
    assert report.max_isp_lifetime_s == pytest.approx(3.1)
    assert report.max_membership_s == pytest.approx(3.1)
    assert report.migrations == 1 and report.violations == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e: e.insert(3, ev(1.05, "partition.join", "b", partition="x:1")),
            "b joined x:1 while in a:1",
        ),
        (lambda e: e.pop(6), "b still in a:1 at the end"),
        (lambda e: e.pop(8), "ISP a:1 (started t=1.000) never dissolved"),
        (lambda e: e.append(GOOD[8]), "a:1 dissolved twice"),
        (
            lambda e: e.insert(5, ev(3.0, "migration.start", "a", vm="v1", src="a", dst="c")),
            "v1 migrates a->c while already migrating",
        ),
        (
            lambda e: e.append(ev(9.0, "migration.start", "a", vm="v1", src="a", dst="c")),
            "v1 migrates from a but is on b",
        ),
        (
            lambda e: e.insert(2, ev(1.0, "partition.leave", "c", partition="a:1", reason="x")),
            "c left a:1 while in no partition",
        ),
    ],
)
def test_each_violation_is_reported(change: Any, message: str) -> None:
    events = list(GOOD)
    change(events)
    events.append(ev(200.0, "power", "world"))  # the run goes on long after
    with pytest.raises(ProtocolViolation) as err:
        check_protocol_trace(events, bound_s=10.0)
    assert isinstance(err.value, AssertionError)
    assert any(message in v for v in err.value.violations), err.value.violations


def test_lifetime_bound_lost_vms_and_required_merge() -> None:
    with pytest.raises(ProtocolViolation, match=r"ISP a:1 lived 3.1 s \(> 2.0\)"):
        check_protocol_trace(GOOD, bound_s=2.0)
    with pytest.raises(ProtocolViolation, match="2 VM"):
        check_protocol_trace(GOOD, bound_s=10.0, vms_lost=2)
    with pytest.raises(ProtocolViolation, match=r"no partition\.merge happened"):
        check_protocol_trace(GOOD, bound_s=10.0, require_merge=True)


def test_crashed_initiator_and_recent_isps_are_excused() -> None:
    events = [
        *GOOD[:3],
        ev(2.0, "fault.crash", "a", host="a", vms=["v1"]),
        ev(2.5, "partition.leave", "b", partition="a:1", reason="timeout"),
    ]
    events.append(ev(100.0, "isp.start", "c", partition="c:1", initiator="c"))
    report = check_protocol_trace(events, bound_s=10.0, end_t=105.0)
    assert report.crashed == ("a",) and report.isp_open_at_end == 1


def random_faulty_run(seed: int, overlay: str) -> ToyCluster:
    """Random loads (a third of hosts overloaded at any time), crashes, 1 % message loss."""
    r = random.Random(seed)
    n = r.randint(6, 20)
    positions = {f"h{i:03d}": (r.uniform(0, 0.05), r.uniform(0, 0.05)) for i in range(n)}
    c = ToyCluster(
        n,
        seed=seed,
        capacity=300.0,
        overlay=overlay,
        loss=0.01,
        positions=positions,
        migration_s=r.uniform(1.0, 8.0),
    )
    loads = [40, 60, 80, 100]
    vms = sorted(c.host_of)
    for vm in vms:
        c.set_load(vm, r.choice(loads))
    t = 0.0
    while (t := t + r.expovariate(len(vms) / 30.0)) < 240.0:
        c.set_load(r.choice(vms), r.choice(loads), at=t)
    for _ in range(r.randint(1, 2)):
        c.crash(r.choice(c.nodes), at=r.uniform(0.0, 240.0))
    c.run(300.0)
    return c


@pytest.mark.parametrize("overlay", ["ring", "random", "lbo"])
def test_invariants_hold_on_random_faulty_runs(overlay: str) -> None:
    totals = {"isp": 0, "merges": 0, "blocks": 0, "crashed": 0}
    for seed in range(12):
        c = random_faulty_run(seed, overlay)
        report = check_protocol_trace(c.events, bound_s=60.0, vms_lost=len(c.vm_placement_errors()))
        assert report.isp_dissolved >= report.isp_started - report.isp_open_at_end - 2
        totals["isp"] += report.isp_started
        totals["merges"] += report.merges
        totals["blocks"] += report.blocks
        totals["crashed"] += len(report.crashed)
        assert c.rt.stats.dropped["lost"] > 0 or seed == 0
    # the runs did exercise the interesting paths
    assert totals["isp"] > 500 and totals["blocks"] > 50 and totals["merges"] > 5
    assert totals["crashed"] >= 12


@pytest.mark.parametrize("overlay", ["lbo", "ring", "random"])
@pytest.mark.parametrize("seed", [1, 2])
def test_run_invariants_on_the_simulated_world(overlay: str, seed: int) -> None:
    """VMPlaceS's workload on 64 hosts for 30 min, random crashes, 1 % message loss."""
    report = run_invariants(
        hosts=64, seed=seed, duration_s=1800.0, overlay=overlay, crash_rate_per_host_h=0.3
    )
    summary = report.summary
    assert summary is not None and summary["scheduler"] == "dvms"
    assert report.isp_started > 40 and report.migrations > 40
    assert summary["vms_lost"] == 0 and summary["crashes"] >= 3
    assert summary["messages_dropped"]["lost"] > 0  # 1 % loss was on
