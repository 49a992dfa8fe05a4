"""Sites of the simulated world: real city locations (data shared with ``dvms.geo``).

The embedded default is Grid'5000's site cities (``GRID5000_SITES``); ``WORLD_SITES`` is a
wide-area variant. ``assign_round_robin``/``assign_blocks`` place named hosts on sites.
"""

from __future__ import annotations

from collections.abc import Sequence

from dvms.errors import InputError
from dvms.geo import (
    GRID5000_SITES,
    SITE_SETS,
    WORLD_SITES,
    RttModel,
    Site,
    great_circle_km,
    site_rtt_s,
)

__all__ = [
    "GRID5000_SITES",
    "SITE_SETS",
    "WORLD_SITES",
    "RttModel",
    "Site",
    "assign_blocks",
    "assign_round_robin",
    "great_circle_km",
    "site_rtt_s",
    "site_set",
]


def site_set(name: str, count: int | None = None) -> tuple[Site, ...]:
    """The named site set (``"grid5000"`` or ``"world"``), optionally its first ``count``.

    Raises ``InputError`` for an unknown name or a count outside 1..len(set).
    """
    if name not in SITE_SETS:
        raise InputError(f"sites: unknown site set {name!r}; allowed: {sorted(SITE_SETS)}")
    sites = SITE_SETS[name]
    if count is None:
        return sites
    if not 1 <= count <= len(sites):
        raise InputError(f"sites: count {count} out of range 1..{len(sites)} for {name!r}")
    return sites[:count]


def assign_round_robin(nodes: Sequence[str], sites: Sequence[Site]) -> dict[str, str]:
    """Node → site name, node ``i`` on site ``i % len(sites)``."""
    if not sites:
        raise ValueError("sites must not be empty")
    return {node: sites[i % len(sites)].name for i, node in enumerate(nodes)}


def assign_blocks(nodes: Sequence[str], sites: Sequence[Site]) -> dict[str, str]:
    """Node → site name, in contiguous blocks of (almost) equal size, in site order."""
    if not sites:
        raise ValueError("sites must not be empty")
    n, k = len(nodes), len(sites)
    return {node: sites[i * k // n].name for i, node in enumerate(nodes)} if n else {}
