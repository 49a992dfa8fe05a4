"""``build_report``: figures, tables and index.html for one or several runs."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dvms.errors import InputError
from dvms.report.figures import FIGURES, Figure, figure_vivaldi
from dvms.report.page import Section, render_index
from dvms.report.runs import Run, load_run
from dvms.report.series import RunSeries
from dvms.report.tables import Table, comparison_table
from dvms.rundir import check_writable_dir

__all__ = ["Report", "build_report", "default_out", "unique_labels"]


@dataclass(frozen=True)
class Report:
    """What a report wrote: the index, the tables and every figure (paths relative to out)."""

    out: Path
    index: Path
    table: Table
    table_files: tuple[str, ...]
    figures: tuple[tuple[str, Figure], ...]

    def written(self) -> list[str]:
        """Every file of the report, relative to ``out``."""
        files = ["index.html", *self.table_files]
        files += [prefix + f for prefix, fig in self.figures for f in fig.files]
        return files


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Run labels from directory names, made unique with -2, -3… suffixes."""
    labels: list[str] = []
    for path in paths:
        base = _slug(path.resolve().name)
        label, k = base, 2
        while label in labels:
            label, k = f"{base}-{k}", k + 1
        labels.append(label)
    return labels


def default_out(run_dirs: Sequence[Path]) -> Path:
    """RUN_DIR/report for one run, ./report for several."""
    return run_dirs[0] / "report" if len(run_dirs) == 1 else Path("report")


def _make_out(out_dir: Path) -> None:
    """Create the report's directory; ``InputError`` (one line) if it cannot be written."""
    check_writable_dir(out_dir, "--out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {str(out_dir)!r}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise InputError(f"--out {str(out_dir)!r}: cannot write there (permission denied)")


_FIGURE_STEMS = ("vivaldi", "violations", "migrations", "partitions", "power")
_FIGURE_FILES = tuple(f"{stem}.{ext}" for stem in _FIGURE_STEMS for ext in ("png", "svg"))


def clear_stale(out_dir: Path) -> None:
    """Remove what a previous report wrote there: its figures (also in per-run
    subdirectories, removed if then empty), tables and index; no other file."""
    subs = sorted(d for d in out_dir.iterdir() if d.is_dir() and not d.is_symlink()
                  and any((d / f).is_file() for f in _FIGURE_FILES))
    dirs = [out_dir, *subs]
    for d in dirs:
        for name in _FIGURE_FILES:
            (d / name).unlink(missing_ok=True)
    for name in ("index.html", "metrics.md", "metrics.csv"):
        (out_dir / name).unlink(missing_ok=True)
    for d in dirs[1:]:
        with contextlib.suppress(OSError):
            d.rmdir()  # only if the report's files were all it held


def _stem(fn: Callable[..., Figure]) -> str:
    return fn.__name__.removeprefix("figure_")


def _run_figures(series: RunSeries, out: Path) -> tuple[Figure, ...]:
    return tuple(fn([series], out, _stem(fn)) for fn in (figure_vivaldi, *FIGURES))


def build_report(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Report:
    """Read the runs, write figures (PNG+SVG), metrics table (MD+CSV) and index.html."""
    if not run_dirs:
        raise InputError("no run directory given")
    paths = [Path(p) for p in run_dirs]
    labels = unique_labels(paths)
    runs: list[Run] = [load_run(p, label) for p, label in zip(paths, labels, strict=True)]
    series = [RunSeries.from_events(r.label, r.events(), r.summary) for r in runs]
    out_dir = Path(out) if out is not None else default_out(paths)
    _make_out(out_dir)
    clear_stale(out_dir)

    table = comparison_table(labels, [r.summary for r in runs])
    (out_dir / "metrics.md").write_text(table.markdown(), encoding="utf-8")
    (out_dir / "metrics.csv").write_text(table.csv(), encoding="utf-8")
    table_files = ("metrics.md", "metrics.csv")

    sections: list[Section] = []
    figures: list[tuple[str, Figure]] = []
    if len(runs) == 1:
        figs = _run_figures(series[0], out_dir)
        sections.append(Section(runs[0].label, "run", figs))
        figures += [("", f) for f in figs]
    else:
        overlaid = tuple(fn(series, out_dir, _stem(fn)) for fn in FIGURES)
        sections.append(Section("Comparison", "comparison", overlaid))
        figures += [("", f) for f in overlaid]
        for run, s in zip(runs, series, strict=True):
            figs = _run_figures(s, out_dir / run.label)
            prefix = f"{run.label}/"
            sections.append(Section(run.label, f"run-{run.label}", figs, prefix))
            figures += [(prefix, f) for f in figs]

    title = "dvms report — " + ", ".join(labels)
    page = render_index(title, [(r.label, str(r.path)) for r in runs], table, table_files,
                        sections)
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return Report(out_dir, index, table, table_files, tuple(figures))
