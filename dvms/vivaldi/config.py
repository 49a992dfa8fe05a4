"""Tuning of the Vivaldi coordinate algorithm (defaults as HashiCorp Serf's ``coordinate``).

References cited per field:

[1] Dabek, Cox, Kaashoek, Morris. "Vivaldi: A decentralized network coordinate system."
    SIGCOMM 2004.
[2] Ledlie, Gardner, Seltzer. "Network Coordinates in the Wild." NSDI 2007.
[3] Lee et al. "On suitability of Euclidean embedding for host-based network coordinate
    systems." IEEE/ACM ToN 18(1), 2010.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvms.config import check_fields, option

__all__ = ["VivaldiConfig"]


@dataclass(frozen=True, slots=True)
class VivaldiConfig:
    """Parameters of a ``VivaldiClient``; override by keyword: ``VivaldiConfig(dimensionality=2)``.

    Every field is a ``dvms.config.option``: an invalid value raises ``InputError`` naming
    the field and what is allowed.
    """

    dimensionality: int = option(
        8,
        "Dimensions of the Euclidean part (count; default 8, Serf's choice after [2]: more "
        "dimensions help up to a point), plus a non-Euclidean height.",
        lo=1,
    )

    error_max: float = option(
        1.5,
        "Initial error estimate of a fresh coordinate and upper bound of the estimate "
        "(dimensionless relative error; default 1.5, Serf).",
        lo=0,
        lo_open=True,
    )

    ce: float = option(
        0.25,
        "Maximum weight of one observation on the error estimate (dimensionless, in (0, 1]; "
        "default 0.25, [1]).",
        lo=0,
        hi=1,
        lo_open=True,
    )

    cc: float = option(
        0.25,
        "Maximum fraction of the distance error one observation moves the coordinate "
        "(dimensionless, in (0, 1]; default 0.25, [1]).",
        lo=0,
        hi=1,
        lo_open=True,
    )

    adjustment_window: int = option(
        20,
        "Number of recent (rtt − distance) samples averaged into the adjustment term (count; "
        "default 20, Serf after [3]; 0 disables the adjustment).",
        lo=0,
    )

    height_min: float = option(
        10e-6,
        "Smallest height, which must stay positive (seconds; default 10 µs, Serf).",
        lo=0,
        lo_open=True,
    )

    latency_filter_size: int = option(
        3,
        "RTT samples kept per peer for the moving-median filter (count; default 3, Serf after "
        "[2]; 1 disables the filter).",
        lo=1,
    )

    latency_filter_peers: int = option(
        64,
        "Peers whose filter samples are kept; the least recently observed peer's samples are "
        "dropped beyond that (count; default 64; ours, not Serf's, which keeps every peer's: "
        "this bounds a node's memory in 10,000-node simulations).",
        lo=1,
    )

    gravity_rho: float = option(
        150.0,
        "Gravity scale: a coordinate at distance d from the origin is pulled back by (d/rho)² "
        "per update (seconds; default 150, Serf after [2]).",
        lo=0,
        lo_open=True,
    )

    rtt_max: float = option(
        10.0,
        "Largest RTT accepted; larger (or negative) samples are rejected (seconds; default "
        "10, Serf).",
        lo=0,
        lo_open=True,
    )

    def __post_init__(self) -> None:
        check_fields(self, "VivaldiConfig")
