"""The published experiments as campaigns: our numbers, with intervals, beside theirs.

- ``vmplaces``: VMPlaceS's table (Euro-Par 2015 data): mean violation duration for 128 to
  1,024 hosts × no scheduler / centralised / hierarchical / DVMS (``vmplaces.toml``);
- ``europar2014``: the Euro-Par 2014 locality result: DVMS over LBO against the ring and a
  random overlay on four Grid'5000 sites — intra-site share of migrations and LBO's
  reduction of inter-site migrations against the ring, paired by seed
  (``europar2014.toml``).

``reproduce(name, quick=...)`` runs the shipped campaign (``*-quick.toml`` with ``quick``)
and writes, beside the campaign's own outputs, ``reproduce.md`` (each cell: ours as mean ±
95 % CI over seeds, the published value, their ratio), ``reproduce.csv`` and
``reproduce.png``. Published values are REFERENCE.md's.
"""

from __future__ import annotations

import csv
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dvms.campaign.aggregate import mean_ci
from dvms.campaign.runner import CampaignResult, run_campaign
from dvms.campaign.spec import CampaignSpec, load_campaign, parse_campaign
from dvms.errors import InputError

__all__ = ["EUROPAR2014", "EXPERIMENTS", "VMPLACES", "Reproduction", "reproduce"]

VMPLACES: dict[int, dict[str, tuple[float, float]]] = {
    128: {
        "none": (79.20, 89.94),
        "centralized": (21.26, 13.55),
        "hierarchical": (21.07, 12.32),
        "dvms": (9.55, 2.57),
    },
    256: {
        "none": (70.86, 87.56),
        "centralized": (40.09, 24.15),
        "hierarchical": (21.45, 12.10),
        "dvms": (9.58, 2.51),
    },
    512: {
        "none": (65.63, 65.56),
        "centralized": (55.63, 42.26),
        "hierarchical": (24.54, 16.95),
        "dvms": (9.57, 2.67),
    },
    1024: {
        "none": (85.90, 101.51),
        "centralized": (81.57, 86.59),
        "hierarchical": (29.01, 38.14),
        "dvms": (9.61, 2.54),
    },
}
"""Published mean ± sd violation duration (s), by hosts and scheduler (VMPlaceS, Jan 2015)."""

EUROPAR2014 = {"lbo_inter_site_reduction_vs_ring": 0.72, "intra_share_lbo": 0.80,
               "intra_share_ring": 0.50}  # fmt: skip
"""Published: LBO cut inter-site operations by 72 % against the ring; about 80 % of
migrations stayed inside a cluster with Vivaldi, about 50 % with Chord."""


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` did: the campaign's result and the comparison's files."""

    campaign: CampaignResult
    rows: list[dict[str, Any]]
    """One row per compared quantity: ours (mean, ci95, n), published, ratio."""
    files: list[Path]
    markdown: str


def _fmt(mean: float | None, half: float | None, percent: bool = False) -> str:
    if mean is None:
        return "—"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    text = f"{mean * scale:.2f}"
    return text + ("" if half is None else f" ± {half * scale:.2f}") + unit


def _by_cell(
    spec: CampaignSpec, rows: Sequence[Mapping[str, Any]]
) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    cells: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "done":
            cells.setdefault(tuple(row[p] for p in spec.parameters), []).append(row)
    return cells


def _stat(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    if not values:
        return None, None, 0
    mean, _sd, half = mean_ci(values)
    return mean, half, len(values)


def _compare_vmplaces(
    spec: CampaignSpec, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (hosts, scheduler), members in _by_cell(spec, rows).items():
        mean, half, n = _stat([float(r["violation_duration_mean_s"]) for r in members])
        sd, _h, _n = _stat([float(r["violation_duration_sd_s"]) for r in members])
        published = VMPLACES.get(int(hosts), {}).get(str(scheduler))
        out.append(
            {
                "hosts": int(hosts),
                "scheduler": scheduler,
                "quantity": "violation_duration_mean_s",
                "mean": mean,
                "ci95": half,
                "n": n,
                "violation_sd_mean": sd,
                "published": None if published is None else published[0],
                "published_sd": None if published is None else published[1],
                "ratio": None if published is None or mean is None else mean / published[0],
            }
        )
    return out


def _share(row: Mapping[str, Any]) -> float:
    intra, inter = float(row["migrations_intra_site"]), float(row["migrations_inter_site"])
    return intra / (intra + inter) if intra + inter else math.nan


def _compare_europar(spec: CampaignSpec, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    cells = {key[0]: members for key, members in _by_cell(spec, rows).items()}
    out: list[dict[str, Any]] = []
    for overlay, members in cells.items():
        shares = [s for s in map(_share, members) if not math.isnan(s)]
        mean, half, n = _stat(shares)
        published = EUROPAR2014.get(f"intra_share_{overlay}")
        out.append(
            {
                "overlay": overlay,
                "quantity": "intra_site_share",
                "mean": mean,
                "ci95": half,
                "n": n,
                "published": published,
                "ratio": None if published is None or mean is None else mean / published,
            }
        )
    lbo = {int(r["seed"]): float(r["migrations_inter_site"]) for r in cells.get("lbo", [])}
    ring = {int(r["seed"]): float(r["migrations_inter_site"]) for r in cells.get("ring", [])}
    paired = [1 - lbo[s] / ring[s] for s in sorted(lbo.keys() & ring.keys()) if ring[s] > 0]
    mean, half, n = _stat(paired)
    published = EUROPAR2014["lbo_inter_site_reduction_vs_ring"]
    out.append(
        {
            "overlay": "lbo vs ring",
            "quantity": "inter_site_reduction",
            "mean": mean,
            "ci95": half,
            "n": n,
            "published": published,
            "ratio": None if mean is None else mean / published,
        }
    )
    return out


def _markdown_vmplaces(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "Mean violation duration (s): ours as mean ± 95 % CI over seeds (the mean per-run sd "
        "of violations in brackets), VMPlaceS's published mean ± sd, and ours / published.",
        "",
        "| hosts | scheduler | ours | published | ratio | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours = _fmt(r["mean"], r["ci95"])
        if r["violation_sd_mean"] is not None:
            ours += f" [sd {r['violation_sd_mean']:.2f}]"
        pub = "—" if r["published"] is None else f"{r['published']:.2f} ± {r['published_sd']:.2f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['hosts']} | {r['scheduler']} | {ours} | {pub} | {ratio} | {r['n']} |")
    return "\n".join(lines) + "\n"


def _markdown_europar(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "Share of migrations inside a site, and LBO's reduction of inter-site migrations "
        "against the ring (paired by seed): ours as mean ± 95 % CI over seeds, the published "
        "value (Euro-Par 2014: inter-site operations, 80 % / 50 % intra-cluster), ours / "
        "published.",
        "",
        "| overlay | quantity | ours | published | ratio | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        pub = _fmt(r["published"], None, percent=True)
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        ours = _fmt(r["mean"], r["ci95"], percent=True)
        lines.append(f"| {r['overlay']} | {r['quantity']} | {ours} | {pub} | {ratio} | {r['n']} |")
    return "\n".join(lines) + "\n"


def _figure_vmplaces(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, scheduler in enumerate(dict.fromkeys(r["scheduler"] for r in rows)):
        mine = sorted((r for r in rows if r["scheduler"] == scheduler), key=lambda r: r["hosts"])
        colour = f"C{i}"
        shift = 2 ** (0.05 * (i - 1.5))  # side by side at each size (log axis)
        xs = [r["hosts"] * shift for r in mine if r["mean"] is not None]
        ys = [r["mean"] for r in mine if r["mean"] is not None]
        errs = [r["ci95"] or 0.0 for r in mine if r["mean"] is not None]
        ax.errorbar(xs, ys, yerr=errs, marker="o", color=colour, capsize=3, label=f"{scheduler}")
        pub = [(r["hosts"] * shift, r["published"]) for r in mine if r["published"] is not None]
        if pub:
            ax.plot(*zip(*pub, strict=True), ls="--", marker="x", color=colour, alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("hosts")
    ax.set_ylabel("mean violation duration (s)")
    ax.set_title("ours (solid, 95 % CI) vs VMPlaceS (dashed)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _figure_europar(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [r for r in rows if r["quantity"] == "intra_site_share" and r["mean"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(shares))
    ax.bar(xs, [r["mean"] * 100 for r in shares], yerr=[(r["ci95"] or 0) * 100 for r in shares],
           capsize=4, color="C0", label="ours (95 % CI)")  # fmt: skip
    for x, r in zip(xs, shares, strict=True):
        if r["published"] is not None:
            ax.plot([x - 0.4, x + 0.4], [r["published"] * 100] * 2, color="C3", lw=2)
    ax.plot([], [], color="C3", lw=2, label="Euro-Par 2014")
    ax.set_xticks(list(xs), [r["overlay"] for r in shares])
    ax.set_ylabel("migrations inside a site (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass(frozen=True)
class Experiment:
    title: str
    compare: Callable[[CampaignSpec, Sequence[Mapping[str, Any]]], list[dict[str, Any]]]
    markdown: Callable[[Sequence[Mapping[str, Any]]], str]
    figure: Callable[[Sequence[Mapping[str, Any]], Path], None]


EXPERIMENTS: dict[str, Experiment] = {
    "vmplaces": Experiment(
        "VMPlaceS (Euro-Par 2015): violation duration vs hosts",
        _compare_vmplaces,
        _markdown_vmplaces,
        _figure_vmplaces,
    ),
    "europar2014": Experiment(
        "Euro-Par 2014: locality of DVMS over LBO, ring and random",
        _compare_europar,
        _markdown_europar,
        _figure_europar,
    ),
}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def reproduce(
    name: str,
    *,
    quick: bool = False,
    out_dir: str | Path | None = None,
    seeds: int | None = None,
    **run: Any,
) -> Reproduction:
    """Run experiment ``name`` (see the module doc); ``run`` goes to ``run_campaign``."""
    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        raise InputError(f"experiment {name!r}: must be one of {', '.join(EXPERIMENTS)}")
    file = f"{name}-quick.toml" if quick else f"{name}.toml"
    with resources.as_file(resources.files("dvms.campaign").joinpath(file)) as path:
        if seeds is None:
            spec = load_campaign(path, out_dir)
        else:
            spec = _with_seeds(path, out_dir, seeds)
    result = run_campaign(spec, **run)
    rows = experiment.compare(spec, _read_rows(spec.out_dir / "results.csv"))
    text = f"# {experiment.title}\n\n" + experiment.markdown(rows)
    if result.failed:
        text += f"\n{len(result.failed)} points failed: see results.csv.\n"
    md, table, png = (spec.out_dir / f"reproduce.{ext}" for ext in ("md", "csv", "png"))
    md.write_text(text)
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]) if rows else ["quantity"], restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    experiment.figure(rows, png)
    return Reproduction(result, rows, [md, table, png], text)


def _with_seeds(path: Path, out_dir: str | Path | None, seeds: int) -> CampaignSpec:
    if seeds < 1:
        raise InputError(f"--seeds {seeds}: must be >= 1")
    data = tomllib.loads(path.read_text())
    data.setdefault("campaign", {})["seeds"] = seeds
    return parse_campaign(data, path, out_dir)
