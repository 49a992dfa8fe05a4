"""The report's Vivaldi map on a real simulation, its honest notes, and a reused --out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvms.report import RunSeries, build_report
from dvms.report.figures import figure_partitions, figure_vivaldi, vivaldi_data
from dvms.report.synthetic import write_synthetic_run
from tests.test_report import check_figure_files


def simulate(out: Path, hosts: int, duration: int, *extra: str) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "dvms", "simulate", "--hosts", str(hosts), "--duration",
         str(duration), "--seed", "1", "--scheduler", "dvms", "--out", str(out), "--quiet",
         *extra],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def dvms64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim") / "dvms64", 64, 600)


def test_vivaldi_map_shows_intra_site_migrations(dvms64: Path, tmp_path: Path) -> None:
    summary = json.loads((dvms64 / "summary.json").read_text())
    assert summary["migrations_intra_site"] > 0  # else the test could not fail
    started = time.perf_counter()
    report = build_report([dvms64], tmp_path / "out")
    elapsed = time.perf_counter() - started
    vivaldi = next(f for _, f in report.figures if f.name == "vivaldi")
    assert vivaldi.files, vivaldi.note
    check_figure_files(report.out, "vivaldi")
    sites = vivaldi.data["sites"]
    assert sum(s["intra"] for s in sites.values()) == summary["migrations_intra_site"]
    assert sum(s["inter_out"] for s in sites.values()) == summary["migrations_inter_site"]
    assert sum(s["inter_in"] for s in sites.values()) == summary["migrations_inter_site"]
    assert sum(vivaldi.data["flows"].values()) == summary["migrations_inter_site"]
    assert sum(s["hosts"] for s in sites.values()) == 64
    assert len(sites) == summary["sites"]
    svg = (report.out / "vivaldi.svg").read_text()
    for site, info in sites.items():  # the legend names every site with its counts
        assert f"{site}: {info['hosts']} hosts, {info['intra']} intra" in svg
    assert "intra-site migrations" in svg and "partition" not in svg  # partitions off
    assert elapsed < 10.0, elapsed


def test_vivaldi_data_by_hand() -> None:
    series = RunSeries("x")
    for host, site in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        series.add({"t": 0.0, "type": "host.info", "host": host, "site": site})
        series.add({"t": 1.0, "type": "vivaldi.coord", "node": host, "vec": [0.0, 1.0]})
    for src, dst, inter in (("a1", "a2", False), ("a2", "a1", False), ("a1", "b1", True)):
        series.add({"t": 2.0, "type": "migration.end", "src": src, "dst": dst,
                    "inter_site": inter, "duration_s": 1.0})
    data = vivaldi_data(series)
    assert data["sites"] == {"a": {"hosts": 2, "intra": 2, "inter_out": 1, "inter_in": 0},
                             "b": {"hosts": 1, "intra": 0, "inter_out": 0, "inter_in": 1}}
    assert data["flows"] == {("a", "b"): 1}


def test_partitions_drawn_only_when_asked(dvms64: Path, tmp_path: Path) -> None:
    from dvms.report.runs import load_run

    run = load_run(dvms64, "r")
    series = RunSeries.from_events("r", run.events(), run.summary)
    assert series.partitions
    figure_vivaldi([series], tmp_path, "with", partitions=True)
    assert "partition (leader–member)" in (tmp_path / "with.svg").read_text()


def test_notes_no_isp_and_no_coordinate_sample_yet(tmp_path: Path) -> None:
    run = simulate(tmp_path / "short", 16, 20)  # dvms, Vivaldi on, coords sampled at 300 s
    summary = json.loads((run / "summary.json").read_text())
    assert summary["isp_started"] == 0 and summary["scenario"]["vivaldi"]["enabled"]
    report = build_report([run], tmp_path / "out")
    notes = {f.name: f.note for _, f in report.figures}
    assert notes["partitions"] == "no ISP in this run"
    assert notes["vivaldi"] == (
        "no coordinate sample in this run (first coordinate sample at 300 s)")
    index = (report.out / "index.html").read_text()
    assert "no DVMS" not in index and "Vivaldi off" not in index


def test_notes_vivaldi_off_and_no_dvms() -> None:
    series = RunSeries("x")
    series.configure({"scheduler": "centralized",
                      "scenario": {"vivaldi": {"enabled": False}}})
    series.add({"t": 5.0, "type": "power", "total_w": 1.0})
    assert figure_vivaldi([series], Path("/nonexistent")).note == "Vivaldi off in this run"
    assert figure_partitions([series], Path("/nonexistent")).note.endswith("(no DVMS)")
    series.configure({"scheduler": "dvms", "scenario": {"vivaldi": {"enabled": True},
                                                       "trace": {"coord_period_s": 2.0}}})
    assert figure_vivaldi([series], Path("/nonexistent")).note == (
        "no coordinate sample in this run")
    assert figure_partitions([series], Path("/nonexistent")).note == "no ISP in this run"


def test_reused_out_cleared_of_stale_figures_only(tmp_path: Path) -> None:
    runs = [write_synthetic_run(tmp_path / "a", seed=1),
            write_synthetic_run(tmp_path / "b", seed=2)]
    out = tmp_path / "out"
    build_report(runs, out)
    assert (out / "a" / "vivaldi.png").is_file() and (out / "b" / "power.png").is_file()
    (out / "notes.txt").write_text("mine")
    (out / "b" / "mine.txt").write_text("mine")
    plain = write_synthetic_run(tmp_path / "c", seed=3, vivaldi=False)
    report = build_report([plain], out)
    assert not (out / "vivaldi.png").exists() and not (out / "vivaldi.svg").exists()
    assert not (out / "a").exists()  # held only the old report's figures
    assert sorted(p.name for p in (out / "b").iterdir()) == ["mine.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == sorted([*report.written(), "notes.txt", "b/mine.txt"])


@pytest.mark.slow
def test_256_host_hour_report_in_5_s_shows_intra(tmp_path: Path) -> None:
    run = simulate(tmp_path / "dvms256", 256, 3600)
    summary = json.loads((run / "summary.json").read_text())
    started = time.perf_counter()
    report = build_report([run], tmp_path / "out")
    elapsed = time.perf_counter() - started
    vivaldi = next(f for _, f in report.figures if f.name == "vivaldi")
    intra = sum(s["intra"] for s in vivaldi.data["sites"].values())
    assert intra == summary["migrations_intra_site"] > 0
    assert elapsed <= 5.0, f"256-host one-hour report took {elapsed:.1f} s"
