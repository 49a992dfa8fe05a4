"""Fault switches of the lab, flipped at run time through ``LAB/faults.json``.

Every stand-in (the fake REST API on each request, the fake OAR commands and kadeploy on each
call, the ssh proxy on each connection) reads the file afresh, so a test or a user
(``dvms g5k lab fault NAME VALUE``) can break one thing while the lab runs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvms.errors import InputError

__all__ = ["FAULTS", "Faults", "load_faults", "save_faults", "set_fault"]

FAULTS = "faults.json"
DEFAULT_REFUSAL = ("# ADMISSION RULE ERROR: [ADMISSION RULE] You are not allowed to submit "
                   "jobs on this site now (fake lab rule)")


@dataclass(slots=True)
class Faults:
    api_down: bool = False
    """Every API request answers 503."""
    api_503_sites: list[str] = field(default_factory=list)
    """Requests under ``/sites/S/`` answer 503 for these sites."""
    api_malformed_sites: list[str] = field(default_factory=list)
    """Payloads under ``/sites/S/`` are truncated JSON for these sites."""
    refuse_sites: dict[str, str] = field(default_factory=dict)
    """oarsub on these sites fails with the given admission-rule message."""
    never_start_sites: list[str] = field(default_factory=list)
    """Jobs on these sites stay Waiting with no prediction."""
    error_sites: list[str] = field(default_factory=list)
    """Jobs on these sites go to Error instead of starting."""
    no_kavlan: bool = False
    """``kavlan -V`` prints nothing (as when no VLAN was granted)."""
    no_subnets: bool = False
    """``g5k-subnets`` prints nothing (as when no subnet was granted)."""
    kadeploy_fail_nodes: list[str] = field(default_factory=list)
    """Short names of nodes kadeploy3 reports in "failed on nodes"."""
    kadeploy_fail_sites: list[str] = field(default_factory=list)
    """kadeploy3 fails every node of these sites."""
    kadeploy_hang_sites: list[str] = field(default_factory=list)
    """kadeploy3 never finishes on these sites (until its ssh session is closed)."""
    kadeploy_garbage_sites: list[str] = field(default_factory=list)
    """kadeploy3 prints output without the node sections on these sites."""
    frontend_down_sites: list[str] = field(default_factory=list)
    """The ssh proxy of these sites' frontends closes every connection (ssh exits 255)."""
    apt_fail_nodes: list[str] = field(default_factory=list)
    """The nodes' fake ``apt-get`` fails on these nodes (short names)."""
    silent_vms: list[str] = field(default_factory=list)
    """Tier F: these VMs boot with ``dvms.sshd=0`` (never answer on port 22; applied by the
    nodes' ``virsh define``)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_faults(lab: Path) -> Faults:
    path = lab / FAULTS
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Faults()
    except (OSError, ValueError):
        return Faults()
    known = {f.name for f in dataclasses.fields(Faults)}
    return Faults(**{k: v for k, v in data.items() if k in known})


def save_faults(lab: Path, faults: Faults) -> None:
    tmp = lab / (FAULTS + ".tmp")
    tmp.write_text(json.dumps(faults.to_json(), indent=1, sort_keys=True))
    tmp.replace(lab / FAULTS)


def set_fault(lab: Path, name: str, value: Any) -> Faults:
    """Set one switch (``value`` of the switch's type; a string is split on commas for the
    lists and read as ``site=message`` pairs for ``refuse_sites``); returns the new set."""
    faults = load_faults(lab)
    known = {f.name: f for f in dataclasses.fields(Faults)}
    if name not in known:
        raise InputError(f"fault {name!r}: must be one of {', '.join(sorted(known))}")
    current = getattr(faults, name)
    if isinstance(value, str):
        if isinstance(current, bool):
            value = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, list):
            value = [v for v in value.split(",") if v]
        elif isinstance(current, dict):
            pairs = [p.partition("=") for p in value.split(",") if p]
            value = {site: (msg or DEFAULT_REFUSAL) for site, _, msg in pairs}
    setattr(faults, name, value)
    save_faults(lab, faults)
    return faults
