"""`dvms report`: files, images, the comparison table, skipped figures, bad input."""

from __future__ import annotations

import csv
import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dvms.errors import InputError
from dvms.report import RunSeries, build_report, iter_events, load_run, project_2d
from dvms.report.synthetic import write_synthetic_run

FIGS = ("vivaldi", "violations", "migrations", "partitions", "power")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check_figure_files(out: Path, stem: str) -> None:
    width, height = png_size(out / f"{stem}.png")
    assert 600 <= width <= 2000 and 300 <= height <= 1500, (stem, width, height)
    assert (out / f"{stem}.png").stat().st_size > 10_000
    svg = (out / f"{stem}.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and svg.rstrip().endswith("</svg>")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("runs")
    return [
        write_synthetic_run(base / "dvms-lbo", seed=1),
        write_synthetic_run(base / "none", seed=3, vivaldi=False, host_info=False),
    ]


@pytest.fixture(scope="module")
def comparison(runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cmp")
    build_report(runs, out)
    return out


def test_single_run_writes_figures_tables_index(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", seed=4)
    proc = run_cli(str(run))  # default --out: RUN_DIR/report
    assert proc.returncode == 0, proc.stderr
    out = run / "report"
    assert proc.stdout.strip().endswith(f"open {out / 'index.html'}")
    for stem in FIGS:
        check_figure_files(out, stem)
    index = (out / "index.html").read_text(encoding="utf-8")
    for stem in FIGS:
        assert f'src="{stem}.png"' in index
    assert "skipped" not in index
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", "metrics.md", "metrics.csv"]
        + [f"{s}.{ext}" for s in FIGS for ext in ("png", "svg")]
    )


def test_report_written_lists_every_file(comparison: Path, runs: list[Path]) -> None:
    report = build_report([runs[1]], comparison / "single")
    files = sorted(report.written())
    assert files == sorted(str(p.relative_to(report.out)) for p in report.out.rglob("*")
                           if p.is_file())
    assert "vivaldi.png" not in files and "violations.png" in files


def test_comparison_table_equals_summaries(runs: list[Path], comparison: Path) -> None:
    out = comparison
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    with (out / "metrics.csv").open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["metric", "dvms-lbo", "none"]
    table = {row[0]: row[1:] for row in rows[1:]}
    checked = 0
    for key in ("violations", "violation_time_s", "violation_duration_mean_s", "migrations",
                "migrations_intra_site", "migrations_inter_site", "isp_started",
                "partition_size_mean", "energy_kwh", "vivaldi_median_error", "vms_lost"):
        for cell, summary in zip(table[key], summaries, strict=True):
            assert json.loads(cell) == summary[key], (key, cell, summary[key])
            checked += 1
    for key, cells in table.items():
        for cell, summary in zip(cells, summaries, strict=True):
            value = summary["messages"][key[9:]] if key.startswith("messages.") else summary[key]
            assert cell == (value if isinstance(value, str) else json.dumps(value)), key
    assert checked == 22
    assert table["scheduler"] == ["dvms", "dvms"]
    assert "messages.vivaldi.ping" in table and "scenario" not in table
    md = (out / "metrics.md").read_text().splitlines()
    assert md[0] == "| metric | dvms-lbo | none |"
    mean_row = next(line for line in md if line.startswith("| violation_duration_mean_s |"))
    cells = [c.strip() for c in mean_row.strip("|").split("|")][1:]
    assert [float(c) for c in cells] == [s["violation_duration_mean_s"] for s in summaries]


def test_comparison_overlays_and_per_run_figures(comparison: Path) -> None:
    out = comparison
    for stem in ("violations", "migrations", "partitions", "power"):
        check_figure_files(out, stem)
    for label in ("dvms-lbo",):
        for stem in FIGS:
            check_figure_files(out / label, stem)
    assert not (out / "none" / "vivaldi.png").exists()
    index = (out / "index.html").read_text()
    assert 'src="dvms-lbo/vivaldi.png"' in index
    assert "Vivaldi map: skipped — no vivaldi.coord events" in index
    for ref in index.split('src="')[1:]:
        assert (out / ref.split('"')[0]).is_file()


def test_sites_come_from_migrations_without_host_info(runs: list[Path]) -> None:
    run = load_run(runs[1])
    series = RunSeries.from_events(run.label, run.events())
    assert series.migrations
    assert set(series.sites.values()) <= {"rennes", "lyon", "nancy"}
    for m in series.migrations:
        assert m.src in series.sites and m.dst in series.sites
    assert not series.coords


def test_series_values_by_hand() -> None:
    events = [
        {"t": 0.0, "type": "power", "node": "world", "total_w": 3600.0, "hosts_on": 2},
        {"t": 10.0, "type": "violation.start", "node": "a", "host": "a"},
        {"t": 20.0, "type": "power", "node": "world", "total_w": 7200.0, "hosts_on": 2},
        {"t": 25.0, "type": "violation.end", "node": "a", "host": "a", "duration_s": 15.0},
        {"t": 30.0, "type": "power", "node": "world", "total_w": 0.0, "hosts_on": 0},
        {"t": 61.0, "type": "migration.end", "node": "a", "vm": "v", "src": "a", "dst": "b",
         "src_site": "x", "dst_site": "y", "duration_s": 8.0, "memory_mib": 1024,
         "inter_site": True},
        {"t": 130.0, "type": "migration.end", "node": "b", "vm": "v", "src": "b", "dst": "c",
         "src_site": "y", "dst_site": "y", "duration_s": 4.0, "memory_mib": 1024,
         "inter_site": False},
    ]
    s = RunSeries.from_events("x", events)
    assert s.violation_changes == [(10.0, 1), (25.0, 0)]
    assert s.violation_durations == [15.0]
    assert s.energy_kwh() == [(0.0, 0.0), (20.0, 3600.0 * 20 / 3.6e6),
                              (30.0, (3600.0 * 20 + 7200.0 * 10) / 3.6e6)]
    minutes, intra, inter = s.migrations_per_minute()
    assert minutes.tolist() == [0.0, 60.0, 120.0]
    assert intra.tolist() == [0, 0, 1] and inter.tolist() == [0, 1, 0]
    assert s.sites == {"a": "x", "b": "y", "c": "y"}


def test_project_2d() -> None:
    assert project_2d([[1.0, 2.0], [3.0, 4.0]]).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert project_2d([[1.0], [2.0]]).tolist() == [[1.0, 0.0], [2.0, 0.0]]
    # points on a line in 3-D: the first component carries all the spread, sign fixed
    xy = project_2d([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [2.0, 4.0, 4.0]])
    assert xy[:, 0].tolist() == pytest.approx([-3.0, 0.0, 3.0])
    assert xy[:, 1].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert project_2d([]).shape == (0, 2)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvms", "report", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _truncated(run: Path) -> None:
    data = (run / "events.jsonl.gz").read_bytes()
    (run / "events.jsonl.gz").write_bytes(data[: len(data) // 2])


def _bad_line(run: Path) -> None:
    text = gzip.decompress((run / "events.jsonl.gz").read_bytes()).decode()
    lines = text.splitlines(keepends=True)
    lines[5] = '{"t": 1.0, "type": "load", "vm": \n'
    (run / "events.jsonl.gz").write_bytes(gzip.compress("".join(lines).encode()))


def _cut_last_line(run: Path) -> None:
    text = gzip.decompress((run / "events.jsonl.gz").read_bytes()).decode()
    (run / "events.jsonl.gz").write_bytes(gzip.compress(text[:-20].encode()))


def _not_gzip(run: Path) -> None:
    (run / "events.jsonl.gz").write_bytes(b"this is not gzip at all\n")


def _bad_summary(run: Path) -> None:
    (run / "summary.json").write_text('{"schema": "dvms.summary/1", ')


def _no_summary(run: Path) -> None:
    (run / "summary.json").unlink()


def _no_trace(run: Path) -> None:
    (run / "events.jsonl.gz").unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated, "truncated trace"),
        (_bad_line, "corrupt trace (line 6 is not JSON)"),
        (_cut_last_line, "truncated trace"),
        (_not_gzip, "corrupt trace"),
        (_bad_summary, "corrupt summary.json"),
        (_no_summary, "has no summary.json"),
        (_no_trace, "has no events.jsonl.gz or events.jsonl"),
    ],
)
def test_bad_run_dir_one_line_exit_2(damage: object, message: str, tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", seed=5)
    assert callable(damage)
    damage(run)
    proc = run_cli(str(run), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dvms report: error: ") and message in lines[0], lines[0]


def test_missing_and_file_run_dir(tmp_path: Path) -> None:
    proc = run_cli(str(tmp_path / "nope"))
    assert proc.returncode == 2
    missing = tmp_path / "nope"
    assert proc.stderr.strip() == f"dvms report: error: run directory '{missing}' does not exist"
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        load_run(tmp_path / "f")


def test_iter_events_skips_header_and_checks_fields(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"schema": "dvms.events/1"}\n{"t": 0, "type": "load", "node": "a"}\n')
    assert [e["type"] for e in iter_events(path)] == ["load"]
    path.write_text('{"t": "zero", "type": "load"}\n')
    with pytest.raises(InputError, match="line 1 lacks a numeric t"):
        list(iter_events(path))
