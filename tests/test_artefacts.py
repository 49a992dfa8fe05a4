"""The artefact contract: the one summary writer and its validator, provenance, the event
constructors (against docs/trace.md and a real simulation), and the cluster's summary."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from deploy.cluster_agents import cluster_summary
from dvms import events
from dvms.events import EVENT_FIELDS
from dvms.provenance import git_commit, provenance
from dvms.summary import CONTRACT_KEYS, build_summary, validate_summary
from dvms.trace import read_events, read_header
from sim.run import simulate
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def _minimal() -> dict[str, object]:
    return {"seed": 1, "hosts": 2, "vms": 4, "duration_s": 10.0, "scheduler": "none",
            "violations": 0, "migrations": 0, "vms_lost": 0}


def test_build_summary_fills_every_contract_key_with_null_and_stamps_provenance() -> None:
    summary = build_summary({**_minimal(), "agents": ["a"]})
    keys = list(summary)
    assert keys[: len(CONTRACT_KEYS)] == list(CONTRACT_KEYS)
    assert keys[len(CONTRACT_KEYS):] == ["status", "exception", "provenance", "agents"]
    assert summary["energy_kwh"] is None and summary["vivaldi_median_error"] is None
    assert summary["status"] == "complete" and summary["exception"] is None
    prov = summary["provenance"]
    assert prov["dvms"] == "0.1.0" and re.fullmatch(r"\d+\.\d+\.\d+", prov["python"])
    assert prov["platform"]
    assert validate_summary(summary) == []


def test_failed_summary_records_the_exception_on_one_line() -> None:
    try:
        raise RuntimeError("solver\n  exploded")
    except RuntimeError as exc:
        summary = build_summary({}, status="failed", exception=exc)
    assert summary["status"] == "failed"
    assert summary["exception"] == "RuntimeError('solver\\n exploded')"
    assert validate_summary(summary) == []  # a failed run may lack every figure
    with pytest.raises(ValueError, match="status 'done'"):
        build_summary({}, status="done")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status": "finished"}, "status = 'finished'"),
        ({"migrations": 1.5}, "migrations = 1.5: must be int or null"),
        ({"violations": True}, "violations = True"),
        ({"messages": [1]}, "messages = [1]: must be dict"),
        ({"scenario": "x"}, "scenario = 'x'"),
        ({"energy_kwh": "1"}, "energy_kwh = '1': must be int or float"),
        ({"schema": "dvms.summary/0"}, "schema = 'dvms.summary/0'"),
        ({"hosts": None}, "a complete run lacks values for hosts"),
        ({"status": "failed", "exception": None}, "a failed run's exception must be a string"),
        ({"provenance": {"dvms": "0.1.0"}}, "provenance must hold"),
    ],
)
def test_validate_summary_names_each_problem(change: dict[str, object], problem: str) -> None:
    summary = {**build_summary(_minimal()), **change}
    problems = validate_summary(summary)
    assert any(problem in p for p in problems), problems


def test_validate_summary_names_missing_keys() -> None:
    summary = build_summary(_minimal())
    del summary["wall_s"], summary["status"]
    assert validate_summary(summary) == ["lacks wall_s, status"]
    assert validate_summary([1]) == ["summary must be a JSON object"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_git_commit_read_from_loose_packed_and_worktree_refs(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None  # no checkout: None, no error
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("x")
    _git(repo, "add", "f")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    sha = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == sha  # loose ref
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    git_commit.cache_clear()
    assert git_commit(repo) == sha  # packed ref
    _git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    assert (tmp_path / "wt" / ".git").is_file()
    assert git_commit(tmp_path / "wt") == sha  # a worktree's .git file
    _git(repo, "checkout", "-q", "--detach")
    git_commit.cache_clear()
    assert git_commit(repo) == sha  # detached HEAD
    (repo / ".git" / "HEAD").write_text("garbage\n")
    git_commit.cache_clear()
    assert git_commit(repo) is None


def test_provenance_names_this_checkout() -> None:
    head = _git(ROOT, "rev-parse", "HEAD")
    assert provenance()["commit"] == head


def _documented_events() -> dict[str, tuple[str, ...]]:
    """``type → fields`` from the event tables of docs/trace.md (optional ones included)."""
    doc = (ROOT / "docs" / "trace.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Events"):doc.index("## The summary")]
    out: dict[str, tuple[str, ...]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        text = re.sub(r"\(.*?\)", "", cells[1]).replace(": true", "")
        fields = tuple(re.findall(r"[a-z_]+", text))
        for kind in re.findall(r"`([a-z_.]+)`", cells[0]):
            out[kind] = fields
    return out


def test_docs_trace_md_lists_every_constructor_with_its_fields() -> None:
    documented = _documented_events()
    assert set(documented) == set(EVENT_FIELDS)
    for kind, fields in EVENT_FIELDS.items():
        assert documented[kind] == fields, kind


def test_constructors_build_their_type_with_fields_in_order() -> None:
    end = events.migration_end(1.5, "h1", vm="v", src="h1", dst="h2", src_site="a",
                               dst_site="b", duration_s=2.0, memory_mib=512)
    assert list(end) == ["t", "type", "node", *EVENT_FIELDS["migration.end"]]
    assert end["type"] == "migration.end" and end["inter_site"] is True
    closed = events.violation_end(0, "h1", host="h1", duration_s=3.0, open=True)
    assert closed == {"t": 0, "type": "violation.end", "node": "h1", "host": "h1",
                      "duration_s": 3.0, "open": True}
    assert "crashed" not in closed
    assert events.power(2.0, total_w=10.0, hosts_on=1)["node"] == "world"
    seen: list[tuple[str, dict[str, object]]] = []
    events.emit_event(lambda type, **f: seen.append((type, f)),
                      events.partition_join(3.0, "h2", partition="p", leader="h1"))
    assert seen == [("partition.join", {"partition": "p", "leader": "h1"})]


def test_a_simulated_trace_uses_only_documented_types_and_fields(tmp_path: Path) -> None:
    scenario = load_scenario(None, {
        "infrastructure.hosts": 24, "run.duration_s": 600.0, "scheduler.name": "dvms",
        "vivaldi.enabled": True, "trace.load_events": True, "trace.coord_period_s": 100.0,
        "faults.crashes": [{"t": 300.0, "host": "h0003"}], "faults.loss_rate": 0.01,
        "faults.link_cut_rate_h": 6.0})
    summary = simulate(scenario, tmp_path / "run")
    trace = tmp_path / "run" / "events.jsonl.gz"
    kinds = set()
    for event in read_events(trace):
        kind = event["type"]
        kinds.add(kind)
        fields = [k for k in event if k not in ("t", "type", "node")]
        optional = {"open", "crashed"} if kind == "violation.end" else set()
        expected = [f for f in EVENT_FIELDS[kind] if f not in optional or f in event]
        assert fields == expected, event
    assert {"host.info", "load", "migration.end", "fault.crash", "vivaldi.coord",
            "partition.dissolve", "power"} <= kinds
    header = read_header(trace)
    assert header is not None and header["provenance"] == summary["provenance"]
    assert validate_summary(json.loads((tmp_path / "run" / "summary.json").read_text())) == []


def test_cluster_summary_meets_the_contract_with_nulls_where_unknown() -> None:
    merged = [
        events.host_info(0.0, "h1", host="h1", site="local", cpu_capacity=200.0,
                         memory_mib=2048, mem_used_mib=512, vms=["v1"]),
        events.violation_start(1.0, "h1", host="h1", cpu_demand=250.0, cpu_capacity=200.0,
                               mem_demand_mib=512, memory_mib=2048),
        events.migration_end(5.0, "h1", vm="v1", src="h1", dst="h2", src_site="local",
                             dst_site="local", duration_s=3.5, memory_mib=512),
        events.violation_end(5.0, "h1", host="h1", duration_s=4.0),
    ]
    agents = {
        "h1": {"scenario": {"agent": "h1", "site": "local"}, "messages": {"dvms.x": 3},
               "scheduler": "dvms", "overlay": "lbo", "peak_rss_mib": 80.0},
        "h2": {"scenario": {"agent": "h2", "site": "local"}, "messages": {"dvms.x": 2},
               "scheduler": "dvms", "overlay": "lbo", "peak_rss_mib": 90.0},
    }
    summary = cluster_summary({"seed": 4}, 2, 2, merged, agents, vms_lost=0, truncated=[])
    assert validate_summary(summary) == []
    assert summary["status"] == "complete" and summary["energy_kwh"] is None
    assert summary["wall_s"] is None and summary["vivaldi_median_error"] is None
    assert (summary["migrations"], summary["violations"], summary["messages"]) == (
        1, 1, {"dvms.x": 5})
    assert summary["peak_rss_mib"] == 90.0 and summary["duration_s"] == 5.0
    cut = cluster_summary({}, 2, 2, merged, {**agents, "h2": {}}, vms_lost=0,
                          truncated=["h1"])
    assert cut["status"] == "interrupted" and cut["agents_incomplete"] == ["h1", "h2"]
    assert validate_summary(cut) == []
