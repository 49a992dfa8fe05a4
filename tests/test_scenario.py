"""Scenarios: defaults, round trip, overrides, and one-line errors (exit 2) via the CLI."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dvms.errors import InputError
from sim.scenario import (
    Scenario,
    default_toml,
    load_scenario,
    parse_scenario,
    scenario_to_dict,
    scenario_to_toml,
)


def test_embedded_default_is_the_dataclass_defaults_and_vmplaces_workload() -> None:
    s = load_scenario()
    assert s == Scenario()
    infra = s.infrastructure
    assert (infra.host_cores, infra.host_cpu_capacity, infra.host_memory_mib) == (8, 700.0, 32768)
    assert (infra.vms_per_host, infra.vm_vcpus, infra.vm_memory_mib) == (10, 1, 1024)
    assert (infra.vm_intensity_min, infra.vm_intensity_max, infra.host_nic_bps) == (
        0.1,
        0.8,
        125e6,
    )
    assert (s.load.period_s, s.load.mean, s.load.sd, s.load.slot) == (300.0, 60.0, 20.0, 10.0)
    assert (s.run.duration_s, infra.sites, infra.hosts) == (3600.0, "grid5000", 256)
    # every field of every section is written in the embedded file
    data = tomllib.loads(default_toml())
    for section, table in scenario_to_dict(s).items():
        assert set(data[section]) == set(table), section


def test_toml_round_trip_with_lists_and_tables() -> None:
    s = load_scenario(
        overrides={
            "infrastructure.sites": ["lyon", "nancy"],
            "infrastructure.hosts": 4,
            "faults.crashes": [{"t": 10.0, "host": "h0001"}],
            "faults.link_cuts": [{"t": 1, "a": "lyon", "b": "h0003", "duration_s": 5}],
            "run.name": 'quo"ted',
        }
    )
    text = scenario_to_toml(s)
    assert parse_scenario(tomllib.loads(text)) == s
    assert s.faults.crashes[0].host == "h0001"
    assert s.faults.link_cuts[0].t == 1.0  # ints become floats for float fields


def test_overrides_and_partial_files(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[run]\nseed = 42\n[infrastructure]\nhosts = 12\n")
    s = load_scenario(f, {"infrastructure.vms_per_host": 3})
    assert (s.run.seed, s.infrastructure.hosts, s.infrastructure.vms_per_host) == (42, 12, 3)
    assert s.load == Scenario().load


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"infrastructure.hostz": 3}, "infrastructure.hostz: unknown key; allowed: sites, hosts"),
        ({"run.seed": "x"}, "run.seed = 'x': must be an integer"),
        ({"infrastructure.hosts": 0}, "infrastructure.hosts = 0: must be an integer in [1, "),
        ({"run.duration_s": 0}, "run.duration_s = 0: must be a number in (0, 1000000000]"),
        ({"faults.loss_rate": 1.0}, "faults.loss_rate = 1.0: must be a number in [0, 1)"),
        ({"trace.compress": 1}, "trace.compress = 1: must be true or false"),
        ({"load.mode": "burst"}, "load.mode = 'burst': must be one of 'poisson', 'replay'"),
        ({"scheduler.name": "magic"}, "scheduler.name = 'magic': must be one of"),
        ({"infrastructure.sites": ["lyon", "mars"]}, "unknown site 'mars'"),
        ({"infrastructure.vm_memory_mib": 65536}, "must be <= host_memory_mib"),
        ({"faults.crashes": [{"t": 1.0, "host": "h9999"}]}, "faults.crashes[0].host = 'h9999'"),
        ({"faults.crashes": [{"t": 1.0, "hots": "h0001"}]}, "faults.crashes[0].hots: unknown key"),
        ({"nonsense.x": 1}, "[nonsense]: unknown section"),
        ({"load.mode": "replay"}, "load.replay_file = '': required"),
    ],
)
def test_bad_fields_name_field_value_and_what_is_allowed(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError) as err:
        load_scenario(overrides=overrides)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvms", "simulate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[infrastructure]\nhosts = 8\nflavour = 'x'\n", "infrastructure.flavour: unknown key"),
        ("[run]\nseed = 'one'\n", "run.seed = 'one': must be an integer"),
        ("[run]\nduration_s = true\n", "run.duration_s = True: must be a number in (0, 1000000"),
        ("[load]\nsd = -5\n", "load.sd = -5: must be a number in [0, 1000000]"),
        ("[power]\nidle_w = 300.0\n", "power.max_w = 200.0: must be >= idle_w (300.0)"),
        ("[extra]\n", "[extra]: unknown section"),
        ("[run\nseed = 1\n", "invalid TOML"),
        ("[infrastructure]\nsites = 3\n", "infrastructure.sites = 3: must be a preset name"),
    ],
)
def test_cli_bad_scenario_one_line_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(content)
    proc = _cli(str(scenario), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dvms simulate: error: ")
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_bad_flag_values_exit_2(tmp_path: Path) -> None:
    proc = _cli("--hosts", "-4", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "dvms simulate: error: infrastructure.hosts = -4: must be an integer in [1, 1000000]"
    ]
    proc = _cli(str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = _cli("--scheduler", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "scheduler.name = 'nope'" in proc.stderr


def test_every_field_is_documented() -> None:
    import dataclasses

    from sim.scenario import SECTIONS

    doc = (Path(__file__).parent.parent / "docs" / "scenario.md").read_text()
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in doc
        for f in dataclasses.fields(cls):
            if f.metadata:
                assert f"| `{f.name}` |" in doc, f"{section}.{f.name} missing in docs/scenario.md"
