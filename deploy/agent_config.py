"""The ``dvms agent`` configuration: one TOML file per host, validated up front.

Example (every field documented in docs/deploy.md)::

    node = "h0"                                  # this host's node id
    site = "s0"                                  # its site (for the trace)
    listen = "tcp://10.213.0.1:7100"             # ZeroMQ endpoint this agent binds
    libvirt_uri = "qemu+unix:///system?socket=/var/tmp/dvms-cluster/hosts/h0/run/libvirt-sock"
    key_dir = "/var/tmp/dvms-cluster/keys"       # the run's CURVE certificates
    output_dir = "/var/tmp/dvms-cluster/agents/h0"
    seed = 1
    duration_s = 0                               # 0: run until SIGTERM/SIGINT

    [capacity]                                   # optional: else libvirt's node info
    cpu = 100.0                                  # percent of a core
    memory_mib = 2048

    [[peers]]                                    # bootstrap peers (the other agents)
    node = "h1"
    site = "s0"
    address = "tcp://10.213.0.2:7100"
    libvirt_uri = "qemu+tcp://10.213.0.2/system" # how OUR libvirtd reaches theirs

    [agent]                                      # optional tuning (defaults shown)
    monitor_period_s = 1.0
    migration_timeout_s = 120.0
    overlay = "lbo"                              # lbo | ring | random
    planner = "repair"                           # repair | cpsat
    min_partition_size = 2
    partition_timeout_s = 10.0

Every error is one ``InputError`` line naming the file, the field, the bad value and what
is allowed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvms.errors import InputError
from dvms.hypervisor import HostCapacity

__all__ = [
    "AgentConfig",
    "AgentTuning",
    "PeerConfig",
    "load_agent_config",
    "parse_agent_config",
    "render_agent_config",
]

OVERLAYS = ("lbo", "ring", "random")
PLANNERS = ("repair", "cpsat")
_NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENDPOINT_RE = re.compile(r"tcp://[^\s:/]+:(\d{1,5})")


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Another agent: its node id, site, ZeroMQ endpoint and libvirt URI (as ours sees it)."""

    node: str
    site: str
    address: str
    libvirt_uri: str


@dataclass(frozen=True, slots=True)
class AgentTuning:
    """Timings and algorithm choices (``[agent]`` table)."""

    monitor_period_s: float = 1.0
    """Hypervisor polling period (s)."""
    migration_timeout_s: float = 120.0
    """A live migration still running after this is aborted (VM stays at its source)."""
    overlay: str = "lbo"
    planner: str = "repair"
    min_partition_size: int = 2
    """Smallest partition a plan may be applied in (a few real hosts, not VMPlaceS's 4)."""
    partition_timeout_s: float = 10.0
    """Real migrations take seconds: longer than the simulated default."""
    vivaldi_period_s: float = 1.0
    """Interval between Vivaldi pings (s)."""


@dataclass(frozen=True, slots=True)
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
    agent: AgentTuning = field(default_factory=AgentTuning)

    def peer_uris(self) -> dict[str, str]:
        return {p.node: p.libvirt_uri for p in self.peers}

    def sites(self) -> dict[str, str]:
        return {self.node: self.site, **{p.node: p.site for p in self.peers}}


class _Fields:
    """Typed access to one TOML table, raising one-line errors naming ``where.key``."""

    def __init__(self, source: str, where: str, table: dict[str, Any]) -> None:
        self.source, self.where, self.table = source, where, table
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, value: Any, allowed: str) -> InputError:
        return InputError(f"{self.source}: {self._name(key)} = {value!r}: {allowed}")

    def get(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise InputError(f"{self.source}: {self._name(key)}: missing (required)")
            return default
        return self.table[key]

    def string(self, key: str, default: Any = ..., *, pattern: re.Pattern[str] | None = None,
               allowed: str = "a non-empty string") -> str:
        value = self.get(key, default)
        ok = isinstance(value, str) and value != "" and (
            pattern is None or pattern.fullmatch(value) is not None)
        if not ok:
            raise self.error(key, value, f"expected {allowed}")
        return str(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(key, default)
        if value not in choices:
            raise self.error(key, value, f"expected one of {', '.join(choices)}")
        return str(value)

    def number(self, key: str, default: Any = ..., *, low: float = 0.0,
               strict: bool = False) -> float:
        value = self.get(key, default)
        bad = isinstance(value, bool) or not isinstance(value, int | float)
        if bad or value < low or (strict and value == low):
            rel = ">" if strict else ">="
            raise self.error(key, value, f"expected a number {rel} {low:g}")
        return float(value)

    def integer(self, key: str, default: Any = ..., *, low: int = 0) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(key, value, f"expected an integer >= {low}")
        return int(value)

    def finish(self) -> None:
        extra = sorted(set(self.table) - self.used)
        if extra:
            raise InputError(f"{self.source}: {self._name(extra[0])}: unknown field")


def _endpoint(f: _Fields, key: str) -> str:
    value = f.string(key, allowed="tcp://HOST:PORT")
    m = _ENDPOINT_RE.fullmatch(value)
    if m is None or not 0 < int(m.group(1)) < 65536:
        raise f.error(key, value, "expected tcp://HOST:PORT (port 1..65535)")
    return value


def parse_agent_config(data: dict[str, Any], source: str = "config") -> AgentConfig:
    """Validate a parsed TOML document."""
    top = _Fields(source, "", data)
    node = top.string("node", pattern=_NODE_RE, allowed="a node id ([A-Za-z0-9_.-], ≤ 63)")
    site = top.string("site", "default")
    listen = _endpoint(top, "listen")
    libvirt_uri = top.string("libvirt_uri", allowed="a libvirt URI")
    key_dir = Path(top.string("key_dir", allowed="a directory path"))
    output_dir = Path(top.string("output_dir", allowed="a directory path"))
    seed = top.integer("seed", 0)
    duration_s = top.number("duration_s", 0.0)
    capacity = None
    cap_table = top.get("capacity", None)
    if cap_table is not None:
        if not isinstance(cap_table, dict):
            raise top.error("capacity", cap_table, "expected a table with cpu and memory_mib")
        cap = _Fields(source, "capacity", cap_table)
        capacity = HostCapacity(cpu=cap.number("cpu", strict=True),
                                memory_mib=cap.integer("memory_mib", low=1))
        cap.finish()
    raw_peers = top.get("peers", [])
    if not isinstance(raw_peers, list):
        raise top.error("peers", raw_peers, "expected an array of tables ([[peers]])")
    peers: list[PeerConfig] = []
    for i, raw in enumerate(raw_peers):
        if not isinstance(raw, dict):
            raise top.error(f"peers[{i}]", raw, "expected a table")
        p = _Fields(source, f"peers[{i}]", raw)
        peer = PeerConfig(
            node=p.string("node", pattern=_NODE_RE, allowed="a node id ([A-Za-z0-9_.-], ≤ 63)"),
            site=p.string("site", "default"),
            address=_endpoint(p, "address"),
            libvirt_uri=p.string("libvirt_uri", allowed="a libvirt URI"),
        )
        p.finish()
        if peer.node == node or peer.node in {q.node for q in peers}:
            raise p.error("node", peer.node, "duplicate node id (each peer once, not this node)")
        peers.append(peer)
    tuning = AgentTuning()
    agent_table = top.get("agent", None)
    if agent_table is not None:
        if not isinstance(agent_table, dict):
            raise top.error("agent", agent_table, "expected a table")
        a = _Fields(source, "agent", agent_table)
        d = AgentTuning()
        tuning = AgentTuning(
            monitor_period_s=a.number("monitor_period_s", d.monitor_period_s, strict=True),
            migration_timeout_s=a.number("migration_timeout_s", d.migration_timeout_s,
                                         strict=True),
            overlay=a.choice("overlay", d.overlay, OVERLAYS),
            planner=a.choice("planner", d.planner, PLANNERS),
            min_partition_size=a.integer("min_partition_size", d.min_partition_size, low=1),
            partition_timeout_s=a.number("partition_timeout_s", d.partition_timeout_s,
                                         strict=True),
            vivaldi_period_s=a.number("vivaldi_period_s", d.vivaldi_period_s, strict=True),
        )
        a.finish()
    top.finish()
    return AgentConfig(node=node, site=site, listen=listen, libvirt_uri=libvirt_uri,
                       key_dir=key_dir, output_dir=output_dir, seed=seed, duration_s=duration_s,
                       capacity=capacity, peers=tuple(peers), agent=tuning)


def load_agent_config(path: Path) -> AgentConfig:
    """Read and validate an agent's TOML file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    return parse_agent_config(data, str(path))


def render_agent_config(cfg: AgentConfig) -> str:
    """The TOML text of ``cfg`` (what the local cluster writes for each agent)."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"node = {q(cfg.node)}", f"site = {q(cfg.site)}", f"listen = {q(cfg.listen)}",
             f"libvirt_uri = {q(cfg.libvirt_uri)}", f"key_dir = {q(str(cfg.key_dir))}",
             f"output_dir = {q(str(cfg.output_dir))}", f"seed = {cfg.seed}",
             f"duration_s = {cfg.duration_s!r}"]
    if cfg.capacity is not None:
        lines += ["", "[capacity]", f"cpu = {cfg.capacity.cpu!r}",
                  f"memory_mib = {cfg.capacity.memory_mib}"]
    for p in cfg.peers:
        lines += ["", "[[peers]]", f"node = {q(p.node)}", f"site = {q(p.site)}",
                  f"address = {q(p.address)}", f"libvirt_uri = {q(p.libvirt_uri)}"]
    t = cfg.agent
    lines += ["", "[agent]", f"monitor_period_s = {t.monitor_period_s!r}",
              f"migration_timeout_s = {t.migration_timeout_s!r}", f"overlay = {q(t.overlay)}",
              f"planner = {q(t.planner)}", f"min_partition_size = {t.min_partition_size}",
              f"partition_timeout_s = {t.partition_timeout_s!r}",
              f"vivaldi_period_s = {t.vivaldi_period_s!r}"]
    return "\n".join(lines) + "\n"
