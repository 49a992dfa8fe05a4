"""The lab's OAR database: jobs shared by the fake OAR commands and the fake REST API.

One JSON file (``LAB/jobs.json``) changed under ``flock`` of ``LAB/jobs.lock``. A job's state
follows the wall clock (jobs start in real time): Waiting until its start, Running until its
walltime ends, then Terminated; ``oardel`` and the Error fault end it in Error. Nodes are
allocated at submission from the nodes no other live job holds, honouring each group's
property filter (the SQL subset dvms writes, see ``matches``).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.g5k.lab.spec import LabSite
from deploy.g5k.oarspec import ResourceRequest

__all__ = ["Allocation", "Job", "JobStore", "NoResources", "allocate", "matches",
           "site_subnet_block"]

FIRST_JOB_ID = 1000
LIVE = ("Waiting", "Running")


@dataclass(slots=True)
class Job:
    id: int
    site: str
    owner: str
    name: str
    types: list[str]
    resources: str
    walltime_s: int
    submitted: float
    start: float
    nodes: list[str]
    vlan: int | None = None
    subnets: list[str] = field(default_factory=list)
    command: str = "sleep 31536000"
    never_start: bool = False
    error: bool = False
    deleted_at: float | None = None

    def state(self, now: float) -> str:
        if self.deleted_at is not None:
            return "Error"
        if self.never_start or now < self.start:
            return "Waiting"
        if self.error:
            return "Error"
        if now >= self.start + self.walltime_s:
            return "Terminated"
        return "Running"


class NoResources(Exception):
    """The request cannot be satisfied by the site's free nodes."""


@dataclass(frozen=True, slots=True)
class Allocation:
    nodes: list[str]
    vlan: int | None
    subnets: list[str]


_CLAUSE = re.compile(r"^(\w+)\s*(NOT\s+IN|IN|=|!=|<>)\s*(.+)$", re.IGNORECASE)


def _split_top(text: str, word: str) -> list[str]:
    """``text`` split on `` AND `` / `` OR `` outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    pat = re.compile(rf"\s+{word}\s+", re.IGNORECASE)
    while i < len(text):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (mo := pat.match(text, i)):
            parts.append(text[start:i])
            i = start = mo.end()
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _unwrap(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def matches(props: str | None, attrs: dict[str, str]) -> bool:
    """Whether a resource with ``attrs`` satisfies OAR's SQL ``props`` (the subset dvms
    writes: ``col = 'v'``, ``col [NOT] IN ('a', ...)``, ``AND``, ``OR``, parentheses)."""
    text = _unwrap(props or "")
    if not text:
        return True
    ands = _split_top(text, "AND")
    if len(ands) > 1:
        return all(matches(a, attrs) for a in ands)
    ors = _split_top(text, "OR")
    if len(ors) > 1:
        return any(matches(o, attrs) for o in ors)
    mo = _CLAUSE.match(text)
    if mo is None:
        raise NoResources(f"cannot evaluate the property {text!r}")
    col, op, rhs = mo.group(1).lower(), re.sub(r"\s+", " ", mo.group(2).upper()), mo.group(3)
    vals = [v.strip().strip("'\"") for v in _unwrap(rhs).split(",") if v.strip()]
    have = attrs.get(col)
    if have is None:
        raise NoResources(f"unknown property {col!r}")
    hit = have in vals
    return hit if op in ("IN", "=") else not hit


def site_subnet_block(site: LabSite) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.{144 + 4 * site.index}.0.0/14")


def allocate(site: LabSite, request: ResourceRequest, busy: set[str],
             taken_subnets: set[str]) -> Allocation:
    """Nodes, VLAN and subnets for ``request`` on ``site``; ``NoResources`` if they don't fit."""
    free = [(c, n) for c, n in site.nodes() if n.name not in busy]
    nodes: list[str] = []
    vlan: int | None = None
    subnets: list[str] = []
    for group in request.groups:
        key, count = group.resources[-1] if group.resources else ("resource_id", 1)
        if key in ("nodes", "host", "resource_id", "core", "cpu"):
            cands = [n.name for c, n in free if n.name not in nodes
                     and matches(group.property, {"cluster": c, "host": n.name,
                                                  "network_address": n.name,
                                                  "type": "default"})]
            want = len(cands) if count < 0 else count
            if want > len(cands) or (count == -2 and not cands):
                raise NoResources(f"There are not enough resources for your request "
                                  f"({len(cands)} free nodes match)")
            nodes += cands[:want]
        elif key == "vlan":
            kind = re.search(r"type\s*=\s*'([\w-]+)'", group.property or "")
            if kind and kind.group(1) == "kavlan-global":
                if site.global_vlan is None:
                    raise NoResources("There are not enough resources for your request "
                                      f"(no global KaVLAN on {site.name})")
                vlan = site.global_vlan
            else:
                vlan = site.local_vlans[0]
        elif key.startswith("slash_"):
            prefix = int(key.split("_", 1)[1])
            pool = (str(s) for s in site_subnet_block(site).subnets(new_prefix=prefix))
            fresh = [s for s in pool if s not in taken_subnets][:count]
            if len(fresh) < count:
                raise NoResources("There are not enough resources for your request (subnets)")
            subnets += fresh
    return Allocation(nodes=nodes, vlan=vlan, subnets=subnets)


class JobStore:
    """The jobs of a lab, read and written under an exclusive lock."""

    def __init__(self, lab: Path) -> None:
        self.path = lab / "jobs.json"
        self.lock = lab / "jobs.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[int, Job]]:
        """The jobs, saved back when the block ends without an exception."""
        with open(self.lock, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            jobs = self._read()
            yield jobs
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({str(k): asdict(j) for k, j in jobs.items()}, indent=1))
            tmp.replace(self.path)

    def read(self) -> dict[int, Job]:
        with open(self.lock, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            return self._read()

    def _read(self) -> dict[int, Job]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {int(k): Job(**v) for k, v in data.items()}

    @staticmethod
    def next_id(jobs: dict[int, Job]) -> int:
        return max(jobs, default=FIRST_JOB_ID - 1) + 1
