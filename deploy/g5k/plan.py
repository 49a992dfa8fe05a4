"""Funk's planning on execo_g5k: a slot (free / date / max), counts per site, OAR requests.

``make_plan`` asks execo_g5k for the planning of the wanted elements, computes the slots
for the walltime, picks one by mode (``free``: the first where every count fits;
``date``: the first with any wanted node; ``max``: the one with most), distributes the
counts over sites and writes one checked ``OarRequest`` per site. No side effect: nothing
is submitted. execo's functions mutate their inputs; they are given copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deploy.g5k.config import Experiment
from deploy.g5k.oarspec import OarRequest
from deploy.g5k.platform import Platform
from dvms.errors import DvmsError

__all__ = ["NoSlot", "Plan", "make_plan"]


class NoSlot(DvmsError):
    """No slot of the planning window fits the request."""


@dataclass(frozen=True)
class Plan:
    mode: str
    start: int
    """Unix time the jobs start."""
    end: int
    counts: Mapping[str, int]
    """Nodes per site."""
    requests: Mapping[str, OarRequest]
    """One OAR request per site, in site order."""
    kavlan_site: str | None
    """The site whose request carries the KaVLAN (None: no KaVLAN)."""
    slots: tuple[tuple[int, int, Mapping[str, Any]], ...] = field(default=(), repr=False)
    """The first slots computed (Funk prints ten)."""

    def to_json(self) -> dict[str, Any]:
        """Funk's ``--json`` document (``cmd``, ``options``, ``slots``) + dvms fields."""
        raise NotImplementedError

    def lines(self) -> list[str]:
        """Human-readable: the slot, per-site counts, one oarsub line per site."""
        raise NotImplementedError


def make_plan(exp: Experiment, platform: Platform, *, now: int | None = None) -> Plan:
    """Plan ``exp.reservation`` on ``platform``; ``now`` (Unix time) defaults to the clock.

    Raises ``InputError`` for names the platform does not know (resources, blacklist),
    ``SiteUnavailable`` when a site's planning cannot be read, ``NoSlot`` when nothing fits.
    """
    raise NotImplementedError
