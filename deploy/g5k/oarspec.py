"""OAR resource requests: a builder, and a port of OAR 2.5's ``-l`` grammar to check them.

``build_resources`` writes one site's request with every constraint *inside* its nodes
group (``{cluster NOT IN ('fclc')}/nodes=2``) and the KaVLAN group without a trailing
``+`` — the two defects of execo 2.8.2's ``get_jobs_specs``. The strings are also free of
commas (host lists are written ``(host='a' OR host='b')``), since OAR 3 splits a request
on ``,``. ``parse_resources`` re-expresses ``parse_resource_descriptions`` of OAR 2.5's
``oarsub`` (regular expressions and all) and raises ``OarGrammarError`` with OAR's own
message; ``empty_constraints`` finds what OAR accepts but misreads: a constraint attached
to a group with no resource, which OAR then ignores.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dvms.errors import DvmsError

__all__ = [
    "KAVLAN_TYPES",
    "OAR_GRAMMAR_EXIT",
    "NodesGroup",
    "OarGrammarError",
    "OarRequest",
    "OarRequestError",
    "ResourceGroup",
    "ResourceRequest",
    "build_resources",
    "check_resources",
    "empty_constraints",
    "format_walltime",
    "parse_resources",
    "parse_walltime",
]

OAR_GRAMMAR_EXIT = 18
"""``oarsub``'s exit status for a request its grammar rejects."""

KAVLAN_TYPES = ("kavlan-local", "kavlan", "kavlan-global")
"""KaVLAN resource types: local (non routed), routed (one site), global (all sites)."""

DEFAULT_RESOURCES = "/resource_id=1"
"""OAR's ``OARSUB_DEFAULT_RESOURCES`` when unset; the parser falls back on it."""

SLEEP_COMMAND = "sleep 31536000"
"""The job's command (nodes are used by ssh, the job just holds them), as execo does."""


class OarGrammarError(DvmsError):
    """A request OAR 2.5's ``oarsub`` refuses (exit 18); ``message`` is OAR's own text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OarRequestError(DvmsError):
    """A request OAR accepts but misreads (a constraint on an empty group)."""


@dataclass(frozen=True)
class ResourceGroup:
    """One ``{property}/res=n/res=n`` group of a request."""

    property: str | None
    resources: tuple[tuple[str, int], ...]
    """(resource, value); value -1 = ALL, -2 = BEST, -3 = BESTHALF, as OAR encodes them."""


@dataclass(frozen=True)
class ResourceRequest:
    groups: tuple[ResourceGroup, ...]
    walltime_s: int | None


_PROPERTY = re.compile(r"^\s*(\++|,+|\s*)\s*\{(.+?)}(.*)$", re.ASCII)
_GROUP = re.compile(r"^\s*(\++|,+|\s*)\s*/*([^,+]+)\s*(.*)$", re.ASCII)
_WALLTIME_WORD = re.compile(r"^\s*walltime", re.ASCII)
_DEFAULT = re.compile(r"^\s*/*(.+)$", re.ASCII)
_WALLTIME = re.compile(r"^[\s,]*walltime\s*=\s*([\d|:]+)\s*$", re.ASCII)
_SPECIAL = {"ALL": -1, "BEST": -2, "BESTHALF": -3}


def _perl_split(text: str, sep: str) -> list[str]:
    """Perl's ``split``: leading empty fields kept, trailing ones dropped."""
    parts = text.split(sep) if text else []
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _perl_number(text: str | None) -> int:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else 0


def _resource(item: str) -> tuple[str, int]:
    m = re.match(r"^\s*(\w+)\s*=\s*(\d+)\s*$", item, re.ASCII)
    if m:
        return m.group(1), int(m.group(2))
    for word, code in _SPECIAL.items():
        m = re.match(rf"^\s*(\w+)\s*=\s*{word}\s*$", item, re.ASCII)
        if m:
            return m.group(1), code
    raise OarGrammarError(f"# Error: cannot recognize the resource description: {item}")


def parse_resources(text: str, *, default: str = DEFAULT_RESOURCES) -> ResourceRequest:
    """Parse one ``-l`` argument as OAR 2.5 does, or raise ``OarGrammarError``."""
    r = text
    groups: list[ResourceGroup] = []
    walltime: int | None = None
    while True:
        initial = r
        prop: str | None = None
        m = _PROPERTY.match(r)
        if m:
            prop, r = m.group(2), m.group(3)
        m = _GROUP.match(r)
        if m and not _WALLTIME_WORD.match(m.group(2)):
            to_parse, r = m.group(2), m.group(3)
        else:
            d = _DEFAULT.match(default)
            to_parse = d.group(1) if d else ""
        resources = tuple(_resource(item) for item in _perl_split(to_parse, "/"))
        w = _WALLTIME.match(r)
        if w:
            fields = _perl_split(w.group(1), ":")
            if not fields:
                raise OarGrammarError("# Error: cannot recognize walltime resource value")
            hms = [*fields, "", ""][:3]
            walltime = _perl_number(hms[0]) * 3600 + _perl_number(hms[1]) * 60
            walltime += _perl_number(hms[2])
            r = ""
        if r == initial:
            raise OarGrammarError(f"# Error: cannot recognize -- {r} -- resource")
        groups.append(ResourceGroup(prop, resources))
        if re.match(r"^\s*$", r):
            return ResourceRequest(tuple(groups), walltime)


def empty_constraints(request: ResourceRequest) -> list[str]:
    """One line per constraint OAR attaches to a group with no resource (and so ignores)."""
    return [
        f"constraint {{{g.property}}} is attached to an empty resource group: OAR ignores it"
        for g in request.groups
        if g.property is not None and not g.resources
    ]


def check_resources(text: str) -> ResourceRequest:
    """Parse ``text`` (OarGrammarError) and refuse ignored constraints (OarRequestError)."""
    request = parse_resources(text)
    problems = empty_constraints(request)
    if problems:
        raise OarRequestError(f"OAR request {text!r}: {problems[0]}")
    return request


def parse_walltime(text: str) -> int:
    """``H``, ``H:MM`` or ``H:MM:SS`` (OAR's reading: ``12:00`` is 12 h) → seconds.

    Stricter than OAR, which accepts ``25:61`` as 26:01: minutes and seconds must be
    below 60, and the total positive. ``ValueError`` says what is allowed.
    """
    m = re.fullmatch(r"\s*(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?\s*", text, re.ASCII)
    if not m or (m.group(3) is not None and m.group(2) is None):
        raise ValueError("must be H, H:MM or H:MM:SS")
    h, mn, s = (int(g) if g is not None else 0 for g in m.groups())
    if mn >= 60 or s >= 60:
        raise ValueError("minutes and seconds must be below 60 (H:MM:SS)")
    if h * 3600 + mn * 60 + s <= 0:
        raise ValueError("must be longer than 0 s")
    return h * 3600 + mn * 60 + s


def format_walltime(seconds: int) -> str:
    """Seconds → ``H:MM:SS`` (hours unbounded)."""
    if seconds <= 0:
        raise ValueError(f"walltime {seconds} s must be positive")
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _shell_word(arg: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    if not re.search(r'["$`\\!]', arg):
        return f'"{arg}"'
    return shlex.quote(arg)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class NodesGroup:
    """Nodes of one site: ``count`` of them, optionally of ``cluster`` or exactly ``hosts``.

    ``blacklist`` holds cluster names and host FQDNs (a name with a dot is a host) that
    the group must avoid; it goes *inside* the group's constraint.
    """

    count: int | None
    site: str
    cluster: str | None = None
    hosts: tuple[str, ...] = ()
    blacklist: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.hosts and self.count not in (None, len(self.hosts)):
            raise ValueError(f"{self.count} nodes asked among {len(self.hosts)} hosts")
        if not self.hosts and (self.count is None or self.count < 1):
            raise ValueError(f"nodes group on {self.site}: count {self.count} must be >= 1")

    @property
    def nodes(self) -> int:
        return len(self.hosts) if self.hosts else int(self.count or 0)

    def constraint(self) -> str | None:
        """The SQL property of the group (no commas), None when unconstrained."""
        terms: list[str] = []
        if self.cluster:
            terms.append(f"cluster={_quote(self.cluster)}")
        if self.hosts:
            alternatives = " OR ".join(f"host={_quote(h)}" for h in self.hosts)
            terms.append(f"({alternatives})" if len(self.hosts) > 1 else alternatives)
        for name in self.blacklist:
            column = "host" if "." in name else "cluster"
            terms.append(f"{column} NOT IN ({_quote(name)})")
        return " AND ".join(terms) if terms else None

    def expression(self) -> str:
        sql = self.constraint()
        return (f"{{{sql}}}/" if sql else "") + f"nodes={self.nodes}"


def build_resources(
    groups: Sequence[NodesGroup], *, kavlan: str | None = None, subnets: str | None = None
) -> str:
    """One site's ``-l`` resources (no walltime): subnets, KaVLAN, then the nodes groups."""
    parts: list[str] = []
    if subnets:
        parts.append(subnets)
    if kavlan:
        if kavlan not in KAVLAN_TYPES:
            raise ValueError(f"KaVLAN type {kavlan!r}: must be one of {KAVLAN_TYPES}")
        parts.append(f"{{type='{kavlan}'}}/vlan=1")
    parts.extend(g.expression() for g in groups)
    if not parts:
        raise ValueError("an OAR request needs at least one resource group")
    return "+".join(parts)


@dataclass(frozen=True)
class OarRequest:
    """One ``oarsub`` on one site's frontend; checked by the grammar port when built."""

    site: str
    resources: str
    walltime: str
    """``H:MM:SS``."""
    job_types: tuple[str, ...] = ("deploy",)
    name: str = "dvms"
    reservation: str | None = None
    """Start date ``YYYY-MM-DD HH:MM:SS`` in Europe/Paris (``-r``), None = as soon as possible."""
    command: str = SLEEP_COMMAND
    parsed: ResourceRequest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parsed", check_resources(self.resource_argument()))

    def resource_argument(self) -> str:
        return f"{self.resources},walltime={self.walltime}"

    def oarsub_args(self) -> list[str]:
        """The ``oarsub`` command line, one argument per item."""
        args = ["oarsub", "-l", self.resource_argument()]
        for t in self.job_types:
            args += ["-t", t]
        if self.reservation:
            args += ["-r", self.reservation]
        args += ["-n", self.name, self.command]
        return args

    def line(self) -> str:
        """The command line as a shell would read it (double quotes, as execo writes it)."""
        return " ".join(_shell_word(a) for a in self.oarsub_args())

    def submission(self) -> Any:
        """execo_g5k's ``OarSubmission`` for the same job (``oarsub([(sub, site)])``)."""
        from execo_g5k.oar import OarSubmission

        return OarSubmission(
            resources=self.resources,
            walltime=parse_walltime(self.walltime),
            job_type=list(self.job_types),
            # -r as text: execo's own date formatting forks a child to set TZ
            additional_options=f'-r "{self.reservation}"' if self.reservation else None,
            name=self.name,
            command=self.command,
        )
