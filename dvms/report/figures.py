"""The report's figures (matplotlib, Agg, no pyplot state), PNG and SVG each.

Each ``figure_*`` function takes one or several :class:`RunSeries` (several are
overlaid) and returns a :class:`Figure` saying which files it wrote, or why it was
skipped (no data in the trace is a note, never an error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from dvms.report.series import RunSeries, project_2d

__all__ = [
    "FIGURES",
    "Figure",
    "figure_migrations",
    "figure_partitions",
    "figure_power",
    "figure_violations",
    "figure_vivaldi",
]

DPI = 100
SIZE = (11.0, 4.2)
INTRA, INTER = "#2b8a3e", "#c92a2a"


@dataclass(frozen=True)
class Figure:
    """A figure of the report: ``files`` (PNG, SVG) relative to the output dir, or a note."""

    name: str
    title: str
    files: tuple[str, ...] = ()
    note: str = ""


def _save(fig: MplFigure, out: Path, stem: str) -> tuple[str, ...]:
    out.mkdir(parents=True, exist_ok=True)
    names = (f"{stem}.png", f"{stem}.svg")
    fig.savefig(out / names[0], dpi=DPI, metadata={"Software": None})
    fig.savefig(out / names[1], metadata={"Date": None})
    return names


def _new(ncols: int = 2, counts: bool = True) -> tuple[MplFigure, list[Axes]]:
    fig = MplFigure(figsize=SIZE, layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, ncols)))
    if counts:  # y axes that count things get integer ticks
        for ax in axes:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes


def _legend(ax: Axes, runs: Sequence[RunSeries]) -> None:
    if len(runs) > 1 or ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def figure_vivaldi(runs: Sequence[RunSeries], out: Path, stem: str = "vivaldi") -> Figure:
    """Vivaldi map of one run: last coordinates, by site, partitions and migrations as edges."""
    title = "Vivaldi map"
    run = runs[0]
    nodes = sorted(run.coords)
    if not nodes:
        return Figure("vivaldi", title, note="no vivaldi.coord events in the trace (Vivaldi off)")
    vecs = [run.coords[n][0] for n in nodes]
    dims = max(len(v) for v in vecs)
    vecs = [v + [0.0] * (dims - len(v)) for v in vecs]
    xy = project_2d(vecs)
    where = {n: xy[i] for i, n in enumerate(nodes)}
    fig = MplFigure(figsize=(8.0, 7.0), layout="constrained")
    ax = fig.subplots()
    for part in run.partitions.values():
        for member in part.members:
            if member != part.leader and member in where and part.leader in where:
                a, b = where[part.leader], where[member]
                ax.plot([a[0], b[0]], [a[1], b[1]], color="#7048e8", alpha=0.35, lw=0.8)
    for m in run.migrations:
        if m.src in where and m.dst in where:
            a, b = where[m.src], where[m.dst]
            ax.annotate(
                "",
                xy=(b[0], b[1]),
                xytext=(a[0], a[1]),
                arrowprops={"arrowstyle": "->", "color": INTER if m.inter_site else INTRA,
                            "alpha": 0.5, "lw": 0.8},
            )
    sites = sorted({run.sites.get(n, "unknown") for n in nodes})
    cmap = _colours(len(sites))
    for k, site in enumerate(sites):
        idx = [i for i, n in enumerate(nodes) if run.sites.get(n, "unknown") == site]
        ax.scatter(xy[idx, 0], xy[idx, 1], s=18, color=cmap[k], label=site, zorder=3)
    ax.plot([], [], color="#7048e8", label="partition (leader–member)")
    ax.plot([], [], color=INTRA, label="migration intra-site")
    ax.plot([], [], color=INTER, label="migration inter-site")
    how = f"PCA of {dims}-D coordinates" if dims > 2 else f"{dims}-D coordinates"
    ax.set_title(f"{title} — {run.label} ({len(nodes)} nodes, {how})")
    ax.set_xlabel("component 1 (s)")
    ax.set_ylabel("component 2 (s)")
    ax.legend(fontsize="small", loc="best")
    return Figure("vivaldi", title, _save(fig, out, stem))


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def figure_violations(runs: Sequence[RunSeries], out: Path, stem: str = "violations") -> Figure:
    """Hosts in violation over time, and the distribution of violation durations."""
    title = "Violations"
    if not any(r.violation_changes for r in runs):
        return Figure("violations", title, note="no violation events in the trace")
    fig, (left, right) = _new()
    durations = [d for r in runs for d in r.violation_durations]
    bins = np.histogram_bin_edges(durations or [0.0, 1.0], bins=30).tolist()
    for run in runs:
        ts = [0.0] + [t for t, _ in run.violation_changes] + [run.t_end]
        ys = [0] + [c for _, c in run.violation_changes]
        ys.append(ys[-1])
        left.step(ts, ys, where="post", label=run.label, lw=1.0)
        if run.violation_durations:
            right.hist(run.violation_durations, bins=bins, histtype="step" if len(runs) > 1
                       else "bar", label=run.label, alpha=1.0 if len(runs) > 1 else 0.8)
    left.set_title("hosts in violation")
    left.set_xlabel("time (s)")
    left.set_ylabel("hosts")
    right.set_title("violation durations")
    right.set_xlabel("duration (s)")
    right.set_ylabel("violations")
    _legend(left, runs)
    if len(runs) > 1:
        _legend(right, runs)
    return Figure("violations", title, _save(fig, out, stem))


def figure_migrations(runs: Sequence[RunSeries], out: Path, stem: str = "migrations") -> Figure:
    """Migrations per minute, intra- vs inter-site, and their duration distribution."""
    title = "Migrations"
    if not any(r.migrations for r in runs):
        return Figure("migrations", title, note="no completed migrations in the trace")
    fig, (left, right) = _new()
    durations = [m.duration_s for r in runs for m in r.migrations]
    bins = np.histogram_bin_edges(durations, bins=30).tolist()
    for run in runs:
        minutes, intra, inter = run.migrations_per_minute()
        if len(runs) == 1:
            left.bar(minutes / 60.0, intra, width=0.9, color=INTRA, label="intra-site")
            left.bar(minutes / 60.0, inter, width=0.9, bottom=intra, color=INTER,
                     label="inter-site")
            right.hist(durations, bins=bins, color="#1c7ed6", alpha=0.8)
        else:
            line = left.plot(minutes / 60.0, intra, lw=1.0, drawstyle="steps-post",
                             label=f"{run.label} intra")[0]
            left.plot(minutes / 60.0, inter, lw=1.0, ls="--", color=line.get_color(),
                      drawstyle="steps-post",
                      label=f"{run.label} inter")
            right.hist([m.duration_s for m in run.migrations], bins=bins, histtype="step",
                       label=run.label, color=line.get_color())
    left.set_title("migrations per minute")
    left.set_xlabel("time (min)")
    left.set_ylabel("migrations")
    right.set_title("migration durations")
    right.set_xlabel("duration (s)")
    right.set_ylabel("migrations")
    _legend(left, runs)
    if len(runs) > 1:
        _legend(right, runs)
    return Figure("migrations", title, _save(fig, out, stem))


def figure_partitions(runs: Sequence[RunSeries], out: Path, stem: str = "partitions") -> Figure:
    """Partition sizes at dissolve, and partition lifetimes."""
    title = "Partitions"
    if not any(r.dissolved_sizes() for r in runs):
        return Figure("partitions", title, note="no dissolved partitions in the trace (no DVMS)")
    fig, (left, right) = _new()
    sizes = [s for r in runs for s in r.dissolved_sizes()]
    edges = np.arange(min(sizes) - 0.5, max(sizes) + 1.5, 1.0).tolist()
    lifetimes = [p.lifetime_s or 0.0 for r in runs for p in r.partitions.values()
                 if p.size_at_dissolve]
    lbins = np.histogram_bin_edges(lifetimes, bins=30).tolist()
    for run in runs:
        mine = run.dissolved_sizes()
        if not mine:
            continue
        kind: Literal["step", "bar"] = "step" if len(runs) > 1 else "bar"
        left.hist(mine, bins=edges, histtype=kind, label=run.label, color=None if len(runs) > 1
                  else "#7048e8")
        life = [p.lifetime_s or 0.0 for p in run.partitions.values() if p.size_at_dissolve]
        right.hist(life, bins=lbins, histtype=kind, label=run.label,
                   color=None if len(runs) > 1 else "#7048e8")
    left.set_title("partition size at dissolve")
    left.set_xlabel("nodes")
    left.set_ylabel("partitions")
    right.set_title("partition lifetime")
    right.set_xlabel("lifetime (s)")
    right.set_ylabel("partitions")
    if len(runs) > 1:
        _legend(left, runs)
        _legend(right, runs)
    return Figure("partitions", title, _save(fig, out, stem))


def figure_power(runs: Sequence[RunSeries], out: Path, stem: str = "power") -> Figure:
    """Total power over time and cumulated energy."""
    title = "Power and energy"
    if not any(r.power for r in runs):
        return Figure("power", title, note="no power samples in the trace")
    fig, (left, right) = _new(counts=False)
    for run in runs:
        if not run.power:
            continue
        ts, watts = zip(*run.power, strict=True)
        left.step(ts, [w / 1000.0 for w in watts], where="post", lw=1.0, label=run.label)
        ets, kwh = zip(*run.energy_kwh(), strict=True)
        right.plot(ets, kwh, lw=1.2, label=run.label)
    left.set_title("total power")
    left.set_xlabel("time (s)")
    left.set_ylabel("kW")
    right.set_title("cumulated energy")
    right.set_xlabel("time (s)")
    right.set_ylabel("kWh")
    if len(runs) > 1:
        _legend(left, runs)
        _legend(right, runs)
    return Figure("power", title, _save(fig, out, stem))


FIGURES: tuple[Callable[[Sequence[RunSeries], Path, str], Figure], ...] = (
    figure_violations,
    figure_migrations,
    figure_partitions,
    figure_power,
)
"""Figures that overlay several runs; the Vivaldi map is drawn per run."""
