"""``dvms report CAMPAIGN_DIR``: a campaign's aggregate tables and one figure per metric.

Reads ``aggregate.csv`` (``dvms.campaign.aggregate``: the grid's parameters, ``metric``,
``n``, ``mean``, ``ci95``…) and ``results.csv`` (points done / failed) and writes, into
``--out`` (default ``CAMPAIGN_DIR/report``), ``campaign-<metric>.png/.svg`` (the metric's
mean with its 95 % interval across the grid: the first parameter on the x axis, one line
per combination of the others) and an ``index.html`` with the aggregate table.
"""

from __future__ import annotations

import csv
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure as MplFigure

from dvms.errors import InputError
from dvms.report.build import _make_out
from dvms.report.figures import DPI

__all__ = ["KEY_METRICS", "CampaignReport", "build_campaign_report", "is_campaign_dir"]

KEY_METRICS = (
    "violations", "violation_time_s", "migrations", "migrations_intra_site",
    "migrations_inter_site", "migrations_failed", "isp_started", "isp_solved",
    "partition_size_mean", "scheduler_compute_s", "energy_kwh", "vivaldi_median_error",
    "vms_lost", "wall_s",
)
"""Metrics drawn and tabled, in this order, when the campaign has them."""

_STATS = ("metric", "n", "mean", "sd", "ci95", "low", "high")


@dataclass(frozen=True)
class CampaignReport:
    """What a campaign report wrote (paths relative to ``out``)."""

    out: Path
    index: Path
    parameters: tuple[str, ...]
    metrics: tuple[str, ...]
    files: tuple[str, ...]


def is_campaign_dir(path: str | Path) -> bool:
    """A campaign's output directory: ``aggregate.csv`` and no run's ``summary.json``."""
    p = Path(path)
    try:  # an unreadable directory is no campaign (the run loader then names the problem)
        return (p / "aggregate.csv").is_file() and not (p / "summary.json").is_file()
    except OSError:
        return False


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def _float(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cell(row: dict[str, str]) -> str:
    mean, half = _float(row.get("mean")), _float(row.get("ci95"))
    if mean is None:
        return "-"
    digits = 3 if abs(mean) < 100 else 1
    return f"{mean:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


def _sort_key(value: str) -> tuple[int, float, str]:
    number = _float(value)
    return (0, number, "") if number is not None else (1, 0.0, value)


def _figure(metric: str, rows: list[dict[str, str]], parameters: Sequence[str],
            out: Path) -> tuple[str, ...]:
    x_param, others = (parameters[0], parameters[1:]) if parameters else ("", ())
    xs = sorted({r.get(x_param, "") for r in rows}, key=_sort_key)
    numeric = bool(xs) and all(_float(x) is not None for x in xs)
    fig = MplFigure(figsize=(8.0, 4.5), layout="constrained")
    ax = fig.subplots()
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(p, "") for p in others), []).append(r)
    for key, members in sorted(groups.items()):
        members.sort(key=lambda r: _sort_key(r.get(x_param, "")))
        pos = [(_float(r.get(x_param)) or 0.0) if numeric else float(xs.index(r.get(x_param, "")))
               for r in members]
        means = [_float(r.get("mean")) or 0.0 for r in members]
        halves = [_float(r.get("ci95")) or 0.0 for r in members]
        label = ", ".join(f"{p}={v}" for p, v in zip(others, key, strict=True)) or metric
        ax.errorbar(pos, means, yerr=halves, marker="o", capsize=3, lw=1.2, label=label)
    if not numeric:
        ax.set_xticks(range(len(xs)), xs)
    ax.set_xlabel(x_param or "campaign")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± 95 % CI over seeds")
    fig.legend(loc="outside right upper", fontsize="small")
    stem = "campaign-" + re.sub(r"[^A-Za-z0-9._-]+", "-", metric)
    names = (f"{stem}.png", f"{stem}.svg")
    fig.savefig(out / names[0], dpi=DPI, metadata={"Software": None})
    fig.savefig(out / names[1], metadata={"Date": None})
    return names


def _table(parameters: Sequence[str], metrics: Sequence[str],
           by_cell: dict[tuple[str, ...], dict[str, dict[str, str]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [*parameters, *metrics, "seeds"])
    body = []
    for cell, found in sorted(by_cell.items(), key=lambda kv: [_sort_key(v) for v in kv[0]]):
        cells = [html.escape(v) for v in cell]
        cells += [_cell(found[m]) if m in found else "-" for m in metrics]
        seeds = max((int(_float(r.get("n")) or 0) for r in found.values()), default=0)
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in [*cells, str(seeds)]) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def build_campaign_report(campaign_dir: str | Path,
                          out: str | Path | None = None) -> CampaignReport:
    """Write the campaign's aggregate table and one figure per metric, and index.html."""
    src = Path(campaign_dir)
    if not (src / "aggregate.csv").is_file():
        raise InputError(f"{src}: not a campaign directory (no aggregate.csv)")
    columns, rows = _read(src / "aggregate.csv")
    if "metric" not in columns:
        raise InputError(f"{src / 'aggregate.csv'}: no 'metric' column")
    parameters = tuple(columns[: columns.index("metric")])
    out_dir = Path(out) if out is not None else src / "report"
    _make_out(out_dir)
    for stale in out_dir.glob("campaign-*.*"):
        if stale.suffix in (".png", ".svg"):
            stale.unlink()
    present = {r["metric"] for r in rows}
    metrics = tuple(m for m in KEY_METRICS if m in present) or tuple(sorted(present))[:12]
    by_cell: dict[tuple[str, ...], dict[str, dict[str, str]]] = {}
    for r in rows:
        by_cell.setdefault(tuple(r.get(p, "") for p in parameters), {})[r["metric"]] = r
    files: list[str] = []
    figures = []
    for metric in metrics:
        names = _figure(metric, [r for r in rows if r["metric"] == metric], parameters, out_dir)
        files += names
        figures.append(f'<figure><img src="{html.escape(names[0])}" alt="{html.escape(metric)}">'
                       f'<figcaption><a href="{html.escape(names[1])}">SVG</a></figcaption>'
                       "</figure>")
    done = failed = 0
    if (src / "results.csv").is_file():
        _, points = _read(src / "results.csv")
        done = sum(p.get("status") == "done" for p in points)
        failed = sum(p.get("status") == "failed" for p in points)
    title = f"dvms campaign report — {src.resolve().name}"
    page = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{done} points done, {failed} failed; cells are mean ± 95 % CI over seeds "
        "(Student t).</p><h2>Aggregate</h2>"
        + _table(parameters, metrics, by_cell)
        + "<h2>Figures</h2>" + "".join(figures) + "</body></html>\n"
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return CampaignReport(out_dir, index, parameters, metrics, ("index.html", *files))
