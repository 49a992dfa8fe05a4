"""Hypervisor change pushes: the world leaves out changes from normal to normal, and the
history is the one of a world that pushes every change (the naive reference below)."""

from __future__ import annotations

from typing import Any

import pytest

from sim.infrastructure import SimHost
from sim.scenario import load_scenario
from sim.world import World


class PushEveryChange(World):
    """Reference: ``hv.Changed`` to the watchers on every demand change."""

    def changed(self, host: SimHost) -> None:
        was_over = host.violated_since is not None
        super().changed(host)
        if host.watchers and not was_over and host.violated_since is None:
            msg = self._changed_msg[host.id]
            for address in host.watchers:
                self.runtime.inject(address, msg)
            self.injected["hv.Changed"] = self.injected.get("hv.Changed", 0) + len(host.watchers)


def _run(world_class: type[World], **overrides: Any) -> tuple[list[dict[str, Any]], World]:
    scenario = load_scenario(
        overrides={
            "infrastructure.hosts": 48,
            "infrastructure.sites": ["lyon", "rennes"],
            "run.duration_s": 900.0,
            "scheduler.name": "dvms",
            "overlay.name": "ring",
            "vivaldi.enabled": False,
            **overrides,
        }
    )
    trace: list[dict[str, Any]] = []
    world = world_class(scenario, trace.append)
    world.start()
    world.run()
    world.finish()
    return trace, world


FAULTS = {"faults.crash_rate_per_host_h": 0.3, "faults.loss_rate": 0.01}


@pytest.mark.parametrize("faults", [{}, FAULTS])
def test_pushing_only_changes_that_matter_keeps_the_history(faults: dict[str, Any]) -> None:
    reference, naive = _run(PushEveryChange, **faults)
    trace, world = _run(World, **faults)
    assert trace == reference
    assert sum(e["type"] == "violation.start" for e in trace) > 10
    assert sum(e["type"] == "migration.end" for e in trace) > 5
    if faults:
        assert any(e["type"] == "fault.crash" for e in trace)
    pushed, every = world.messages()["hv.Changed"], naive.messages()["hv.Changed"]
    assert 0 < pushed < every / 3
    for tag in ("monitor.HostOverloaded", "monitor.HostNormal"):
        assert world.messages()[tag] == naive.messages()[tag]
