"""A network coordinate: Euclidean vector + height + error estimate + adjustment (seconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dvms.vivaldi.config import VivaldiConfig

__all__ = ["Coordinate", "InvalidCoordinate", "InvalidRtt", "VivaldiError"]


class VivaldiError(ValueError):
    """Base of the errors raised by ``dvms.vivaldi`` for bad inputs."""


class InvalidRtt(VivaldiError):
    """An RTT sample outside [0, rtt_max] (or not a number); carries the value."""

    def __init__(self, rtt_s: float, rtt_max: float) -> None:
        super().__init__(
            f"round-trip time {rtt_s!r} s is invalid; must be a number in [0, {rtt_max}] s"
        )
        self.rtt_s = rtt_s


class InvalidCoordinate(VivaldiError):
    """A peer coordinate of another dimensionality, or with a NaN/Inf component."""


@dataclass(frozen=True, slots=True)
class Coordinate:
    """An immutable Vivaldi coordinate. All values are seconds except ``error``."""

    vec: tuple[float, ...]
    """The Euclidean part (seconds per axis)."""
    height: float
    """Non-Euclidean access-link delay added to every distance (seconds, >= height_min)."""
    error: float
    """Confidence: the node's estimated relative error (dimensionless)."""
    adjustment: float = 0.0
    """Offset added to distances, from recent (rtt − distance) samples (seconds)."""

    @classmethod
    def origin(cls, config: VivaldiConfig | None = None) -> Coordinate:
        """A fresh coordinate: at the origin, minimum height, maximum error."""
        config = config or VivaldiConfig()
        return cls((0.0,) * config.dimensionality, config.height_min, config.error_max, 0.0)

    def is_valid(self) -> bool:
        """Whether every component is finite (not NaN, not ±Inf)."""
        # fast path: a finite sum means finite components; else check each one
        if math.isfinite(sum(self.vec) + self.height + self.error + self.adjustment):
            return True
        return (
            all(math.isfinite(v) for v in self.vec)
            and math.isfinite(self.height)
            and math.isfinite(self.error)
            and math.isfinite(self.adjustment)
        )

    def is_compatible_with(self, other: Coordinate) -> bool:
        """Whether both have the same dimensionality."""
        return len(self.vec) == len(other.vec)

    def raw_distance_to(self, other: Coordinate) -> float:
        """Euclidean distance plus both heights, without adjustments (seconds)."""
        if len(self.vec) != len(other.vec):
            raise InvalidCoordinate(
                f"dimensionality conflict: {len(self.vec)} vs {len(other.vec)}"
            )
        return math.dist(self.vec, other.vec) + self.height + other.height

    def distance_to(self, other: Coordinate) -> float:
        """Estimated RTT to ``other`` (seconds): raw distance plus both adjustments, unless
        that would not be positive (then the raw distance), as in Serf."""
        dist = self.raw_distance_to(other)
        adjusted = dist + self.adjustment + other.adjustment
        return adjusted if adjusted > 0.0 else dist
