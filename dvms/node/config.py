"""The node tables: ``[scheduler]``, ``[overlay]``, ``[dvms]``, ``[vivaldi]``, ``[monitor]``.

The same schema on both sides: a scenario and an agent's TOML carry these tables, parsed by
this module with ``dvms.config``'s one-line errors, so a table copied verbatim from a
scenario into an agent config means the same thing on real hosts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dvms.config import Section, option, parse_section, plain
from dvms.errors import InputError
from dvms.overlay.factory import OVERLAYS
from dvms.protocol.config import DvmsConfig
from dvms.scheduler import COST_MODELS, PLANNERS, is_planner_path, make_planner
from dvms.services.vivaldi import VivaldiServiceConfig

MIN_PERIOD_S = 1e-3
"""The shortest period a node table accepts (s): a smaller one (a subnormal, say) would
stall the clock on one event."""

__all__ = [
    "MIN_PERIOD_S",
    "NODE_SECTIONS",
    "VIVALDI_DEFAULTS",
    "MonitorConfig",
    "NodeTables",
    "OverlayConfig",
    "SchedulerConfig",
    "VivaldiSection",
    "dvms_table",
    "parse_node_tables",
]


@dataclasses.dataclass(frozen=True)
class SchedulerConfig(Section):
    name: str = option(
        "centralized",
        "none, centralized, hierarchical, dvms, or a user scheduler spec by import path "
        "(package.module:NAME).",
    )
    period_s: float = option(30.0, "Centralised scheduler period (s).", lo=MIN_PERIOD_S)
    planner: str = option(
        "repair", "Planner: repair, cpsat, or a user planner by import path (package.module:Class)."
    )
    headroom: float = option(
        0.2,
        "Fraction of a destination's CPU capacity the repair heuristic keeps free when it "
        "can (destinations packed to 90 % are overloaded again by the next load changes "
        "while a 30 s solve is charged; 0.2 keeps them at <= 80 %).",
        lo=0,
        hi=1,
        hi_open=True,
    )
    cost: str = option(
        "exact-model",
        "Solve time charged to the clock: exact-model (deterministic) or measured (wall).",
        choices=COST_MODELS,
    )
    coordinator: str = option(
        "",
        "Real runs of centralized: the node whose agent runs the coordinator (empty: the "
        "smallest node id). Simulations place it on a node of its own.",
    )
    gather_timeout_s: float = option(
        2.0,
        "Real runs of centralized: how long the coordinator waits for the hosts' snapshots; "
        "hosts that have not answered are left out of that round (s).",
        lo=MIN_PERIOD_S,
    )

    group_size: int = option(
        0,
        "Hierarchical: hosts per group manager, in host order (0: one group per site).",
        lo=0,
    )

    def __post_init__(self) -> None:
        if not is_planner_path(self.planner) and self.planner not in PLANNERS:
            allowed = ", ".join(repr(p) for p in PLANNERS)
            raise InputError(
                f"scheduler.planner = {self.planner!r}: must be one of {allowed} "
                "or package.module:ClassName"
            )
        if is_planner_path(self.planner):
            make_planner(self.planner)  # imports and checks it: one line if it is wrong


@dataclasses.dataclass(frozen=True)
class OverlayConfig(Section):
    name: str = option("lbo", "Overlay for DVMS: lbo, ring or random.", choices=OVERLAYS)


@dataclasses.dataclass(frozen=True)
class MonitorConfig(Section):
    mode: str = option(
        "push",
        "push (the hypervisor notifies every demand change; real hypervisors cannot, and "
        "poll) or poll.",
        choices=("push", "poll"),
    )
    period_s: float = option(1.0, "Polling period (s) in poll mode.", lo=MIN_PERIOD_S)

    @property
    def poll_period_s(self) -> float | None:
        """The monitor's period: None (push where the hypervisor can) or ``period_s``."""
        return self.period_s if self.mode == "poll" else None


VIVALDI_DEFAULTS: Mapping[str, Any] = {"fast_period_s": 2.0, "fast_rounds": 90, "period_s": 60.0}
"""The defaults of the ``[vivaldi]`` table: a three-minute warm-up at the DVMS prototype's
pace (a round every 2 s), then a round every 60 s (the prototype's 2 s throughout would mean
36M messages per simulated hour on 10,000 hosts). The warm-up fills the close-node tables
before most ISPs start (docs/scenario.md); ~2 % median error on 1,000 hosts after an hour."""


@dataclasses.dataclass(frozen=True)
class VivaldiSection(Section):
    """``enabled`` plus any field of ``VivaldiServiceConfig``, checked field by field."""

    enabled: bool = option(True, "Run the Vivaldi service on every host.")
    options: Mapping[str, Any] = dataclasses.field(default_factory=lambda: dict(VIVALDI_DEFAULTS))

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, **{k: plain(v) for k, v in self.options.items()}}

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> VivaldiSection:
        rest = dict(VIVALDI_DEFAULTS)
        rest.update((k, v) for k, v in table.items() if k != "enabled")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InputError(f"vivaldi.enabled = {enabled!r}: must be true or false")
        section = cls(enabled, rest)
        section.service_config()
        return section

    def service_config(self, trace_period_s: float | None = None) -> VivaldiServiceConfig:
        """The service's config; ``trace_period_s`` applies unless the table sets it."""
        config: VivaldiServiceConfig = parse_section("vivaldi", VivaldiServiceConfig, self.options)
        if trace_period_s is not None and "trace_period_s" not in self.options:
            config = dataclasses.replace(config, trace_period_s=trace_period_s)
        return config


NODE_SECTIONS: dict[str, type[Any]] = {
    "scheduler": SchedulerConfig,
    "overlay": OverlayConfig,
    "dvms": DvmsConfig,
    "vivaldi": VivaldiSection,
    "monitor": MonitorConfig,
}
"""The node tables and their classes, the same in scenarios and agent configs."""


@dataclasses.dataclass(frozen=True)
class NodeTables:
    """The node tables of one document (scenario or agent config), validated."""

    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    overlay: OverlayConfig = dataclasses.field(default_factory=OverlayConfig)
    dvms: DvmsConfig = dataclasses.field(default_factory=DvmsConfig)
    vivaldi: VivaldiSection = dataclasses.field(default_factory=VivaldiSection)
    monitor: MonitorConfig = dataclasses.field(default_factory=MonitorConfig)


def parse_node_tables(data: Mapping[str, Any]) -> NodeTables:
    """The node tables found in ``data`` (others are the caller's), defaults for the rest."""
    values = {
        name: parse_section(name, cls, data[name])
        for name, cls in NODE_SECTIONS.items()
        if name in data
    }
    return NodeTables(**values)


def dvms_table(config: DvmsConfig) -> dict[str, Any]:
    """``[dvms]`` as a TOML-ready table (every field)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
