"""The report's figures (matplotlib, Agg, no pyplot state), PNG and SVG each.

Each ``figure_*`` function takes one or several :class:`RunSeries` (several are
overlaid) and returns a :class:`Figure` saying which files it wrote, or why it was
skipped (no data in the trace is a note, never an error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import FancyArrowPatch
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
    "vivaldi_data",
]

DPI = 100
SIZE = (11.0, 4.2)
INTRA, INTER = "#2b8a3e", "#c92a2a"
MIG, PART = "#111111", "#868e96"  # migrations black, partitions grey: never a site colour


@dataclass(frozen=True)
class Figure:
    """A figure of the report: ``files`` (PNG, SVG) relative to the output dir, or a note."""

    name: str
    title: str
    files: tuple[str, ...] = ()
    note: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)


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


def vivaldi_data(run: RunSeries) -> dict[str, Any]:
    """The Vivaldi map's aggregated data: per-site hosts, intra and inter counts, flows.

    ``sites[site]`` holds ``hosts``, ``intra`` (migrations within the site), ``inter_out``
    and ``inter_in``; ``flows[(src_site, dst_site)]`` counts inter-site migrations.
    """
    sites: dict[str, dict[str, int]] = {}

    def entry(site: str) -> dict[str, int]:
        return sites.setdefault(site, {"hosts": 0, "intra": 0, "inter_out": 0, "inter_in": 0})

    for node in run.coords:
        entry(run.sites.get(node, "unknown"))["hosts"] += 1
    flows: dict[tuple[str, str], int] = {}
    for m in run.migrations:
        a, b = run.sites.get(m.src, "unknown"), run.sites.get(m.dst, "unknown")
        if a == b and not m.inter_site:
            entry(a)["intra"] += 1
        else:
            entry(a)["inter_out"] += 1
            entry(b)["inter_in"] += 1
            flows[(a, b)] = flows.get((a, b), 0) + 1
    return {"sites": sites, "flows": flows}


def _vivaldi_note(run: RunSeries) -> str:
    """Why there is no map, as the run's setup tells it (Vivaldi off, or no sample yet)."""
    if run.vivaldi_enabled is None:
        return "no vivaldi.coord events in the trace"
    if not run.vivaldi_enabled:
        return "Vivaldi off in this run"
    period = run.coord_period_s
    if period and period > run.t_end:
        return f"no coordinate sample in this run (first coordinate sample at {period:g} s)"
    return "no coordinate sample in this run"


def figure_vivaldi(runs: Sequence[RunSeries], out: Path, stem: str = "vivaldi",
                   partitions: bool = False) -> Figure:
    """Vivaldi map of one run: hosts by site, per-site intra rings, inter-site flow arrows.

    Drawn from aggregated data (one artist per site and per site pair, not per event);
    ``partitions`` adds the leader–member edges of every partition.
    """
    title = "Vivaldi map"
    run = runs[0]
    nodes = sorted(run.coords)
    if not nodes:
        return Figure("vivaldi", title, note=_vivaldi_note(run))
    vecs = [run.coords[n][0] for n in nodes]
    dims = max(len(v) for v in vecs)
    vecs = [v + [0.0] * (dims - len(v)) for v in vecs]
    xy = project_2d(vecs)
    where = {n: xy[i] for i, n in enumerate(nodes)}
    data = vivaldi_data(run)
    fig = MplFigure(figsize=(10.0, 7.0), layout="constrained")
    ax = fig.subplots()
    if partitions:
        segs = [(where[p.leader], where[m]) for p in run.partitions.values()
                for m in p.members if m != p.leader and m in where and p.leader in where]
        ax.add_collection(LineCollection(segs, colors=PART, alpha=0.3, lw=0.6))
        ax.plot([], [], color=PART, label="partition (leader–member)")
    site_of = [run.sites.get(n, "unknown") for n in nodes]
    names = sorted(data["sites"])
    cmap = _colours(len(names))
    centre: dict[str, np.ndarray] = {}
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    for k, site in enumerate(names):
        idx = [i for i, s in enumerate(site_of) if s == site]
        centre[site] = xy[idx].mean(axis=0)
        info = data["sites"][site]
        ax.scatter(xy[idx, 0], xy[idx, 1], s=14, color=cmap[k], zorder=3,
                   label=f"{site}: {info['hosts']} hosts, {info['intra']} intra, "
                         f"{info['inter_out']} out / {info['inter_in']} in")
    intra = {s: v["intra"] for s, v in data["sites"].items() if v["intra"]}
    if intra:
        most = max(intra.values())
        cs = np.array([centre[s] for s in intra])
        sizes = [80.0 + 900.0 * v / most for v in intra.values()]
        ax.scatter(cs[:, 0], cs[:, 1], s=sizes, facecolors="none", edgecolors=MIG,
                   linewidths=1.6, zorder=4)
        for s, v in intra.items():
            ax.annotate(str(v), (float(centre[s][0]), float(centre[s][1])),
                        ha="center", va="center", fontsize="small", color=MIG, zorder=5,
                        fontweight="bold", bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                                 "ec": "none", "alpha": 0.8})
        ax.scatter([], [], s=120, facecolors="none", edgecolors=MIG, linewidths=1.6,
                   label="intra-site migrations (ring ∝ count)")
    flows = data["flows"]
    if flows:
        most = max(flows.values())
        for (a, b), count in flows.items():
            if a == b or a not in centre or b not in centre:
                continue
            ax.add_patch(FancyArrowPatch(
                tuple(centre[a]), tuple(centre[b]), arrowstyle="-|>", mutation_scale=12,
                connectionstyle="arc3,rad=0.15", color=MIG, alpha=0.6,
                lw=1.0 + 3.0 * (count - 1) / max(1, most - 1), zorder=4, shrinkA=6, shrinkB=6))
        ax.plot([], [], color=MIG, lw=2.5, label="inter-site migrations (width ∝ count)")
    pad = 0.05 * span
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    how = f"PCA of {dims}-D coordinates" if dims > 2 else f"{dims}-D coordinates"
    ax.set_title(f"{title} — {run.label} ({len(nodes)} nodes, {how})")
    ax.set_xlabel("component 1 (s)")
    ax.set_ylabel("component 2 (s)")
    fig.legend(loc="outside right upper", fontsize="small")
    return Figure("vivaldi", title, _save(fig, out, stem), data=data)


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    """Site colours: tab10 then tab20's light shades, without the greys (partitions)."""
    from matplotlib import colormaps

    tab10, tab20 = colormaps["tab10"], colormaps["tab20"]
    palette = [tab10(i) for i in range(10) if i != 7]
    palette += [tab20(i) for i in range(1, 20, 2) if i != 15]
    return [palette[i % len(palette)] for i in range(n)]


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


def _partitions_note(runs: Sequence[RunSeries]) -> str:
    if any(r.scheduler == "dvms" for r in runs):
        return "no ISP in this run"
    return "no dissolved partitions in the trace (no DVMS)"


def figure_partitions(runs: Sequence[RunSeries], out: Path, stem: str = "partitions") -> Figure:
    """Partition sizes at dissolve, and partition lifetimes."""
    title = "Partitions"
    if not any(r.dissolved_sizes() for r in runs):
        return Figure("partitions", title, note=_partitions_note(runs))
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
