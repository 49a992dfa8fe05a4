"""`dvms report CAMPAIGN_DIR`: aggregate tables with intervals, one figure per metric,
loaded in headless Chromium (every image decodes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dvms.campaign import flatten, mean_ci, write_results
from dvms.report.campaign import build_campaign_report
from tests.dashboard_browser import open_page
from tests.test_report import png_size

pytestmark = pytest.mark.slow  # real simulations, then headless Chromium

METRICS = ["violations", "migrations", "energy_kwh"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvms", *args], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign directory from real simulations: hosts {12, 16} × scheduler × 2 seeds."""
    base = tmp_path_factory.mktemp("campaign")
    rows = []
    for hosts in (12, 16):
        for scheduler in ("centralized", "none"):
            for seed in (1, 2):
                point = f"hosts={hosts},scheduler={scheduler},seed={seed}"
                run = base / "points" / point.replace(",", "_").replace("=", "-")
                proc = cli("simulate", "--hosts", str(hosts), "--duration", "120", "--seed",
                           str(seed), "--scheduler", scheduler, "--out", str(run), "--quiet")
                assert proc.returncode == 0, proc.stderr
                summary = json.loads((run / "summary.json").read_text())
                row = {"point": point, "status": "done", "error": "", "hosts": hosts,
                       "scheduler": scheduler, "seed": seed}  # as the campaign runner's rows
                row.update((k, v) for k, v in flatten(summary).items() if k not in row)
                rows.append(row)
    write_results(base, rows, ["hosts", "scheduler"], METRICS, "test campaign")
    return base


def test_campaign_report_tables_and_figures(campaign: Path, tmp_path: Path) -> None:
    proc = cli("report", str(campaign), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    report = build_campaign_report(campaign, tmp_path / "out")
    assert report.parameters == ("hosts", "scheduler")
    assert {"violations", "migrations", "energy_kwh"} <= set(report.metrics)
    for metric in report.metrics:
        width, height = png_size(report.out / f"campaign-{metric}.png")
        assert width >= 600 and height >= 300
    index = report.index.read_text()
    # the interval in the table is the one computed from the points by hand
    values = []
    for seed in (1, 2):
        run = campaign / "points" / f"hosts-16_scheduler-centralized_seed-{seed}"
        values.append(float(json.loads((run / "summary.json").read_text())["migrations"]))
    mean, _, half = mean_ci(values)
    assert half is not None
    digits = 3 if abs(mean) < 100 else 1
    assert f"{mean:.{digits}f} ± {half:.{digits}f}" in index
    assert "8 points done, 0 failed" in index


def test_campaign_report_in_chromium(campaign: Path, tmp_path: Path) -> None:
    report = build_campaign_report(campaign, tmp_path / "out")
    with open_page(report.index.resolve().as_uri(), tmp_path / "profile") as page:
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all(
            "img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
        assert len(widths) == len(report.metrics) >= 3
        assert all(w > 0 for w in widths), widths
        assert page.locator("table tr").count() == 1 + 4  # header + 2 hosts × 2 schedulers
