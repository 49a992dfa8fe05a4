"""The assembled world: determinism, faults, migrations, and a property test over random
small scenarios (no VM lost or duplicated, memory within capacity at every instant, every
migration ends, the summary's counts agree with the trace)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvms.metrics import MetricsCollector
from dvms.summary import WALL_KEYS
from dvms.trace import read_events, read_header
from sim.audit import audit_trace
from sim.run import simulate
from sim.scenario import Scenario, load_scenario
from sim.world import World


def small(**overrides: Any) -> Scenario:
    base: dict[str, Any] = {
        "infrastructure.hosts": 16,
        "infrastructure.sites": ["lyon", "rennes"],
        "run.duration_s": 600.0,
        "vivaldi.enabled": False,
    }
    base.update(overrides)
    return load_scenario(overrides=base)


def _events(out: Path) -> list[dict[str, Any]]:
    return list(read_events(out / "events.jsonl.gz"))


def check_run(out: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The invariants every run must satisfy, from its trace and summary."""
    events = _events(out)
    audit = audit_trace(events)
    assert audit.problems == []
    assert summary["vms_lost"] == 0
    assert audit.migrations_started == summary["migrations_started"]
    metrics = MetricsCollector.from_events(events).metrics()
    for key, value in metrics.items():
        expected = summary[key]
        if isinstance(value, float):
            assert value == pytest.approx(expected, rel=1e-8, abs=1e-9), key
        else:
            assert value == expected, key
    assert summary["violations"] == sum(e["type"] == "violation.start" for e in events)
    assert summary["migrations"] == sum(e["type"] == "migration.end" for e in events)
    assert summary["migrations_failed"] == sum(e["type"] == "migration.fail" for e in events)
    times = [e["t"] for e in events]
    assert times == sorted(times)
    return events


def test_centralized_run_is_sound_and_migrates(tmp_path: Path) -> None:
    summary = simulate(small(**{"scheduler.name": "centralized", "load.mean": 70.0}), tmp_path)
    events = check_run(tmp_path, summary)
    assert summary["migrations"] > 0
    assert summary["scheduler_runs"] >= 10
    # every migration the controller ordered is answered once (done or failed)
    assert summary["messages"]["hv.MigrationResult"] == (
        summary["migrations"] + summary["migrations_failed"]
    )
    assert summary["scheduler_runs"] == sum(e["type"] == "scheduler.run" for e in events)
    header = read_header(tmp_path / "events.jsonl.gz")
    assert header is not None and header["schema"] == "dvms.events/1"
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == summary
    assert (tmp_path / "scenario.toml").read_text().startswith("# dvms scenario")


def test_no_scheduler_never_migrates_and_load_rate_is_poisson(tmp_path: Path) -> None:
    scenario = small(**{"scheduler.name": "none", "run.duration_s": 3000.0})
    summary = simulate(scenario, tmp_path)
    check_run(tmp_path, summary)
    assert summary["migrations"] == 0 and summary["messages"] == {}
    loads = summary["events_by_type"]["load"]
    expected = 160 / 300 * 3000  # VMs / period × duration = 1600
    assert abs(loads - expected) < 4 * expected**0.5


def test_energy_of_idle_hosts_by_hand(tmp_path: Path) -> None:
    scenario = small(**{"scheduler.name": "none", "load.initial": "zero", "load.period_s": 1e12})
    summary = simulate(scenario, tmp_path)
    # 16 idle hosts at 100 W for 600 s (no load event happens)
    assert summary["energy_kwh"] == pytest.approx(16 * 100 * 600 / 3.6e6)


def test_crash_records_affected_vms_and_fails_its_migrations(tmp_path: Path) -> None:
    scenario = small(
        **{
            "scheduler.name": "centralized",
            "faults.crashes": [{"t": 5.0, "host": "h0003"}, {"t": 40.0, "host": "h0010"}],
            "load.mean": 75.0,
        }
    )
    summary = simulate(scenario, tmp_path)
    events = check_run(tmp_path, summary)
    crashes = [e for e in events if e["type"] == "fault.crash"]
    assert (crashes[0]["t"], crashes[0]["host"], len(crashes[0]["vms"])) == (5.0, "h0003", 10)
    assert summary["crashes"] == 2 and summary["vms_affected"] >= 10
    # nothing migrates to or from a crashed host after its crash
    dead: dict[str, float] = {e["host"]: e["t"] for e in crashes}
    for e in events:
        if e["type"] == "migration.start":
            assert not any(e[k] in dead and e["t"] >= dead[e[k]] for k in ("src", "dst"))
    assert summary["messages_dropped"].get("crashed", 0) >= 0


def test_migration_refused_when_destination_lacks_memory(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    scenario = small(**{"scheduler.name": "none", "infrastructure.host_memory_mib": 10240})
    world = World(scenario, seen.append)
    world.start()
    src, dst = world.infra.hosts[0], world.infra.hosts[1]
    vm = next(iter(src.vms))
    world.migrate(vm, src.id, dst.id, ("h0000", "nobody"))  # dst is full: 10 × 1 GiB
    fail = [e for e in seen if e["type"] == "migration.fail"]
    assert fail[-1] | {"t": 0} == {
        "t": 0,
        "type": "migration.fail",
        "node": "h0000",
        "vm": vm,
        "src": "h0000",
        "dst": "h0001",
        "reason": "destination lacks memory",
    }
    assert vm in src.vms and dst.mem_reserved == 0
    # with room, it starts; a crash of the destination fails it and the VM stays
    dst.memory_mib = 12288
    world.migrate(vm, src.id, dst.id, ("h0000", "nobody"))
    assert dst.mem_reserved == 1024 and world.hypervisors["h0000"].migrating()
    world.crash(dst)
    assert [e["reason"] for e in seen if e["type"] == "migration.fail"][-1] == (
        "destination crashed"
    )
    assert vm in src.vms and dst.mem_reserved == 0 and not world.hypervisors["h0000"].migrating()
    assert world.infra.check() == []


def test_link_cut_between_sites_and_loss(tmp_path: Path) -> None:
    scenario = small(
        **{
            "scheduler.name": "centralized",
            "faults.link_cuts": [{"t": 0.0, "a": "lyon", "b": "rennes", "duration_s": 100.0}],
            "faults.loss_rate": 0.2,
        }
    )
    summary = simulate(scenario, tmp_path)
    events = check_run(tmp_path, summary)
    kinds = [e["type"] for e in events if e["type"].startswith("fault.")]
    assert kinds == ["fault.loss", "fault.link_cut", "fault.link_heal"]


def test_replayed_load_trace(tmp_path: Path) -> None:
    trace = tmp_path / "load.csv"
    trace.write_text("t,vm,load\n10,vm00000,100\n10,vm00016,100\n20,vm00000,0\n")
    scenario = small(
        **{
            "scheduler.name": "none",
            "load.mode": "replay",
            "load.replay_file": str(trace),
            "load.initial": "zero",
        }
    )
    summary = simulate(scenario, tmp_path / "out")
    events = _events(tmp_path / "out")
    loads = [(e["t"], e["vm"], e["host"], e["load"]) for e in events if e["type"] == "load"]
    assert loads == [
        (10.0, "vm00000", "h0000", 100.0),
        (10.0, "vm00016", "h0000", 100.0),
        (20.0, "vm00000", "h0000", 0.0),
    ]
    assert summary["violations"] == 0


def _run_cli(tmp: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dvms",
            "simulate",
            "--hosts",
            "24",
            "--duration",
            "900",
            "--sites",
            "lyon,nancy,rennes",
            "--out",
            out,
            "--quiet",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=120,
    )


def test_same_seed_byte_identical_via_cli(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("[faults]\ncrash_rate_per_host_h = 0.2\nloss_rate = 0.01\n")
    runs = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        proc = _run_cli(tmp_path, name, str(scenario), "--seed", seed)
        assert proc.returncode == 0, proc.stderr
        runs.append(tmp_path / name)
    a, b, c = runs
    assert (a / "events.jsonl.gz").read_bytes() == (b / "events.jsonl.gz").read_bytes()
    assert (a / "scenario.toml").read_bytes() == (b / "scenario.toml").read_bytes()

    def stable(path: Path) -> str:
        lines = (path / "summary.json").read_text().splitlines()
        return "\n".join(x for x in lines if not any(f'"{k}"' in x for k in WALL_KEYS))

    assert stable(a) == stable(b)
    assert (a / "events.jsonl.gz").read_bytes() != (c / "events.jsonl.gz").read_bytes()
    assert "seed = 5" in (a / "scenario.toml").read_text()


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    hosts = draw(st.integers(2, 12))
    return small(
        **{
            "run.seed": draw(st.integers(0, 10**6)),
            "run.duration_s": draw(st.sampled_from([120.0, 400.0])),
            "infrastructure.hosts": hosts,
            "infrastructure.sites": draw(st.sampled_from([["lyon"], ["lyon", "lille"]])),
            "infrastructure.vms_per_host": draw(st.integers(1, 12)),
            "infrastructure.host_memory_mib": draw(st.sampled_from([12288, 16384, 32768])),
            "infrastructure.placement": draw(st.sampled_from(["round-robin", "fill", "balanced"])),
            "scheduler.name": draw(st.sampled_from(["none", "centralized", "centralized"])),
            "scheduler.period_s": draw(st.sampled_from([5.0, 30.0])),
            "load.mean": draw(st.sampled_from([60.0, 80.0])),
            "load.period_s": draw(st.sampled_from([30.0, 300.0])),
            "faults.crash_rate_per_host_h": draw(st.sampled_from([0.0, 2.0])),
            "faults.loss_rate": draw(st.sampled_from([0.0, 0.05])),
            "monitor.mode": draw(st.sampled_from(["push", "poll"])),
            "trace.load_events": draw(st.booleans()),
        }
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios())
def test_property_random_small_scenarios(tmp_path: Path, scenario: Scenario) -> None:
    out = tmp_path / f"run{scenario.run.seed}"
    summary = simulate(scenario, out, force=True)  # examples may repeat a seed
    check_run(out, summary)


def test_vivaldi_runs_on_every_host_and_is_scored(tmp_path: Path) -> None:
    scenario = small(
        **{"vivaldi.enabled": True, "scheduler.name": "none", "infrastructure.hosts": 24}
    )
    summary = simulate(scenario, tmp_path)
    assert summary["messages"]["vivaldi.Ping"] > 24 * 20
    assert summary["vivaldi_median_error"] is not None
    assert 0 <= summary["vivaldi_median_error"] < 0.5
    coords = [e for e in _events(tmp_path) if e["type"] == "vivaldi.coord"]
    assert sorted({e["t"] for e in coords}) == [300.0]  # every 300 s, within the 600 s run
    assert len(coords) == 24 and len(coords[0]["vec"]) == 8
    off = simulate(small(), tmp_path / "off")
    assert off["vivaldi_median_error"] is None
    assert not any(k.startswith("vivaldi.") for k in off["messages"])


def test_snapshot_reflects_every_change(tmp_path: Path) -> None:
    world = World(small(**{"scheduler.name": "none"}), lambda e: None)
    world.start()
    vm = world.infra.vms[0]

    def seen() -> dict[str, tuple[str, float]]:
        _, vms = world.snapshot()
        return {v.id: (v.host, v.cpu_demand) for v in vms}

    first = seen()
    assert first[vm.id] == (vm.host.id, vm.demand)
    world.set_load(vm, 90.0 if vm.demand != 90.0 else 20.0)
    assert seen()[vm.id] == (vm.host.id, vm.demand)
    src, dst = vm.host, world.infra.hosts[5]
    world.migrate(vm.id, src.id, dst.id, ("h0000", "nobody"))
    assert seen()[vm.id][0] == src.id  # in flight: still on its source
    world.runtime.run(until=300.0)
    assert seen()[vm.id] == (dst.id, vm.demand)
    world.crash(dst)
    assert vm.id not in seen()
    assert len(seen()) == len(first) - len(dst.vms)


def test_overloaded_count_matches_the_snapshot(tmp_path: Path) -> None:
    from dvms.scheduler.model import overloaded_hosts

    world = World(small(**{"scheduler.name": "none", "load.mean": 70.0}), lambda e: None)
    world.start()
    checked = 0
    for step in range(1, 31):
        world.runtime.run(until=20.0 * step)
        if step == 10:
            world.crash(world.infra.hosts[2])
        hosts, vms = world.snapshot()
        assert world.overloaded_count() == len(overloaded_hosts(hosts, vms))
        checked += world.overloaded_count() > 0
    assert checked > 5
