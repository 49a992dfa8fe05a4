"""A user's planner from a package outside the project tree, by import path: through
``dvms simulate --planner``, ``run_invariants`` and an agent; its run replays byte for byte;
a wrong planner is caught naming the broken invariant; a missing one is one line, exit 2."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dvms.summary import WALL_KEYS
from dvms.testing import ProtocolViolation, run_invariants

PLANNERS = textwrap.dedent('''
    """A user's planners (outside the dvms tree)."""
    from dvms.scheduler import Migration, Plan, PlannerBase, RepairPlanner


    class Careful(PlannerBase):
        """The repair heuristic, under the user's own name."""

        name = "careful"

        def __init__(self) -> None:
            self.inner = RepairPlanner()

        def plan(self, hosts, vms):
            return self.inner.plan(hosts, vms)


    class Reckless(PlannerBase):
        """Wrong on purpose: moves every VM of the first overloaded host to one destination."""

        name = "reckless"

        def plan(self, hosts, vms):
            load = {h.id: 0.0 for h in hosts}
            for vm in vms:
                load[vm.host] += vm.cpu_demand
            over = [h for h in hosts if load[h.id] > h.cpu_capacity]
            if not over:
                return Plan(())
            src, dst = over[0], next(h for h in hosts if h.id != over[0].id)
            moves = [Migration(v.id, src.id, dst.id, v.memory_mib) for v in vms if v.host == src.id]
            return Plan(tuple(moves))


    class Incomplete:
        """Lacks cost_s and plan_partial."""

        name = "incomplete"

        def plan(self, hosts, vms):
            return None
''')


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "site"
    (where / "userplan").mkdir(parents=True)
    (where / "userplan" / "__init__.py").write_text("")
    (where / "userplan" / "planners.py").write_text(PLANNERS)
    monkeypatch.syspath_prepend(str(where))
    return where


def dvms(args: list[str], path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{root}"}
    return subprocess.run([sys.executable, "-m", "dvms", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def trace(run: Path) -> bytes:
    return gzip.decompress((run / "events.jsonl.gz").read_bytes())


def summary(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in data.items() if k not in WALL_KEYS}


def test_simulate_with_a_user_planner_and_replay_it(package: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    done = dvms(["simulate", "--hosts", "24", "--duration", "400", "--scheduler", "dvms",
                 "--planner", "userplan.planners:Careful", "--out", str(first), "--quiet"],
                package, tmp_path)
    assert done.returncode == 0, done.stderr
    scenario = tomllib.loads((first / "scenario.toml").read_text())
    assert scenario["scheduler"]["planner"] == "userplan.planners:Careful"
    assert summary(first)["migrations"] > 0
    again = tmp_path / "again"
    done = dvms(["simulate", str(first / "scenario.toml"), "--out", str(again), "--quiet"],
                package, tmp_path)
    assert done.returncode == 0, done.stderr
    assert trace(again) == trace(first)
    assert summary(again) == summary(first)


@pytest.mark.parametrize(
    ("planner", "message"),
    [
        ("nowhere.planners:Careful", "planner 'nowhere.planners:Careful': cannot import "
         "'nowhere.planners'"),
        ("userplan.planners:Missing", "planner 'userplan.planners:Missing': "
         "'userplan.planners' has no class or factory 'Missing'"),
        ("userplan.planners:Incomplete", "planner 'userplan.planners:Incomplete': Incomplete "
         "lacks cost_s, plan_partial (see Planner)"),
        ("userplan", "scheduler.planner = 'userplan': must be one of"),
    ],
)
def test_a_missing_or_broken_planner_is_one_line_exit_2(
    package: Path, tmp_path: Path, planner: str, message: str
) -> None:
    done = dvms(["simulate", "--hosts", "8", "--planner", planner, "--out",
                 str(tmp_path / "out"), "--quiet"], package, tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"dvms simulate: error: {message}"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_run_invariants_with_a_user_planner(package: Path) -> None:
    report = run_invariants(hosts=24, duration_s=400.0, planner="userplan.planners:Careful")
    assert report.summary["scenario"]["scheduler"]["planner"] == "userplan.planners:Careful"
    assert report.summary["vms_lost"] == 0


def test_run_invariants_catches_a_wrong_planner(package: Path) -> None:
    with pytest.raises(ProtocolViolation) as err:
        run_invariants(hosts=24, duration_s=400.0, planner="userplan.planners:Reckless")
    first = err.value.violations[0]
    assert first.startswith("valid plans: userplan.planners:Reckless on problem ")
    assert "lacks room" in first or "over capacity" in first


def test_the_same_planner_in_an_agent(package: Path, tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    from deploy.agent_config import parse_agent_config
    from deploy.agent_node import start_node
    from peeractor.keys import generate_run_keys

    generate_run_keys(tmp_path / "keys")
    (tmp_path / "out").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = parse_agent_config({
        "node": "a0", "listen": f"tcp://127.0.0.1:{port}", "libvirt_uri": "test:///default",
        "key_dir": str(tmp_path / "keys"), "output_dir": str(tmp_path / "out"),
        "scheduler": {"name": "dvms", "planner": "userplan.planners:Careful"}})
    node = start_node(cfg)
    try:
        assert type(node.service("dvms").planner).__name__ == "Careful"
    finally:
        node.stop()


def test_the_docs_example_planner_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/schedulers.md's FirstFit, as printed: imports, plans validly in order."""
    from hypothesis import given, settings

    from dvms.testing import check_plan
    from dvms.testing.strategies import hosts_and_vms

    doc = (Path(__file__).resolve().parent.parent / "docs" / "schedulers.md").read_text()
    code = doc.split("<!-- example: firstfit -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "myplanners").mkdir()
    (tmp_path / "myplanners" / "__init__.py").write_text("")
    (tmp_path / "myplanners" / "firstfit.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    from myplanners.firstfit import FirstFit  # type: ignore[import-not-found]

    @settings(max_examples=100, deadline=None)
    @given(hosts_and_vms())
    def valid(problem: Any) -> None:
        hosts, vms = problem
        plan = FirstFit().plan(hosts, vms)
        if plan is not None:
            check_plan(hosts, vms, plan)

    valid()
    run_invariants(hosts=16, duration_s=300.0, planner="myplanners.firstfit:FirstFit")
