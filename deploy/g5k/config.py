"""The experiment TOML (``dvms g5k ...``) → frozen, validated dataclasses.

Validated with the project's one mechanism (``dvms.config``); every error is one
``InputError`` line naming the field, e.g. ``reservation.mode = 'fre': must be one of
'free', 'date', 'max'``. Checks that need the platform (unknown site, cluster or host in
``resources`` or ``blacklist``) are made by ``deploy.g5k.plan.make_plan``.

Walltime: ``H``, ``H:MM`` or ``H:MM:SS`` as OAR 2.5 reads it (``12:00`` is twelve hours,
``25:00:00`` is accepted: OAR has no 24 h limit, Grid'5000's admission rules may refuse
it); minutes and seconds must be below 60 and the total above zero. Dates are
``YYYY-MM-DD HH:MM:SS`` in Europe/Paris whatever the machine's time zone.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from deploy.g5k.oarspec import parse_walltime
from dvms.config import Section, option, parse_section
from dvms.errors import InputError
from dvms.node import NODE_SECTIONS, node_plan, parse_node_tables

__all__ = [
    "PARIS",
    "AgentsConfig",
    "Experiment",
    "HostsConfig",
    "PlatformConfig",
    "ReservationConfig",
    "load_experiment",
    "paris_date",
    "parse_experiment",
    "parse_paris_date",
]

PARIS = ZoneInfo("Europe/Paris")
"""Grid'5000's time zone: OAR dates and the charter are in it."""

EXTRA_TABLES = ("vms", "stress", "load")
"""Tables of the later steps, kept raw in ``Experiment.extra`` (their modules parse them)."""

_ELEMENT = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DATE = "%Y-%m-%d %H:%M:%S"


def parse_paris_date(text: str) -> int:
    """``YYYY-MM-DD HH:MM:SS`` in Europe/Paris → Unix time (ValueError if malformed)."""
    naive = datetime.strptime(text.strip(), _DATE)
    return int(naive.replace(tzinfo=PARIS).timestamp())


def paris_date(ts: float) -> str:
    """Unix time → ``YYYY-MM-DD HH:MM:SS`` in Europe/Paris (OAR's ``-r`` format)."""
    return datetime.fromtimestamp(int(ts), PARIS).strftime(_DATE)


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, tuple | list):
        raise InputError(f"{name} = {value!r}: must be a list of strings")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise InputError(f"{name}[{i}] = {v!r}: must be a non-empty string")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class PlatformConfig(Section):
    """Where the platform is: the only table that differs between Grid'5000 and the lab."""

    api_uri: str = option("https://api.grid5000.fr/3.0/", "Root of the REST API 3.0.")
    api_user: str = option("", "API user (empty on a frontend: no authentication).")
    ssh_config: str = option("", "ssh client config passed with -F (empty: ssh's default).")
    ssh_user: str = option("root", "User on the deployed nodes.")
    check_deployed_command: str = option(
        "", "Command true on a deployed node (empty: execo's default)."
    )
    frontend_timeout_s: float = option(900.0, "Timeout of a frontend command (s).", lo=0,
                                       lo_open=True)
    api_timeout_s: float = option(30.0, "Timeout of one API request (s).", lo=0, lo_open=True)
    cache_dir: str = option("", "execo's API cache (empty: WORKDIR/api-cache).")
    poll_s: float = option(20.0, "Polling interval of OAR job states (s).", lo=0, lo_open=True)

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.api_uri):
            raise InputError(f"platform.api_uri = {self.api_uri!r}: must be an http(s) URI")


@dataclasses.dataclass(frozen=True)
class ReservationConfig(Section):
    """What to reserve (Funk's options)."""

    mode: str = option(
        "free",
        "free: first slot with every count; date: first slot with any node; max: most nodes.",
        choices=("free", "date", "max"),
    )
    resources: tuple[str, ...] = option(
        ("grid5000:1",), "element[:n] with element grid5000, a site, a cluster or a host."
    )
    blacklist: tuple[str, ...] = option((), "Sites, clusters or hosts never to use.")
    walltime: str = option("1:00:00", "Job duration: H, H:MM or H:MM:SS (OAR's reading).")
    job_types: tuple[str, ...] = option(("deploy",), "OAR job types (-t).")
    kavlan: bool = option(False, "Reserve a KaVLAN (global when the jobs span sites).")
    subnets: str = option("", "Subnet request, e.g. 'slash_22=1' (empty: none).")
    avoid_charter: bool = option(False, "Avoid the charter's hours (weekdays 9:00-19:00).")
    start: str = option("", "Earliest start, 'YYYY-MM-DD HH:MM:SS' Europe/Paris ('' = now).")
    start_timeout_s: float = option(3600.0, "Deadline for the jobs to start (s).", lo=0,
                                    lo_open=True)

    def __post_init__(self) -> None:
        for field in ("resources", "blacklist", "job_types"):
            object.__setattr__(self, field, _strings(f"reservation.{field}",
                                                     getattr(self, field)))
        if not self.resources:
            raise InputError("reservation.resources = []: must name at least one element")
        for i, spec in enumerate(self.resources):
            self._check_resource(i, spec)
        for i, name in enumerate(self.blacklist):
            if not _ELEMENT.match(name) or name == "grid5000":
                raise InputError(f"reservation.blacklist[{i}] = {name!r}: must be a site, "
                                 "cluster or host name")
        try:
            self.walltime_s()
        except ValueError as exc:
            raise InputError(f"reservation.walltime = {self.walltime!r}: {exc}") from None
        if self.subnets and not re.match(r"^slash_(1[6-9]|2[0-2])=[1-9]\d*$", self.subnets):
            raise InputError(f"reservation.subnets = {self.subnets!r}: must look like "
                             "'slash_22=1' (slash_16 .. slash_22)")
        try:
            self.start_ts()
        except ValueError:
            raise InputError(f"reservation.start = {self.start!r}: must be '' or "
                             "'YYYY-MM-DD HH:MM:SS' (Europe/Paris)") from None

    def _check_resource(self, i: int, spec: str) -> None:
        element, sep, count = spec.partition(":")
        where = f"reservation.resources[{i}] = {spec!r}"
        if not _ELEMENT.match(element):
            raise InputError(f"{where}: element must be grid5000, a site, a cluster or a host")
        if sep and not re.fullmatch(r"\d+", count):
            raise InputError(f"{where}: the count after ':' must be a non-negative integer")
        if self.mode == "free" and (not sep or int(count) < 1):
            raise InputError(f"{where}: mode 'free' needs a count >= 1 (element:n)")

    def wanted(self) -> dict[str, int]:
        """``{element: n}`` in the file's order (n = 0: as many as available)."""
        out: dict[str, int] = {}
        for spec in self.resources:
            element, _, count = spec.partition(":")
            out[element] = out.get(element, 0) + int(count or 0)
        return out

    def walltime_s(self) -> int:
        return parse_walltime(self.walltime)

    def start_ts(self) -> int | None:
        """The earliest start as Unix time, None for "now"."""
        return parse_paris_date(self.start) if self.start.strip() else None


@dataclasses.dataclass(frozen=True)
class HostsConfig(Section):
    """How the reserved nodes are deployed."""

    environment: str = option("debian12-min", "kadeploy environment (-e).")
    deploy_tries: int = option(2, "kadeploy attempts per node.", lo=1, hi=10)
    min_hosts_ratio: float = option(0.8, "Continue only if this share of hosts is OK.", lo=0,
                                    hi=1)
    packages: tuple[str, ...] = option((), "Debian packages installed on every host.")
    deploy_timeout_s: float = option(1800.0, "Timeout of one kadeploy run (s).", lo=0,
                                     lo_open=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "packages", _strings("hosts.packages", self.packages))
        if not self.environment.strip():
            raise InputError("hosts.environment = '': must name a kadeploy environment")


@dataclasses.dataclass(frozen=True)
class AgentsConfig(Section):
    """How the ``dvms agent`` of every host is installed, configured and started."""

    python: str = option("python3", "Interpreter on the nodes with dvms importable (G5K: a "
                                    "venv on the NFS home; lab: this machine's).")
    pythonpath: str = option("", "PYTHONPATH on the nodes (lab: the project's root).")
    install_command: str = option("", "Shell command run on a host before its agent starts "
                                      "(e.g. a pip install of the wheel; empty: none).")
    remote_dir: str = option("/tmp/dvms-agents", "Agent directories on the nodes "
                                                 "(REMOTE_DIR/NODE: config, keys, trace, log).")
    address: str = option("auto", "Address the agents bind: auto (the node's own, read on "
                                  "it) or one IP for every node (e.g. 127.0.0.1 in the lab).")
    port: int = option(7100, "ZeroMQ port; nodes sharing an address get port, port+1, ...",
                       lo=1, hi=65535)
    libvirt_uri: str = option("", "The agent's libvirt URI (empty: the node's "
                                  "LIBVIRT_DEFAULT_URI, else qemu:///system).")
    peer_uri: str = option("qemu+tcp://{host}/system",
                           "A peer's libvirt URI as seen from a host: {host} (its FQDN) and "
                           "{address} (its agent address) are replaced.")
    migration_storage: str = option("copy-inc", "shared, or copy-inc (each host keeps its "
                                                "disks: Grid'5000).",
                                    choices=("shared", "copy-inc"))
    migration_timeout_s: float = option(120.0, "A migration longer than this is aborted (s).",
                                        lo=0, lo_open=True)
    capacity_percent: float = option(0.0, "CPU each host declares, percent of a core "
                                          "(0: 100 x its cores from the API).", lo=0)
    capacity_memory_mib: int = option(0, "Memory each host declares (0: the API's).", lo=0)
    start_timeout_s: float = option(30.0, "Deadline for every agent to listen (s).", lo=0,
                                    lo_open=True)
    stop_timeout_s: float = option(20.0, "SIGTERM, then SIGKILL after this (s).", lo=0,
                                   lo_open=True)
    dashboard: bool = option(False, "Serve the live dashboard during load (and run).")
    dashboard_port: int = option(9000, "Port of the live dashboard on 127.0.0.1.", lo=1,
                                 hi=65535)

    def __post_init__(self) -> None:
        if not self.remote_dir.startswith("/"):
            raise InputError(f"agents.remote_dir = {self.remote_dir!r}: must be an absolute "
                             "path")
        if self.address != "auto" and not re.fullmatch(r"[0-9A-Za-z.:-]+", self.address):
            raise InputError(f"agents.address = {self.address!r}: must be auto or an IP")
        if not self.python.strip():
            raise InputError("agents.python = '': must name an interpreter")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment file."""

    name: str
    seed: int
    platform: PlatformConfig
    reservation: ReservationConfig
    hosts: HostsConfig
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The later steps' tables (``vms``, ``stress``, ``load``), parsed by
    their modules."""
    agents: AgentsConfig = dataclasses.field(default_factory=AgentsConfig)
    node_tables: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """``[scheduler]`` ``[overlay]`` ``[dvms]`` ``[vivaldi]`` ``[monitor]`` as written
    (validated by ``dvms.node.parse_node_tables``), passed verbatim to every agent."""


def parse_experiment(table: Mapping[str, Any]) -> Experiment:
    """Validate a parsed TOML document."""
    known = {"name", "seed", "platform", "reservation", "hosts", "agents", *EXTRA_TABLES,
             *NODE_SECTIONS}
    for key in table:
        if key not in known:
            raise InputError(f"{key}: unknown key; allowed: {', '.join(sorted(known))}")
    name = table.get("name", "dvms")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"name = {name!r}: must be letters, digits, '_', '.', '-'")
    seed = table.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InputError(f"seed = {seed!r}: must be an integer in [0, 2^63)")
    extra = {k: table[k] for k in EXTRA_TABLES if k in table}
    for key, value in extra.items():
        if not isinstance(value, Mapping):
            raise InputError(f"[{key}]: must be a table, got {value!r}")
    node_tables = {k: table[k] for k in NODE_SECTIONS if k in table}
    node_plan(parse_node_tables(node_tables), seed=1, real=True)  # one line now, not on a node
    return Experiment(
        name=name,
        seed=seed,
        platform=parse_section("platform", PlatformConfig, table.get("platform", {})),
        reservation=parse_section("reservation", ReservationConfig,
                                  table.get("reservation", {})),
        hosts=parse_section("hosts", HostsConfig, table.get("hosts", {})),
        extra=extra,
        agents=parse_section("agents", AgentsConfig, table.get("agents", {})),
        node_tables=node_tables,
    )


def load_experiment(path: Path) -> Experiment:
    """Read and validate an experiment file; ``InputError`` names the file or the field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        table = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: ints of > 4300 digits
        raise InputError(f"{path}: not TOML: {exc}") from None
    return parse_experiment(table)
