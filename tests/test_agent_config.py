"""Agent configuration: one-line errors, the rendered form round-trips, and the parity of
the node tables with a scenario's — every field of ``[dvms]``, ``[vivaldi]`` and
``[scheduler]`` set in an agent config reaches the running agent's services."""

from __future__ import annotations

import dataclasses
import socket
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from deploy.agent_config import (
    AgentConfig,
    AgentTuning,
    PeerConfig,
    load_agent_config,
    parse_agent_config,
    render_agent_config,
)
from deploy.agent_node import RunningNode, start_node
from dvms.errors import InputError
from dvms.hypervisor import HostCapacity
from dvms.node import NodeTables, SchedulerConfig, parse_node_tables
from dvms.protocol.config import DvmsConfig
from dvms.scheduler import CpSatPlanner, MeasuredCost
from dvms.services.vivaldi import VivaldiServiceConfig
from peeractor.keys import generate_run_keys
from sim.scenario import load_scenario

GOOD = """
node = "h0"
site = "s0"
listen = "tcp://10.0.0.1:7100"
libvirt_uri = "qemu+unix:///system?socket=/x/sock"
key_dir = "/keys"
output_dir = "/out"
seed = 3

[capacity]
cpu = 100.0
memory_mib = 1024

[[peers]]
node = "h1"
address = "tcp://10.0.0.2:7100"
libvirt_uri = "qemu+tcp://10.0.0.2/system"

[scheduler]
name = "dvms"
planner = "cpsat"
"""


def good() -> dict[str, Any]:
    return tomllib.loads(GOOD)


def test_parses_a_full_config(tmp_path: Path) -> None:
    path = tmp_path / "h0.toml"
    path.write_text(GOOD)
    cfg = load_agent_config(path)
    assert cfg == AgentConfig(
        node="h0", site="s0", listen="tcp://10.0.0.1:7100",
        libvirt_uri="qemu+unix:///system?socket=/x/sock", key_dir=Path("/keys"),
        output_dir=Path("/out"), seed=3, duration_s=0.0,
        capacity=HostCapacity(cpu=100.0, memory_mib=1024),
        peers=(PeerConfig("h1", "default", "tcp://10.0.0.2:7100",
                          "qemu+tcp://10.0.0.2/system"),),
        agent=AgentTuning(),
        tables=NodeTables(scheduler=SchedulerConfig(name="dvms", planner="cpsat")))
    assert cfg.peer_uris() == {"h1": "qemu+tcp://10.0.0.2/system"}
    assert cfg.sites() == {"h0": "s0", "h1": "default"}


def test_render_round_trips() -> None:
    cfg = parse_agent_config(good())
    assert parse_agent_config(tomllib.loads(render_agent_config(cfg))) == cfg


def test_a_scenario_table_copied_verbatim_means_the_same() -> None:
    scenario = load_scenario(None, {"scheduler.name": "dvms", "dvms.partition_timeout_s": 7.5,
                                    "vivaldi.period_s": 3.0, "overlay.name": "ring"})
    data = good()
    text = (Path(__file__).parent.parent / "sim" / "default.toml").read_text()
    for name in ("scheduler", "overlay", "dvms", "vivaldi", "monitor"):
        data[name] = tomllib.loads(text)[name]
    data["scheduler"]["name"] = "dvms"
    data["dvms"]["partition_timeout_s"] = 7.5
    data["vivaldi"]["period_s"] = 3.0
    data["overlay"]["name"] = "ring"
    assert parse_agent_config(data).tables == scenario.node_tables


def edit(path: str, value: Any) -> dict[str, Any]:
    data = good()
    *parents, key = path.split(".")
    table = data
    for p in parents:
        table = table.setdefault(p, {}) if not p.isdigit() else table[int(p)]  # type: ignore
    if value is None:
        del table[key]
    else:
        table[key] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("node", None, "cfg: node: missing (required)"),
        ("node", "a b", "cfg: node = 'a b': must be a node id ([A-Za-z0-9_.-], ≤ 63)"),
        ("listen", "10.0.0.1:7100", "cfg: listen = '10.0.0.1:7100': must be tcp://HOST:PORT "
         "(port 1..65535)"),
        ("listen", "tcp://h:99999", "cfg: listen = 'tcp://h:99999': must be tcp://HOST:PORT "
         "(port 1..65535)"),
        ("seed", -1, "cfg: seed = -1: must be an integer in [0, 9223372036854775807]"),
        ("duration_s", "long", "cfg: duration_s = 'long': must be a number >= 0"),
        ("capacity.cpu", 0, "cfg: capacity.cpu = 0: must be a number > 0"),
        ("capacity.disk", 1, "cfg: capacity.disk: unknown key; allowed: cpu, memory_mib"),
        ("peers.0.node", "h0", "cfg: peers[0].node = 'h0': duplicate node id (each peer once, "
         "not this node)"),
        ("peers.0.libvirt_uri", None, "cfg: peers[0].libvirt_uri: missing (required)"),
        ("overlay.name", "chord", "cfg: overlay.name = 'chord': must be one of 'lbo', 'ring', "
         "'random'"),
        ("agent.migration_timeout_s", 0, "cfg: agent.migration_timeout_s = 0: must be a number "
         "> 0"),
        ("agent.migration_storage", "nfs", "cfg: agent.migration_storage = 'nfs': must be one "
         "of 'shared', 'copy-inc'"),
        ("scheduler.period_s", -1, "cfg: scheduler.period_s = -1: must be a number >= 0.001"),
        ("dvms.min_partition_size", 0, "cfg: dvms.min_partition_size = 0: must be an integer "
         ">= 1"),
        ("vivaldi.sample_size", "x", "cfg: vivaldi.sample_size = 'x': must be an integer >= 1"),
    ],
)
def test_bad_fields_are_one_line_errors(path: str, value: Any, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_agent_config(edit(path, value), "cfg")
    assert str(err.value) == message


def test_unknown_top_level_field() -> None:
    with pytest.raises(InputError, match=r"^cfg: colour: unknown key; allowed: node, "):
        parse_agent_config(edit("colour", "red"), "cfg")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing.toml: cannot read \(No such file"):
        load_agent_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("node = \n")
    with pytest.raises(InputError, match=r"bad.toml: not valid TOML"):
        load_agent_config(bad)


# ----- parity: every field reaches the running agent -----------------------------------


def _other(cls: type[Any], name: str) -> Any:
    """A valid non-default value for ``cls.name`` (the first candidate that validates)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = field.default
    if isinstance(default, bool):
        candidates: list[Any] = [not default]
    elif isinstance(default, int):
        candidates = [default + 1, default + 2, default * 2 + 5]
    elif isinstance(default, float):
        candidates = [default * 1.5, default + 0.5, default * 0.5, 0.25, 0.75]
    else:
        candidates = {"name": ["dvms"], "planner": ["cpsat"], "cost": ["measured"],
                      "coordinator": ["a1"]}.get(name, [])
    for value in candidates:
        if value == default:
            continue
        try:
            dataclasses.replace(cls(), **{name: value})
        except (InputError, ValueError):
            continue
        return value
    raise AssertionError(f"{cls.__name__}.{name}: no valid non-default value to test with")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    generate_run_keys(path)
    return path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def running(tmp_path: Path, keys: Path) -> Iterator[Callable[[dict[str, Any]], RunningNode]]:
    nodes: list[RunningNode] = []

    def start(tables: dict[str, Any]) -> RunningNode:
        data = {"node": "a0", "site": "lab", "listen": f"tcp://127.0.0.1:{_port()}",
                "libvirt_uri": "test:///default", "key_dir": str(keys),
                "output_dir": str(tmp_path / "out"), "seed": 5,
                "peers": [{"node": "a1", "address": f"tcp://127.0.0.1:{_port()}",
                           "libvirt_uri": "test:///default"}], **tables}
        (tmp_path / "out").mkdir(exist_ok=True)
        cfg = parse_agent_config(tomllib.loads(render_agent_config(parse_agent_config(data))))
        node = start_node(cfg)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(DvmsConfig)])
def test_every_dvms_field_reaches_the_protocol(running: Any, name: str) -> None:
    value = _other(DvmsConfig, name)
    node = running({"scheduler": {"name": "dvms"}, "dvms": {name: value}})
    assert getattr(node.service("dvms").config, name) == value


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(VivaldiServiceConfig)])
def test_every_vivaldi_field_reaches_the_service(running: Any, name: str) -> None:
    value = _other(VivaldiServiceConfig, name)
    node = running({"vivaldi": {name: value}})
    assert getattr(node.service("vivaldi").config, name) == value


SCHEDULER_CHECKS: dict[str, Callable[[RunningNode, Any], bool]] = {
    "name": lambda node, v: node.plan.scheduler.name == v
    and "dvms" in {s.name for s in node.services},
    "period_s": lambda node, v: node.service("central").period_s == v,
    "planner": lambda node, v: isinstance(node.service("central").planner, CpSatPlanner),
    "headroom": lambda node, v: node.service("central").planner.config.headroom == v,
    "cost": lambda node, v: isinstance(node.service("central").planner.cost, MeasuredCost),
    "coordinator": lambda node, v: node.plan.scheduler.coordinator == v
    and {s.name for s in node.services} == {"vivaldi", "monitor", "central-host"},
    "gather_timeout_s": lambda node, v: node.service("central").gather_timeout_s == v,
    # hierarchical runs in simulation only: the field reaches the agent's plan
    "group_size": lambda node, v: node.plan.scheduler.group_size == v,
}
"""How each ``[scheduler]`` field shows on a running agent (centralized; the coordinator is
a0, the smallest node id, unless the field tested moves it to a1):
a field added without an entry here fails the test below."""


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(SchedulerConfig)])
def test_every_scheduler_field_reaches_the_agent(running: Any, name: str) -> None:
    assert name in SCHEDULER_CHECKS, f"scheduler.{name} is not wired into the agent's check"
    value = _other(SchedulerConfig, name)
    table = {"name": "centralized", name: value}
    node = running({"scheduler": table})
    assert SCHEDULER_CHECKS[name](node, value), (name, value)


def test_the_three_schedulers_assemble_their_services(running: Any) -> None:
    names = {s: {x.name for x in running({"scheduler": {"name": s}}).services}
             for s in ("none", "centralized", "dvms")}
    assert names == {"none": {"vivaldi", "monitor"},
                     "centralized": {"vivaldi", "monitor", "central-host", "central"},
                     "dvms": {"vivaldi", "monitor", "dvms"}}
    assert parse_node_tables({}).scheduler == SchedulerConfig()
