"""A campaign file: a base scenario × a grid of parameters × seeds, expanded into points.

``CAMPAIGN.toml``::

    [campaign]
    name = "vmplaces-quick"
    scenario = "base.toml"          # optional, relative to this file (default: embedded)
    seeds = 3                       # seeds seed_start .. seed_start + seeds - 1
    metrics = ["violation_duration_mean_s", "migrations"]   # the Markdown table's columns

    [base]                          # overrides applied to every point (section.key)
    "run.duration_s" = 600.0

    [grid]                          # every combination of these lists, × the seeds
    hosts = [64, 128]               # short names: hosts, scheduler, overlay, planner, ...
    scheduler = ["centralized", "hierarchical", "dvms"]
    "dvms.min_partition_size" = [3, 4]

Every point's scenario is validated when the file is read: a bad field raises one
``InputError`` line naming the file, the point and the field. A point is a frozen, picklable
``PointSpec`` (it travels to Dask workers): its id names its parameters and seed, its run
directory is ``OUT/points/<id>``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dvms.config import Section, option, parse_section
from dvms.errors import InputError

__all__ = [
    "ALIASES",
    "CampaignSection",
    "CampaignSpec",
    "PointSpec",
    "load_campaign",
    "parse_campaign",
]

ALIASES: dict[str, str] = {
    "hosts": "infrastructure.hosts",
    "sites": "infrastructure.sites",
    "vms_per_host": "infrastructure.vms_per_host",
    "scheduler": "scheduler.name",
    "planner": "scheduler.planner",
    "overlay": "overlay.name",
    "duration": "run.duration_s",
}
"""Short grid names → scenario fields."""

DEFAULT_METRICS = (
    "violation_duration_mean_s",
    "violations",
    "migrations",
    "migrations_inter_site",
    "scheduler_compute_s",
)


@dataclasses.dataclass(frozen=True)
class CampaignSection(Section):
    name: str = option("campaign", "The campaign's name (the default output is campaigns/NAME).")
    scenario: str = option(
        "", "Base scenario file, relative to the campaign file (empty: embedded)."
    )
    seeds: int = option(3, "Seeds per grid point: seed_start .. seed_start + seeds - 1.", lo=1)
    seed_start: int = option(1, "The first seed.", lo=0)
    metrics: tuple[str, ...] = option(DEFAULT_METRICS, "Summary keys in the Markdown table.")

    def __post_init__(self) -> None:
        metrics = self.metrics
        if (
            not isinstance(metrics, tuple)
            or not metrics
            or not all(isinstance(m, str) and m for m in metrics)
        ):
            raise InputError(
                f"campaign.metrics = {metrics!r}: must be a non-empty list of summary keys"
            )


@dataclasses.dataclass(frozen=True)
class PointSpec:
    """One run of a campaign (picklable: it is what a Dask worker receives)."""

    id: str
    """``hosts-128_scheduler-dvms_seed-1``: the run directory's name."""
    run_dir: str
    scenario: str | None
    """The base scenario file (None: embedded)."""
    overrides: tuple[tuple[str, Any], ...]
    """``section.key`` → value: base, then the grid's, then ``run.seed``."""
    params: tuple[tuple[str, Any], ...]
    """The grid's parameters of this point (by their names in the campaign file)."""
    seed: int

    def overrides_dict(self) -> dict[str, Any]:
        return dict(self.overrides)

    def group(self) -> tuple[tuple[str, Any], ...]:
        """The point's grid cell (its params, JSON-encoded for hashing), seeds pooled."""
        return tuple((k, json.dumps(v)) for k, v in self.params)


@dataclasses.dataclass(frozen=True)
class CampaignSpec:
    """A parsed campaign: its settings and every point, in grid order (seeds innermost)."""

    path: Path
    out_dir: Path
    """Where the points' run directories (``points/<id>``) and the results go."""
    section: CampaignSection
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    points: tuple[PointSpec, ...]

    @property
    def name(self) -> str:
        return self.section.name

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.grid)


def _field(name: str, where: str) -> str:
    if name in ("seed", "run.seed"):
        raise InputError(f"{where}.{name}: seeds come from campaign.seeds and seed_start")
    if "." in name:
        return name
    if name in ALIASES:
        return ALIASES[name]
    short = ", ".join(ALIASES)
    raise InputError(f"{where}.{name}: unknown parameter; use section.key or one of {short}")


def _flat(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``{"run": {"duration_s": 1}}`` or ``{"run.duration_s": 1}`` → dotted keys."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and "." not in key and key not in ALIASES:
            for sub, v in value.items():
                out[_field(f"{key}.{sub}", where)] = v
        else:
            out[_field(key, where)] = value
    return out


def _slug(value: Any) -> str:
    if isinstance(value, list | tuple):
        text = "+".join(_slug(v) for v in value)
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    text = re.sub(r"[^A-Za-z0-9.+=-]+", "-", text)
    return text or "x"


def _short(name: str) -> str:
    for alias, dotted in ALIASES.items():
        if dotted == name:
            return alias
    return name


def load_campaign(path: str | Path, out_dir: str | Path | None = None) -> CampaignSpec:
    """Read and validate ``path``; points run under ``out_dir`` (default campaigns/NAME)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"campaign {str(path)!r}: no such file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"campaign {str(path)!r}: cannot read ({exc})") from None
    return parse_campaign(data, p, out_dir)


def parse_campaign(
    data: Mapping[str, Any], p: Path, out_dir: str | Path | None = None
) -> CampaignSpec:
    """Validate a campaign's tables (read from ``p``: relative paths start there)."""
    unknown = set(data) - {"campaign", "base", "grid"}
    if unknown:
        raise InputError(f"[{sorted(unknown)[0]}]: unknown section; allowed: campaign, base, grid")
    section: CampaignSection = parse_section("campaign", CampaignSection, data.get("campaign", {}))
    base = data.get("base", {})
    grid_table = data.get("grid", {})
    for name, table in (("base", base), ("grid", grid_table)):
        if not isinstance(table, Mapping):
            raise InputError(f"[{name}]: must be a table, got {table!r}")
    base_overrides = _flat(base, "base")
    grid: list[tuple[str, tuple[Any, ...]]] = []
    for key, values in grid_table.items():
        _field(key, "grid")
        if not isinstance(values, list) or not values:
            raise InputError(f"grid.{key} = {values!r}: must be a non-empty list of values")
        grid.append((_short(_field(key, "grid")), tuple(values)))
    scenario = None
    if section.scenario:
        scenario_path = (p.parent / section.scenario).resolve()
        if not scenario_path.is_file():
            raise InputError(f"campaign.scenario = {section.scenario!r}: no such file")
        scenario = str(scenario_path)
    out = Path(out_dir) if out_dir is not None else Path("campaigns") / _slug(section.name)
    seeds = range(section.seed_start, section.seed_start + section.seeds)
    points: list[PointSpec] = []
    seen: set[str] = set()
    for combo in itertools.product(*(values for _, values in grid)):
        params = tuple((name, v) for (name, _), v in zip(grid, combo, strict=True))
        for seed in seeds:
            parts = [f"{name}-{_slug(v)}" for name, v in params] + [f"seed-{seed}"]
            point_id = "_".join(_slug(part) for part in parts)
            while point_id in seen:
                point_id += "+"
            seen.add(point_id)
            overrides = dict(base_overrides)
            overrides.update((_field(name, "grid"), v) for name, v in params)
            overrides["run.seed"] = seed
            points.append(
                PointSpec(
                    id=point_id,
                    run_dir=str((out / "points" / point_id).resolve()),
                    scenario=scenario,
                    overrides=tuple(overrides.items()),
                    params=params,
                    seed=seed,
                )
            )
    if not points:
        raise InputError(f"campaign {str(p)!r}: no points")
    _validate(p, points)
    return CampaignSpec(p, out.resolve(), section, tuple(grid), tuple(points))


def _validate(path: Path, points: list[PointSpec]) -> None:
    from sim.scenario import load_scenario

    checked: set[str] = set()
    for point in points:
        key = json.dumps([(k, v) for k, v in point.overrides if k != "run.seed"])
        if key in checked:
            continue
        checked.add(key)
        try:
            load_scenario(point.scenario, point.overrides_dict())
        except InputError as exc:
            raise InputError(f"campaign {str(path)!r}: point {point.id}: {exc}") from None
