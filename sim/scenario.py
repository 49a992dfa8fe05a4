"""Scenarios: a TOML file → frozen, validated dataclasses, checked before anything runs.

Every section is a frozen dataclass whose fields carry their documentation and allowed
range in ``metadata`` (docs/scenario.md lists them). ``load_scenario(path, overrides)``
reads a file (or the embedded default, ``sim/default.toml``), applies ``overrides``
(``{"infrastructure.hosts": 128, ...}``, the CLI flags) and validates: an unknown section
or key, a wrong type or an out-of-range value raises an ``InputError`` with one line naming
the field, the value and what is allowed. Missing keys take their defaults, which reproduce
VMPlaceS's workload. ``scenario_to_toml`` writes the completed scenario back (seed included).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from dvms.config import parse_section, toml_value
from dvms.errors import InputError
from dvms.geo import resolve_sites
from dvms.node import (
    NODE_SECTIONS,
    MonitorConfig,
    NodePlan,
    NodeTables,
    OverlayConfig,
    SchedulerConfig,
    VivaldiSection,
    dvms_table,
    node_plan,
)
from dvms.protocol.config import DvmsConfig
from sim.faults import check_faults
from sim.infrastructure import host_index, host_name
from sim.scenario_schema import (
    CrashAt,
    FaultsConfig,
    InfrastructureConfig,
    LinkCut,
    LoadConfig,
    MigrationConfig,
    PowerConfig,
    RunConfig,
    TraceConfig,
)

__all__ = [
    "SECTIONS",
    "CrashAt",
    "FaultsConfig",
    "InfrastructureConfig",
    "LinkCut",
    "LoadConfig",
    "MigrationConfig",
    "MonitorConfig",
    "OverlayConfig",
    "PowerConfig",
    "RunConfig",
    "Scenario",
    "SchedulerConfig",
    "TraceConfig",
    "VivaldiSection",
    "default_toml",
    "load_scenario",
    "parse_scenario",
    "scenario_to_dict",
    "scenario_to_toml",
]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A complete, validated scenario."""

    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    infrastructure: InfrastructureConfig = dataclasses.field(default_factory=InfrastructureConfig)
    load: LoadConfig = dataclasses.field(default_factory=LoadConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    overlay: OverlayConfig = dataclasses.field(default_factory=OverlayConfig)
    dvms: DvmsConfig = dataclasses.field(default_factory=DvmsConfig)
    vivaldi: VivaldiSection = dataclasses.field(default_factory=VivaldiSection)
    monitor: MonitorConfig = dataclasses.field(default_factory=MonitorConfig)
    power: PowerConfig = dataclasses.field(default_factory=PowerConfig)
    migration: MigrationConfig = dataclasses.field(default_factory=MigrationConfig)
    faults: FaultsConfig = dataclasses.field(default_factory=FaultsConfig)
    trace: TraceConfig = dataclasses.field(default_factory=TraceConfig)

    @property
    def node_tables(self) -> NodeTables:
        """The node tables, as an agent config would carry them."""
        return NodeTables(self.scheduler, self.overlay, self.dvms, self.vivaldi, self.monitor)

    def node_plan(self) -> NodePlan:
        """What every simulated node runs (``dvms.node``)."""
        return node_plan(
            self.node_tables, seed=self.run.seed, trace_period_s=self.trace.coord_period_s
        )


SECTIONS: dict[str, type[Any]] = {
    "run": RunConfig,
    "infrastructure": InfrastructureConfig,
    "load": LoadConfig,
    **NODE_SECTIONS,
    "power": PowerConfig,
    "migration": MigrationConfig,
    "faults": FaultsConfig,
    "trace": TraceConfig,
}
"""Sections with their dataclass (the node tables are ``dvms.node``'s)."""


def default_toml() -> str:
    """The embedded default scenario's text."""
    return resources.files("sim").joinpath("default.toml").read_text(encoding="utf-8")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    if not key:
        raise InputError(f"override {dotted!r}: expected section.key")
    table = data.setdefault(section, {})
    if not isinstance(table, dict):
        raise InputError(f"[{section}]: must be a table, got {table!r}")
    table[key] = value


def parse_scenario(data: Mapping[str, Any]) -> Scenario:
    """Validate a TOML-like mapping (sections → tables) into a ``Scenario``."""
    values: dict[str, Any] = {}
    for section, table in data.items():
        cls = SECTIONS.get(section)
        if cls is None:
            allowed = ", ".join(SECTIONS)
            raise InputError(f"[{section}]: unknown section; allowed: {allowed}")
        values[section] = parse_section(section, cls, table)
    scenario = Scenario(**values)
    _check(scenario)
    return scenario


def _check(s: Scenario) -> None:
    """Checks across fields (single fields are checked by their section)."""
    infra = s.infrastructure
    if infra.vm_intensity_min > infra.vm_intensity_max:
        raise InputError(
            f"infrastructure.vm_intensity_min = {infra.vm_intensity_min!r}: must be <= "
            f"vm_intensity_max ({infra.vm_intensity_max!r})"
        )
    if infra.vm_memory_mib > infra.host_memory_mib:
        raise InputError(
            f"infrastructure.vm_memory_mib = {infra.vm_memory_mib}: must be <= "
            f"host_memory_mib ({infra.host_memory_mib})"
        )
    if infra.vm_vcpus > infra.host_cores:
        raise InputError(
            f"infrastructure.vm_vcpus = {infra.vm_vcpus}: "
            f"must be <= host_cores ({infra.host_cores})"
        )
    total_mib = infra.hosts * infra.vms_per_host * infra.vm_memory_mib
    if total_mib > infra.hosts * infra.host_memory_mib:
        raise InputError(
            f"infrastructure.vms_per_host = {infra.vms_per_host}: {infra.vms_per_host} VMs of "
            f"{infra.vm_memory_mib} MiB exceed a host's {infra.host_memory_mib} MiB"
        )
    if s.power.max_w < s.power.idle_w:
        raise InputError(f"power.max_w = {s.power.max_w!r}: must be >= idle_w ({s.power.idle_w!r})")
    if s.load.mode == "replay":
        if not s.load.replay_file:
            raise InputError("load.replay_file = '': required when load.mode = 'replay'")
        if not Path(s.load.replay_file).is_file():
            raise InputError(f"load.replay_file = {s.load.replay_file!r}: no such file")
    hosts = infra.hosts
    for i, crash in enumerate(s.faults.crashes):
        if not _is_host(crash.host, hosts):
            raise InputError(
                f"faults.crashes[{i}].host = {crash.host!r}: not a host of this run "
                f"(h0000..{_host_name(hosts - 1)})"
            )
    s.node_plan()  # the scheduler's name (a registered one or an import path) resolves
    if len(resolve_sites(infra.sites)) > infra.hosts:
        raise InputError(
            f"infrastructure.hosts = {infra.hosts}: fewer hosts than sites "
            f"({len(resolve_sites(infra.sites))}); allowed: at least one host per site"
        )
    check_faults(s.faults, infra, s.run.duration_s)


def _host_name(index: int) -> str:
    return host_name(index)


def _is_host(name: str, hosts: int) -> bool:
    index = host_index(name)
    return index is not None and 0 <= index < hosts


def load_scenario(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Read ``path`` (None: the embedded default), apply ``overrides``, validate."""
    if path is None:
        text, where = default_toml(), "default scenario"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"scenario {str(path)!r}: no such file")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"scenario {str(path)!r}: cannot read ({exc})") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: ints of > 4300 digits
        raise InputError(f"scenario {where}: invalid TOML ({exc})") from None
    for dotted, value in (overrides or {}).items():
        _set(data, dotted, value)
    return parse_scenario(data)


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """The scenario as plain JSON-able data (sections → tables), in declaration order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        out[f.name] = dvms_table(value) if isinstance(value, DvmsConfig) else value.to_dict()
    return out


def scenario_to_toml(s: Scenario) -> str:
    """The completed scenario as TOML text that ``load_scenario`` reads back equal."""
    lines = ["# dvms scenario (completed: every field, seed included)"]
    for section, table in scenario_to_dict(s).items():
        lines.append("")
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{_toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return toml_value(key)
