"""`dvms report` on real small simulations (`dvms simulate`), compared side by side."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_report import check_figure_files

pytestmark = pytest.mark.slow  # end to end: real simulations, then the report


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvms", *args], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("sims")
    runs = []
    for scheduler in ("centralized", "none"):
        out = base / scheduler
        proc = cli("simulate", "--hosts", "16", "--duration", "300", "--seed", "2",
                   "--scheduler", scheduler, "--out", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        runs.append(out)
    return runs


def test_report_on_simulations(sim_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = cli("report", *map(str, sim_runs), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summaries = [json.loads((r / "summary.json").read_text()) for r in sim_runs]
    assert summaries[0]["migrations"] > 0  # the centralised run migrated something
    check_figure_files(out, "violations")
    check_figure_files(out, "power")
    check_figure_files(out, "migrations")
    check_figure_files(out / "centralized", "migrations")
    check_figure_files(out / "none", "violations")
    with (out / "metrics.csv").open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["metric", "centralized", "none"]
    compared = 0
    for name, *cells in rows[1:]:
        for cell, summary in zip(cells, summaries, strict=True):
            if name.startswith("messages."):
                value = summary["messages"].get(name[9:])
            else:
                value = summary.get(name)
            if cell == "":
                assert value is None and (name.startswith("messages.") or name not in summary)
                continue
            expected = value if isinstance(value, str) else json.dumps(value)
            assert cell == expected, (name, cell, value)
            compared += 1
    assert compared >= 2 * 25
    index = (out / "index.html").read_text()
    for ref in index.split('src="')[1:]:
        assert (out / ref.split('"')[0]).is_file()
    assert "Vivaldi map: skipped" in index or 'src="centralized/vivaldi.png"' in index


def test_replay_of_simulation_matches_summary(sim_runs: list[Path]) -> None:
    from dvms.dashboard import load_replay

    for run in sim_runs:
        replay = load_replay(run)
        replay.seek(replay.t_end)
        summary = json.loads((run / "summary.json").read_text())
        counters = replay.state.counters
        assert counters["violations"] == summary["violations"]
        assert counters["migrations"] == summary["migrations"]
        assert counters["migrations_intra_site"] == summary["migrations_intra_site"]
        assert counters["migrations_inter_site"] == summary["migrations_inter_site"]
        assert counters["migrations_failed"] == summary["migrations_failed"]
        assert len(replay.state.hosts) == summary["hosts"] == 16
        assert len(replay.state.vm_host) == summary["vms"]
        assert {h.site for h in replay.state.hosts.values()} != {"unknown"}
