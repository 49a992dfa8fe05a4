"""The user docs state what the code does (defaults, names, references, commands)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dvms.errors import InputError
from dvms.scheduler import COST_MODELS, RepairConfig, make_cost_model
from dvms.scheduler.model import Migration, Plan, Planner
from sim.scenario import load_scenario

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_repair_headroom_default_is_the_same_in_code_scenarios_and_docs() -> None:
    scenario = load_scenario(None)
    assert RepairConfig().headroom == scenario.scheduler.headroom == 0.2
    text = _doc("schedulers.md")
    assert "default 0.2" in text and "10 %" not in text
    assert "| `headroom` | `0.2` |" in _doc("scenario.md")


def test_cost_model_names_are_the_scenarios_and_the_docs() -> None:
    scenario_choices = ("exact-model", "measured")
    assert scenario_choices == COST_MODELS
    assert load_scenario(None).scheduler.cost == "exact-model"
    with pytest.raises(InputError, match="unknown 'model'"):
        make_cost_model("model")  # the old alias is gone
    for name in ("schedulers.md", "protocol.md", "scenario.md"):
        assert 'cost="model"' not in _doc(name), name
        assert '`"model"`' not in _doc(name), name


def test_report_doc_cites_no_document_missing_from_the_repository() -> None:
    text = _doc("report.md")
    assert "DESIGN.md" not in text
    for ref in re.findall(r"docs/([a-z]+\.md)", text):
        assert (DOCS / ref).is_file(), ref


def test_schedulers_doc_references_planner_plan_and_migration() -> None:
    text = _doc("schedulers.md")
    start = text.index("## Reference: `Planner`, `Plan`, `Migration`")
    block = text[start:text.index("## Planners")]
    protocol_members = {"name", "plan", "cost_s", "plan_partial"}
    declared = set(Planner.__annotations__) | {
        n for n in vars(Planner) if not n.startswith("_")}
    assert protocol_members == declared
    for member in protocol_members:
        assert re.search(rf"\b{member}\b", block), member
    for cls in (Plan, Migration):
        for f in dataclasses.fields(cls):
            assert f"{f.name}:" in block, (cls.__name__, f.name)


@pytest.mark.parametrize("command", ["simulate", "report", "dashboard", "demo", "agent",
                                     "cluster"])
def test_every_help_runs(command: str) -> None:
    done = subprocess.run([sys.executable, "-m", "dvms", command, "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert f"usage: dvms {command}" in done.stdout


def test_g5k_doc_lists_every_action_and_agents_field() -> None:
    from deploy.g5k.config import AgentsConfig
    from dvms.app.cli import build_parser

    text = _doc("g5k.md")
    g5k = build_parser().subcommands["g5k"]
    actions = next(a for a in g5k._actions if a.dest == "action").choices
    assert actions is not None
    for action in actions:
        assert re.search(rf"^dvms g5k {action}\b", text, re.M), action
    block = text[text.index("### The experiment's `[agents]`"):text.index("### The steps")]
    for f in dataclasses.fields(AgentsConfig):
        assert re.search(rf"^{f.name} = ", block, re.M), f.name
        default = AgentsConfig().to_dict()[f.name]
        assert re.search(rf"^{f.name} = {re.escape(_toml(default))}\s", block, re.M), f.name


def _toml(value: object) -> str:
    from dvms.config import toml_value

    text = toml_value(value)
    return text[:-2] if text.endswith(".0") else text
