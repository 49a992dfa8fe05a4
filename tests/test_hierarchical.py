"""The hierarchical (Snooze-like) baseline in simulation: overloads resolved, a manager's
crash survived, the same seed giving the same trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dvms.scheduler.model import Host, overloaded_hosts
from dvms.services.hierarchical import GroupLeader, GroupManager, GroupView, group_hosts
from dvms.trace import read_events
from sim.audit import audit_trace
from sim.run import simulate
from sim.scenario import Scenario, load_scenario
from sim.world import CONTROLLER, World


def small(**overrides: Any) -> Scenario:
    base: dict[str, Any] = {
        "infrastructure.hosts": 24,
        "infrastructure.sites": ["lyon", "rennes", "nancy"],
        "run.duration_s": 900.0,
        "vivaldi.enabled": False,
        "scheduler.name": "hierarchical",
        "load.mean": 70.0,
    }
    base.update(overrides)
    return load_scenario(overrides=base)


def test_groups_per_site_and_fixed_size() -> None:
    hosts = [Host(f"h{i}", 100.0, 1024, "ab"[i % 2]) for i in range(7)]
    assert group_hosts(hosts, 0) == {"a": ["h0", "h2", "h4", "h6"], "b": ["h1", "h3", "h5"]}
    assert group_hosts(hosts, 3) == {"0": ["h0", "h1", "h2"], "1": ["h3", "h4", "h5"], "2": ["h6"]}


def test_group_view_is_the_global_view_restricted() -> None:
    world = World(small(**{"scheduler.name": "none", "load.mean": 90.0}), lambda e: None)
    world.start()
    mine = {h.id for h in world.infra.hosts if h.site == "rennes"}
    view = GroupView(world, mine)
    hosts, vms = view.snapshot()
    assert {h.id for h in hosts} == mine
    assert {vm.id for vm in vms} == {v for h in world.infra.hosts if h.id in mine for v in h.vms}
    over = overloaded_hosts(*world.snapshot())
    assert view.overloaded_count() == len(set(over) & mine) > 0


def test_resolves_overloads_better_than_no_scheduler(tmp_path: Path) -> None:
    hier = simulate(small(), tmp_path / "hier")
    none = simulate(small(**{"scheduler.name": "none"}), tmp_path / "none")
    events = list(read_events(tmp_path / "hier" / "events.jsonl.gz"))
    assert audit_trace(events).problems == []
    runs = [e for e in events if e["type"] == "scheduler.run"]
    # one manager per site, each planning over its own site's 8 hosts every 30 s
    assert {e["group"] for e in runs} == {"lyon", "rennes", "nancy"}
    assert {e["hosts"] for e in runs} == {8}
    assert all(e["scheduler"] == "hierarchical" for e in runs)
    assert hier["migrations"] > 0 and none["migrations"] == 0
    # managers move VMs inside their group only (the groups are the sites)
    assert hier["migrations_inter_site"] == 0
    assert hier["violation_duration_mean_s"] < 0.6 * none["violation_duration_mean_s"]


def test_a_manager_crash_is_survived(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    world = World(small(**{"run.duration_s": 1200.0}), events.append)
    world.start()
    services = world.runtime.peer(CONTROLLER).services
    leader = services["hier.leader"]
    victim = services["hier.gm.lyon"]
    assert isinstance(leader, GroupLeader) and isinstance(victim, GroupManager)
    lyon = set(leader.assignment["hier.gm.lyon"])
    world.runtime.call_later(200.0, victim.fail)
    world.run()
    world.finish()
    failed = [e for e in events if e["type"] == "hier.manager_failed"]
    assert [(e["manager"], e["hosts"]) for e in failed] == [("hier.gm.lyon", 8)]
    assert 210.0 < failed[0]["t"] <= 225.0  # > 15 s of silence, checked every 5 s
    assert victim.group_view.hosts == lyon  # what it managed until it crashed
    assert leader.failed == ["hier.gm.lyon"]
    # every host is still managed, lyon's shared between the two live managers
    live = {m: set(hosts) for m, hosts in leader.assignment.items()}
    assert set(live) == {"hier.gm.rennes", "hier.gm.nancy"}
    assert set().union(*live.values()) == {h.id for h in world.infra.hosts}
    assert all(lyon & hosts for hosts in live.values())
    # the dead manager plans no more; lyon's overloads are fixed by the others afterwards
    after = [e for e in events if e["type"] == "scheduler.run" and e["t"] > failed[0]["t"]]
    assert "lyon" not in {e["group"] for e in after}
    started_after = [e for e in after if e["t"] - e["duration_s"] > failed[0]["t"]]
    assert started_after and {e["hosts"] for e in started_after} == {12}
    moved = [
        e
        for e in events
        if e["type"] == "migration.start" and e["src"] in lyon and e["t"] > failed[0]["t"]
    ]
    assert moved, "no migration off a lyon host after its manager failed"
    ends = [
        e
        for e in events
        if e["type"] == "violation.end" and e["host"] in lyon and e["t"] > failed[0]["t"] + 60
    ]
    assert ends and all(not e.get("open") for e in ends[:-1])
    assert audit_trace(events).problems == []


def test_same_seed_same_trace(tmp_path: Path) -> None:
    for name in ("a", "b"):
        simulate(small(**{"trace.compress": False, "run.duration_s": 600.0}), tmp_path / name)
    a = (tmp_path / "a" / "events.jsonl").read_text()
    assert a == (tmp_path / "b" / "events.jsonl").read_text()
    assert '"scheduler.run"' in a
    simulate(small(**{"trace.compress": False, "run.seed": 2}), tmp_path / "c")
    assert (tmp_path / "c" / "events.jsonl").read_text() != a
