"""The ``dvms agent`` configuration: one TOML file per host, validated up front.

The node tables are a scenario's: ``[scheduler]``, ``[overlay]``, ``[dvms]``, ``[vivaldi]``
and ``[monitor]`` are parsed by ``dvms.node`` exactly as in a scenario (copy them verbatim
from one), with the same defaults. Example (every field documented in docs/deploy.md)::

    node = "h0"                                  # this host's node id
    site = "s0"                                  # its site
    listen = "tcp://10.213.0.1:7100"             # ZeroMQ endpoint this agent binds
    libvirt_uri = "qemu+unix:///system?socket=/var/tmp/dvms-cluster/hosts/h0/run/libvirt-sock"
    key_dir = "/var/tmp/dvms-cluster/keys"       # the run's CURVE certificates
    output_dir = "/var/tmp/dvms-cluster/agents/h0"
    seed = 1
    duration_s = 0                               # 0: run until SIGTERM/SIGINT

    [capacity]                                   # optional: else libvirt's node info
    cpu = 100.0                                  # percent of a core
    memory_mib = 2048

    [[peers]]                                    # the other agents
    node = "h1"
    site = "s0"
    address = "tcp://10.213.0.2:7100"
    libvirt_uri = "qemu+tcp://10.213.0.2/system" # how OUR libvirtd reaches theirs

    [agent]                                      # settings of real hosts only
    migration_timeout_s = 120.0

    [scheduler]                                  # as in a scenario
    name = "dvms"
    [dvms]
    min_partition_size = 2
    [vivaldi]
    period_s = 1.0

Every error is one ``InputError`` line naming the file, the field, the bad value and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dvms.config import Section, option, parse_section, toml_value
from dvms.errors import InputError
from dvms.hypervisor import HostCapacity
from dvms.node import NODE_SECTIONS, NodeTables, dvms_table, parse_node_tables

__all__ = [
    "AgentConfig",
    "AgentTuning",
    "PeerConfig",
    "load_agent_config",
    "parse_agent_config",
    "render_agent_config",
]

_NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENDPOINT_RE = re.compile(r"tcp://[^\s:/]+:(\d{1,5})")
_NODE_ID = "a node id ([A-Za-z0-9_.-], ≤ 63)"
_ENDPOINT = "tcp://HOST:PORT (port 1..65535)"


@dataclasses.dataclass(frozen=True)
class PeerConfig(Section):
    """Another agent: its node id, site, ZeroMQ endpoint and libvirt URI (as ours sees it)."""

    node: str = option("", "The peer's node id (required).")
    site: str = option("default", "The peer's site.")
    address: str = option("", "The peer's ZeroMQ endpoint, tcp://HOST:PORT (required).")
    libvirt_uri: str = option("", "How this host's libvirtd reaches the peer's (required).")


@dataclasses.dataclass(frozen=True)
class CapacityConfig(Section):
    cpu: float = option(100.0, "CPU available to VMs (percent of a core).", lo=0, lo_open=True)
    memory_mib: int = option(1024, "Memory available to VMs (MiB).", lo=1)


@dataclasses.dataclass(frozen=True)
class AgentTuning(Section):
    """Settings only real hosts have (``[agent]`` table); the rest are the node tables."""

    migration_timeout_s: float = option(
        120.0,
        "A live migration still running after this is aborted (the VM stays at its source).",
        lo=0,
        lo_open=True,
    )
    migration_storage: str = option(
        "shared",
        "Disks on shared storage, or copy-inc: the disk overlay copied during the migration "
        "(its backing file on every host, as on Grid'5000).",
        choices=("shared", "copy-inc"),
    )


@dataclasses.dataclass(frozen=True)
class _Top(Section):
    node: str = option("", "This host's node id (required).")
    site: str = option("default", "Its site.")
    listen: str = option("", "ZeroMQ endpoint this agent binds, tcp://HOST:PORT (required).")
    libvirt_uri: str = option("", "This host's libvirt URI (required).")
    key_dir: str = option("", "Directory of the run's CURVE certificates (required).")
    output_dir: str = option("", "Where the trace and summary go (required).")
    seed: int = option(0, "The run's seed.", lo=0, hi=2**63 - 1)
    duration_s: float = option(0.0, "Stop after this long (0: at SIGTERM/SIGINT).", lo=0)


_TABLES = ("capacity", "peers", "agent", *NODE_SECTIONS)


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """A validated agent configuration."""

    node: str
    site: str
    listen: str
    libvirt_uri: str
    key_dir: Path
    output_dir: Path
    seed: int = 0
    duration_s: float = 0.0
    capacity: HostCapacity | None = None
    peers: tuple[PeerConfig, ...] = ()
    agent: AgentTuning = dataclasses.field(default_factory=AgentTuning)
    tables: NodeTables = dataclasses.field(default_factory=NodeTables)
    """The node tables: the same schema, defaults and meaning as in a scenario."""

    def peer_uris(self) -> dict[str, str]:
        return {p.node: p.libvirt_uri for p in self.peers}

    def sites(self) -> dict[str, str]:
        return {self.node: self.site, **{p.node: p.site for p in self.peers}}

    def nodes(self) -> list[str]:
        """Every node of the run: this one and its peers."""
        return [self.node, *(p.node for p in self.peers)]


def _required(value: str, name: str, allowed: str, pattern: re.Pattern[str] | None) -> None:
    if value == "":
        raise InputError(f"{name}: missing (required)")
    if pattern is not None and pattern.fullmatch(value) is None:
        raise InputError(f"{name} = {value!r}: must be {allowed}")


def _endpoint(value: str, name: str) -> None:
    _required(value, name, _ENDPOINT, _ENDPOINT_RE)
    m = _ENDPOINT_RE.fullmatch(value)
    if m is None or not 0 < int(m.group(1)) < 65536:
        raise InputError(f"{name} = {value!r}: must be {_ENDPOINT}")


def _peers(raw: Any, node: str) -> tuple[PeerConfig, ...]:
    if not isinstance(raw, list):
        raise InputError(f"peers = {raw!r}: must be an array of tables ([[peers]])")
    peers: list[PeerConfig] = []
    for i, table in enumerate(raw):
        where = f"peers[{i}]"
        peer: PeerConfig = parse_section(where, PeerConfig, table)
        _required(peer.node, f"{where}.node", _NODE_ID, _NODE_RE)
        _endpoint(peer.address, f"{where}.address")
        _required(peer.libvirt_uri, f"{where}.libvirt_uri", "a libvirt URI", None)
        if peer.node == node or peer.node in {p.node for p in peers}:
            raise InputError(
                f"{where}.node = {peer.node!r}: duplicate node id (each peer once, not this node)"
            )
        peers.append(peer)
    return tuple(peers)


def _parse(data: Mapping[str, Any]) -> AgentConfig:
    top: _Top = parse_section("", _Top, data, skip=_TABLES)
    _required(top.node, "node", _NODE_ID, _NODE_RE)
    _endpoint(top.listen, "listen")
    for name in ("libvirt_uri", "key_dir", "output_dir"):
        _required(getattr(top, name), name, "a non-empty string", None)
    capacity = None
    if "capacity" in data:
        cap: CapacityConfig = parse_section("capacity", CapacityConfig, data["capacity"])
        capacity = HostCapacity(cpu=cap.cpu, memory_mib=cap.memory_mib)
    agent: AgentTuning = parse_section("agent", AgentTuning, data.get("agent", {}))
    return AgentConfig(
        node=top.node,
        site=top.site,
        listen=top.listen,
        libvirt_uri=top.libvirt_uri,
        key_dir=Path(top.key_dir),
        output_dir=Path(top.output_dir),
        seed=top.seed,
        duration_s=top.duration_s,
        capacity=capacity,
        peers=_peers(data.get("peers", []), top.node),
        agent=agent,
        tables=parse_node_tables(data),
    )


def parse_agent_config(data: Mapping[str, Any], source: str = "config") -> AgentConfig:
    """Validate a parsed TOML document; errors name ``source`` and the field."""
    try:
        return _parse(data)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def load_agent_config(path: Path) -> AgentConfig:
    """Read and validate an agent's TOML file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: ints of > 4300 digits
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    return parse_agent_config(data, str(path))


def _table(name: str, values: Mapping[str, Any]) -> list[str]:
    return ["", f"[{name}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]


def render_agent_config(cfg: AgentConfig) -> str:
    """The TOML text of ``cfg`` (every field, node tables included)."""
    top = _Top(cfg.node, cfg.site, cfg.listen, cfg.libvirt_uri, str(cfg.key_dir),
               str(cfg.output_dir), cfg.seed, cfg.duration_s)
    lines = [f"{k} = {toml_value(v)}" for k, v in top.to_dict().items()]
    if cfg.capacity is not None:
        lines += _table("capacity", CapacityConfig(cfg.capacity.cpu, cfg.capacity.memory_mib)
                        .to_dict())
    for p in cfg.peers:
        lines += ["", "[[peers]]", *(f"{k} = {toml_value(v)}" for k, v in p.to_dict().items())]
    lines += _table("agent", cfg.agent.to_dict())
    t = cfg.tables
    lines += _table("scheduler", t.scheduler.to_dict())
    lines += _table("overlay", t.overlay.to_dict())
    lines += _table("dvms", dvms_table(t.dvms))
    lines += _table("vivaldi", t.vivaldi.to_dict())
    lines += _table("monitor", t.monitor.to_dict())
    return "\n".join(lines) + "\n"
