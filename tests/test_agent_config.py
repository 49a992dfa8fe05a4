"""Agent configuration: validation with one-line errors, and the rendered form round-trips."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from deploy.agent_config import (
    AgentConfig,
    AgentTuning,
    PeerConfig,
    load_agent_config,
    parse_agent_config,
    render_agent_config,
)
from dvms.errors import InputError
from dvms.hypervisor import HostCapacity

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

[agent]
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
        agent=AgentTuning(planner="cpsat"))
    assert cfg.peer_uris() == {"h1": "qemu+tcp://10.0.0.2/system"}
    assert cfg.sites() == {"h0": "s0", "h1": "default"}


def test_render_round_trips() -> None:
    cfg = parse_agent_config(good())
    assert parse_agent_config(tomllib.loads(render_agent_config(cfg))) == cfg


def edit(path: str, value: Any) -> dict[str, Any]:
    data = good()
    *parents, key = path.split(".")
    table = data
    for p in parents:
        table = table[p] if not p.isdigit() else table[int(p)]  # type: ignore[index]
    if value is None:
        del table[key]
    else:
        table[key] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("node", None, "cfg: node: missing (required)"),
        ("node", "a b", "cfg: node = 'a b': expected a node id ([A-Za-z0-9_.-], ≤ 63)"),
        ("listen", "10.0.0.1:7100", "cfg: listen = '10.0.0.1:7100': expected tcp://HOST:PORT "
         "(port 1..65535)"),
        ("listen", "tcp://h:99999", "cfg: listen = 'tcp://h:99999': expected tcp://HOST:PORT "
         "(port 1..65535)"),
        ("seed", -1, "cfg: seed = -1: expected an integer >= 0"),
        ("duration_s", "long", "cfg: duration_s = 'long': expected a number >= 0"),
        ("capacity.cpu", 0, "cfg: capacity.cpu = 0: expected a number > 0"),
        ("capacity.disk", 1, "cfg: capacity.disk: unknown field"),
        ("peers.0.node", "h0", "cfg: peers[0].node = 'h0': duplicate node id (each peer once, "
         "not this node)"),
        ("peers.0.libvirt_uri", None, "cfg: peers[0].libvirt_uri: missing (required)"),
        ("agent.overlay", "chord", "cfg: agent.overlay = 'chord': expected one of lbo, ring, "
         "random"),
        ("agent.migration_timeout_s", 0, "cfg: agent.migration_timeout_s = 0: expected a number "
         "> 0"),
        ("colour", "red", "cfg: colour: unknown field"),
    ],
)
def test_bad_fields_are_one_line_errors(path: str, value: Any, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_agent_config(edit(path, value), "cfg")
    assert str(err.value) == message


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing.toml: cannot read \(No such file"):
        load_agent_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("node = \n")
    with pytest.raises(InputError, match=r"bad.toml: not valid TOML"):
        load_agent_config(bad)
