"""Tuning of the Vivaldi coordinate algorithm (defaults as HashiCorp Serf's ``coordinate``).

References cited per field:

[1] Dabek, Cox, Kaashoek, Morris. "Vivaldi: A decentralized network coordinate system."
    SIGCOMM 2004.
[2] Ledlie, Gardner, Seltzer. "Network Coordinates in the Wild." NSDI 2007.
[3] Lee et al. "On suitability of Euclidean embedding for host-based network coordinate
    systems." IEEE/ACM ToN 18(1), 2010.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["VivaldiConfig"]


@dataclass(frozen=True, slots=True)
class VivaldiConfig:
    """Parameters of a ``VivaldiClient``; override by keyword: ``VivaldiConfig(dimensionality=2)``.

    Invalid values raise ``ValueError`` naming the field.
    """

    dimensionality: int = 8
    """Dimensions of the Euclidean part (count; default 8, Serf's choice after [2]: more
    dimensions help up to a point), plus a non-Euclidean height."""

    error_max: float = 1.5
    """Initial error estimate of a fresh coordinate and upper bound of the estimate
    (dimensionless relative error; default 1.5, Serf)."""

    ce: float = 0.25
    """Maximum weight of one observation on the error estimate (dimensionless, in (0, 1];
    default 0.25, [1])."""

    cc: float = 0.25
    """Maximum fraction of the distance error one observation moves the coordinate
    (dimensionless, in (0, 1]; default 0.25, [1])."""

    adjustment_window: int = 20
    """Number of recent (rtt − distance) samples averaged into the adjustment term
    (count; default 20, Serf after [3]; 0 disables the adjustment)."""

    height_min: float = 10e-6
    """Smallest height, which must stay positive (seconds; default 10 µs, Serf)."""

    latency_filter_size: int = 3
    """RTT samples kept per peer for the moving-median filter (count; default 3, Serf
    after [2]; 1 disables the filter)."""

    latency_filter_peers: int = 64
    """Peers whose filter samples are kept; the least recently observed peer's samples
    are dropped beyond that (count; default 64; ours, not Serf's, which keeps every
    peer's: this bounds a node's memory in 10,000-node simulations)."""

    gravity_rho: float = 150.0
    """Gravity scale: a coordinate at distance d from the origin is pulled back by
    (d/rho)² per update (seconds; default 150, Serf after [2])."""

    rtt_max: float = 10.0
    """Largest RTT accepted; larger (or negative) samples are rejected (seconds; default
    10, Serf)."""

    def __post_init__(self) -> None:
        def fail(field: str, allowed: str) -> ValueError:
            value = getattr(self, field)
            return ValueError(f"VivaldiConfig.{field}: {value!r} is invalid; must be {allowed}")

        for field in (
            "dimensionality",
            "adjustment_window",
            "latency_filter_size",
            "latency_filter_peers",
        ):
            if not isinstance(getattr(self, field), int) or isinstance(getattr(self, field), bool):
                raise fail(field, "an int")
        for field in ("error_max", "ce", "cc", "height_min", "gravity_rho", "rtt_max"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise fail(field, "a finite number")
        if self.dimensionality < 1:
            raise fail("dimensionality", ">= 1")
        if not self.error_max > 0:
            raise fail("error_max", "> 0")
        if not 0 < self.ce <= 1:
            raise fail("ce", "in (0, 1]")
        if not 0 < self.cc <= 1:
            raise fail("cc", "in (0, 1]")
        if self.adjustment_window < 0:
            raise fail("adjustment_window", ">= 0")
        if not self.height_min > 0:
            raise fail("height_min", "> 0 seconds")
        if self.latency_filter_size < 1:
            raise fail("latency_filter_size", ">= 1")
        if self.latency_filter_peers < 1:
            raise fail("latency_filter_peers", ">= 1")
        if not self.gravity_rho > 0:
            raise fail("gravity_rho", "> 0 seconds")
        if not self.rtt_max > 0:
            raise fail("rtt_max", "> 0 seconds")
