"""The simulated hypervisor's cached VM samples always equal samples made afresh."""

from __future__ import annotations

from typing import Any

from dvms.hypervisor import VMSample
from sim.scenario import load_scenario
from sim.world import World


def fresh(world: World, host_id: str) -> list[VMSample]:
    host = world.infra.host_by_id[host_id]
    return [
        VMSample(vm.id, vm.vcpus, vm.memory_mib, vm.demand, vm.migrating is not None)
        for vm in host.vms.values()
    ]


def test_cached_samples_follow_loads_and_migrations() -> None:
    scenario = load_scenario(
        overrides={
            "infrastructure.hosts": 24,
            "infrastructure.sites": ["lyon", "rennes"],
            "run.duration_s": 900.0,
            "scheduler.name": "dvms",
            "overlay.name": "ring",
            "vivaldi.enabled": False,
            "faults.crash_rate_per_host_h": 0.2,
        }
    )
    checked: dict[str, int] = {}
    world: World

    def sink(event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("load", "migration.start", "migration.end", "migration.fail", "fault.crash"):
            for host_id in world.hypervisors:
                assert world.hypervisors[host_id].vms() == fresh(world, host_id), event
            checked[kind] = checked.get(kind, 0) + 1

    world = World(scenario, sink)
    world.start()
    world.run()
    world.finish()
    assert checked.get("migration.end", 0) > 3 and checked.get("load", 0) > 100
