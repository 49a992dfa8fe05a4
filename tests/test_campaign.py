"""Campaigns on a real Dask ``LocalCluster`` (2 workers), tiny points: every point
completes, a re-run skips them, a point whose worker is killed mid-run is run again, a
failing point is recorded and named in one line, the aggregate interval is the one computed
by hand."""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster

from dvms.campaign import load_campaign, run_campaign, t_quantile_975
from dvms.errors import InputError
from dvms.summary import WALL_KEYS

ROOT = Path(__file__).resolve().parent.parent

TINY = """
[campaign]
name = "tiny"
seeds = {seeds}
metrics = ["violation_duration_mean_s", "migrations"]

[base]
"run.duration_s" = 150.0
"infrastructure.sites" = ["lyon", "rennes"]
"vivaldi.enabled" = false
"load.mean" = 70.0

[grid]
hosts = [8]
scheduler = {schedulers}
"""


def campaign_file(tmp: Path, schedulers: list[str], seeds: int = 1) -> Path:
    path = tmp / "campaign.toml"
    path.write_text(TINY.format(seeds=seeds, schedulers=json.dumps(schedulers)))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    marker = tmp_path_factory.mktemp("kill") / "killed"
    os.environ["DVMS_CAMPAIGN_KILL_MARKER"] = str(marker)  # inherited by the workers
    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as local:
        yield str(local.scheduler_address)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def stable(table: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in WALL_KEYS} for r in table]


def test_points_complete_rerun_skips_and_incomplete_runs_again(
    cluster: str, tmp_path: Path
) -> None:
    spec = load_campaign(
        campaign_file(tmp_path, ["centralized", "hierarchical"], 3), tmp_path / "o"
    )
    assert [p.id for p in spec.points[:2]] == [
        "hosts-8_scheduler-centralized_seed-1",
        "hosts-8_scheduler-centralized_seed-2",
    ]
    first = run_campaign(spec, scheduler_address=cluster, progress=False)
    assert sorted(first.ran) == sorted(p.id for p in spec.points) and not first.failed
    table = rows(tmp_path / "o" / "results.csv")
    assert [r["status"] for r in table] == ["done"] * 6
    assert {r["scheduler"] for r in table} == {"centralized", "hierarchical"}
    assert "messages.hier.Heartbeat" in table[-1]  # nested summary keys flattened
    summaries = [Path(p.run_dir) / "summary.json" for p in spec.points]
    stamps = [s.stat().st_mtime_ns for s in summaries]

    again = run_campaign(spec, scheduler_address=cluster, progress=False)
    assert again.ran == [] and len(again.skipped) == 6
    assert [s.stat().st_mtime_ns for s in summaries] == stamps
    assert rows(tmp_path / "o" / "results.csv") == table

    summaries[4].unlink()  # as a worker killed before the end would leave it
    third = run_campaign(spec, scheduler_address=cluster, progress=False)
    assert third.ran == [spec.points[4].id] and len(third.skipped) == 5
    assert stable(rows(tmp_path / "o" / "results.csv")) == stable(table)  # same seed

    # the aggregate interval, by hand: mean ± t(0.975, 2) · sd / √3 over the three seeds
    cent = [float(r["violation_duration_mean_s"]) for r in table[:3]]
    agg = {(r["scheduler"], r["metric"]): r for r in rows(tmp_path / "o" / "aggregate.csv")}
    assert not [m for _, m in agg if m.startswith("scenario.")]  # settings, not results
    row = agg[("centralized", "violation_duration_mean_s")]
    half = 4.302653 * statistics.stdev(cent) / math.sqrt(3)  # t(0.975, 2)
    assert int(row["n"]) == 3
    assert float(row["mean"]) == pytest.approx(statistics.mean(cent), rel=1e-12)
    assert float(row["ci95"]) == pytest.approx(half, rel=1e-6)
    assert float(row["low"]) == pytest.approx(statistics.mean(cent) - half, rel=1e-6)
    assert half > 0
    md = (tmp_path / "o" / "campaign.md").read_text()
    assert f"{statistics.mean(cent):.3f} ± {half:.3f}" in md


def test_a_point_whose_worker_is_killed_runs_again(cluster: str, tmp_path: Path) -> None:
    marker = Path(os.environ["DVMS_CAMPAIGN_KILL_MARKER"])
    assert not marker.exists()
    spec = load_campaign(
        campaign_file(tmp_path, ["centralized", "tests.campaign_points:KILL"]), tmp_path / "o"
    )
    result = run_campaign(spec, scheduler_address=cluster, progress=False)
    assert marker.exists(), "the worker was not killed"
    assert not result.failed and len(result.ran) == 2
    killed = next(p for p in spec.points if "KILL" in p.id)
    summary = json.loads((Path(killed.run_dir) / "summary.json").read_text())
    assert summary["duration_s"] == 150.0


def test_a_failing_point_is_recorded_and_named_in_one_line(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, ["centralized", "tests.campaign_points:FAIL"])
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "dvms", "campaign", str(path), "--out", str(out), "--workers", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    failed_id = "hosts-8_scheduler-tests.campaign-points-FAIL_seed-1"
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("dvms campaign: error: 1 of 2 points failed: " + failed_id)
    assert "deliberate failure of this point" in errors[0]
    table = {r["point"]: r for r in rows(out / "results.csv")}
    assert table[failed_id]["status"] == "failed"
    assert table[failed_id]["error"] == "RuntimeError: deliberate failure of this point"
    assert table["hosts-8_scheduler-centralized_seed-1"]["status"] == "done"
    failure = json.loads((out / "points" / failed_id / "failure.json").read_text())
    assert "_fail" in failure["traceback"]


def test_bad_campaigns_fail_in_one_line(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, ["centralized"])
    text = path.read_text()
    cases: list[tuple[str, str]] = [
        (text.replace("hosts = [8]", "hosts = [8, -1]"), "point hosts--1_scheduler-centralized"),
        (text.replace("hosts = [8]", "nodes = [8]"), "grid.nodes: unknown parameter"),
        (text.replace("hosts = [8]", "hosts = 8"), "grid.hosts = 8: must be a non-empty list"),
        (text.replace("seeds = 1", "seeds = 0"), "campaign.seeds = 0: must be an integer >= 1"),
        (text + '"run.seed" = [1, 2]\n', "grid.run.seed: seeds come from campaign.seeds"),
    ]
    for bad, expected in cases:
        path.write_text(bad)
        with pytest.raises(InputError) as info:
            load_campaign(path, tmp_path / "o")
        assert expected in str(info.value) and "\n" not in str(info.value)


def test_t_quantiles() -> None:
    known: dict[int, Any] = {1: 12.706, 2: 4.303, 9: 2.262, 30: 2.042, 120: 1.980}
    for df, value in known.items():
        assert t_quantile_975(df) == pytest.approx(value, abs=1e-3)
    assert t_quantile_975(45) == pytest.approx(2.014, abs=2e-3)
    assert t_quantile_975(10_000) == pytest.approx(1.960, abs=1e-3)


def test_the_documented_campaign_reads_as_printed(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "campaign.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "c.toml").write_text(example)
    spec = load_campaign(tmp_path / "c.toml", tmp_path / "o")
    assert len(spec.points) == 3 * 4 * 5
    assert spec.parameters == ("hosts", "scheduler", "scheduler.group_size")
    assert spec.points[-1].id == "hosts-512_scheduler-dvms_scheduler.group-size-0_seed-5"
    assert dict(spec.points[-1].overrides)["run.duration_s"] == 1800.0


def test_reproduce_vmplaces_quick(cluster: str, tmp_path: Path) -> None:
    from dvms.campaign.reproduce import VMPLACES, reproduce

    done = reproduce("vmplaces", quick=True, out_dir=tmp_path, scheduler_address=cluster,
                     progress=False)  # fmt: skip
    assert not done.campaign.failed and len(done.campaign.ran) == 8
    table = rows(tmp_path / "results.csv")
    by = {r["scheduler"]: r for r in done.rows}
    assert list(by) == ["none", "centralized", "hierarchical", "dvms"]
    for scheduler, row in by.items():
        ours = [float(r["violation_duration_mean_s"]) for r in table if r["scheduler"] == scheduler]
        assert row["mean"] == pytest.approx(statistics.mean(ours))
        assert row["ci95"] == pytest.approx(12.706205 * statistics.stdev(ours) / math.sqrt(2))
        assert row["published"] == VMPLACES[128][scheduler][0]
        assert row["ratio"] == pytest.approx(row["mean"] / row["published"])
    assert by["dvms"]["mean"] < by["centralized"]["mean"] < by["none"]["mean"]
    md = (tmp_path / "reproduce.md").read_text()
    assert "| 128 | hierarchical |" in md and "21.07 ± 12.32" in md
    assert (tmp_path / "reproduce.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rows(tmp_path / "reproduce.csv")[0]["scheduler"] == "none"


def test_europar_comparison_pairs_seeds() -> None:
    from dvms.campaign.reproduce import _compare_europar

    spec = load_campaign(ROOT / "dvms" / "campaign" / "europar2014-quick.toml", "/tmp/unused")
    made = [
        ("lbo", 1, 90, 10), ("lbo", 2, 80, 20),
        ("ring", 1, 50, 50), ("ring", 2, 40, 40),
        ("random", 1, 30, 30), ("random", 2, 25, 75),
    ]  # fmt: skip
    table = [
        {"status": "done", "overlay": o, "seed": s, "migrations_intra_site": a,
         "migrations_inter_site": b}
        for o, s, a, b in made
    ]  # fmt: skip
    out = {r["overlay"]: r for r in _compare_europar(spec, table)}
    assert out["lbo"]["mean"] == pytest.approx(0.85)  # (0.9 + 0.8) / 2
    assert out["ring"]["ratio"] == pytest.approx(0.5 / 0.5)
    reduction = out["lbo vs ring"]  # 1 - 10/50 = 0.8 and 1 - 20/40 = 0.5
    assert reduction["mean"] == pytest.approx(0.65)
    assert reduction["ci95"] == pytest.approx(12.706205 * statistics.stdev([0.8, 0.5]) / 2**0.5)
    assert reduction["ratio"] == pytest.approx(0.65 / 0.72)
